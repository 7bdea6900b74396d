//! Keys held by a PKCS#11 token (an HSM, a smart card, SoftHSM2).
//!
//! Every version of a key is one token object (a private key with its public key, or a secret key)
//! labelled `wasmzip:NAME:vN`. Private and secret keys are created sensitive and non-extractable, so
//! their material never leaves the token; signing, sealing and tagging happen inside it.
//!
//! One [`Pkcs11Store`] is shared by every request of a process. It logs in once, on a session it keeps
//! open for its whole life (PKCS#11 login state belongs to the application, not to a session), and
//! runs operations on a pool of further sessions, one per operation at a time. Object handles and the
//! current version of each key are cached for at most [`CACHE_TTL`], because another process
//! (`wasmzip keys`) may rotate or delete keys on the same token.

use std::collections::{BTreeMap, HashMap};
use std::ffi::c_ulong;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::object::{Attribute, AttributeType, KeyType as CkKeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::{AuthPin, Ulong};
use sha2::Digest as _;
use subtle::ConstantTimeEq as _;

use crate::crypto::{check_len, ed25519_spki, p256_raw_to_der, p256_spki, random, verify_with_spki};
use crate::{
    GCM_TAG_BYTES, KeyInfo, KeyName, KeyType, Keystore, KeystoreError, MAX_KEY_VERSIONS, NONCE_BYTES, Operation,
    PublicKey, Sealed, Signature, Tag,
};

/// How long a cached object handle or current version is trusted before the token is asked again.
pub const CACHE_TTL: Duration = Duration::from_secs(1);

/// Prefix of the labels of wasmzip's key objects.
const LABEL_PREFIX: &str = "wasmzip:";
/// Idle sessions kept beyond this are closed when returned.
const MAX_IDLE_SESSIONS: usize = 64;
/// DER OID 1.3.101.112 (id-Ed25519), the `CKA_EC_PARAMS` of Ed25519 keys.
const ED25519_OID: &[u8] = &[0x06, 0x03, 0x2B, 0x65, 0x70];
/// DER OID 1.2.840.10045.3.1.7 (prime256v1), the `CKA_EC_PARAMS` of P-256 keys.
const P256_OID: &[u8] = &[0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
/// `CKR_AEAD_DECRYPT_FAILED` (PKCS#11 3.0), which cryptoki 0.12 does not name.
const CKR_AEAD_DECRYPT_FAILED: c_ulong = 0x35;

/// SHA-256 of the PIN a process logged in to a token with.
type PinDigest = [u8; 32];

/// A keystore on a PKCS#11 token, found by its label.
///
/// `Send + Sync`: operations from many threads run concurrently on pooled sessions.
pub struct Pkcs11Store {
    pkcs11: Pkcs11,
    slot: Slot,
    token_label: String,
    module: PathBuf,
    /// Idle sessions; one is taken per operation and returned after.
    pool: Mutex<Vec<Session>>,
    /// Handles and current versions, each trusted for [`CACHE_TTL`].
    cache: Mutex<Cache>,
    /// Serializes create, rotate and delete within this process.
    admin: Mutex<()>,
    /// The session that logged in; never used for operations and closed last, so the login lasts as
    /// long as the store.
    _login: Mutex<Session>,
}

impl std::fmt::Debug for Pkcs11Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Store")
            .field("token_label", &self.token_label)
            .field("module", &self.module)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Cache {
    handles: HashMap<(KeyName, u32), Resolved>,
    current: HashMap<KeyName, (Instant, u32)>,
}

/// The objects of one key version.
#[derive(Debug, Clone, Copy)]
struct Resolved {
    at: Instant,
    version: u32,
    key_type: KeyType,
    /// The private or secret key.
    key: ObjectHandle,
    /// The public key of a signing key.
    public: Option<ObjectHandle>,
}

/// Errors inside an operation: a PKCS#11 failure (the call is named when converted) or a finished
/// keystore error.
enum OpErr {
    Ck(CkError),
    Ks(KeystoreError),
}

impl From<CkError> for OpErr {
    fn from(e: CkError) -> Self {
        OpErr::Ck(e)
    }
}

impl From<KeystoreError> for OpErr {
    fn from(e: KeystoreError) -> Self {
        OpErr::Ks(e)
    }
}

impl OpErr {
    fn into_keystore(self) -> KeystoreError {
        match self {
            OpErr::Ck(e) => ck_error("a PKCS#11 call", e),
            OpErr::Ks(e) => e,
        }
    }
}

/// A [`KeystoreError::Pkcs11`] naming the failed call (taken from the error when it says which, else
/// `fallback`) and its `CKR_` code.
fn ck_error(fallback: &str, e: CkError) -> KeystoreError {
    match e {
        CkError::Pkcs11(rv, function) => KeystoreError::Pkcs11 { call: format!("C_{function:?}"), message: rv_name(rv) },
        other => KeystoreError::Pkcs11 { call: fallback.to_string(), message: other.to_string() },
    }
}

/// `CKR_PIN_INCORRECT` for `RvError::PinIncorrect`, and so on.
fn rv_name(rv: RvError) -> String {
    match rv {
        RvError::VendorDefined(code) => format!("vendor-defined error {code:#x}"),
        RvError::UnknownErrorCode(code) => format!("error {code:#x}"),
        other => {
            let camel = format!("{other:?}");
            let mut name = String::from("CKR");
            for c in camel.chars() {
                if c.is_ascii_uppercase() {
                    name.push('_');
                }
                name.push(c.to_ascii_uppercase());
            }
            name
        }
    }
}

fn rv_of(e: &CkError) -> Option<RvError> {
    match e {
        CkError::Pkcs11(rv, _) => Some(*rv),
        _ => None,
    }
}

/// Whether an operation failed because a cached handle no longer names an object.
fn is_stale_handle(e: &OpErr) -> bool {
    matches!(e, OpErr::Ck(e) if matches!(rv_of(e), Some(RvError::ObjectHandleInvalid | RvError::KeyHandleInvalid)))
}

/// Whether a session must be closed rather than returned to the pool after `e`.
fn breaks_session(e: &OpErr) -> bool {
    matches!(e, OpErr::Ck(e) if matches!(
        rv_of(e),
        Some(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::OperationActive
                | RvError::DeviceRemoved
                | RvError::DeviceError
                | RvError::TokenNotPresent
                | RvError::GeneralError
                | RvError::UserNotLoggedIn
                | RvError::CryptokiNotInitialized
        )
    ))
}

/// Whether a failed AES-GCM `C_Decrypt` means the data did not authenticate. The spec's codes are
/// `CKR_ENCRYPTED_DATA_INVALID` and `CKR_AEAD_DECRYPT_FAILED`; SoftHSM2 2.6 returns
/// `CKR_GENERAL_ERROR` on a tag mismatch (after resetting the operation), so that counts too.
fn is_auth_failure(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::EncryptedDataInvalid
                | RvError::EncryptedDataLenRange
                | RvError::DataInvalid
                | RvError::DataLenRange
                | RvError::GeneralError
                | RvError::FunctionFailed,
            cryptoki::context::Function::Decrypt
        )
    ) || matches!(e, CkError::Pkcs11(RvError::UnknownErrorCode(code), _) if *code == CKR_AEAD_DECRYPT_FAILED)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn ulong(value: c_ulong) -> Ulong {
    Ulong::from(value)
}

/// The label of `name` version `version`.
fn object_label(name: &KeyName, version: u32) -> String {
    format!("{LABEL_PREFIX}{name}:v{version}")
}

/// Parses `wasmzip:NAME:vN` (N ≥ 1, no leading zeros); `None` for any other label.
fn parse_label(label: &[u8]) -> Option<(KeyName, u32)> {
    let label = std::str::from_utf8(label).ok()?;
    let rest = label.strip_prefix(LABEL_PREFIX)?;
    let (name, version) = rest.rsplit_once(":v")?;
    if version.is_empty() || version.starts_with('0') || !version.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let version: u32 = version.parse().ok()?;
    Some((KeyName::parse(name).ok()?, version))
}

fn key_type_of(ck: CkKeyType) -> Option<KeyType> {
    if ck == CkKeyType::EC_EDWARDS {
        Some(KeyType::Ed25519)
    } else if ck == CkKeyType::EC {
        Some(KeyType::P256)
    } else if ck == CkKeyType::AES {
        Some(KeyType::Aes256Gcm)
    } else if ck == CkKeyType::GENERIC_SECRET {
        Some(KeyType::HmacSha256)
    } else {
        None
    }
}

/// The raw point of a `CKA_EC_POINT` value of `raw_len` bytes: either the point itself or, as
/// SoftHSM2 and most tokens return it, the point wrapped in a DER OCTET STRING.
fn unwrap_ec_point(value: &[u8], raw_len: usize) -> Option<&[u8]> {
    if value.len() == raw_len {
        return Some(value);
    }
    let (&tag, rest) = value.split_first()?;
    if tag != 0x04 {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, content) = match first {
        n if n < 0x80 => (usize::from(n), rest),
        0x81 => {
            let (&n, rest) = rest.split_first()?;
            (usize::from(n), rest)
        }
        _ => return None,
    };
    (len == raw_len && content.len() == raw_len).then_some(content)
}

/// Loads `module` and initializes it once per process; later opens reuse it. Modules are never
/// finalized or unloaded: other stores of the process may be using them, and some modules crash
/// when unloaded.
fn load_module(module: &Path) -> Result<(Pkcs11, PathBuf), KeystoreError> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    if !module.exists() {
        return Err(KeystoreError::Config(format!("the PKCS#11 module {} does not exist", module.display())));
    }
    let canonical = module
        .canonicalize()
        .map_err(|e| KeystoreError::Config(format!("cannot use the PKCS#11 module {}: {e}", module.display())))?;
    if !canonical.is_file() {
        return Err(KeystoreError::Config(format!("the PKCS#11 module {} is not a file", module.display())));
    }
    let mut modules = lock(MODULES.get_or_init(Default::default));
    if let Some(loaded) = modules.get(&canonical) {
        return Ok((loaded.clone(), canonical));
    }
    let pkcs11 = Pkcs11::new(&canonical)
        .map_err(|e| KeystoreError::Config(format!("cannot load the PKCS#11 module {}: {e}", module.display())))?;
    match pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        // Already initialized by another user of the module in this process: fine.
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(ck_error("C_Initialize", e)),
    }
    modules.insert(canonical.clone(), pkcs11.clone());
    Ok((pkcs11, canonical))
}

/// The slot whose token is labelled `label`.
fn find_slot(pkcs11: &Pkcs11, module: &Path, label: &str) -> Result<Slot, KeystoreError> {
    let slots = pkcs11.get_slots_with_token().map_err(|e| ck_error("C_GetSlotList", e))?;
    let mut found = Vec::new();
    let mut matching = Vec::new();
    for slot in slots {
        let info = match pkcs11.get_token_info(slot) {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(slot = %slot, error = %e, "skipping a PKCS#11 slot whose token info cannot be read");
                continue;
            }
        };
        let token_label = info.label().trim_end_matches(' ');
        if !info.token_initialized() || token_label.is_empty() {
            continue;
        }
        if token_label == label {
            matching.push(slot);
        }
        found.push(format!("\"{token_label}\""));
    }
    match matching.as_slice() {
        [slot] => Ok(*slot),
        [] => Err(KeystoreError::Config(format!(
            "no PKCS#11 token labelled \"{label}\" in module {}; tokens found: {}",
            module.display(),
            if found.is_empty() { "none".to_string() } else { found.join(", ") }
        ))),
        several => Err(KeystoreError::Config(format!(
            "{} PKCS#11 tokens in module {} are labelled \"{label}\"; give the token to use a unique label",
            several.len(),
            module.display()
        ))),
    }
}

impl Pkcs11Store {
    /// Opens the token labelled `token_label` of the PKCS#11 `module` and logs in as its user with
    /// `pin`. The login lasts until the store is dropped.
    pub fn open(module: &Path, token_label: &str, pin: &str) -> Result<Self, KeystoreError> {
        let label = token_label.trim_end_matches(' ');
        if label.is_empty() {
            return Err(KeystoreError::Config("the PKCS#11 token label is empty".into()));
        }
        // PKCS#11 login state belongs to the process: when another store of this process is logged in
        // to the token, C_Login answers CKR_USER_ALREADY_LOGGED_IN without looking at the PIN, so the
        // PIN is compared with (the digest of) the one that logged in.
        static LOGINS: OnceLock<Mutex<HashMap<(PathBuf, Slot), PinDigest>>> = OnceLock::new();
        let (pkcs11, canonical) = load_module(module)?;
        let slot = find_slot(&pkcs11, module, label)?;
        let pin_digest: PinDigest = sha2::Sha256::digest(pin.as_bytes()).into();
        let login = pkcs11.open_rw_session(slot).map_err(|e| ck_error("C_OpenSession", e))?;
        let logins = LOGINS.get_or_init(Default::default);
        match login.login(UserType::User, Some(&AuthPin::new(pin.into()))) {
            Ok(()) => {
                lock(logins).insert((canonical, slot), pin_digest);
            }
            Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {
                if let Some(known) = lock(logins).get(&(canonical, slot))
                    && !bool::from(known.ct_eq(&pin_digest))
                {
                    return Err(KeystoreError::Config(format!(
                        "wrong PIN for PKCS#11 token \"{label}\" (it differs from the PIN this process logged in with)"
                    )));
                }
            }
            Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => {
                return Err(KeystoreError::Config(format!(
                    "wrong PIN for PKCS#11 token \"{label}\" (C_Login returned CKR_PIN_INCORRECT)"
                )));
            }
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => {
                return Err(KeystoreError::Config(format!(
                    "the user PIN of PKCS#11 token \"{label}\" is locked (C_Login returned CKR_PIN_LOCKED)"
                )));
            }
            Err(CkError::Pkcs11(RvError::UserPinNotInitialized, _)) => {
                return Err(KeystoreError::Config(format!(
                    "PKCS#11 token \"{label}\" has no user PIN yet (C_Login returned CKR_USER_PIN_NOT_INITIALIZED)"
                )));
            }
            Err(e) => return Err(ck_error("C_Login", e)),
        }
        Ok(Pkcs11Store {
            pkcs11,
            slot,
            token_label: label.to_string(),
            module: module.to_path_buf(),
            pool: Mutex::new(Vec::new()),
            cache: Mutex::new(Cache::default()),
            admin: Mutex::new(()),
            _login: Mutex::new(login),
        })
    }

    /// The token's label.
    pub fn token_label(&self) -> &str {
        &self.token_label
    }

    /// Whether the private or secret key object of `name` version `version` may leave the token
    /// (`CKA_EXTRACTABLE`); wasmzip creates keys with `false`.
    pub fn extractable(&self, name: &KeyName, version: u32) -> Result<bool, KeystoreError> {
        self.key_flag(name, version, AttributeType::Extractable)
    }

    /// Whether the private or secret key object of `name` version `version` is sensitive
    /// (`CKA_SENSITIVE`: its value is never revealed in plaintext); wasmzip creates keys with `true`.
    pub fn sensitive(&self, name: &KeyName, version: u32) -> Result<bool, KeystoreError> {
        self.key_flag(name, version, AttributeType::Sensitive)
    }

    fn key_flag(&self, name: &KeyName, version: u32, attribute: AttributeType) -> Result<bool, KeystoreError> {
        self.with_key(name, Some(version), None, |s, r| {
            for a in s.get_attributes(r.key, &[attribute])? {
                match a {
                    Attribute::Extractable(v) if attribute == AttributeType::Extractable => return Ok(v),
                    Attribute::Sensitive(v) if attribute == AttributeType::Sensitive => return Ok(v),
                    _ => {}
                }
            }
            Err(KeystoreError::Pkcs11 {
                call: "C_GetAttributeValue".into(),
                message: format!("the token did not return {attribute} of `{name}` version {version}"),
            }
            .into())
        })
    }

    /// Runs `f` on a pooled session, opening one when none is idle, and returns the session after
    /// unless the error left it unusable.
    fn with_session<T>(&self, f: impl FnOnce(&Session) -> Result<T, OpErr>) -> Result<T, KeystoreError> {
        let idle = lock(&self.pool).pop();
        let session = match idle {
            Some(s) => s,
            None => self.pkcs11.open_rw_session(self.slot).map_err(|e| ck_error("C_OpenSession", e))?,
        };
        let result = f(&session);
        let keep = match &result {
            Ok(_) => true,
            Err(e) => !breaks_session(e),
        };
        if keep {
            let mut pool = lock(&self.pool);
            if pool.len() < MAX_IDLE_SESSIONS {
                pool.push(session);
            }
        }
        result.map_err(OpErr::into_keystore)
    }

    /// Runs `f` on the objects of `name` at `version` (the current one when `None`), after checking
    /// that its type does `operation`. A handle found stale is dropped from the cache and the whole
    /// lookup retried once.
    fn with_key<T>(
        &self,
        name: &KeyName,
        version: Option<u32>,
        operation: Option<Operation>,
        f: impl Fn(&Session, &Resolved) -> Result<T, OpErr>,
    ) -> Result<T, KeystoreError> {
        self.with_session(|s| {
            let mut retried = false;
            loop {
                let resolved = self.resolve(s, name, version)?;
                if let Some(operation) = operation
                    && !operation.applies_to(resolved.key_type)
                {
                    return Err(
                        KeystoreError::Unsupported { name: name.clone(), key_type: resolved.key_type, operation }.into()
                    );
                }
                match f(s, &resolved) {
                    Err(e) if !retried && is_stale_handle(&e) => {
                        tracing::debug!(key = %name, version = resolved.version, "PKCS#11 handle went stale; looking the key up again");
                        self.forget(name);
                        retried = true;
                    }
                    other => return other,
                }
            }
        })
    }

    /// Drops everything cached about `name`.
    fn forget(&self, name: &KeyName) {
        let mut cache = lock(&self.cache);
        cache.current.remove(name);
        cache.handles.retain(|(n, _), _| n != name);
    }

    /// The objects of `name` at `version`, or at its current version.
    fn resolve(&self, s: &Session, name: &KeyName, version: Option<u32>) -> Result<Resolved, OpErr> {
        let now = Instant::now();
        let wanted = match version {
            Some(v) => v,
            None => {
                let cached = lock(&self.cache)
                    .current
                    .get(name)
                    .filter(|(at, _)| now.duration_since(*at) < CACHE_TTL)
                    .map(|(_, v)| *v);
                match cached {
                    Some(v) => v,
                    None => self.scan(s)?.get(name).map(KeyInfo::current).ok_or_else(|| KeystoreError::NotFound(name.clone()))?,
                }
            }
        };
        let cached = lock(&self.cache)
            .handles
            .get(&(name.clone(), wanted))
            .filter(|r| now.duration_since(r.at) < CACHE_TTL)
            .copied();
        if let Some(r) = cached {
            return Ok(r);
        }
        if let Some(r) = self.find_version(s, name, wanted)? {
            return Ok(r);
        }
        // Not on the token: a fresh listing tells which error, or (for the current version, which may
        // have changed since it was cached) which version to use instead.
        let keys = self.scan(s)?;
        let Some(info) = keys.get(name) else {
            return Err(KeystoreError::NotFound(name.clone()).into());
        };
        match version {
            Some(v) => Err(KeystoreError::UnknownVersion { name: name.clone(), version: v }.into()),
            None => self.find_version(s, name, info.current())?.ok_or_else(|| KeystoreError::NotFound(name.clone()).into()),
        }
    }

    /// Finds the objects labelled for `name` at `version` and caches them; `None` when there is no
    /// private or secret key of that label.
    fn find_version(&self, s: &Session, name: &KeyName, version: u32) -> Result<Option<Resolved>, OpErr> {
        let label = object_label(name, version);
        let handles = s.find_objects(&[Attribute::Token(true), Attribute::Label(label.clone().into_bytes())])?;
        let mut key = None;
        let mut public = None;
        for handle in handles {
            let attrs = match s.get_attributes(handle, &[AttributeType::Class, AttributeType::KeyType]) {
                Ok(a) => a,
                Err(e) if matches!(rv_of(&e), Some(RvError::ObjectHandleInvalid)) => continue,
                Err(e) => return Err(e.into()),
            };
            let mut class = None;
            let mut ck_type = None;
            for a in attrs {
                match a {
                    Attribute::Class(c) => class = Some(c),
                    Attribute::KeyType(t) => ck_type = Some(t),
                    _ => {}
                }
            }
            match class {
                Some(c) if c == ObjectClass::PRIVATE_KEY || c == ObjectClass::SECRET_KEY => {
                    let key_type = ck_type.and_then(key_type_of).ok_or_else(|| KeystoreError::Pkcs11 {
                        call: "C_GetAttributeValue".into(),
                        message: format!("the key object labelled {label} has a key type wasmzip does not use ({ck_type:?})"),
                    })?;
                    if key.is_none() {
                        key = Some((handle, key_type));
                    } else {
                        tracing::warn!(label = %label, "several key objects carry the same label; using the first");
                    }
                }
                Some(c) if c == ObjectClass::PUBLIC_KEY => public = public.or(Some(handle)),
                _ => {}
            }
        }
        let Some((key, key_type)) = key else {
            return Ok(None);
        };
        let resolved = Resolved { at: Instant::now(), version, key_type, key, public };
        lock(&self.cache).handles.insert((name.clone(), version), resolved);
        Ok(Some(resolved))
    }

    /// Every wasmzip key on the token, from the labels of its private and secret key objects. Refreshes
    /// the cached current versions.
    fn scan(&self, s: &Session) -> Result<BTreeMap<KeyName, KeyInfo>, OpErr> {
        let mut found: BTreeMap<KeyName, BTreeMap<u32, KeyType>> = BTreeMap::new();
        for class in [ObjectClass::PRIVATE_KEY, ObjectClass::SECRET_KEY] {
            for handle in s.find_objects(&[Attribute::Token(true), Attribute::Class(class)])? {
                let attrs = match s.get_attributes(handle, &[AttributeType::Label, AttributeType::KeyType]) {
                    Ok(a) => a,
                    // Destroyed since the search, by another session or process.
                    Err(e) if matches!(rv_of(&e), Some(RvError::ObjectHandleInvalid)) => continue,
                    Err(e) => return Err(e.into()),
                };
                let mut label = None;
                let mut ck_type = None;
                for a in attrs {
                    match a {
                        Attribute::Label(l) => label = Some(l),
                        Attribute::KeyType(t) => ck_type = Some(t),
                        _ => {}
                    }
                }
                let Some((name, version)) = label.as_deref().and_then(parse_label) else { continue };
                let Some(key_type) = ck_type.and_then(key_type_of) else {
                    tracing::warn!(key = %name, version, "ignoring a key object of a type wasmzip does not use");
                    continue;
                };
                found.entry(name).or_default().insert(version, key_type);
            }
        }
        let now = Instant::now();
        let keys: BTreeMap<KeyName, KeyInfo> = found
            .into_iter()
            .filter_map(|(name, versions)| {
                let (_, &key_type) = versions.last_key_value()?;
                let info = KeyInfo { name: name.clone(), key_type, versions: versions.into_keys().collect() };
                Some((name, info))
            })
            .collect();
        let mut cache = lock(&self.cache);
        cache.current = keys.iter().map(|(name, info)| (name.clone(), (now, info.current()))).collect();
        Ok(keys)
    }

    /// Generates `name` version `version` of `key_type` on the token.
    fn generate(&self, s: &Session, name: &KeyName, key_type: KeyType, version: u32) -> Result<(), OpErr> {
        let label = object_label(name, version);
        // Objects left with this label by an interrupted delete (a public key whose private key is
        // gone) would be confused with the new ones.
        self.destroy_label(s, &label)?;
        let label_bytes = label.into_bytes();
        let secret_template = |usage: &[Attribute]| {
            let mut t = vec![
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Label(label_bytes.clone()),
                Attribute::Id(label_bytes.clone()),
            ];
            t.extend_from_slice(usage);
            t
        };
        // Every usage flag an object of its class has is set, true for what the key is for and false
        // for everything else: a token's defaults vary (SoftHSM2 lets an HMAC key encrypt and wrap, a
        // private key decrypt and unwrap), and a key must be good for nothing but its operations.
        let only = |class: &[AttributeType], allowed: &[AttributeType]| -> Vec<Attribute> {
            let flag = |t: AttributeType, on: bool| match t {
                AttributeType::Sign => Attribute::Sign(on),
                AttributeType::Verify => Attribute::Verify(on),
                AttributeType::Encrypt => Attribute::Encrypt(on),
                AttributeType::Decrypt => Attribute::Decrypt(on),
                AttributeType::Wrap => Attribute::Wrap(on),
                AttributeType::Unwrap => Attribute::Unwrap(on),
                AttributeType::SignRecover => Attribute::SignRecover(on),
                AttributeType::VerifyRecover => Attribute::VerifyRecover(on),
                _ => Attribute::Derive(on),
            };
            class.iter().map(|t| flag(*t, allowed.contains(t))).collect()
        };
        match key_type {
            KeyType::Ed25519 | KeyType::P256 => {
                let (mechanism, params) = match key_type {
                    KeyType::Ed25519 => (Mechanism::EccEdwardsKeyPairGen, ED25519_OID),
                    _ => (Mechanism::EccKeyPairGen, P256_OID),
                };
                let mut public = vec![
                    Attribute::Token(true),
                    Attribute::Private(false),
                    Attribute::Label(label_bytes.clone()),
                    Attribute::Id(label_bytes.clone()),
                    Attribute::EcParams(params.to_vec()),
                ];
                public.extend(only(&PUBLIC_KEY_USAGE, &[AttributeType::Verify]));
                let private = secret_template(&only(&PRIVATE_KEY_USAGE, &[AttributeType::Sign]));
                s.generate_key_pair(&mechanism, &public, &private)?;
            }
            KeyType::Aes256Gcm => {
                let mut usage = vec![Attribute::ValueLen(ulong(32))];
                usage.extend(only(&SECRET_KEY_USAGE, &[AttributeType::Encrypt, AttributeType::Decrypt]));
                s.generate_key(&Mechanism::AesKeyGen, &secret_template(&usage))?;
            }
            KeyType::HmacSha256 => {
                let mut usage = vec![Attribute::ValueLen(ulong(32))];
                usage.extend(only(&SECRET_KEY_USAGE, &[AttributeType::Sign, AttributeType::Verify]));
                s.generate_key(&Mechanism::GenericSecretKeyGen, &secret_template(&usage))?;
            }
        }
        Ok(())
    }

    /// Destroys every token object labelled `label`, public keys first, so that an interruption leaves
    /// the private or secret key (which listings see) rather than an orphaned public key.
    fn destroy_label(&self, s: &Session, label: &str) -> Result<(), OpErr> {
        let handles = s.find_objects(&[Attribute::Token(true), Attribute::Label(label.as_bytes().to_vec())])?;
        let mut public = Vec::new();
        let mut others = Vec::new();
        for handle in handles {
            let is_public = match s.get_attributes(handle, &[AttributeType::Class]) {
                Ok(attrs) => attrs.iter().any(|a| matches!(a, Attribute::Class(c) if *c == ObjectClass::PUBLIC_KEY)),
                Err(e) if matches!(rv_of(&e), Some(RvError::ObjectHandleInvalid)) => continue,
                Err(e) => return Err(e.into()),
            };
            if is_public { public.push(handle) } else { others.push(handle) }
        }
        for handle in public.into_iter().chain(others) {
            match s.destroy_object(handle) {
                Ok(()) => {}
                Err(e) if matches!(rv_of(&e), Some(RvError::ObjectHandleInvalid)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// SPKI DER of a signing key version's public key, from its `CKA_EC_POINT`.
    fn read_spki(s: &Session, name: &KeyName, r: &Resolved) -> Result<Vec<u8>, OpErr> {
        let missing = |what: &str| KeystoreError::Pkcs11 {
            call: "C_GetAttributeValue".into(),
            message: format!("{what} of key `{name}` version {}", r.version),
        };
        let public = r.public.ok_or_else(|| missing("the token holds no public key object"))?;
        let point = s
            .get_attributes(public, &[AttributeType::EcPoint])?
            .into_iter()
            .find_map(|a| match a {
                Attribute::EcPoint(p) => Some(p),
                _ => None,
            })
            .ok_or_else(|| missing("the token returned no CKA_EC_POINT"))?;
        let spki = match r.key_type {
            KeyType::Ed25519 => ed25519_spki(unwrap_ec_point(&point, 32).ok_or_else(|| missing("malformed Ed25519 CKA_EC_POINT"))?)?,
            KeyType::P256 => p256_spki(unwrap_ec_point(&point, 65).ok_or_else(|| missing("malformed P-256 CKA_EC_POINT"))?)?,
            other => return Err(KeystoreError::InvalidInput(format!("a {other} key has no public key")).into()),
        };
        Ok(spki)
    }

    /// The HMAC-SHA-256 of `data` under the resolved key.
    fn hmac(s: &Session, r: &Resolved, data: &[u8]) -> Result<Vec<u8>, OpErr> {
        Ok(s.sign(&Mechanism::Sha256Hmac, r.key, data)?)
    }
}

impl Keystore for Pkcs11Store {
    fn describe(&self) -> String {
        format!("PKCS#11 token \"{}\" ({})", self.token_label, self.module.display())
    }

    /// A token is a device (or a service behind a module): its calls can take milliseconds or hang.
    fn may_block(&self) -> bool {
        true
    }

    fn create(&self, name: &KeyName, key_type: KeyType) -> Result<KeyInfo, KeystoreError> {
        let _admin = lock(&self.admin);
        let result = self.with_session(|s| {
            if self.scan(s)?.contains_key(name) {
                return Err(KeystoreError::Exists(name.clone()).into());
            }
            self.generate(s, name, key_type, 1)?;
            Ok(KeyInfo { name: name.clone(), key_type, versions: vec![1] })
        });
        self.forget(name);
        result
    }

    fn rotate(&self, name: &KeyName) -> Result<KeyInfo, KeystoreError> {
        let _admin = lock(&self.admin);
        let result = self.with_session(|s| {
            let mut info = self.scan(s)?.remove(name).ok_or_else(|| KeystoreError::NotFound(name.clone()))?;
            let current = info.current();
            if current >= MAX_KEY_VERSIONS || info.versions.len() >= MAX_KEY_VERSIONS as usize {
                return Err(KeystoreError::TooManyVersions(name.clone()).into());
            }
            self.generate(s, name, info.key_type, current + 1)?;
            info.versions.push(current + 1);
            Ok(info)
        });
        self.forget(name);
        result
    }

    fn delete(&self, name: &KeyName) -> Result<KeyInfo, KeystoreError> {
        let _admin = lock(&self.admin);
        let result = self.with_session(|s| {
            let info = self.scan(s)?.remove(name).ok_or_else(|| KeystoreError::NotFound(name.clone()))?;
            // Oldest first: an interrupted delete leaves the newest versions, and running it again
            // finishes the job.
            for &version in &info.versions {
                self.destroy_label(s, &object_label(name, version))?;
            }
            Ok(info)
        });
        self.forget(name);
        result
    }

    fn list(&self) -> Result<Vec<KeyInfo>, KeystoreError> {
        self.with_session(|s| Ok(self.scan(s)?.into_values().collect()))
    }

    fn info(&self, name: &KeyName) -> Result<KeyInfo, KeystoreError> {
        self.with_session(|s| self.scan(s)?.remove(name).ok_or_else(|| KeystoreError::NotFound(name.clone()).into()))
    }

    fn public_key(&self, name: &KeyName, version: Option<u32>) -> Result<PublicKey, KeystoreError> {
        self.with_key(name, version, Some(Operation::Sign), |s, r| {
            Ok(PublicKey { version: r.version, key_type: r.key_type, spki_der: Self::read_spki(s, name, r)? })
        })
    }

    fn sign(&self, name: &KeyName, message: &[u8]) -> Result<Signature, KeystoreError> {
        check_len("the message", message.len())?;
        self.with_key(name, None, Some(Operation::Sign), |s, r| {
            let bytes = match r.key_type {
                KeyType::Ed25519 => {
                    let sig = s.sign(&Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)), r.key, message)?;
                    if sig.len() != 64 {
                        return Err(KeystoreError::Pkcs11 {
                            call: "C_Sign".into(),
                            message: format!("the token returned a {}-byte Ed25519 signature", sig.len()),
                        }
                        .into());
                    }
                    sig
                }
                KeyType::P256 => {
                    let digest = sha2::Sha256::digest(message);
                    p256_raw_to_der(&s.sign(&Mechanism::Ecdsa, r.key, &digest)?)?
                }
                other => {
                    return Err(KeystoreError::Unsupported { name: name.clone(), key_type: other, operation: Operation::Sign }.into());
                }
            };
            Ok(Signature { version: r.version, bytes })
        })
    }

    fn verify(&self, name: &KeyName, message: &[u8], signature: &Signature) -> Result<bool, KeystoreError> {
        check_len("the message", message.len())?;
        let (key_type, spki) = self.with_key(name, Some(signature.version), Some(Operation::Verify), |s, r| {
            Ok((r.key_type, Self::read_spki(s, name, r)?))
        })?;
        verify_with_spki(key_type, &spki, message, &signature.bytes)
    }

    fn seal(&self, name: &KeyName, plaintext: &[u8], aad: &[u8]) -> Result<Sealed, KeystoreError> {
        check_len("the plaintext", plaintext.len())?;
        check_len("the associated data", aad.len())?;
        self.with_key(name, None, Some(Operation::Seal), |s, r| {
            let mut nonce = [0u8; NONCE_BYTES];
            random(&mut nonce)?;
            let mut iv = nonce;
            let params = GcmParams::new(&mut iv, aad, ulong(GCM_TAG_BYTES as c_ulong * 8))?;
            let ciphertext = s.encrypt(&Mechanism::AesGcm(params), r.key, plaintext)?;
            if ciphertext.len() != plaintext.len() + GCM_TAG_BYTES {
                return Err(KeystoreError::Pkcs11 {
                    call: "C_Encrypt".into(),
                    message: format!(
                        "the token returned {} bytes of AES-GCM output for {} bytes of plaintext",
                        ciphertext.len(),
                        plaintext.len()
                    ),
                }
                .into());
            }
            Ok(Sealed { version: r.version, nonce, ciphertext })
        })
    }

    fn open(&self, name: &KeyName, sealed: &Sealed, aad: &[u8]) -> Result<Vec<u8>, KeystoreError> {
        check_len("the sealed data", sealed.ciphertext.len())?;
        check_len("the associated data", aad.len())?;
        if sealed.ciphertext.len() < GCM_TAG_BYTES {
            return Err(KeystoreError::InvalidInput(format!(
                "sealed data is at least {GCM_TAG_BYTES} bytes (the tag), got {}",
                sealed.ciphertext.len()
            )));
        }
        self.with_key(name, Some(sealed.version), Some(Operation::Open), |s, r| {
            let mut iv = sealed.nonce;
            let params = GcmParams::new(&mut iv, aad, ulong(GCM_TAG_BYTES as c_ulong * 8))?;
            match s.decrypt(&Mechanism::AesGcm(params), r.key, &sealed.ciphertext) {
                Ok(plaintext) => Ok(plaintext),
                Err(e) if is_auth_failure(&e) => Err(KeystoreError::AuthenticationFailed.into()),
                Err(e) => Err(e.into()),
            }
        })
    }

    fn tag(&self, name: &KeyName, data: &[u8]) -> Result<Tag, KeystoreError> {
        check_len("the data", data.len())?;
        self.with_key(name, None, Some(Operation::Mac), |s, r| Ok(Tag { version: r.version, bytes: Self::hmac(s, r, data)? }))
    }

    fn check(&self, name: &KeyName, data: &[u8], tag: &Tag) -> Result<bool, KeystoreError> {
        check_len("the data", data.len())?;
        let expected = self.with_key(name, Some(tag.version), Some(Operation::Mac), |s, r| Self::hmac(s, r, data))?;
        Ok(bool::from(expected.as_slice().ct_eq(tag.bytes.as_slice())))
    }
}

/// The usage flags of a public key (PKCS#11 v2.40 §4.8), each set explicitly by `generate`.
const PUBLIC_KEY_USAGE: [AttributeType; 5] =
    [AttributeType::Encrypt, AttributeType::Verify, AttributeType::VerifyRecover, AttributeType::Wrap, AttributeType::Derive];
/// The usage flags of a private key (§4.9).
const PRIVATE_KEY_USAGE: [AttributeType; 5] =
    [AttributeType::Decrypt, AttributeType::Sign, AttributeType::SignRecover, AttributeType::Unwrap, AttributeType::Derive];
/// The usage flags of a secret key (§4.10).
const SECRET_KEY_USAGE: [AttributeType; 7] = [
    AttributeType::Encrypt,
    AttributeType::Decrypt,
    AttributeType::Sign,
    AttributeType::Verify,
    AttributeType::Wrap,
    AttributeType::Unwrap,
    AttributeType::Derive,
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::sync::Arc;

    const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
    const PIN: &str = "1234";

    /// The tokens the tests use, one per test so that tests run in parallel. SoftHSM2 only sees the
    /// tokens that exist when the module is initialized, so all are made before any test opens one.
    const TOKENS: &[&str] = &[
        "wz-ed25519",
        "wz-p256",
        "wz-aes",
        "wz-hmac",
        "wz-rotate",
        "wz-delete",
        "wz-unsupported",
        "wz-pin",
        "wz-present",
        "wz-threads",
        "wz-two-stores",
    ];

    /// Writes a SoftHSM2 configuration with its own token directory, initializes [`TOKENS`] there and
    /// points SOFTHSM2_CONF at it, once per test binary. Fails (never skips) when SoftHSM2 is missing.
    fn softhsm_conf() -> &'static Path {
        assert!(
            Path::new(MODULE).exists(),
            "SoftHSM2 is not installed ({MODULE} is missing): install it (`apt-get install softhsm2`) to run the PKCS#11 tests; CI installs it"
        );
        static CONF: OnceLock<PathBuf> = OnceLock::new();
        CONF.get_or_init(|| {
            let dir = tempfile::Builder::new().prefix("wasmzip-softhsm-").tempdir().expect("temp dir").keep();
            let tokens = dir.join("tokens");
            std::fs::create_dir(&tokens).expect("token dir");
            let conf = dir.join("softhsm2.conf");
            std::fs::write(
                &conf,
                format!("directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n", tokens.display()),
            )
            .expect("write softhsm2.conf");
            for label in TOKENS {
                let out = Command::new("softhsm2-util")
                    .args(["--init-token", "--free", "--label", label, "--pin", PIN, "--so-pin", "5678"])
                    .env("SOFTHSM2_CONF", &conf)
                    .output()
                    .expect("run softhsm2-util (install softhsm2)");
                assert!(out.status.success(), "softhsm2-util --init-token {label}: {}", String::from_utf8_lossy(&out.stderr));
            }
            // SAFETY: set once, before any test loads the module (every test comes through here first,
            // and the others wait on this OnceLock); nothing else in this test binary changes the
            // environment.
            unsafe { std::env::set_var("SOFTHSM2_CONF", &conf) };
            conf
        })
    }

    /// Makes sure the token `label` (one of [`TOKENS`]) exists.
    fn init_token(label: &str) {
        assert!(TOKENS.contains(&label), "add {label} to TOKENS");
        softhsm_conf();
    }

    fn store(label: &str) -> Pkcs11Store {
        init_token(label);
        Pkcs11Store::open(Path::new(MODULE), label, PIN).expect("open token")
    }

    fn name(s: &str) -> KeyName {
        KeyName::parse(s).unwrap()
    }

    #[test]
    fn labels_parse() {
        assert_eq!(parse_label(b"wasmzip:pay.key-1:v12"), Some((name("pay.key-1"), 12)));
        assert_eq!(object_label(&name("a"), 3), "wasmzip:a:v3");
        for bad in [&b"wasmzip:a:v0"[..], b"wasmzip:a:v01", b"wasmzip:a:v", b"wasmzip:a", b"other:a:v1", b"wasmzip:-a:v1", b"wasmzip:a:v+1"] {
            assert_eq!(parse_label(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn ec_points_unwrap() {
        let raw = [7u8; 32];
        assert_eq!(unwrap_ec_point(&raw, 32), Some(&raw[..]));
        let mut der = vec![0x04, 32];
        der.extend_from_slice(&raw);
        assert_eq!(unwrap_ec_point(&der, 32), Some(&raw[..]));
        let mut point = vec![0x04];
        point.extend_from_slice(&[0x3F; 64]);
        assert_eq!(unwrap_ec_point(&point, 65), Some(&point[..]), "a raw point whose X starts 0x3F is not DER");
        let mut der = vec![0x04, 65];
        der.extend_from_slice(&point);
        assert_eq!(unwrap_ec_point(&der, 65), Some(&point[..]));
        assert_eq!(unwrap_ec_point(&der[..40], 65), None);
        assert_eq!(rv_name(RvError::PinIncorrect), "CKR_PIN_INCORRECT");
    }

    #[test]
    fn ed25519_signs_with_non_extractable_key() {
        let ks = store("wz-ed25519");
        assert_eq!(ks.describe(), format!("PKCS#11 token \"wz-ed25519\" ({MODULE})"));
        let n = name("signer");
        let info = ks.create(&n, KeyType::Ed25519).unwrap();
        assert_eq!((info.key_type, info.versions.clone()), (KeyType::Ed25519, vec![1]));
        let sig = ks.sign(&n, b"hello").unwrap();
        assert_eq!((sig.version, sig.bytes.len()), (1, 64));
        let public = ks.public_key(&n, None).unwrap();
        assert_eq!((public.version, public.key_type), (1, KeyType::Ed25519));
        assert!(verify_with_spki(KeyType::Ed25519, &public.spki_der, b"hello", &sig.bytes).unwrap());
        assert!(!verify_with_spki(KeyType::Ed25519, &public.spki_der, b"hellO", &sig.bytes).unwrap());
        assert!(ks.verify(&n, b"hello", &sig).unwrap());
        assert!(!ks.verify(&n, b"other", &sig).unwrap());
        assert!(public.to_pem().starts_with("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA"));
        assert!(!ks.extractable(&n, 1).unwrap());
        assert!(ks.sensitive(&n, 1).unwrap());
        assert!(matches!(ks.extractable(&n, 2), Err(KeystoreError::UnknownVersion { version: 2, .. })));
        let forged = Signature { version: 9, bytes: sig.bytes.clone() };
        assert!(matches!(ks.verify(&n, b"hello", &forged), Err(KeystoreError::UnknownVersion { version: 9, .. })));
        assert!(matches!(ks.create(&n, KeyType::P256), Err(KeystoreError::Exists(_))));
    }

    #[test]
    fn p256_signs_der() {
        let ks = store("wz-p256");
        let n = name("ecdsa");
        ks.create(&n, KeyType::P256).unwrap();
        let sig = ks.sign(&n, b"payload").unwrap();
        assert_eq!(sig.bytes[0], 0x30, "DER ECDSA-Sig-Value");
        let public = ks.public_key(&n, Some(1)).unwrap();
        assert_eq!(public.key_type, KeyType::P256);
        assert!(verify_with_spki(KeyType::P256, &public.spki_der, b"payload", &sig.bytes).unwrap());
        assert!(!verify_with_spki(KeyType::P256, &public.spki_der, b"payloaD", &sig.bytes).unwrap());
        assert!(ks.verify(&n, b"payload", &sig).unwrap());
        assert!(!ks.extractable(&n, 1).unwrap());
        assert!(ks.sensitive(&n, 1).unwrap());
    }

    #[test]
    fn aes_gcm_seals_and_opens() {
        let ks = store("wz-aes");
        let n = name("vault");
        ks.create(&n, KeyType::Aes256Gcm).unwrap();
        let sealed = ks.seal(&n, b"secret data", b"ctx").unwrap();
        assert_eq!((sealed.version, sealed.ciphertext.len()), (1, 11 + GCM_TAG_BYTES));
        assert_eq!(ks.open(&n, &sealed, b"ctx").unwrap(), b"secret data");
        let again = ks.seal(&n, b"secret data", b"ctx").unwrap();
        assert_ne!(again.nonce, sealed.nonce, "the host draws a fresh nonce per seal");
        assert!(matches!(ks.open(&n, &sealed, b"other ctx"), Err(KeystoreError::AuthenticationFailed)));
        let mut tampered = sealed.clone();
        tampered.ciphertext[0] ^= 1;
        assert!(matches!(ks.open(&n, &tampered, b"ctx"), Err(KeystoreError::AuthenticationFailed)));
        let mut tampered = sealed.clone();
        tampered.nonce[0] ^= 1;
        assert!(matches!(ks.open(&n, &tampered, b"ctx"), Err(KeystoreError::AuthenticationFailed)));
        let short = Sealed { version: 1, nonce: sealed.nonce, ciphertext: vec![0; 15] };
        assert!(matches!(ks.open(&n, &short, b"ctx"), Err(KeystoreError::InvalidInput(_))));
        let wrong_version = Sealed { version: 2, ..sealed.clone() };
        assert!(matches!(ks.open(&n, &wrong_version, b"ctx"), Err(KeystoreError::UnknownVersion { version: 2, .. })));
        let empty = ks.seal(&n, b"", b"").unwrap();
        assert_eq!(ks.open(&n, &empty, b"").unwrap(), b"");
        assert!(!ks.extractable(&n, 1).unwrap());
        assert!(ks.sensitive(&n, 1).unwrap());
        let big = vec![0u8; crate::MAX_MESSAGE_BYTES + 1];
        assert!(matches!(ks.seal(&n, &big, b""), Err(KeystoreError::InvalidInput(_))));
    }

    #[test]
    fn hmac_tags_and_checks() {
        let ks = store("wz-hmac");
        let n = name("mac");
        ks.create(&n, KeyType::HmacSha256).unwrap();
        let tag = ks.tag(&n, b"data").unwrap();
        assert_eq!((tag.version, tag.bytes.len()), (1, 32));
        assert_eq!(ks.tag(&n, b"data").unwrap(), tag, "HMAC is deterministic");
        assert!(ks.check(&n, b"data", &tag).unwrap());
        assert!(!ks.check(&n, b"datA", &tag).unwrap());
        let mut bad = tag.clone();
        bad.bytes[31] ^= 0x80;
        assert!(!ks.check(&n, b"data", &bad).unwrap());
        bad.bytes.truncate(16);
        assert!(!ks.check(&n, b"data", &bad).unwrap());
        assert!(!ks.extractable(&n, 1).unwrap());
        assert!(ks.sensitive(&n, 1).unwrap());
    }

    #[test]
    fn rotation_keeps_old_versions_usable() {
        let ks = store("wz-rotate");
        let (ed, ec, aes, mac) = (name("ed"), name("ec"), name("aes"), name("mac"));
        ks.create(&ed, KeyType::Ed25519).unwrap();
        ks.create(&ec, KeyType::P256).unwrap();
        ks.create(&aes, KeyType::Aes256Gcm).unwrap();
        ks.create(&mac, KeyType::HmacSha256).unwrap();
        let old_ed = ks.sign(&ed, b"m").unwrap();
        let old_ec = ks.sign(&ec, b"m").unwrap();
        let old_sealed = ks.seal(&aes, b"p", b"a").unwrap();
        let old_tag = ks.tag(&mac, b"d").unwrap();
        let old_pub = ks.public_key(&ed, None).unwrap();
        for n in [&ed, &ec, &aes, &mac] {
            assert_eq!(ks.rotate(n).unwrap().versions, vec![1, 2], "{n}");
        }
        let new_ed = ks.sign(&ed, b"m").unwrap();
        assert_eq!(new_ed.version, 2);
        assert_ne!(ks.public_key(&ed, None).unwrap().spki_der, old_pub.spki_der);
        assert_eq!(ks.public_key(&ed, Some(1)).unwrap(), old_pub);
        assert!(ks.verify(&ed, b"m", &old_ed).unwrap());
        assert!(ks.verify(&ed, b"m", &new_ed).unwrap());
        let new_ec = ks.sign(&ec, b"m").unwrap();
        assert_eq!(new_ec.version, 2);
        assert!(ks.verify(&ec, b"m", &old_ec).unwrap());
        assert!(ks.verify(&ec, b"m", &new_ec).unwrap());
        let new_sealed = ks.seal(&aes, b"p", b"a").unwrap();
        assert_eq!(new_sealed.version, 2);
        assert_eq!(ks.open(&aes, &old_sealed, b"a").unwrap(), b"p");
        assert_eq!(ks.open(&aes, &new_sealed, b"a").unwrap(), b"p");
        let mut cross = new_sealed.clone();
        cross.version = 1;
        assert!(matches!(ks.open(&aes, &cross, b"a"), Err(KeystoreError::AuthenticationFailed)));
        let new_tag = ks.tag(&mac, b"d").unwrap();
        assert_eq!(new_tag.version, 2);
        assert_ne!(new_tag.bytes, old_tag.bytes);
        assert!(ks.check(&mac, b"d", &old_tag).unwrap());
        assert!(ks.check(&mac, b"d", &new_tag).unwrap());
        let listed: Vec<(String, KeyType, Vec<u32>)> =
            ks.list().unwrap().into_iter().map(|i| (i.name.to_string(), i.key_type, i.versions)).collect();
        assert_eq!(
            listed,
            vec![
                ("aes".into(), KeyType::Aes256Gcm, vec![1, 2]),
                ("ec".into(), KeyType::P256, vec![1, 2]),
                ("ed".into(), KeyType::Ed25519, vec![1, 2]),
                ("mac".into(), KeyType::HmacSha256, vec![1, 2]),
            ]
        );
        assert!(!ks.extractable(&ed, 2).unwrap());
        assert!(ks.sensitive(&aes, 2).unwrap());
    }

    #[test]
    fn deleted_keys_are_gone() {
        let ks = store("wz-delete");
        let n = name("temp");
        ks.create(&n, KeyType::Ed25519).unwrap();
        ks.sign(&n, b"warm the cache").unwrap();
        ks.rotate(&n).unwrap();
        let deleted = ks.delete(&n).unwrap();
        assert_eq!((deleted.key_type, deleted.versions), (KeyType::Ed25519, vec![1, 2]));
        assert!(matches!(ks.sign(&n, b"x"), Err(KeystoreError::NotFound(_))));
        assert!(matches!(ks.info(&n), Err(KeystoreError::NotFound(_))));
        assert!(matches!(ks.public_key(&n, Some(1)), Err(KeystoreError::NotFound(_))));
        assert!(matches!(ks.rotate(&n), Err(KeystoreError::NotFound(_))));
        assert!(matches!(ks.delete(&n), Err(KeystoreError::NotFound(_))));
        assert!(ks.list().unwrap().is_empty());
        // Nothing is left on the token, public keys included.
        let leftovers = ks
            .with_session(|s| Ok(s.find_objects(&[Attribute::Token(true)])?.len()))
            .unwrap();
        assert_eq!(leftovers, 0);
        assert_eq!(ks.create(&n, KeyType::HmacSha256).unwrap().versions, vec![1]);
        assert_eq!(ks.tag(&n, b"x").unwrap().version, 1);
    }

    #[test]
    fn wrong_operations_are_unsupported() {
        let ks = store("wz-unsupported");
        let (ed, aes, mac) = (name("ed"), name("aes"), name("mac"));
        ks.create(&ed, KeyType::Ed25519).unwrap();
        ks.create(&aes, KeyType::Aes256Gcm).unwrap();
        ks.create(&mac, KeyType::HmacSha256).unwrap();
        let unsupported = |r: Result<(), KeystoreError>, op: Operation| match r {
            Err(KeystoreError::Unsupported { operation, .. }) => assert_eq!(operation, op),
            other => panic!("expected Unsupported {op}, got {other:?}"),
        };
        unsupported(ks.seal(&ed, b"x", b"").map(drop), Operation::Seal);
        unsupported(ks.tag(&ed, b"x").map(drop), Operation::Mac);
        unsupported(ks.sign(&aes, b"x").map(drop), Operation::Sign);
        unsupported(ks.public_key(&mac, None).map(drop), Operation::Sign);
        unsupported(ks.verify(&mac, b"x", &Signature { version: 1, bytes: vec![0; 64] }).map(drop), Operation::Verify);
        let sealed = ks.seal(&aes, b"x", b"").unwrap();
        unsupported(ks.open(&mac, &sealed, b"").map(drop), Operation::Open);
        let e = ks.sign(&aes, b"x").unwrap_err().to_string();
        assert!(e.contains("`aes` is a aes256gcm key"), "{e}");
        assert!(matches!(ks.sign(&name("nope"), b"x"), Err(KeystoreError::NotFound(_))));
    }

    #[test]
    fn wrong_pin_is_reported() {
        init_token("wz-pin");
        let e = Pkcs11Store::open(Path::new(MODULE), "wz-pin", "9999").unwrap_err();
        assert!(matches!(e, KeystoreError::Config(_)), "{e:?}");
        assert!(e.to_string().contains("wrong PIN for PKCS#11 token \"wz-pin\""), "{e}");
        Pkcs11Store::open(Path::new(MODULE), "wz-pin", PIN).unwrap();
    }

    #[test]
    fn missing_token_names_labels_found() {
        init_token("wz-present");
        let e = Pkcs11Store::open(Path::new(MODULE), "wz-absent", PIN).unwrap_err().to_string();
        assert!(e.contains("no PKCS#11 token labelled \"wz-absent\""), "{e}");
        assert!(e.contains("\"wz-present\""), "{e}");
        assert!(e.contains(MODULE), "{e}");
    }

    #[test]
    fn missing_module_names_path() {
        let e = Pkcs11Store::open(Path::new("/nonexistent/libnothing.so"), "x", PIN).unwrap_err();
        assert!(matches!(e, KeystoreError::Config(_)), "{e:?}");
        assert!(e.to_string().contains("/nonexistent/libnothing.so"), "{e}");
        let not_a_module = softhsm_conf();
        let e = Pkcs11Store::open(not_a_module, "x", PIN).unwrap_err().to_string();
        assert!(e.contains("cannot load the PKCS#11 module") && e.contains(&*not_a_module.to_string_lossy()), "{e}");
    }

    #[test]
    fn eight_threads_share_one_store() {
        let ks = Arc::new(store("wz-threads"));
        let (ed, mac) = (name("ed"), name("mac"));
        ks.create(&ed, KeyType::Ed25519).unwrap();
        ks.create(&mac, KeyType::HmacSha256).unwrap();
        let public = ks.public_key(&ed, None).unwrap();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let (ks, ed, mac, spki) = (Arc::clone(&ks), ed.clone(), mac.clone(), public.spki_der.clone());
                std::thread::spawn(move || {
                    for i in 0..25 {
                        let msg = format!("thread {t} message {i}");
                        let sig = ks.sign(&ed, msg.as_bytes()).unwrap();
                        assert!(verify_with_spki(KeyType::Ed25519, &spki, msg.as_bytes(), &sig.bytes).unwrap());
                        let tag = ks.tag(&mac, msg.as_bytes()).unwrap();
                        assert!(ks.check(&mac, msg.as_bytes(), &tag).unwrap());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let idle = lock(&ks.pool).len();
        assert!((1..=8).contains(&idle), "{idle} idle sessions");
    }

    #[test]
    fn other_stores_changes_are_seen() {
        let a = store("wz-two-stores");
        // A second store on the same token in the same process, standing in for `wasmzip keys`.
        let b = Pkcs11Store::open(Path::new(MODULE), "wz-two-stores", PIN).unwrap();
        // Already logged in, the token does not check the PIN; the store does.
        let e = Pkcs11Store::open(Path::new(MODULE), "wz-two-stores", "4321").unwrap_err().to_string();
        assert!(e.contains("wrong PIN for PKCS#11 token \"wz-two-stores\""), "{e}");
        let n = name("shared");
        a.create(&n, KeyType::Ed25519).unwrap();
        assert_eq!(a.sign(&n, b"m").unwrap().version, 1);
        b.rotate(&n).unwrap();
        std::thread::sleep(CACHE_TTL + Duration::from_millis(100));
        assert_eq!(a.sign(&n, b"m").unwrap().version, 2, "the cached current version expires");
        // Deleted while `a` holds fresh handles: the stale handle is dropped and the lookup retried.
        assert_eq!(a.sign(&n, b"m").unwrap().version, 2);
        b.delete(&n).unwrap();
        assert!(matches!(a.sign(&n, b"m"), Err(KeystoreError::NotFound(_))));
        drop(b);
        a.create(&n, KeyType::P256).unwrap();
        assert_eq!(a.sign(&n, b"m").unwrap().version, 1, "the login outlives the other store");
    }

    #[test]
    fn store_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Pkcs11Store>();
    }
}

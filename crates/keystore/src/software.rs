//! The software keystore: keys in a local directory, encrypted at rest.
//!
//! Layout of the directory (mode 0700):
//! - `keystore.json`: the format, the Argon2id parameters and salt that turn the passphrase into the
//!   key-encryption key (KEK), and a check value sealed under the KEK so a wrong passphrase is told apart
//!   from a corrupt key file.
//! - `keys/NAME.json` (mode 0600): one file per key with every version. Each version's secret is sealed
//!   with AES-256-GCM under the KEK; the associated data binds it to the key name, type, version and
//!   public key, so a secret moved to another name or version does not open.
//! - `.lock`: held (an exclusive `flock`) while a key file is created, rotated or deleted.
//!
//! A key file is replaced by writing a temporary file, syncing it and renaming it over the old one, so
//! a crash during `create`, `rotate` or `delete` leaves the old file or the new one, never a mix. A
//! running process notices changes made by another (`wasmzip keys rotate` while `serve` runs): an
//! operation compares the file's identity (inode, size, modification time) with what it cached once
//! the cached key is [`REFRESH_INTERVAL`] old, so such a change takes effect within that interval
//! without a system call on every operation. Changes made through the same store apply at once.
//!
//! Decrypted keys are held in memory only while cached, in types that zeroize themselves when dropped.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use ed25519_dalek::Signer as _;
use hmac::Mac as _;
use zeroize::Zeroizing;

use crate::crypto::{check_len, ed25519_spki, p256_spki, random};
use crate::{
    GCM_TAG_BYTES, KeyInfo, KeyName, KeyType, Keystore, KeystoreError, MAX_KEY_VERSIONS, NONCE_BYTES, Operation,
    PublicKey, Sealed, Signature, Tag,
};

const STORE_FORMAT: &str = "wasmzip-keystore/1";
const KEY_FORMAT: &str = "wasmzip-key/1";
const STORE_FILE: &str = "keystore.json";
const KEYS_DIR: &str = "keys";
const LOCK_FILE: &str = ".lock";
const CHECK_PLAINTEXT: &[u8] = b"wasmzip keystore passphrase check";
/// Largest key file read, in bytes (a thousand versions fit well within it).
const MAX_KEY_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// How long a cached key is used before its file is checked for changes by another process.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// Argon2id cost for new keystores: the OWASP minimum for Argon2id (19 MiB, 2 passes, 1 lane).
pub const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
/// Argon2id passes for new keystores.
pub const ARGON2_ITERATIONS: u32 = 2;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;
type Kek = Zeroizing<[u8; 32]>;

#[derive(serde::Serialize, serde::Deserialize)]
struct StoreFile {
    format: String,
    kdf: KdfParams,
    check: SealedBlob,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct KdfParams {
    algorithm: String,
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    salt: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SealedBlob {
    nonce: String,
    data: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct KeyFile {
    format: String,
    name: String,
    #[serde(rename = "type")]
    key_type: KeyType,
    versions: Vec<VersionEntry>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct VersionEntry {
    version: u32,
    created: u64,
    /// DER SubjectPublicKeyInfo (base64) of signing keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    public: Option<String>,
    secret: SealedBlob,
}

/// A decrypted key version. Every variant zeroizes its secret when dropped.
enum Material {
    Ed25519(ed25519_dalek::SigningKey),
    P256(p256::ecdsa::SigningKey),
    Aes(Box<Aes256Gcm>),
    Hmac(Zeroizing<Vec<u8>>),
}

struct VersionKey {
    public: Option<Vec<u8>>,
    material: Material,
}

/// Identity of a key file, to notice replacement by another process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    ino: u64,
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl FileStamp {
    fn of(meta: &fs::Metadata) -> Self {
        FileStamp { ino: meta.ino(), len: meta.len(), mtime: meta.mtime(), mtime_nsec: meta.mtime_nsec() }
    }
}

struct LoadedKey {
    stamp: FileStamp,
    info: KeyInfo,
    versions: BTreeMap<u32, VersionKey>,
}

impl LoadedKey {
    fn version(&self, v: u32) -> Result<&VersionKey, KeystoreError> {
        self.versions.get(&v).ok_or_else(|| KeystoreError::UnknownVersion { name: self.info.name.clone(), version: v })
    }

    fn current(&self) -> Result<(u32, &VersionKey), KeystoreError> {
        self.versions
            .iter()
            .next_back()
            .map(|(v, k)| (*v, k))
            .ok_or_else(|| KeystoreError::NotFound(self.info.name.clone()))
    }

    fn require(&self, operation: Operation) -> Result<(), KeystoreError> {
        if operation.applies_to(self.info.key_type) {
            Ok(())
        } else {
            Err(KeystoreError::Unsupported { name: self.info.name.clone(), key_type: self.info.key_type, operation })
        }
    }
}

/// A cached key and when its file was last found unchanged (milliseconds since the store opened).
struct Cached {
    key: Arc<LoadedKey>,
    checked_ms: AtomicU64,
}

/// Keys in a local directory, encrypted under a key derived from a passphrase with Argon2id.
pub struct SoftwareStore {
    dir: PathBuf,
    kek: Kek,
    opened: Instant,
    cache: RwLock<HashMap<KeyName, Cached>>,
}

impl std::fmt::Debug for SoftwareStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareStore").field("dir", &self.dir).finish_non_exhaustive()
    }
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn decode(path: &Path, what: &str, text: &str) -> Result<Vec<u8>, KeystoreError> {
    b64().decode(text).map_err(|e| KeystoreError::Corrupt { path: path.into(), reason: format!("{what} is not base64: {e}") })
}

fn derive_kek(passphrase: &str, kdf: &KdfParams, path: &Path) -> Result<Kek, KeystoreError> {
    if kdf.algorithm != "argon2id" {
        return Err(KeystoreError::Corrupt { path: path.into(), reason: format!("unknown key derivation `{}`", kdf.algorithm) });
    }
    let salt = decode(path, "kdf.salt", &kdf.salt)?;
    let params = argon2::Params::new(kdf.memory_kib, kdf.iterations, kdf.parallelism, Some(32))
        .map_err(|e| KeystoreError::Corrupt { path: path.into(), reason: format!("Argon2id parameters: {e}") })?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut kek = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase.as_bytes(), &salt, kek.as_mut())
        .map_err(|e| KeystoreError::Corrupt { path: path.into(), reason: format!("Argon2id: {e}") })?;
    Ok(kek)
}

fn seal_blob(key: &[u8; 32], plaintext: &[u8], aad: &[u8]) -> Result<SealedBlob, KeystoreError> {
    let cipher = Aes256Gcm::new(key.into());
    let mut nonce = [0u8; NONCE_BYTES];
    random(&mut nonce)?;
    let data = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad })
        .map_err(|_| KeystoreError::InvalidInput("AES-GCM refused the input".into()))?;
    Ok(SealedBlob { nonce: b64().encode(nonce), data: b64().encode(data) })
}

/// Opens a blob sealed under the KEK; `None` when it does not authenticate.
fn open_blob(key: &[u8; 32], blob: &SealedBlob, aad: &[u8], path: &Path) -> Result<Option<Zeroizing<Vec<u8>>>, KeystoreError> {
    let nonce = decode(path, "nonce", &blob.nonce)?;
    let data = decode(path, "sealed data", &blob.data)?;
    if nonce.len() != NONCE_BYTES || data.len() < GCM_TAG_BYTES {
        return Err(KeystoreError::Corrupt { path: path.into(), reason: "sealed data has the wrong length".into() });
    }
    let cipher = Aes256Gcm::new(key.into());
    Ok(cipher.decrypt(Nonce::from_slice(&nonce), Payload { msg: &data, aad }).ok().map(Zeroizing::new))
}

fn secret_aad(name: &str, key_type: KeyType, version: u32, public: Option<&[u8]>) -> Vec<u8> {
    let mut aad = format!("{KEY_FORMAT}\0{name}\0{key_type}\0{version}\0").into_bytes();
    aad.extend_from_slice(public.unwrap_or_default());
    aad
}

/// Writes `bytes` to `path` atomically: a synced temporary file renamed over it, then the directory
/// synced. The file is created with mode 0600.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), KeystoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("key")));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| KeystoreError::io(&tmp, "create", e))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| KeystoreError::io(&tmp, "write", e))?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| KeystoreError::io(path, "replace", e))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), KeystoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| KeystoreError::io(dir, "sync", e))
}

fn create_private_dir(dir: &Path) -> Result<(), KeystoreError> {
    fs::create_dir_all(dir).map_err(|e| KeystoreError::io(dir, "create", e))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| KeystoreError::io(dir, "set the mode of", e))
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A new secret and, for signing types, its public key (SPKI DER).
type NewSecret = (Zeroizing<Vec<u8>>, Option<Vec<u8>>);

/// Generates a new secret of `key_type` and its public key (SPKI DER) for signing types.
fn generate(key_type: KeyType) -> Result<NewSecret, KeystoreError> {
    let mut secret = Zeroizing::new(vec![0u8; 32]);
    loop {
        random(&mut secret)?;
        let public = match key_type {
            KeyType::Ed25519 => {
                let seed: &[u8; 32] = secret.as_slice().try_into().map_err(|_| KeystoreError::InvalidInput("seed".into()))?;
                let sk = ed25519_dalek::SigningKey::from_bytes(seed);
                Some(ed25519_spki(sk.verifying_key().as_bytes())?)
            }
            KeyType::P256 => match p256::ecdsa::SigningKey::from_slice(&secret) {
                Ok(sk) => Some(p256_spki(sk.verifying_key().to_encoded_point(false).as_bytes())?),
                // Out of range for the curve order (probability about 2^-32): draw again.
                Err(_) => continue,
            },
            KeyType::Aes256Gcm | KeyType::HmacSha256 => None,
        };
        return Ok((secret, public));
    }
}

fn material(key_type: KeyType, secret: &[u8], path: &Path) -> Result<Material, KeystoreError> {
    let corrupt = |reason: &str| KeystoreError::Corrupt { path: path.into(), reason: reason.into() };
    Ok(match key_type {
        KeyType::Ed25519 => {
            let seed: &[u8; 32] = secret.try_into().map_err(|_| corrupt("an Ed25519 secret is 32 bytes"))?;
            Material::Ed25519(ed25519_dalek::SigningKey::from_bytes(seed))
        }
        KeyType::P256 => {
            Material::P256(p256::ecdsa::SigningKey::from_slice(secret).map_err(|_| corrupt("not a P-256 secret scalar"))?)
        }
        KeyType::Aes256Gcm => {
            Material::Aes(Box::new(Aes256Gcm::new_from_slice(secret).map_err(|_| corrupt("an AES-256 key is 32 bytes"))?))
        }
        KeyType::HmacSha256 => Material::Hmac(Zeroizing::new(secret.to_vec())),
    })
}

impl SoftwareStore {
    /// Opens the keystore in `dir` with `passphrase`, creating it when `create` is set and there is
    /// none. A wrong passphrase is [`KeystoreError::WrongPassphrase`].
    pub fn open(dir: &Path, passphrase: &str, create: bool) -> Result<Self, KeystoreError> {
        let store_path = dir.join(STORE_FILE);
        let kek = match fs::read(&store_path) {
            Ok(bytes) => {
                let store: StoreFile = serde_json::from_slice(&bytes)
                    .map_err(|e| KeystoreError::Corrupt { path: store_path.clone(), reason: e.to_string() })?;
                if store.format != STORE_FORMAT {
                    return Err(KeystoreError::Corrupt {
                        path: store_path,
                        reason: format!("unknown format `{}` (this wasmzip reads {STORE_FORMAT})", store.format),
                    });
                }
                let kek = derive_kek(passphrase, &store.kdf, &store_path)?;
                if open_blob(&kek, &store.check, STORE_FORMAT.as_bytes(), &store_path)?.as_deref().map(Vec::as_slice)
                    != Some(CHECK_PLAINTEXT)
                {
                    return Err(KeystoreError::WrongPassphrase(dir.to_path_buf()));
                }
                kek
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                create_private_dir(dir)?;
                let mut salt = [0u8; 16];
                random(&mut salt)?;
                let kdf = KdfParams {
                    algorithm: "argon2id".into(),
                    memory_kib: ARGON2_MEMORY_KIB,
                    iterations: ARGON2_ITERATIONS,
                    parallelism: 1,
                    salt: b64().encode(salt),
                };
                let kek = derive_kek(passphrase, &kdf, &store_path)?;
                let check = seal_blob(&kek, CHECK_PLAINTEXT, STORE_FORMAT.as_bytes())?;
                let store = StoreFile { format: STORE_FORMAT.into(), kdf, check };
                let json = serde_json::to_vec_pretty(&store).map_err(|e| KeystoreError::Config(e.to_string()))?;
                write_atomic(&store_path, &json)?;
                kek
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(KeystoreError::Config(format!(
                    "no keystore at {} (create one with `wasmzip keys create`)",
                    dir.display()
                )));
            }
            Err(e) => return Err(KeystoreError::io(&store_path, "read", e)),
        };
        create_private_dir(&dir.join(KEYS_DIR))?;
        Ok(SoftwareStore { dir: dir.to_path_buf(), kek, opened: Instant::now(), cache: RwLock::new(HashMap::new()) })
    }

    fn key_path(&self, name: &KeyName) -> PathBuf {
        self.dir.join(KEYS_DIR).join(format!("{name}.json"))
    }

    /// Holds the store's write lock until dropped.
    fn lock(&self) -> Result<File, KeystoreError> {
        let path = self.dir.join(LOCK_FILE);
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| KeystoreError::io(&path, "open", e))?;
        f.lock().map_err(|e| KeystoreError::io(&path, "lock", e))?;
        Ok(f)
    }

    /// Reads and decrypts a key file; `None` when it does not exist.
    fn read_key(&self, name: &KeyName) -> Result<Option<LoadedKey>, KeystoreError> {
        let path = self.key_path(name);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(KeystoreError::io(&path, "open", e)),
        };
        let meta = file.metadata().map_err(|e| KeystoreError::io(&path, "stat", e))?;
        if meta.len() > MAX_KEY_FILE_BYTES {
            return Err(KeystoreError::Corrupt { path, reason: format!("larger than {MAX_KEY_FILE_BYTES} bytes") });
        }
        let bytes = std::io::read_to_string(&file).map_err(|e| KeystoreError::io(&path, "read", e))?;
        let parsed: KeyFile =
            serde_json::from_str(&bytes).map_err(|e| KeystoreError::Corrupt { path: path.clone(), reason: e.to_string() })?;
        if parsed.format != KEY_FORMAT || parsed.name != name.as_str() {
            return Err(KeystoreError::Corrupt { path, reason: format!("not a {KEY_FORMAT} file for key `{name}`") });
        }
        let mut versions = BTreeMap::new();
        for entry in &parsed.versions {
            let public = entry.public.as_deref().map(|p| decode(&path, "public", p)).transpose()?;
            if public.is_some() != parsed.key_type.is_signing() {
                return Err(KeystoreError::Corrupt { path, reason: format!("version {}: public key mismatch", entry.version) });
            }
            let aad = secret_aad(name.as_str(), parsed.key_type, entry.version, public.as_deref());
            let secret = open_blob(&self.kek, &entry.secret, &aad, &path)?.ok_or_else(|| KeystoreError::Corrupt {
                path: path.clone(),
                reason: format!("version {} does not decrypt: the file was changed or belongs to another keystore", entry.version),
            })?;
            let material = material(parsed.key_type, &secret, &path)?;
            if versions.insert(entry.version, VersionKey { public, material }).is_some() {
                return Err(KeystoreError::Corrupt { path, reason: format!("version {} appears twice", entry.version) });
            }
        }
        if versions.is_empty() {
            return Err(KeystoreError::Corrupt { path, reason: "no versions".into() });
        }
        let info = KeyInfo { name: name.clone(), key_type: parsed.key_type, versions: versions.keys().copied().collect() };
        Ok(Some(LoadedKey { stamp: FileStamp::of(&meta), info, versions }))
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Drops the cached copy of `name`, after this store changed or deleted its file.
    fn forget(&self, name: &KeyName) {
        self.cache.write().unwrap_or_else(|p| p.into_inner()).remove(name);
    }

    /// The key: from the cache while it was checked within [`REFRESH_INTERVAL`] or its file is
    /// unchanged, else read again.
    fn load(&self, name: &KeyName) -> Result<Arc<LoadedKey>, KeystoreError> {
        let now = self.now_ms();
        let refresh = u64::try_from(REFRESH_INTERVAL.as_millis()).unwrap_or(u64::MAX);
        if let Some(cached) = self.cache.read().unwrap_or_else(|p| p.into_inner()).get(name)
            && now.saturating_sub(cached.checked_ms.load(Ordering::Relaxed)) < refresh
        {
            return Ok(cached.key.clone());
        }
        let path = self.key_path(name);
        let stamp = match fs::metadata(&path) {
            Ok(meta) => FileStamp::of(&meta),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.forget(name);
                return Err(KeystoreError::NotFound(name.clone()));
            }
            Err(e) => return Err(KeystoreError::io(&path, "stat", e)),
        };
        if let Some(cached) = self.cache.read().unwrap_or_else(|p| p.into_inner()).get(name)
            && cached.key.stamp == stamp
        {
            cached.checked_ms.store(now, Ordering::Relaxed);
            return Ok(cached.key.clone());
        }
        let loaded = Arc::new(self.read_key(name)?.ok_or_else(|| KeystoreError::NotFound(name.clone()))?);
        let cached = Cached { key: loaded.clone(), checked_ms: AtomicU64::new(now) };
        self.cache.write().unwrap_or_else(|p| p.into_inner()).insert(name.clone(), cached);
        Ok(loaded)
    }

    /// Writes a key file with `versions` (existing entries kept as they are, plus new ones).
    fn write_key(&self, name: &KeyName, key_type: KeyType, versions: Vec<VersionEntry>) -> Result<(), KeystoreError> {
        let file = KeyFile { format: KEY_FORMAT.into(), name: name.to_string(), key_type, versions };
        let json = serde_json::to_vec_pretty(&file).map_err(|e| KeystoreError::Config(e.to_string()))?;
        write_atomic(&self.key_path(name), &json)
    }

    fn new_version(&self, name: &KeyName, key_type: KeyType, version: u32) -> Result<VersionEntry, KeystoreError> {
        let (secret, public) = generate(key_type)?;
        let aad = secret_aad(name.as_str(), key_type, version, public.as_deref());
        let sealed = seal_blob(&self.kek, &secret, &aad)?;
        Ok(VersionEntry { version, created: now_secs(), public: public.map(|p| b64().encode(p)), secret: sealed })
    }

    fn read_entries(&self, name: &KeyName) -> Result<Option<KeyFile>, KeystoreError> {
        let path = self.key_path(name);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| KeystoreError::Corrupt { path, reason: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(KeystoreError::io(&path, "read", e)),
        }
    }
}

impl Keystore for SoftwareStore {
    fn describe(&self) -> String {
        format!("software keystore at {}", self.dir.display())
    }

    fn create(&self, name: &KeyName, key_type: KeyType) -> Result<KeyInfo, KeystoreError> {
        let _lock = self.lock()?;
        if self.key_path(name).exists() {
            return Err(KeystoreError::Exists(name.clone()));
        }
        let entry = self.new_version(name, key_type, 1)?;
        self.write_key(name, key_type, vec![entry])?;
        self.forget(name);
        Ok(KeyInfo { name: name.clone(), key_type, versions: vec![1] })
    }

    fn rotate(&self, name: &KeyName) -> Result<KeyInfo, KeystoreError> {
        let _lock = self.lock()?;
        // Decrypting first proves the file is intact and ours before it is rewritten.
        let current = self.read_key(name)?.ok_or_else(|| KeystoreError::NotFound(name.clone()))?;
        let mut file = self.read_entries(name)?.ok_or_else(|| KeystoreError::NotFound(name.clone()))?;
        let next = current.info.current() + 1;
        if next > MAX_KEY_VERSIONS {
            return Err(KeystoreError::TooManyVersions(name.clone()));
        }
        file.versions.push(self.new_version(name, current.info.key_type, next)?);
        self.write_key(name, current.info.key_type, file.versions)?;
        self.forget(name);
        let mut info = current.info.clone();
        info.versions.push(next);
        Ok(info)
    }

    fn delete(&self, name: &KeyName) -> Result<KeyInfo, KeystoreError> {
        let _lock = self.lock()?;
        let path = self.key_path(name);
        let file = self.read_entries(name)?.ok_or_else(|| KeystoreError::NotFound(name.clone()))?;
        fs::remove_file(&path).map_err(|e| KeystoreError::io(&path, "delete", e))?;
        sync_dir(&self.dir.join(KEYS_DIR))?;
        self.forget(name);
        let mut versions: Vec<u32> = file.versions.iter().map(|v| v.version).collect();
        versions.sort_unstable();
        Ok(KeyInfo { name: name.clone(), key_type: file.key_type, versions })
    }

    fn list(&self) -> Result<Vec<KeyInfo>, KeystoreError> {
        let dir = self.dir.join(KEYS_DIR);
        let entries = fs::read_dir(&dir).map_err(|e| KeystoreError::io(&dir, "list", e))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| KeystoreError::io(&dir, "list", e))?;
            let file_name = entry.file_name();
            let Some(stem) = file_name.to_str().and_then(|n| n.strip_suffix(".json")) else { continue };
            // Temporary files of interrupted writes start with `.` and are not keys.
            let Ok(name) = KeyName::parse(stem) else { continue };
            match self.load(&name) {
                Ok(key) => out.push(key.info.clone()),
                // Deleted between listing and reading.
                Err(KeystoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn info(&self, name: &KeyName) -> Result<KeyInfo, KeystoreError> {
        Ok(self.load(name)?.info.clone())
    }

    fn public_key(&self, name: &KeyName, version: Option<u32>) -> Result<PublicKey, KeystoreError> {
        let key = self.load(name)?;
        key.require(Operation::Sign)?;
        let (version, v) = match version {
            Some(n) => (n, key.version(n)?),
            None => key.current()?,
        };
        let spki_der = v.public.clone().ok_or_else(|| KeystoreError::NotFound(name.clone()))?;
        Ok(PublicKey { version, key_type: key.info.key_type, spki_der })
    }

    fn sign(&self, name: &KeyName, message: &[u8]) -> Result<Signature, KeystoreError> {
        check_len("the message", message.len())?;
        let key = self.load(name)?;
        key.require(Operation::Sign)?;
        let (version, v) = key.current()?;
        let bytes = match &v.material {
            Material::Ed25519(sk) => sk.sign(message).to_bytes().to_vec(),
            Material::P256(sk) => {
                let sig: p256::ecdsa::Signature = sk.sign(message);
                sig.to_der().as_bytes().to_vec()
            }
            _ => return Err(KeystoreError::Unsupported { name: name.clone(), key_type: key.info.key_type, operation: Operation::Sign }),
        };
        Ok(Signature { version, bytes })
    }

    fn verify(&self, name: &KeyName, message: &[u8], signature: &Signature) -> Result<bool, KeystoreError> {
        check_len("the message", message.len())?;
        let key = self.load(name)?;
        key.require(Operation::Verify)?;
        let v = key.version(signature.version)?;
        let spki = v.public.as_deref().ok_or_else(|| KeystoreError::NotFound(name.clone()))?;
        crate::crypto::verify_with_spki(key.info.key_type, spki, message, &signature.bytes)
    }

    fn seal(&self, name: &KeyName, plaintext: &[u8], aad: &[u8]) -> Result<Sealed, KeystoreError> {
        check_len("the plaintext", plaintext.len())?;
        check_len("the associated data", aad.len())?;
        let key = self.load(name)?;
        key.require(Operation::Seal)?;
        let (version, v) = key.current()?;
        let Material::Aes(cipher) = &v.material else {
            return Err(KeystoreError::Unsupported { name: name.clone(), key_type: key.info.key_type, operation: Operation::Seal });
        };
        let mut nonce = [0u8; NONCE_BYTES];
        random(&mut nonce)?;
        let ciphertext = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad })
            .map_err(|_| KeystoreError::InvalidInput("AES-GCM refused the input".into()))?;
        Ok(Sealed { version, nonce, ciphertext })
    }

    fn open(&self, name: &KeyName, sealed: &Sealed, aad: &[u8]) -> Result<Vec<u8>, KeystoreError> {
        check_len("the sealed data", sealed.ciphertext.len())?;
        check_len("the associated data", aad.len())?;
        let key = self.load(name)?;
        key.require(Operation::Open)?;
        if sealed.ciphertext.len() < GCM_TAG_BYTES {
            return Err(KeystoreError::InvalidInput(format!("sealed data is at least {GCM_TAG_BYTES} bytes (the tag)")));
        }
        let v = key.version(sealed.version)?;
        let Material::Aes(cipher) = &v.material else {
            return Err(KeystoreError::Unsupported { name: name.clone(), key_type: key.info.key_type, operation: Operation::Open });
        };
        cipher
            .decrypt(Nonce::from_slice(&sealed.nonce), Payload { msg: &sealed.ciphertext, aad })
            .map_err(|_| KeystoreError::AuthenticationFailed)
    }

    fn tag(&self, name: &KeyName, data: &[u8]) -> Result<Tag, KeystoreError> {
        check_len("the data", data.len())?;
        let key = self.load(name)?;
        key.require(Operation::Mac)?;
        let (version, v) = key.current()?;
        let Material::Hmac(secret) = &v.material else {
            return Err(KeystoreError::Unsupported { name: name.clone(), key_type: key.info.key_type, operation: Operation::Mac });
        };
        let mut mac = <HmacSha256 as hmac::Mac>::new_from_slice(secret).map_err(|_| KeystoreError::InvalidInput("HMAC key".into()))?;
        mac.update(data);
        Ok(Tag { version, bytes: mac.finalize().into_bytes().to_vec() })
    }

    fn check(&self, name: &KeyName, data: &[u8], tag: &Tag) -> Result<bool, KeystoreError> {
        check_len("the data", data.len())?;
        let key = self.load(name)?;
        key.require(Operation::Mac)?;
        let v = key.version(tag.version)?;
        let Material::Hmac(secret) = &v.material else {
            return Err(KeystoreError::Unsupported { name: name.clone(), key_type: key.info.key_type, operation: Operation::Mac });
        };
        let mut mac = <HmacSha256 as hmac::Mac>::new_from_slice(secret).map_err(|_| KeystoreError::InvalidInput("HMAC key".into()))?;
        mac.update(data);
        Ok(mac.verify_slice(&tag.bytes).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> KeyName {
        KeyName::parse(s).unwrap()
    }

    fn store(dir: &Path) -> SoftwareStore {
        SoftwareStore::open(dir, "correct horse", true).unwrap()
    }

    #[test]
    fn every_type_round_trips_and_survives_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let ks = store(dir.path());
        for t in KeyType::ALL {
            ks.create(&name(t.as_str()), t).unwrap();
        }
        let (ed, p, aes, mac) = (name("ed25519"), name("p256"), name("aes256gcm"), name("hmac-sha256"));
        let s1 = ks.sign(&ed, b"hello").unwrap();
        let p1 = ks.sign(&p, b"hello").unwrap();
        let sealed1 = ks.seal(&aes, b"secret", b"aad").unwrap();
        let tag1 = ks.tag(&mac, b"data").unwrap();
        assert_eq!((s1.version, s1.bytes.len()), (1, 64));
        assert!(ks.verify(&ed, b"hello", &s1).unwrap() && ks.verify(&p, b"hello", &p1).unwrap());
        assert!(!ks.verify(&ed, b"hellp", &s1).unwrap());

        // A second process (here: a second handle) rotates; the first notices within the interval.
        let other = store(dir.path());
        for n in [&ed, &p, &aes, &mac] {
            assert_eq!(other.rotate(n).unwrap().versions, vec![1, 2]);
        }
        std::thread::sleep(REFRESH_INTERVAL + Duration::from_millis(50));
        assert_eq!(ks.sign(&ed, b"hello").unwrap().version, 2);
        assert!(ks.verify(&ed, b"hello", &s1).unwrap());
        assert!(ks.verify(&p, b"hello", &p1).unwrap());
        assert_eq!(ks.open(&aes, &sealed1, b"aad").unwrap(), b"secret");
        assert_eq!(ks.seal(&aes, b"x", b"").unwrap().version, 2);
        assert!(ks.check(&mac, b"data", &tag1).unwrap());
        assert!(!ks.check(&mac, b"datb", &tag1).unwrap());
        assert_ne!(ks.public_key(&ed, Some(1)).unwrap(), ks.public_key(&ed, None).unwrap());

        // Survives reopening: the keystore is on disk.
        drop(ks);
        let again = store(dir.path());
        assert_eq!(again.list().unwrap().len(), 4);
        assert_eq!(again.open(&aes, &sealed1, b"aad").unwrap(), b"secret");
    }

    #[test]
    fn refuses_what_it_must() {
        let dir = tempfile::tempdir().unwrap();
        let ks = store(dir.path());
        let aes = name("vault");
        ks.create(&aes, KeyType::Aes256Gcm).unwrap();
        assert!(matches!(ks.create(&aes, KeyType::Ed25519), Err(KeystoreError::Exists(_))));
        let mut sealed = ks.seal(&aes, b"secret", b"").unwrap();
        assert!(matches!(ks.open(&aes, &sealed, b"other aad"), Err(KeystoreError::AuthenticationFailed)));
        sealed.ciphertext[0] ^= 1;
        assert!(matches!(ks.open(&aes, &sealed, b""), Err(KeystoreError::AuthenticationFailed)));
        sealed.version = 9;
        assert!(matches!(ks.open(&aes, &sealed, b""), Err(KeystoreError::UnknownVersion { version: 9, .. })));
        assert!(matches!(ks.sign(&aes, b"m"), Err(KeystoreError::Unsupported { operation: Operation::Sign, .. })));
        assert!(matches!(ks.public_key(&aes, None), Err(KeystoreError::Unsupported { .. })));
        assert!(matches!(ks.sign(&name("nope"), b"m"), Err(KeystoreError::NotFound(_))));
        ks.delete(&aes).unwrap();
        assert!(matches!(ks.seal(&aes, b"m", b""), Err(KeystoreError::NotFound(_))));
        assert!(matches!(SoftwareStore::open(dir.path(), "wrong", false), Err(KeystoreError::WrongPassphrase(_))));
        let missing = dir.path().join("missing");
        let err = SoftwareStore::open(&missing, "x", false).unwrap_err();
        assert!(err.to_string().contains("no keystore at"), "{err}");
    }

    #[test]
    fn files_are_private_and_secrets_encrypted() {
        let dir = tempfile::tempdir().unwrap();
        let ks = store(dir.path());
        ks.create(&name("k"), KeyType::HmacSha256).unwrap();
        let path = dir.path().join("keys/k.json");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777, 0o700);
        // Moving a secret to another name does not decrypt: the name is bound in.
        let text = fs::read_to_string(&path).unwrap().replace("\"name\": \"k\"", "\"name\": \"j\"");
        fs::write(dir.path().join("keys/j.json"), text).unwrap();
        let err = ks.info(&name("j")).unwrap_err();
        assert!(err.to_string().contains("does not decrypt"), "{err}");
    }
}

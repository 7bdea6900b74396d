//! `crypto:key:NAME:OP`: the host side of `wasmzip:crypto` (see `wit/crypto.wit`).
//!
//! Guests name keys; the operator's [`Keystore`] holds them. Every call is checked against the typed
//! grants built once from the effective capabilities. A key with no grant at all cannot be opened, and
//! the guest gets `denied` whether or not the key exists, so it learns nothing about keys it was not
//! given; an operation not granted on an opened key is `denied` too. The host audits every denial.
//! Keystore faults reach the guest as a short message; the details go to the host log only.
//!
//! `sign`, `seal` and `tag` read their message straight from guest memory (see
//! [`add_to_linker`]): a 1 MiB seal is not first copied into a host buffer.

use std::sync::Arc;

use sha2::Digest as _;
use wasmtime::StoreContextMut;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable, WasmList};
use wasmzip_keystore::{KeyName, KeyType, Keystore, KeystoreError, NONCE_BYTES, Operation};
use wasmzip_package::Capability;
use wasmzip_package::capability::{CryptoOp, KeyPattern};

use super::{CapabilityError, CapabilityUnit};
use crate::audit::Auditor;
use crate::engine::EngineKind;
use crate::instance::{InstanceContext, InstanceState};
use crate::plan::{PlanContext, PlanError};

/// The crypto unit: typed grants and the keystore, decided once per component.
pub struct Crypto;

/// What the crypto unit plans for a component.
#[derive(Clone)]
pub struct PlannedCrypto {
    grants: Arc<CryptoGrants>,
    keystore: Option<Arc<dyn Keystore>>,
}

impl PlannedCrypto {
    /// The grants.
    pub fn grants(&self) -> &CryptoGrants {
        &self.grants
    }
}

impl CapabilityUnit for Crypto {
    type Planned = PlannedCrypto;
    type Instance = CryptoCtx;

    fn link(linker: &mut Linker<InstanceState>, _kind: EngineKind) -> wasmtime::Result<()> {
        add_to_linker(linker)
    }

    fn plan(cx: &mut PlanContext<'_>) -> Result<PlannedCrypto, PlanError> {
        let grants = CryptoGrants::from_capabilities(cx.effective);
        // The keystore is opened only for a component granted keys: others need no passphrase or PIN.
        let keystore = if grants.is_empty() { None } else { Some(OffWorker::wrap(cx.host.keystore.open(&cx.component.description())?)) };
        Ok(PlannedCrypto { grants: Arc::new(grants), keystore })
    }

    fn instantiate(planned: &PlannedCrypto, cx: &mut InstanceContext<'_>) -> Result<CryptoCtx, CapabilityError> {
        Ok(CryptoCtx::new(planned.grants.clone(), planned.keystore.clone(), cx.audit.clone()))
    }
}

impl CryptoView for InstanceState {
    fn crypto(&mut self) -> CryptoHost<'_> {
        let (capabilities, table) = self.capabilities_and_table();
        CryptoHost { ctx: &capabilities.crypto, table }
    }
}

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "wasmzip:crypto/imports",
        imports: { default: trappable },
        with: {
            "wasmzip:crypto/keys.key": super::KeyHandle,
        },
    });
}

use bindings::wasmzip::crypto::{hashing, keys, types};

/// The effective `crypto:key:` capabilities, as typed rules.
#[derive(Debug, Clone, Default)]
pub struct CryptoGrants {
    rules: Vec<(KeyPattern, CryptoOp)>,
}

impl CryptoGrants {
    /// Collects the crypto capabilities among `effective`.
    pub fn from_capabilities(effective: &[Capability]) -> Self {
        let rules = effective
            .iter()
            .filter_map(|c| match c {
                Capability::CryptoKey(k, o) => Some((k.clone(), *o)),
                _ => None,
            })
            .collect();
        CryptoGrants { rules }
    }

    /// Whether no key is granted at all (then no keystore is needed).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether any rule names the key `name`.
    pub fn names(&self, name: &str) -> bool {
        self.rules.iter().any(|(k, _)| k.matches(name))
    }

    /// Whether `operation` on `name` is granted.
    pub fn allows(&self, name: &str, operation: Operation) -> bool {
        let op = match operation {
            Operation::Sign => CryptoOp::Sign,
            Operation::Verify => CryptoOp::Verify,
            Operation::Seal => CryptoOp::Seal,
            Operation::Open => CryptoOp::Open,
            Operation::Mac => CryptoOp::Mac,
        };
        self.rules.iter().any(|(k, o)| k.matches(name) && o.covers(op))
    }
}

/// Per-instance crypto state: the grants, the process's keystore, and who to audit.
#[derive(Clone)]
pub struct CryptoCtx {
    grants: Arc<CryptoGrants>,
    keystore: Option<Arc<dyn Keystore>>,
    audit: Auditor,
}

impl CryptoCtx {
    /// A context for one instance. `keystore` may be absent only when `grants` is empty.
    pub fn new(grants: Arc<CryptoGrants>, keystore: Option<Arc<dyn Keystore>>, audit: Auditor) -> Self {
        CryptoCtx { grants, keystore, audit }
    }
}

/// An opened key, as the guest's `key` resource: its name and type, no key material.
#[derive(Debug)]
pub struct KeyHandle {
    name: KeyName,
    key_type: KeyType,
}

/// What the `wasmzip:crypto` host functions work on: the context and the instance's resource table.
pub struct CryptoHost<'a> {
    /// The instance's crypto context.
    pub ctx: &'a CryptoCtx,
    /// The instance's resource table.
    pub table: &'a mut ResourceTable,
}

/// A store's data that offers `wasmzip:crypto`.
pub trait CryptoView: Send {
    /// The crypto context and resource table.
    fn crypto(&mut self) -> CryptoHost<'_>;
}

struct HasCrypto;

impl HasData for HasCrypto {
    type Data<'a> = CryptoHost<'a>;
}

/// The instance name of the `keys` interface.
const KEYS_INTERFACE: &str = "wasmzip:crypto/keys@0.1.0";

/// Adds `wasmzip:crypto/keys` and `wasmzip:crypto/hashing` to `linker`.
///
/// The generated bindings lift every `list<u8>` argument into a new `Vec`. For the calls that take
/// bulk data one way (`sign`, `seal`, `tag`), definitions that borrow the bytes from guest memory
/// for the length of the call replace the generated ones; the store is not touched meanwhile.
pub fn add_to_linker<T: CryptoView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    keys::add_to_linker::<T, HasCrypto>(linker, |t| t.crypto())?;
    hashing::add_to_linker::<T, HasCrypto>(linker, |t| t.crypto())?;
    types::add_to_linker::<T, HasCrypto>(linker, |t| t.crypto())?;

    linker.allow_shadowing(true);
    let mut keys = linker.instance(KEYS_INTERFACE)?;
    keys.func_wrap(
        "[method]key.sign",
        |mut store: StoreContextMut<'_, T>, (handle, message): (Resource<KeyHandle>, WasmList<u8>)| {
            let (name, keystore) = match store.data_mut().crypto().authorize(&handle, Operation::Sign)? {
                Ok(granted) => granted,
                Err(e) => return Ok((Err(e),)),
            };
            Ok((sign(keystore.as_ref(), &name, message.as_le_slice(&store)),))
        },
    )?;
    keys.func_wrap(
        "[method]key.seal",
        |mut store: StoreContextMut<'_, T>, (handle, plaintext, aad): (Resource<KeyHandle>, WasmList<u8>, WasmList<u8>)| {
            let (name, keystore) = match store.data_mut().crypto().authorize(&handle, Operation::Seal)? {
                Ok(granted) => granted,
                Err(e) => return Ok((Err(e),)),
            };
            Ok((seal(keystore.as_ref(), &name, plaintext.as_le_slice(&store), aad.as_le_slice(&store)),))
        },
    )?;
    keys.func_wrap(
        "[method]key.tag",
        |mut store: StoreContextMut<'_, T>, (handle, data): (Resource<KeyHandle>, WasmList<u8>)| {
            let (name, keystore) = match store.data_mut().crypto().authorize(&handle, Operation::Mac)? {
                Ok(granted) => granted,
                Err(e) => return Ok((Err(e),)),
            };
            Ok((tag(keystore.as_ref(), &name, data.as_le_slice(&store)),))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// A keystore whose calls may block ([`Keystore::may_block`]: an HSM), called so that a slow call does
/// not hold up the other connections of the async worker thread it is made on: on a multi-threaded
/// Tokio runtime (serve's connection workers, `run`) the call runs in [`tokio::task::block_in_place`],
/// which hands the worker's other tasks to another thread meanwhile. Elsewhere it runs as is.
struct OffWorker(Arc<dyn Keystore>);

impl OffWorker {
    /// `keystore`, wrapped if its calls may block.
    fn wrap(keystore: Arc<dyn Keystore>) -> Arc<dyn Keystore> {
        if keystore.may_block() { Arc::new(OffWorker(keystore)) } else { keystore }
    }
}

/// Runs `call` off the current async worker when there is one to hand over.
fn off_worker<R>(call: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    if Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread) {
        tokio::task::block_in_place(call)
    } else {
        call()
    }
}

impl Keystore for OffWorker {
    fn describe(&self) -> String {
        self.0.describe()
    }
    fn may_block(&self) -> bool {
        true
    }
    fn create(&self, name: &KeyName, key_type: KeyType) -> Result<wasmzip_keystore::KeyInfo, KeystoreError> {
        off_worker(|| self.0.create(name, key_type))
    }
    fn rotate(&self, name: &KeyName) -> Result<wasmzip_keystore::KeyInfo, KeystoreError> {
        off_worker(|| self.0.rotate(name))
    }
    fn delete(&self, name: &KeyName) -> Result<wasmzip_keystore::KeyInfo, KeystoreError> {
        off_worker(|| self.0.delete(name))
    }
    fn list(&self) -> Result<Vec<wasmzip_keystore::KeyInfo>, KeystoreError> {
        off_worker(|| self.0.list())
    }
    fn info(&self, name: &KeyName) -> Result<wasmzip_keystore::KeyInfo, KeystoreError> {
        off_worker(|| self.0.info(name))
    }
    fn public_key(&self, name: &KeyName, version: Option<u32>) -> Result<wasmzip_keystore::PublicKey, KeystoreError> {
        off_worker(|| self.0.public_key(name, version))
    }
    fn sign(&self, name: &KeyName, message: &[u8]) -> Result<wasmzip_keystore::Signature, KeystoreError> {
        off_worker(|| self.0.sign(name, message))
    }
    fn verify(&self, name: &KeyName, message: &[u8], signature: &wasmzip_keystore::Signature) -> Result<bool, KeystoreError> {
        off_worker(|| self.0.verify(name, message, signature))
    }
    fn seal(&self, name: &KeyName, plaintext: &[u8], aad: &[u8]) -> Result<wasmzip_keystore::Sealed, KeystoreError> {
        off_worker(|| self.0.seal(name, plaintext, aad))
    }
    fn open(&self, name: &KeyName, sealed: &wasmzip_keystore::Sealed, aad: &[u8]) -> Result<Vec<u8>, KeystoreError> {
        off_worker(|| self.0.open(name, sealed, aad))
    }
    fn tag(&self, name: &KeyName, data: &[u8]) -> Result<wasmzip_keystore::Tag, KeystoreError> {
        off_worker(|| self.0.tag(name, data))
    }
    fn check(&self, name: &KeyName, data: &[u8], tag: &wasmzip_keystore::Tag) -> Result<bool, KeystoreError> {
        off_worker(|| self.0.check(name, data, tag))
    }
}

/// Turns a keystore error into the guest's error, logging what the guest must not see.
fn guest_error(key: &KeyName, error: KeystoreError) -> types::Error {
    match error {
        KeystoreError::NotFound(_) => types::Error::NotFound,
        KeystoreError::UnknownVersion { version, .. } => types::Error::UnknownVersion(version),
        KeystoreError::Unsupported { .. } => types::Error::Unsupported,
        KeystoreError::AuthenticationFailed => types::Error::AuthenticationFailed,
        KeystoreError::InvalidInput(why) => types::Error::InvalidInput(why),
        other => {
            tracing::error!(target: "wasmzip::crypto", key = %key, "keystore error: {other}");
            types::Error::Keystore(format!("the keystore failed on key `{key}`; the host log has details"))
        }
    }
}

fn sign(keystore: &dyn Keystore, name: &KeyName, message: &[u8]) -> Result<types::Signature, types::Error> {
    let s = keystore.sign(name, message).map_err(|e| guest_error(name, e))?;
    Ok(types::Signature { key_version: s.version, bytes: s.bytes })
}

fn seal(keystore: &dyn Keystore, name: &KeyName, plaintext: &[u8], aad: &[u8]) -> Result<types::Sealed, types::Error> {
    let s = keystore.seal(name, plaintext, aad).map_err(|e| guest_error(name, e))?;
    Ok(types::Sealed { key_version: s.version, nonce: s.nonce.to_vec(), ciphertext: s.ciphertext })
}

fn tag(keystore: &dyn Keystore, name: &KeyName, data: &[u8]) -> Result<types::Tag, types::Error> {
    let t = keystore.tag(name, data).map_err(|e| guest_error(name, e))?;
    Ok(types::Tag { key_version: t.version, bytes: t.bytes })
}

fn wit_type(t: KeyType) -> types::KeyType {
    match t {
        KeyType::Ed25519 => types::KeyType::Ed25519,
        KeyType::P256 => types::KeyType::EcdsaP256,
        KeyType::Aes256Gcm => types::KeyType::Aes256Gcm,
        KeyType::HmacSha256 => types::KeyType::HmacSha256,
    }
}

type GuestResult<T> = wasmtime::Result<Result<T, types::Error>>;

impl CryptoHost<'_> {
    /// The keystore, or the error the guest gets when none is configured.
    fn keystore(&self) -> Result<&Arc<dyn Keystore>, types::Error> {
        self.ctx.keystore.as_ref().ok_or_else(|| types::Error::Keystore("no keystore is configured on this host".into()))
    }

    /// The opened key behind `handle`, if `operation` is granted on it (else audited and denied).
    fn granted(&mut self, handle: &Resource<KeyHandle>, operation: Operation) -> wasmtime::Result<Result<KeyName, types::Error>> {
        let key = self.table.get(handle)?;
        if !operation.applies_to(key.key_type) {
            return Ok(Err(types::Error::Unsupported));
        }
        if !self.ctx.grants.allows(key.name.as_str(), operation) {
            self.ctx.audit.denied(&format!("{operation} with key `{}`", key.name), &format!("crypto:key:{}:{operation}", key.name));
            return Ok(Err(types::Error::Denied));
        }
        Ok(Ok(key.name.clone()))
    }

    /// The key's name and the keystore, if `operation` is granted on the key behind `handle`.
    fn authorize(&mut self, handle: &Resource<KeyHandle>, operation: Operation) -> GuestResult<(KeyName, Arc<dyn Keystore>)> {
        let name = match self.granted(handle, operation)? {
            Ok(name) => name,
            Err(e) => return Ok(Err(e)),
        };
        Ok(self.keystore().map(|k| (name, k.clone())))
    }

    fn with_key<T>(
        &mut self,
        handle: &Resource<KeyHandle>,
        operation: Operation,
        f: impl FnOnce(&dyn Keystore, &KeyName) -> Result<T, KeystoreError>,
    ) -> GuestResult<T> {
        Ok(self.authorize(handle, operation)?.and_then(|(name, keystore)| f(keystore.as_ref(), &name).map_err(|e| guest_error(&name, e))))
    }
}

impl types::Host for CryptoHost<'_> {}

impl hashing::Host for CryptoHost<'_> {
    fn sha256(&mut self, data: Vec<u8>) -> wasmtime::Result<Vec<u8>> {
        Ok(sha2::Sha256::digest(&data).to_vec())
    }
}

impl keys::Host for CryptoHost<'_> {
    fn open(&mut self, name: String) -> GuestResult<Resource<KeyHandle>> {
        // Checked against the grants before the keystore is asked anything: an ungranted name is
        // `denied` whether or not such a key exists.
        if !self.ctx.grants.names(&name) {
            let shown: String = name.chars().take(80).collect();
            // Opening needs a grant of some operation on the key (which one the guest wants comes
            // later); the token named grants every operation, and any one of them would do.
            match format!("crypto:key:{name}:*").parse::<Capability>() {
                Ok(needed) => self.ctx.audit.denied_capability(
                    &format!("opening key `{shown}` (a grant of any operation on it allows opening: sign, verify, seal, open or mac)"),
                    &needed,
                ),
                Err(_) => self.ctx.audit.denied(&format!("opening key `{shown}`"), "nothing: it is not a valid key name"),
            }
            return Ok(Err(types::Error::Denied));
        }
        let key = match KeyName::parse(&name) {
            Ok(k) => k,
            Err(why) => return Ok(Err(types::Error::InvalidInput(why))),
        };
        let keystore = match self.keystore() {
            Ok(k) => k.clone(),
            Err(e) => return Ok(Err(e)),
        };
        match keystore.info(&key) {
            Ok(info) => Ok(Ok(self.table.push(KeyHandle { name: key, key_type: info.key_type })?)),
            Err(e) => Ok(Err(guest_error(&key, e))),
        }
    }
}

impl keys::HostKey for CryptoHost<'_> {
    fn name(&mut self, handle: Resource<KeyHandle>) -> wasmtime::Result<String> {
        Ok(self.table.get(&handle)?.name.to_string())
    }

    fn key_type(&mut self, handle: Resource<KeyHandle>) -> wasmtime::Result<types::KeyType> {
        Ok(wit_type(self.table.get(&handle)?.key_type))
    }

    fn current_version(&mut self, handle: Resource<KeyHandle>) -> GuestResult<u32> {
        let name = self.table.get(&handle)?.name.clone();
        let keystore = match self.keystore() {
            Ok(k) => k.clone(),
            Err(e) => return Ok(Err(e)),
        };
        Ok(keystore.info(&name).map(|i| i.current()).map_err(|e| guest_error(&name, e)))
    }

    fn public_key(&mut self, handle: Resource<KeyHandle>, version: Option<u32>) -> GuestResult<types::PublicKey> {
        self.with_key(&handle, Operation::Sign, |ks, name| {
            let p = ks.public_key(name, version)?;
            Ok(types::PublicKey { key_version: p.version, key_type: wit_type(p.key_type), spki_der: p.spki_der })
        })
    }

    // `sign`, `seal` and `tag` are replaced in the linker by definitions that borrow their input
    // (see `add_to_linker`); these serve the same calls through the generated bindings.
    fn sign(&mut self, handle: Resource<KeyHandle>, message: Vec<u8>) -> GuestResult<types::Signature> {
        Ok(self.authorize(&handle, Operation::Sign)?.and_then(|(name, ks)| sign(ks.as_ref(), &name, &message)))
    }

    fn verify(&mut self, handle: Resource<KeyHandle>, message: Vec<u8>, signature: types::Signature) -> GuestResult<bool> {
        self.with_key(&handle, Operation::Verify, |ks, name| {
            let sig = wasmzip_keystore::Signature { version: signature.key_version, bytes: signature.bytes };
            ks.verify(name, &message, &sig)
        })
    }

    fn seal(&mut self, handle: Resource<KeyHandle>, plaintext: Vec<u8>, aad: Vec<u8>) -> GuestResult<types::Sealed> {
        Ok(self.authorize(&handle, Operation::Seal)?.and_then(|(name, ks)| seal(ks.as_ref(), &name, &plaintext, &aad)))
    }

    fn open(&mut self, handle: Resource<KeyHandle>, sealed: types::Sealed, aad: Vec<u8>) -> GuestResult<Vec<u8>> {
        self.with_key(&handle, Operation::Open, |ks, name| {
            let nonce: [u8; NONCE_BYTES] = sealed.nonce.as_slice().try_into().map_err(|_| {
                KeystoreError::InvalidInput(format!("a nonce is {NONCE_BYTES} bytes, not {}", sealed.nonce.len()))
            })?;
            let s = wasmzip_keystore::Sealed { version: sealed.key_version, nonce, ciphertext: sealed.ciphertext };
            ks.open(name, &s, &aad)
        })
    }

    fn tag(&mut self, handle: Resource<KeyHandle>, data: Vec<u8>) -> GuestResult<types::Tag> {
        Ok(self.authorize(&handle, Operation::Mac)?.and_then(|(name, ks)| tag(ks.as_ref(), &name, &data)))
    }

    fn check(&mut self, handle: Resource<KeyHandle>, data: Vec<u8>, tag: types::Tag) -> GuestResult<bool> {
        self.with_key(&handle, Operation::Mac, |ks, name| {
            ks.check(name, &data, &wasmzip_keystore::Tag { version: tag.key_version, bytes: tag.bytes })
        })
    }

    fn drop(&mut self, handle: Resource<KeyHandle>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_by_key_and_operation() {
        let caps: Vec<Capability> =
            ["crypto:key:pay:sign", "crypto:key:vault:*", "env:X"].iter().map(|t| t.parse().unwrap()).collect();
        let g = CryptoGrants::from_capabilities(&caps);
        assert!(g.names("pay") && g.names("vault") && !g.names("other"));
        assert!(g.allows("pay", Operation::Sign));
        assert!(!g.allows("pay", Operation::Verify));
        assert!(g.allows("vault", Operation::Open) && g.allows("vault", Operation::Mac));
        assert!(!g.allows("other", Operation::Sign));
        assert!(CryptoGrants::from_capabilities(&[]).is_empty());
    }

    /// A slow keystore call on a one-thread worker (like serve's connection workers) does not hold up
    /// the worker's other tasks: a timer elsewhere fires while the call blocks.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_blocking_keystore_call_leaves_the_worker_to_other_tasks() {
        let slow_call = std::time::Duration::from_millis(600);
        let started = std::time::Instant::now();
        let other = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            started.elapsed()
        });
        // On the worker (the test's own body runs on another thread), blocking it as a PKCS#11 call does.
        let call = tokio::spawn(async move { off_worker(|| std::thread::sleep(slow_call)) });
        let other_done = other.await.unwrap();
        call.await.unwrap();
        assert!(other_done < slow_call, "the other task waited for the keystore call ({other_done:?})");
    }

    #[test]
    fn only_keystores_that_may_block_are_moved_off_the_worker() {
        let dir = tempfile::tempdir().unwrap();
        let software: Arc<dyn Keystore> = Arc::new(wasmzip_keystore::software::SoftwareStore::open(dir.path(), "pass", true).unwrap());
        assert!(!software.may_block());
        assert!(Arc::ptr_eq(&OffWorker::wrap(software.clone()), &software));
        // Outside a runtime the call runs where it is.
        let here = std::thread::current().id();
        assert_eq!(off_worker(|| std::thread::current().id()), here);
    }
}

//! The operator's choice of keystore, and where its passphrase or PIN comes from.

use std::path::PathBuf;
use std::sync::Arc;

use zeroize::Zeroizing;

#[cfg(feature = "pkcs11")]
use crate::pkcs11::Pkcs11Store;
use crate::software::SoftwareStore;
use crate::{Keystore, KeystoreError};

/// Where a passphrase or PIN is read from. Never a command-line value, which other users can see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// The first line of a file.
    File(PathBuf),
    /// An environment variable.
    Env(String),
}

impl SecretSource {
    /// Reads the secret; `what` names it in errors (`keystore passphrase`, `PKCS#11 PIN`).
    pub fn read(&self, what: &str) -> Result<Zeroizing<String>, KeystoreError> {
        let secret = match self {
            SecretSource::File(path) => {
                let text = Zeroizing::new(
                    std::fs::read_to_string(path)
                        .map_err(|e| KeystoreError::Config(format!("cannot read the {what} file {}: {e}", path.display())))?,
                );
                Zeroizing::new(text.lines().next().unwrap_or_default().to_string())
            }
            SecretSource::Env(var) => Zeroizing::new(
                std::env::var(var).map_err(|_| KeystoreError::Config(format!("the {what} variable {var} is not set")))?,
            ),
        };
        if secret.is_empty() {
            return Err(KeystoreError::Config(format!("the {what} from {} is empty", self.describe())));
        }
        Ok(secret)
    }

    /// Where it comes from, for messages.
    pub fn describe(&self) -> String {
        match self {
            SecretSource::File(p) => format!("file {}", p.display()),
            SecretSource::Env(v) => format!("variable {v}"),
        }
    }
}

/// Which keystore to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeystoreConfig {
    /// The encrypted software keystore in `dir`.
    Software {
        /// The keystore directory.
        dir: PathBuf,
        /// Its passphrase.
        passphrase: SecretSource,
    },
    /// A token of a PKCS#11 module, found by label.
    Pkcs11 {
        /// The module (`.so`).
        module: PathBuf,
        /// The token label.
        token: String,
        /// The user PIN.
        pin: SecretSource,
    },
}

/// Opens the configured keystore. A software keystore is created when `create` is set and `dir` holds
/// none yet; otherwise a missing one is an error.
pub fn open_keystore(config: &KeystoreConfig, create: bool) -> Result<Arc<dyn Keystore>, KeystoreError> {
    Ok(match config {
        KeystoreConfig::Software { dir, passphrase } => {
            let passphrase = passphrase.read("keystore passphrase")?;
            Arc::new(SoftwareStore::open(dir, &passphrase, create)?)
        }
        #[cfg(feature = "pkcs11")]
        KeystoreConfig::Pkcs11 { module, token, pin } => {
            let pin = pin.read("PKCS#11 PIN")?;
            Arc::new(Pkcs11Store::open(module, token, &pin)?)
        }
        #[cfg(not(feature = "pkcs11"))]
        KeystoreConfig::Pkcs11 { module, .. } => {
            return Err(KeystoreError::Config(format!(
                "cannot open the PKCS#11 module {}: this wasmzip was built without PKCS#11 support (cargo feature `pkcs11`)",
                module.display()
            )));
        }
    })
}

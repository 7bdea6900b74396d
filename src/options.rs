//! Option groups shared by several commands, and the paths and logging they set up.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use wasmzip_package::manifest::{ByteSize, parse_duration};
use wasmzip_keystore::{Keystore, KeystoreConfig, SecretSource};
#[cfg(feature = "nn")]
use wasmzip_nn::{BackendChoice, NnConfig};
#[cfg(feature = "nn")]
use wasmzip_package::manifest::ModelTarget;
use wasmzip_package::{Capability, PublicKey, TrustPolicy};
use wasmzip_runtime::GuestLimits;
use wasmzip_runtime::capabilities::filesystem::Mount;

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Sets up `tracing` on stderr; `WASMZIP_LOG` takes a filter such as `info` or `wasmzip=debug`, else
/// `default` applies. Text lines are coloured only when stderr is a terminal (and `NO_COLOR` is unset),
/// so log files and pipes get plain text.
pub fn init_logging(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WASMZIP_LOG").unwrap_or_else(|_| default.into());
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colour);
    match format {
        LogFormat::Text => builder.without_time().init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Which signers are trusted.
#[derive(Debug, Args)]
pub struct TrustOptions {
    /// A public key (PEM) whose signatures are trusted, or a directory whose every `*.pub` is (a
    /// mounted ConfigMap, say); repeatable. Every `*.pub` in the directory named by WASMZIP_TRUST is
    /// trusted too.
    #[arg(long = "trust", value_name = "PUB|DIR")]
    pub trust: Vec<PathBuf>,
    /// Accept a package that carries no signature (a warning is printed).
    #[arg(long)]
    pub allow_unsigned: bool,
}

impl TrustOptions {
    /// The trust policy these options describe.
    pub fn policy(&self) -> Result<TrustPolicy> {
        let mut trusted = Vec::new();
        for path in &self.trust {
            if path.is_dir() {
                let keys = PublicKey::from_dir(path).with_context(|| format!("--trust {}", path.display()))?;
                if keys.is_empty() {
                    bail!("--trust {}: the directory holds no *.pub key", path.display());
                }
                trusted.extend(keys);
            } else {
                trusted.push(PublicKey::from_pem_file(path)?);
            }
        }
        if let Some(dir) = std::env::var_os("WASMZIP_TRUST").filter(|d| !d.is_empty()) {
            let dir = PathBuf::from(dir);
            trusted.extend(PublicKey::from_dir(&dir).with_context(|| format!("WASMZIP_TRUST={}", dir.display()))?);
        }
        Ok(TrustPolicy { trusted, allow_unsigned: self.allow_unsigned })
    }
}

/// The deploy policy a package must pass before it is planned.
#[derive(Debug, Args)]
pub struct PolicyOptions {
    /// A deploy policy (TOML): which keys may sign which functions, how many signatures, a ceiling
    /// on grants, SBOM rules, refused licences and dependencies, downgrades (docs/policy.md).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// A directory of OSV advisories (JSON) checked against each package's SBOM, as the policy's
    /// `[advisories]` says (refuse by default).
    #[arg(long, value_name = "DIR", requires = "policy")]
    pub advisories: Option<PathBuf>,
}

impl PolicyOptions {
    /// The policy and advisories, loaded; `None` without `--policy`.
    pub fn gate(&self) -> Result<Option<wasmzip_policy::Gate>> {
        let Some(path) = &self.policy else { return Ok(None) };
        let policy = wasmzip_policy::Policy::load(path)?;
        let advisories = self.advisories.as_deref().map(wasmzip_policy::Advisories::load).transpose()?;
        Ok(Some(wasmzip_policy::Gate { policy, advisories }))
    }

    /// `trust` with the keys the policy names added: their signatures are checked and counted.
    pub fn trust(&self, mut trust: TrustPolicy, gate: Option<&wasmzip_policy::Gate>) -> TrustPolicy {
        if let Some(gate) = gate {
            for (_, key) in gate.policy.keys() {
                if !trust.trusted.iter().any(|k| k.id() == key.id()) {
                    trust.trusted.push(key);
                }
            }
        }
        trust
    }
}

/// What the operator grants.
#[derive(Debug, Args)]
pub struct GrantOptions {
    /// Grant a capability token; repeatable. The guest gets what it requested as far as grants cover it.
    #[arg(long = "grant", value_name = "TOKEN")]
    pub grant: Vec<Capability>,
    /// Grant everything the package requests.
    #[arg(long)]
    pub grant_requested: bool,
    /// Map a guest directory to a host directory (GUEST=HOST); without it a guest directory is the
    /// same path on the host.
    #[arg(long = "mount", value_name = "GUEST=HOST")]
    pub mount: Vec<Mount>,
    /// Set an environment variable the guest may see (it still needs an `env:NAME` capability).
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    let (name, value) = text.split_once('=').ok_or_else(|| format!("`{text}`: expected NAME=VALUE"))?;
    if name.is_empty() {
        return Err(format!("`{text}`: the name is empty"));
    }
    Ok((name.to_string(), value.to_string()))
}

/// Limits the operator imposes; they only ever lower what a manifest asks for.
#[derive(Debug, Args)]
pub struct LimitOptions {
    /// Most linear memory (e.g. `64MiB`).
    #[arg(long, value_name = "SIZE", value_parser = |s: &str| ByteSize::parse(s))]
    pub max_memory: Option<ByteSize>,
    /// Wall-clock limit (e.g. `500ms`, `30s`).
    #[arg(long, value_name = "DURATION", value_parser = |s: &str| parse_duration(s))]
    pub timeout: Option<Duration>,
}

impl LimitOptions {
    /// As runtime limits.
    pub fn limits(&self) -> GuestLimits {
        GuestLimits { memory_bytes: self.max_memory.map(|m| m.0), timeout: self.timeout }
    }
}

/// Where compiled code and extracted package resources are kept.
#[derive(Debug, Args)]
pub struct CacheOptions {
    /// Cache directory (default: WASMZIP_CACHE_DIR, else $XDG_CACHE_HOME/wasmzip, else ~/.cache/wasmzip).
    /// It can be deleted at any time.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Most bytes the cache may hold; past it, least recently used entries are removed after new
    /// ones are written (default 4GiB).
    #[arg(long, value_name = "SIZE", env = "WASMZIP_CACHE_MAX_SIZE", value_parser = |s: &str| ByteSize::parse(s))]
    pub cache_max_size: Option<ByteSize>,
}

impl CacheOptions {
    /// The size cap.
    pub fn max_size(&self) -> u64 {
        self.cache_max_size.map(|b| b.0).unwrap_or(wasmzip_runtime::cache_dir::DEFAULT_MAX_CACHE_BYTES)
    }

    /// The cache root.
    pub fn root(&self) -> Result<PathBuf> {
        if let Some(dir) = &self.cache_dir {
            return Ok(dir.clone());
        }
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        if let Some(dir) = var("WASMZIP_CACHE_DIR") {
            return Ok(dir);
        }
        if let Some(dir) = var("XDG_CACHE_HOME") {
            return Ok(dir.join("wasmzip"));
        }
        match var("HOME") {
            Some(home) => Ok(home.join(".cache").join("wasmzip")),
            None => bail!("no cache directory: set --cache-dir, WASMZIP_CACHE_DIR or HOME"),
        }
    }
}

/// Which kind of keystore holds the keys guests may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeystoreKind {
    /// An encrypted directory (Argon2id + AES-256-GCM), the default.
    Software,
    /// A token of a PKCS#11 module (an HSM, a TPM through tpm2-pkcs11, SoftHSM2).
    Pkcs11,
}

/// The keystore for `crypto:key:` grants and `wasmzip keys`. Secrets come from files or the environment,
/// never from the command line.
#[derive(Debug, Args)]
pub struct KeystoreOptions {
    /// Keystore kind [default: pkcs11 when --pkcs11-module is given, else software].
    #[arg(long, global = true, alias = "store", value_enum, env = "WASMZIP_KEYSTORE", value_name = "KIND")]
    pub keystore: Option<KeystoreKind>,
    /// Software keystore directory [default: $XDG_DATA_HOME/wasmzip/keys, else ~/.local/share/wasmzip/keys].
    #[arg(long, global = true, value_name = "DIR", env = "WASMZIP_KEYSTORE_DIR")]
    pub keystore_dir: Option<PathBuf>,
    /// File whose first line is the software keystore's passphrase (else the variable
    /// WASMZIP_KEYSTORE_PASSPHRASE holds it).
    #[arg(long, global = true, value_name = "FILE", env = "WASMZIP_KEYSTORE_PASSPHRASE_FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// PKCS#11 module (shared library), e.g. /usr/lib/softhsm/libsofthsm2.so.
    #[arg(long, global = true, value_name = "PATH", env = "WASMZIP_PKCS11_MODULE")]
    pub pkcs11_module: Option<PathBuf>,
    /// Label of the PKCS#11 token holding the keys (tokens are found by label, not slot).
    #[arg(long, global = true, value_name = "LABEL", env = "WASMZIP_PKCS11_TOKEN")]
    pub pkcs11_token: Option<String>,
    /// File whose first line is the token's user PIN (else the variable WASMZIP_PKCS11_PIN holds it).
    #[arg(long, global = true, value_name = "FILE", env = "WASMZIP_PKCS11_PIN_FILE")]
    pub pin_file: Option<PathBuf>,
}

const PASSPHRASE_VAR: &str = "WASMZIP_KEYSTORE_PASSPHRASE";
const PIN_VAR: &str = "WASMZIP_PKCS11_PIN";

impl KeystoreOptions {
    /// Whether the operator configured a keystore at all, by a flag or a variable.
    #[cfg(feature = "server")]
    pub fn configured(&self) -> bool {
        let set = |v: &str| std::env::var_os(v).is_some_and(|v| !v.is_empty());
        self.keystore.is_some()
            || self.keystore_dir.is_some()
            || self.passphrase_file.is_some()
            || self.pkcs11_module.is_some()
            || self.pkcs11_token.is_some()
            || self.pin_file.is_some()
            || set(PASSPHRASE_VAR)
            || set(PIN_VAR)
    }

    fn kind(&self) -> KeystoreKind {
        self.keystore.unwrap_or(if self.pkcs11_module.is_some() { KeystoreKind::Pkcs11 } else { KeystoreKind::Software })
    }

    /// The keystore these options describe.
    pub fn config(&self) -> Result<KeystoreConfig> {
        let secret = |file: &Option<PathBuf>, var: &str, flag: &str, what: &str| -> Result<SecretSource> {
            match file {
                Some(f) => Ok(SecretSource::File(f.clone())),
                None if std::env::var_os(var).is_some() => Ok(SecretSource::Env(var.to_string())),
                None => bail!("no {what}: give {flag} FILE or set {var}"),
            }
        };
        match self.kind() {
            KeystoreKind::Software => {
                if self.pkcs11_module.is_some() || self.pkcs11_token.is_some() || self.pin_file.is_some() {
                    bail!("--pkcs11-module, --pkcs11-token and --pin-file need --keystore pkcs11");
                }
                Ok(KeystoreConfig::Software {
                    dir: self.dir()?,
                    passphrase: secret(&self.passphrase_file, PASSPHRASE_VAR, "--passphrase-file", "keystore passphrase")?,
                })
            }
            KeystoreKind::Pkcs11 => {
                if self.keystore_dir.is_some() || self.passphrase_file.is_some() {
                    bail!("--keystore-dir and --passphrase-file apply to the software keystore, not --keystore pkcs11");
                }
                let module = self.pkcs11_module.clone().context("--keystore pkcs11 needs --pkcs11-module PATH")?;
                let token = self.pkcs11_token.clone().context("--keystore pkcs11 needs --pkcs11-token LABEL")?;
                Ok(KeystoreConfig::Pkcs11 { module, token, pin: secret(&self.pin_file, PIN_VAR, "--pin-file", "PKCS#11 PIN")? })
            }
        }
    }

    fn dir(&self) -> Result<PathBuf> {
        if let Some(d) = &self.keystore_dir {
            return Ok(d.clone());
        }
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        if let Some(d) = var("XDG_DATA_HOME") {
            return Ok(d.join("wasmzip/keys"));
        }
        match var("HOME") {
            Some(home) => Ok(home.join(".local/share/wasmzip/keys")),
            None => bail!("no keystore directory: set --keystore-dir, WASMZIP_KEYSTORE_DIR or HOME"),
        }
    }

    /// The keystore as a planning resource: opened only for a component granted keys.
    pub fn on_demand(&self) -> wasmzip_runtime::KeystoreSource {
        match self.config() {
            Ok(config) => wasmzip_runtime::KeystoreSource::OnDemand(Arc::new(move || {
                wasmzip_keystore::open_keystore(&config, false).map_err(|e| format!("{e:#}"))
            })),
            // Unusable settings matter only to a component granted keys: say why then.
            Err(e) => {
                let why = format!("{e:#}");
                wasmzip_runtime::KeystoreSource::OnDemand(Arc::new(move || Err(why.clone())))
            }
        }
    }

    /// Opens the keystore; a software one is created when `create` is set.
    pub fn open(&self, create: bool) -> Result<Arc<dyn Keystore>> {
        let config = self.config()?;
        wasmzip_keystore::open_keystore(&config, create).context("cannot open the keystore")
    }
}

/// Which ONNX back-end runs models.
#[cfg(feature = "nn")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NnBackend {
    /// tract: pure Rust, nothing to install (GPU with a `--features cuda` build).
    Tract,
    /// ONNX Runtime, loaded from --onnxruntime-lib (a `--features ort` build).
    Onnxruntime,
}

/// How wasi-nn models are loaded and where they run.
#[cfg(feature = "nn")]
#[derive(Debug, Args)]
pub struct NnOptions {
    /// ONNX back-end.
    #[arg(long, value_enum, default_value_t = NnBackend::Tract, env = "WASMZIP_NN_BACKEND", value_name = "BACKEND")]
    pub nn_backend: NnBackend,
    /// The ONNX Runtime shared library (`libonnxruntime.so`) for `--nn-backend onnxruntime`.
    #[arg(long, value_name = "PATH", env = "WASMZIP_ONNXRUNTIME_LIB")]
    pub onnxruntime_lib: Option<PathBuf>,
    /// Run every model on this target instead of the one its manifest names: cpu, gpu or auto (GPU
    /// when one is usable, else CPU). `gpu` without a usable GPU is an error, never a fallback.
    #[arg(long, value_name = "TARGET", value_parser = |s: &str| s.parse::<ModelTarget>())]
    pub nn_target: Option<ModelTarget>,
    /// Most model bytes one package (deployment) may load.
    #[arg(long, value_name = "SIZE", value_parser = |s: &str| ByteSize::parse(s))]
    pub max_model_memory: Option<ByteSize>,
}

#[cfg(feature = "nn")]
impl NnOptions {
    /// The model-loading configuration these options describe.
    pub fn config(&self) -> Result<NnConfig> {
        let backend = match (self.nn_backend, &self.onnxruntime_lib) {
            (NnBackend::Tract, None) => BackendChoice::Tract,
            (NnBackend::Tract, Some(_)) => bail!("--onnxruntime-lib needs --nn-backend onnxruntime"),
            (NnBackend::Onnxruntime, Some(lib)) => BackendChoice::OnnxRuntime(lib.clone()),
            (NnBackend::Onnxruntime, None) => bail!("--nn-backend onnxruntime needs --onnxruntime-lib PATH (libonnxruntime.so)"),
        };
        Ok(NnConfig { backend, target: self.nn_target })
    }

    /// The cap on model bytes per package.
    pub fn max_model_bytes(&self) -> u64 {
        self.max_model_memory.map(|b| b.0).unwrap_or(wasmzip_runtime::capabilities::nn::DEFAULT_MAX_MODEL_BYTES)
    }
}

/// A build without inference (no cargo feature `nn`) takes no model options.
#[cfg(not(feature = "nn"))]
#[derive(Debug, Args)]
pub struct NnOptions {}

#[cfg(not(feature = "nn"))]
impl NnOptions {
    /// Nothing to configure.
    pub fn config(&self) -> Result<wasmzip_runtime::capabilities::nn::NnConfig> {
        Ok(Default::default())
    }

    /// The default cap (no model loads in this build).
    pub fn max_model_bytes(&self) -> u64 {
        wasmzip_runtime::capabilities::nn::DEFAULT_MAX_MODEL_BYTES
    }
}

/// Which code runs guests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineChoice {
    /// This machine's own code, compiled by Cranelift (or loaded from a precompiled artefact).
    #[value(alias = "native")]
    Cranelift,
    /// Pulley bytecode on Wasmtime's interpreter: slower, but nothing is mapped executable at run
    /// time (for hosts that forbid JIT).
    Pulley,
}

/// The engine (`run`, `serve`) and code compiled ahead of time for it.
#[derive(Debug, Args)]
pub struct EngineOptions {
    /// Which code runs guests: `cranelift` (this machine's code) or `pulley` (interpreted; no
    /// executable memory at run time).
    #[arg(long, value_enum, default_value_t = EngineChoice::Cranelift, env = "WASMZIP_ENGINE", value_name = "ENGINE")]
    pub engine: EngineChoice,
}

impl EngineOptions {
    /// The code target the runtime's engines are built for.
    pub fn target(&self) -> wasmzip_runtime::CodeTarget {
        match self.engine {
            EngineChoice::Cranelift => wasmzip_runtime::CodeTarget::Native,
            EngineChoice::Pulley => wasmzip_runtime::CodeTarget::Pulley,
        }
    }
}

//! `wasmzip run`: execute a package's `cli` component (or a bare component or preview-1 module) with
//! exactly the capabilities granted.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use wasmzip_package::manifest::{Name, World};
use wasmzip_package::{ResourceSink, Signer, resolve};
use wasmzip_runtime::capabilities::filesystem::unused_mounts;
use wasmzip_runtime::capabilities::nn::{ModelSet, NnGrants, load_models};
use wasmzip_runtime::{CapabilityPlan, CommandOutcome, CommandSpec, GuestLimits, Runtime, RuntimeConfig};

use crate::exit;
use crate::options::{CacheOptions, GrantOptions, KeystoreOptions, LimitOptions, NnOptions, TrustOptions};

/// Run a package's command component, or a bare .wasm for development.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// A .wasmzip package, or a .wasm component or preview-1 module (granted only by --grant).
    pub program: PathBuf,
    /// Which component of the package to run (default: its only `cli` component).
    #[arg(long, value_name = "NAME")]
    pub component: Option<String>,
    #[command(flatten)]
    pub trust: TrustOptions,
    #[command(flatten)]
    pub grants: GrantOptions,
    #[command(flatten)]
    pub limits: LimitOptions,
    #[command(flatten)]
    pub cache: CacheOptions,
    #[command(flatten)]
    pub keystore: KeystoreOptions,
    #[command(flatten)]
    pub nn: NnOptions,
    /// Arguments passed to the guest.
    #[arg(last = true)]
    pub args: Vec<String>,
}

/// What kind of file `run` was given.
enum Input {
    Package,
    Wasm,
}

fn sniff(path: &Path) -> Result<Input> {
    let mut head = [0u8; 4];
    let mut file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let n = file.read(&mut head).with_context(|| format!("cannot read {}", path.display()))?;
    match &head[..n] {
        b"PK\x03\x04" => Ok(Input::Package),
        b"\0asm" => Ok(Input::Wasm),
        _ => bail!("{} is neither a .wasmzip package nor a WebAssembly file", path.display()),
    }
}

/// Runs the command.
pub async fn run(args: RunArgs) -> Result<u8> {
    let cache_root = args.cache.root()?;
    let runtime = Runtime::new(RuntimeConfig { cache_dir: Some(cache_root.join("compiled")), pooling: None })?;
    let prepared = match sniff(&args.program)? {
        Input::Package => prepare_package(&args, &cache_root)?,
        Input::Wasm => prepare_wasm(&args)?,
    };
    for mount in unused_mounts(&prepared.effective, &args.grants.mount) {
        eprintln!("wasmzip: warning: --mount {}={} is not used by any effective capability", mount.guest, mount.host.display());
    }
    let plan = CapabilityPlan::new(&prepared.effective, &args.grants.mount, &args.grants.env, prepared.resources_dir.as_deref())?;
    // The keystore is opened only for a guest granted keys: others need no passphrase or PIN.
    let keystore = if plan.crypto.is_empty() { None } else { Some(args.keystore.open(false)?) };
    let (program, _) = runtime.load_program(&prepared.bytes, &prepared.digest, &prepared.what)?;

    let mut argv = vec![prepared.argv0];
    argv.extend(args.args.iter().cloned());
    let spec = CommandSpec { subject: prepared.subject, args: argv, plan, limits: prepared.limits, keystore, models: Arc::new(prepared.models) };
    let finished = wasmzip_runtime::run_command(&runtime, &program, spec).await?;
    let code = report(finished.outcome);
    // A guest cut off at its deadline is still suspended; dropping it unwinds and symbolises its stack.
    // The process is about to exit, which frees it all the same, so the report is not delayed by that.
    std::mem::forget(finished.abandoned);
    Ok(code)
}

struct Prepared {
    bytes: std::sync::Arc<[u8]>,
    digest: String,
    what: String,
    subject: String,
    argv0: String,
    effective: Vec<wasmzip_package::Capability>,
    limits: GuestLimits,
    resources_dir: Option<PathBuf>,
    models: ModelSet,
}

fn prepare_package(args: &RunArgs, cache_root: &Path) -> Result<Prepared> {
    let policy = args.trust.policy()?;
    let root = cache_root.join("packages");
    let package = wasmzip_package::verify_package(&args.program, &policy, ResourceSink::Extract { root: &root })?;
    let manifest = package.manifest();
    if package.signer() == Signer::Unsigned {
        eprintln!("wasmzip: warning: running unsigned package {} {} (--allow-unsigned)", manifest.name, manifest.version);
    }
    let (name, entry) = match &args.component {
        Some(n) => {
            let name = Name::parse(n).map_err(anyhow::Error::msg)?;
            let entry = manifest.components.get(&name).with_context(|| format!("package {} has no component `{n}`", manifest.name))?;
            (name, entry)
        }
        None => {
            let (n, e) = manifest
                .default_component(World::Cli)
                .with_context(|| format!("package {} has no single `cli` component; choose one with --component", manifest.name))?;
            (n.clone(), e)
        }
    };
    if entry.world != World::Cli {
        bail!("component `{name}` targets world `{}`, which `wasmzip run` cannot run", entry.world);
    }
    let mut granted = args.grants.grant.clone();
    if args.grants.grant_requested {
        granted.extend(entry.capabilities.iter().cloned());
    }
    let resolution = resolve(&entry.capabilities, &granted);
    if !resolution.uncovered.is_empty() {
        let list: Vec<String> = resolution.uncovered.iter().map(|c| c.to_string()).collect();
        eprintln!("wasmzip: warning: not granted, so the guest runs without: {}", list.join(", "));
    }
    let manifest_limits = GuestLimits {
        memory_bytes: entry.limits.memory_bytes,
        timeout: entry.limits.timeout_ms.map(Duration::from_millis),
    };
    // Only the models the guest is granted are loaded (once, before it starts).
    let grants = NnGrants::from_capabilities(&resolution.effective);
    let models = load_models(manifest, package.resources_dir(), &grants, &args.nn.config()?, args.nn.max_model_bytes())?;
    let pin = manifest.members.iter().find(|p| p.name == entry.member).expect("verified manifests pin their components");
    Ok(Prepared {
        bytes: package.component_bytes(&name).expect("verified packages hold their components"),
        digest: pin.sha256.clone(),
        what: format!("component `{name}` of {} {}", manifest.name, manifest.version),
        subject: format!("{}@{}", manifest.name, manifest.version),
        argv0: name.to_string(),
        effective: resolution.effective,
        limits: manifest_limits.lowered_by(args.limits.limits()),
        resources_dir: package.resources_dir().map(Path::to_path_buf),
        models,
    })
}

fn prepare_wasm(args: &RunArgs) -> Result<Prepared> {
    if args.grants.grant_requested {
        bail!("--grant-requested needs a package; a bare .wasm requests nothing, so grant with --grant");
    }
    if args.component.is_some() {
        bail!("--component applies to packages only");
    }
    let bytes = std::fs::read(&args.program).with_context(|| format!("cannot read {}", args.program.display()))?;
    let file_name = args.program.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "wasm".into());
    Ok(Prepared {
        digest: wasmzip_package::sha256_hex(&bytes),
        bytes: bytes.into(),
        what: args.program.display().to_string(),
        subject: file_name.clone(),
        argv0: file_name,
        effective: args.grants.grant.clone(),
        limits: args.limits.limits(),
        resources_dir: None,
        models: ModelSet::default(),
    })
}

/// Prints how the guest ended and returns the process exit code.
fn report(outcome: CommandOutcome) -> u8 {
    match outcome {
        CommandOutcome::Exited(code) => exit::guest_code(code),
        CommandOutcome::Trapped { message, backtrace } => {
            eprintln!("wasmzip: error: the guest trapped: {message}");
            if let Some(bt) = backtrace {
                eprintln!("{}", bt.trim_end());
            }
            exit::TRAP
        }
        CommandOutcome::MemoryExhausted { limit, message } => {
            eprintln!(
                "wasmzip: error: the guest exceeded its memory limit of {} ({message})",
                wasmzip_package::manifest::ByteSize(limit)
            );
            exit::MEMORY
        }
        CommandOutcome::TimedOut { after } => {
            eprintln!("wasmzip: error: the guest exceeded its time limit of {after:?} and was stopped");
            exit::TIMEOUT
        }
    }
}

//! `wasmzip run`: execute a package's `cli` component (or a bare component or preview-1 module) with
//! exactly the capabilities granted.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use wasmzip_package::manifest::{Name, World};
use wasmzip_package::{AdmitError, PackageFacts, ResourceSink, VerifiedComponent};
use wasmzip_runtime::{Artefact, CacheOutcome, CommandOutcome, HostResources, OperatorGrants, Runtime, RuntimeConfig, plan};

use crate::commands::bare::{Input, sniff};
use crate::exit;
use crate::options::{CacheOptions, EngineOptions, GrantOptions, KeystoreOptions, LimitOptions, NnOptions, PolicyOptions, TrustOptions};

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
    pub policy: PolicyOptions,
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
    #[command(flatten)]
    pub engine: EngineOptions,
    /// Load the package's code from this artefact (made by `wasmzip compile`) instead of compiling
    /// it; the package is verified first, and an artefact for another package, target or engine is
    /// refused.
    #[arg(long, value_name = "ARTEFACT")]
    pub precompiled: Option<PathBuf>,
    /// Arguments passed to the guest.
    #[arg(last = true)]
    pub args: Vec<String>,
}

/// Runs the command.
pub async fn run(args: RunArgs) -> Result<u8> {
    let cache_root = args.cache.root()?;
    let runtime = Runtime::new(RuntimeConfig { cache_dir: Some(cache_root.join("compiled")), pooling: None, target: args.engine.target() })?;
    // Whether this run wrote resources into the cache (then it may be over its cap).
    let (component, wrote_resources) = match sniff(&args.program)? {
        Input::Package => package_component(&args, &cache_root)?,
        Input::Wasm => {
            if args.component.is_some() {
                bail!("--component applies to packages only");
            }
            if args.policy.policy.is_some() {
                bail!("{} is a bare .wasm, which a deploy policy cannot admit (it has no signature and no SBOM): pack it", args.program.display());
            }
            let bytes = std::fs::read(&args.program).with_context(|| format!("cannot read {}", args.program.display()))?;
            (VerifiedComponent::unpackaged(&args.program, bytes), false)
        }
    };
    // Opened only once the package verified; its bindings are checked when the component is planned.
    let precompiled = args.precompiled.as_deref().map(Artefact::open).transpose()?.map(Arc::new);
    let grants = OperatorGrants { tokens: args.grants.grant.clone(), grant_requested: args.grants.grant_requested };
    let host = HostResources {
        mounts: args.grants.mount.clone(),
        env: args.grants.env.clone(),
        keystore: args.keystore.on_demand(),
        nn: args.nn.config()?,
        max_model_bytes: args.nn.max_model_bytes(),
        limits: args.limits.limits(),
        memory_ceiling: None,
        precompiled,
    };
    let planned = plan(&runtime, component, World::Cli, &grants, &host)?;
    if wrote_resources || planned.cache_outcome() == CacheOutcome::Compiled {
        wasmzip_runtime::cache_dir::CacheDir::new(&cache_root).enforce_cap(args.cache.max_size());
    }
    for warning in planned.warnings() {
        eprintln!("wasmzip: warning: {warning}");
    }

    let mut argv = vec![planned.component().program_name()];
    argv.extend(args.args.iter().cloned());
    let finished = wasmzip_runtime::run_command(&planned, &argv).await?;
    let code = report(finished.outcome);
    // A guest cut off at its deadline is still suspended; dropping it unwinds and symbolises its stack.
    // The process is about to exit, which frees it all the same, so the report is not delayed by that.
    std::mem::forget(finished.abandoned);
    Ok(code)
}

/// Verifies the package and picks the component to run: the one named, or its only `cli` one. Also
/// says whether verifying wrote the package's resources into the cache.
fn package_component(args: &RunArgs, cache_root: &Path) -> Result<(VerifiedComponent, bool)> {
    let gate = args.policy.gate()?;
    let policy = args.policy.trust(args.trust.policy()?, gate.as_ref());
    let root = cache_root.join("packages");
    let wanted = args.component.as_deref().map(Name::parse).transpose().map_err(anyhow::Error::msg)?;
    // The policy decides before any component or resource is read (or extracted into the cache).
    let admit = |facts: &PackageFacts<'_>| -> Result<(), wasmzip_policy::Refusal> {
        let Some(gate) = &gate else { return Ok(()) };
        let chosen = match &wanted {
            Some(name) => facts.manifest.components.get_key_value(name),
            None => facts.manifest.default_component(World::Cli),
        };
        // No such component: choosing it below says so.
        let Some((name, entry)) = chosen else { return Ok(()) };
        // `run` has nothing deployed before it, so no downgrade rule applies.
        let effective = wasmzip_package::effective_grants(&entry.capabilities, &args.grants.grant, args.grants.grant_requested);
        let deployment = wasmzip_policy::Deployment { grants: &[(name.to_string(), effective)], deployed_version: None, allow_downgrade: false };
        gate.admit(facts, &deployment).map(drop)
    };
    let package = match wasmzip_package::verify_package_admitted(&args.program, &policy, ResourceSink::Extract { root: &root }, admit) {
        Ok(package) => package,
        Err(AdmitError::Package(e)) => return Err(e.into()),
        Err(AdmitError::Refused(refusal)) => return Err(refusal.into()),
    };
    let component = match &wanted {
        Some(name) => package.component(name)?,
        None => package.only_component(World::Cli).context("choose one with --component")?,
    };
    Ok((component, package.wrote_resources()))
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

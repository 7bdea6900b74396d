//! `wasmzip`: pack, sign, verify, inspect and run WebAssembly components as capability-scoped packages.

#[cfg(feature = "server")]
mod admin_client;
mod commands;
mod exit;
#[cfg(feature = "server")]
mod oci_input;
mod options;
#[cfg(feature = "server")]
mod registry_options;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Run WebAssembly (WASI) programs as portable, signed, capability-scoped packages.
#[derive(Parser)]
#[command(name = "wasmzip", version, about, propagate_version = true)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = options::LogFormat::Text)]
    log_format: options::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Keygen(commands::keygen::KeygenArgs),
    Keys(commands::keys::KeysArgs),
    Cache(commands::cache::CacheArgs),
    Pack(commands::pack::PackArgs),
    Sign(commands::sign::SignArgs),
    #[cfg(feature = "server")]
    Push(commands::push::PushArgs),
    #[cfg(feature = "server")]
    Pull(commands::pull::PullArgs),
    Verify(commands::verify::VerifyArgs),
    Inspect(commands::inspect::InspectArgs),
    Sbom(commands::sbom::SbomArgs),
    Run(commands::run::RunArgs),
    #[cfg(feature = "cranelift")]
    Compile(commands::compile::CompileArgs),
    #[cfg(feature = "server")]
    Serve(commands::serve::ServeArgs),
    #[cfg(feature = "server")]
    Deploy(commands::deploy::DeployArgs),
    #[cfg(feature = "server")]
    Functions(commands::functions::FunctionsArgs),
    #[cfg(feature = "server")]
    Rollback(commands::rollback::RollbackArgs),
    #[cfg(feature = "server")]
    Remove(commands::remove::RemoveArgs),
}

/// Caps glibc's malloc at one arena per CPU (its default is eight per CPU) unless the operator set
/// `MALLOC_ARENA_MAX`. A server's threads come and go: while a request waits for inference, the
/// async runtime hands its worker's other tasks to another thread. Each arena keeps the memory freed
/// into it, so with the default RSS crept up with every thread that had ever served requests
/// (measured: 171 MiB to 257 MiB over three load runs, against 115 MiB to 166 MiB capped).
fn cap_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let arenas = libc::c_int::try_from(cpus).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only sets a tunable; it is called before any other thread exists.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) };
    }
}

/// A command-line error in wasmzip's own format: `wasmzip: error: WHAT` as the first line, then
/// clap's tip and usage lines, if any, as a short hint (blank lines dropped).
fn usage_error(clap_text: &str) -> String {
    let mut lines = clap_text.lines().filter(|l| !l.trim().is_empty());
    let first = lines.next().unwrap_or("invalid command line");
    let mut out = format!("wasmzip: error: {}\n", first.strip_prefix("error: ").unwrap_or(first));
    for line in lines {
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version are not errors.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprint!("{}", usage_error(&e.render().to_string()));
            return ExitCode::from(exit::REFUSED);
        }
    };
    // A server's log (guest output, deploys) is its main output; one-shot commands only warn.
    #[cfg(feature = "server")]
    let default_log = if matches!(cli.command, Command::Serve(_)) { "info" } else { "warn" };
    #[cfg(not(feature = "server"))]
    let default_log = "warn";
    options::init_logging(cli.log_format, default_log);
    cap_malloc_arenas();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wasmzip: error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::REFUSED);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Keygen(args) => commands::keygen::run(args),
            Command::Keys(args) => commands::keys::run(args),
            Command::Cache(args) => commands::cache::run(args),
            Command::Pack(args) => commands::pack::run(args),
            Command::Sign(args) => commands::sign::run(args),
            #[cfg(feature = "server")]
            Command::Push(args) => commands::push::run(args).await,
            #[cfg(feature = "server")]
            Command::Pull(args) => commands::pull::run(args).await,
            Command::Sbom(args) => commands::sbom::run(args),
            Command::Verify(args) => commands::verify::run(args),
            Command::Inspect(args) => commands::inspect::run(args),
            Command::Run(args) => commands::run::run(args).await,
            #[cfg(feature = "cranelift")]
            Command::Compile(args) => commands::compile::run(args),
            #[cfg(feature = "server")]
            Command::Serve(args) => commands::serve::run(args).await,
            #[cfg(feature = "server")]
            Command::Deploy(args) => commands::deploy::run(args).await,
            #[cfg(feature = "server")]
            Command::Functions(args) => commands::functions::run(args).await,
            #[cfg(feature = "server")]
            Command::Rollback(args) => commands::rollback::run(args).await,
            #[cfg(feature = "server")]
            Command::Remove(args) => commands::remove::run(args).await,
        }
    });
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wasmzip: error: {e:#}");
            exit::REFUSED
        }
    };
    // Blocking tasks a timed-out guest left behind must not hold the process open.
    runtime.shutdown_background();
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_start_with_our_own_error_line() {
        let e = Cli::try_parse_from(["wasmzip", "run", "--no-such-flag"]).err().expect("an error");
        let text = usage_error(&e.render().to_string());
        let mut lines = text.lines();
        let first = lines.next().unwrap();
        assert!(first.starts_with("wasmzip: error: ") && first.contains("--no-such-flag"), "{text}");
        assert!(lines.all(|l| !l.trim().is_empty() && !l.starts_with("error:")), "{text}");
        let missing = Cli::try_parse_from(["wasmzip", "pack", "--key"]).err().expect("an error");
        assert!(usage_error(&missing.render().to_string()).starts_with("wasmzip: error: "));
    }
}

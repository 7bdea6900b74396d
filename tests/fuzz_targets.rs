//! Every fuzz target in `fuzz/fuzz_targets/` builds and runs briefly without finding a crash.
//!
//! The targets are built and run with cargo-fuzz on nightly (`cargo +nightly fuzz run`), from `fuzz/`
//! with its own target directory (`fuzz/target`), starting from the committed seeds in
//! `fuzz/corpus/TARGET/`, which are only read: what a run adds goes to `fuzz/target/test-corpus/`.
//! Long runs and their figures are in `docs/fuzzing.md`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

/// How long each target runs, in seconds: seven targets, about a minute in all (plus the build).
const SECONDS_PER_TARGET: u32 = 8;
/// The longest one input may take before libFuzzer calls it a hang, in seconds.
const INPUT_TIMEOUT: u32 = 30;
/// Lines of a failed run's output shown.
const TAIL_LINES: usize = 40;

const SETUP: &str = "`bash .ci/setup` installs them (a nightly toolchain at least as new as the pinned Rust, and cargo-fuzz)";

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// `cargo +nightly ARGS` in `fuzz/`, cleared of what the outer cargo and rustup set for this test.
fn nightly_cargo(args: &[&str]) -> Command {
    let fuzz = fuzz_dir();
    let mut command = Command::new("cargo");
    command.arg("+nightly").args(args).current_dir(&fuzz).env("CARGO_TARGET_DIR", fuzz.join("target"));
    for var in [
        "RUSTUP_TOOLCHAIN",
        "CARGO",
        "RUSTC",
        "RUSTDOC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET_DIR",
        "CARGO_MAKEFLAGS",
    ] {
        command.env_remove(var);
    }
    command
}

fn output(mut command: Command, what: &str) -> Output {
    command.output().unwrap_or_else(|e| panic!("cannot run {what} ({e}); {SETUP}"))
}

fn tail(output: &Output) -> String {
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
}

/// The targets: one per file in `fuzz/fuzz_targets/`, by name.
fn targets() -> Vec<String> {
    let dir = fuzz_dir().join("fuzz_targets");
    let mut targets: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    targets.sort();
    targets
}

#[test]
fn every_fuzz_target_builds_and_finds_nothing() {
    let targets = targets();
    assert!(!targets.is_empty(), "no fuzz targets in fuzz/fuzz_targets/");
    for (args, what) in [(&["--version"][..], "the nightly toolchain"), (&["fuzz", "--version"][..], "cargo-fuzz")] {
        let out = output(nightly_cargo(args), what);
        assert!(out.status.success(), "{what} is missing ({}); {SETUP}", tail(&out).trim());
    }

    let started = Instant::now();
    let out = output(nightly_cargo(&["fuzz", "build"]), "cargo fuzz build");
    assert!(out.status.success(), "the fuzz targets do not build; {SETUP}\n{}", tail(&out));
    eprintln!("built {} fuzz targets in {:.0?}", targets.len(), started.elapsed());

    let mut failures = Vec::new();
    for target in &targets {
        // A fresh corpus each time, so that every run starts from the seeds and lasts as long.
        let corpus = fuzz_dir().join("target/test-corpus").join(target);
        let _ = std::fs::remove_dir_all(&corpus);
        std::fs::create_dir_all(&corpus).unwrap();
        let corpus = corpus.to_string_lossy().into_owned();
        let seeds = format!("corpus/{target}");
        let (time, timeout) = (format!("-max_total_time={SECONDS_PER_TARGET}"), format!("-timeout={INPUT_TIMEOUT}"));
        let started = Instant::now();
        let args = ["fuzz", "run", target, &corpus, &seeds, "--", &time, &timeout, "-detect_leaks=0"];
        let out = output(nightly_cargo(&args), "cargo fuzz run");
        let text = String::from_utf8_lossy(&out.stderr);
        let done = text.lines().rev().find(|l| l.contains(" DONE ")).unwrap_or("(no final line)");
        eprintln!("{target}: {:.1?}: {}", started.elapsed(), done.trim());
        if !out.status.success() {
            failures.push(format!("fuzz target `{target}` failed ({}); crash inputs are in fuzz/artifacts/{target}/:\n{}", out.status, tail(&out)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

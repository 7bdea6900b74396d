//! Shared helpers for the end-to-end tests: they build the real guests, write real packages with the
//! real `wasmzip` binary, and run it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Exit codes documented in docs/cli.md.
pub const TIMEOUT: i32 = 124;
pub const REFUSED: i32 = 125;
pub const TRAP: i32 = 134;
pub const MEMORY: i32 = 137;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Path of a guest component, building all guests once per test binary.
pub fn guest(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        // Cargo reads `.cargo/config.toml` from the working directory, so build from guests/ and name
        // the target explicitly as well.
        let status = Command::new(env!("CARGO"))
            .current_dir(repo().join("guests"))
            .args(["build", "--release", "--quiet", "--target", "wasm32-wasip2", "--manifest-path"])
            .arg(repo().join("guests/Cargo.toml"))
            // The guests keep their own target directory whatever the host build uses.
            .env("CARGO_TARGET_DIR", repo().join("guests/target"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the guests failed");
    });
    let path = repo().join("guests/target/wasm32-wasip2/release").join(format!("{name}.wasm"));
    assert!(path.exists(), "guest {name} was not built at {}", path.display());
    path
}

/// A compile cache shared by all tests of one binary, so each guest compiles once.
fn shared_cache() -> &'static Path {
    static CACHE: OnceLock<tempfile::TempDir> = OnceLock::new();
    CACHE.get_or_init(|| tempfile::tempdir().expect("temp dir")).path()
}

/// `wasmzip` with a private cache and no inherited trust directory.
pub fn wasmzip() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasmzip"));
    cmd.env("WASMZIP_CACHE_DIR", shared_cache()).env_remove("WASMZIP_TRUST").env_remove("WASMZIP_LOG");
    cmd
}

/// The result of running `wasmzip`.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts the exit code, showing both streams when it differs.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        self
    }

    /// Asserts that stderr contains every fragment.
    #[track_caller]
    pub fn stderr_has(&self, fragments: &[&str]) -> &Self {
        for f in fragments {
            assert!(self.stderr.contains(f), "stderr lacks {f:?}\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        }
        self
    }

    /// Asserts that stdout contains every fragment.
    #[track_caller]
    pub fn stdout_has(&self, fragments: &[&str]) -> &Self {
        for f in fragments {
            assert!(self.stdout.contains(f), "stdout lacks {f:?}\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        }
        self
    }
}

/// Runs `wasmzip` with `args`.
pub fn run<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Run::from(wasmzip().args(args).output().expect("wasmzip runs"))
}

/// A working directory with a key pair.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        let ws = Workspace { dir: tempfile::tempdir().expect("temp dir") };
        run(["keygen".as_ref(), ws.path("dev").as_os_str()]).expect_code(0);
        ws
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn key(&self) -> PathBuf {
        self.path("dev.key")
    }

    pub fn public_key(&self) -> PathBuf {
        self.path("dev.pub")
    }

    /// Writes a package directory for `guest` with the given capability requests, extra TOML lines
    /// for the component, and resource files; packs it (signed unless `signed` is false) and returns the
    /// package path.
    pub fn package(&self, name: &str, guest_name: &str, capabilities: &[&str], component_extra: &str, resources: &[(&str, &[u8])], signed: bool) -> PathBuf {
        let dir = self.path(&format!("src-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(guest(guest_name), dir.join("component.wasm")).unwrap();
        let mut listed = Vec::new();
        for (rel, bytes) in resources {
            let path = dir.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, bytes).unwrap();
            listed.push(format!("{rel:?}"));
        }
        let caps: Vec<String> = capabilities.iter().map(|c| format!("{c:?}")).collect();
        let toml = format!(
            "[package]\nname = \"{name}\"\nversion = \"1.0.0\"\nresources = [{}]\n\n[components.{name}]\nfile = \"component.wasm\"\nworld = \"cli\"\ncapabilities = [{}]\n{component_extra}\n",
            listed.join(", "),
            caps.join(", ")
        );
        std::fs::write(dir.join("wasmzip.toml"), toml).unwrap();
        let out = self.path(&format!("{name}.wasmzip"));
        let mut args: Vec<std::ffi::OsString> = vec!["pack".into(), dir.clone().into(), "-o".into(), out.clone().into()];
        if signed {
            args.extend(["--key".into(), self.key().into()]);
        } else {
            args.push("--unsigned".into());
        }
        run(args).expect_code(0);
        out
    }

    /// `wasmzip run PKG --trust dev.pub EXTRA...`.
    pub fn run_pkg(&self, package: &Path, extra: &[&str]) -> Run {
        let mut args: Vec<std::ffi::OsString> = vec!["run".into(), package.into(), "--trust".into(), self.public_key().into()];
        args.extend(extra.iter().map(Into::into));
        run(args)
    }
}

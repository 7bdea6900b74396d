//! Shared helpers for the end-to-end tests: they build the real guests, write real packages with the
//! real `wasmzip` binary, and run it.
#![allow(dead_code)]

pub mod cluster;
pub mod registry;

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
    // Keystore settings come from each test, never from the environment the tests run in.
    for var in [
        "WASMZIP_KEYSTORE",
        "WASMZIP_KEYSTORE_DIR",
        "WASMZIP_KEYSTORE_PASSPHRASE",
        "WASMZIP_KEYSTORE_PASSPHRASE_FILE",
        "WASMZIP_PKCS11_MODULE",
        "WASMZIP_PKCS11_TOKEN",
        "WASMZIP_PKCS11_PIN",
        "WASMZIP_PKCS11_PIN_FILE",
    ] {
        cmd.env_remove(var);
    }
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

// ---------------------------------------------------------------------------------------------------
// `wasmzip serve` helpers: http packages, a running server, a minimal HTTP/1.1 client, an upstream.

/// The admin token the serve tests write to `admin.token`.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

/// A unique suffix for directories made by the helpers below.
fn unique() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
}

/// Describes an `http` package to write with [`HttpPackage::build`].
pub struct HttpPackage<'a> {
    ws: &'a Workspace,
    name: String,
    guest: String,
    version: String,
    routes: Vec<String>,
    capabilities: Vec<String>,
    limits: String,
    signed: bool,
    resources: Vec<(String, Vec<u8>)>,
    extra: Vec<String>,
    nonce: Option<String>,
    key: Option<PathBuf>,
}

impl<'a> HttpPackage<'a> {
    /// Signs with `key` instead of the workspace's `dev.key`.
    pub fn signed_with(mut self, key: &Path) -> Self {
        self.key = Some(key.to_path_buf());
        self
    }

    /// Makes the component's bytes unique to `nonce` (a custom section appended), so that a server
    /// compiles it rather than finding it in its cache.
    pub fn unique_code(mut self, nonce: &str) -> Self {
        self.nonce = Some(nonce.to_string());
        self
    }

    /// Ships a resource file (visible to the guest under `/pkg`).
    pub fn resource(mut self, name: &str, bytes: Vec<u8>) -> Self {
        self.resources.push((name.to_string(), bytes));
        self
    }

    /// Package version (default `1.0.0`).
    pub fn version(mut self, version: &str) -> Self {
        self.version = version.to_string();
        self
    }

    /// Route prefixes (default: none listed, so the server uses `/NAME`).
    pub fn routes(mut self, routes: &[&str]) -> Self {
        self.routes = routes.iter().map(|r| r.to_string()).collect();
        self
    }

    /// Requested capability tokens.
    pub fn capabilities(mut self, capabilities: &[&str]) -> Self {
        self.capabilities = capabilities.iter().map(|c| c.to_string()).collect();
        self
    }

    /// The inside of the `limits = { ... }` inline table, e.g. `timeout = "300ms"`.
    pub fn limits(mut self, limits: &str) -> Self {
        self.limits = limits.to_string();
        self
    }

    /// One more line in the component's table, e.g. `reuse = false`.
    pub fn line(mut self, line: &str) -> Self {
        self.extra.push(line.to_string());
        self
    }

    /// Packs without a signature.
    pub fn unsigned(mut self) -> Self {
        self.signed = false;
        self
    }

    /// Writes the source directory, packs it with `wasmzip pack` and returns the package path.
    pub fn build(self) -> PathBuf {
        let n = unique();
        let dir = self.ws.path(&format!("src-http-{}-{}-{n}", self.name, self.version));
        std::fs::create_dir_all(&dir).unwrap();
        let mut component = std::fs::read(guest(&self.guest)).unwrap();
        if let Some(nonce) = &self.nonce {
            append_custom_section(&mut component, "wasmzip-test-nonce", nonce.as_bytes());
        }
        std::fs::write(dir.join("component.wasm"), component).unwrap();
        let quoted = |items: &[String]| items.iter().map(|i| format!("{i:?}")).collect::<Vec<_>>().join(", ");
        for (name, bytes) in &self.resources {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
        let resources: Vec<String> = self.resources.iter().map(|(n, _)| n.clone()).collect();
        let mut toml = format!(
            "[package]\nname = \"{}\"\nversion = \"{}\"\nresources = [{}]\n\n[components.{}]\nfile = \"component.wasm\"\nworld = \"http\"\ncapabilities = [{}]\n",
            self.name,
            self.version,
            quoted(&resources),
            self.name,
            quoted(&self.capabilities)
        );
        if !self.routes.is_empty() {
            toml.push_str(&format!("routes = [{}]\n", quoted(&self.routes)));
        }
        if !self.limits.is_empty() {
            toml.push_str(&format!("limits = {{ {} }}\n", self.limits));
        }
        for line in &self.extra {
            toml.push_str(line);
            toml.push('\n');
        }
        std::fs::write(dir.join("wasmzip.toml"), toml).unwrap();
        let out = self.ws.path(&format!("{}-{}-{n}.wasmzip", self.name, self.version));
        let mut args: Vec<std::ffi::OsString> = vec!["pack".into(), dir.into(), "-o".into(), out.clone().into()];
        if self.signed {
            args.extend(["--key".into(), self.key.clone().unwrap_or_else(|| self.ws.key()).into()]);
        } else {
            args.push("--unsigned".into());
        }
        run(args).expect_code(0);
        out
    }
}

impl Workspace {
    /// Starts describing an `http` package named `name` around guest `guest_name` (e.g. `hello_http`).
    pub fn http(&self, name: &str, guest_name: &str) -> HttpPackage<'_> {
        HttpPackage {
            ws: self,
            name: name.to_string(),
            guest: guest_name.to_string(),
            version: "1.0.0".to_string(),
            routes: Vec::new(),
            capabilities: Vec::new(),
            limits: String::new(),
            signed: true,
            resources: Vec::new(),
            extra: Vec::new(),
            nonce: None,
            key: None,
        }
    }

    /// `admin.token` holding [`ADMIN_TOKEN`] (written on first use).
    pub fn token_file(&self) -> PathBuf {
        let path = self.path("admin.token");
        if !path.exists() {
            std::fs::write(&path, format!("{ADMIN_TOKEN}\n")).unwrap();
        }
        path
    }

    /// The usual serve arguments: ephemeral listeners, the admin token, `data_dir`, and trust in
    /// `dev.pub`; `extra` (packages and flags) follows.
    pub fn serve_args<S: AsRef<std::ffi::OsStr>>(&self, data_dir: &Path, extra: &[S]) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = vec![
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--admin-listen".into(),
            "127.0.0.1:0".into(),
            "--admin-token-file".into(),
            self.token_file().into(),
            "--data-dir".into(),
            data_dir.into(),
            "--trust".into(),
            self.public_key().into(),
        ];
        args.extend(extra.iter().map(|e| e.as_ref().to_os_string()));
        args
    }

    /// `wasmzip serve` with [`Workspace::serve_args`] on the data directory `data`.
    pub fn serve<S: AsRef<std::ffi::OsStr>>(&self, extra: &[S]) -> Server {
        Server::start(self.serve_args(&self.path("data"), extra), &[])
    }
}

/// Appends a custom section (id 0) named `name` to a core module or component.
pub fn append_custom_section(wasm: &mut Vec<u8>, name: &str, payload: &[u8]) {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut body = Vec::new();
    leb(name.len(), &mut body);
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(payload);
    wasm.push(0);
    leb(body.len(), wasm);
    wasm.extend_from_slice(&body);
}

/// Removes ANSI escape sequences (log colours) from a line.
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Polls `check` every 20 ms until it is true or `within` has passed; returns whether it became true.
pub fn wait_until(within: std::time::Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A running `wasmzip serve`, killed when dropped.
pub struct Server {
    child: Option<std::process::Child>,
    /// Public address, `127.0.0.1:PORT`.
    pub public: String,
    /// Admin address, when an admin listener was asked for.
    pub admin: Option<String>,
    /// The token file given with `--admin-token-file`, if any.
    pub token_file: Option<PathBuf>,
    stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stdout: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    /// Spawns `wasmzip serve ARGS` with `env` set on top of [`wasmzip`]'s environment and waits (up to
    /// 60 s) until it prints its addresses.
    pub fn start<I, S>(args: I, env: &[(&str, &str)]) -> Server
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        match Server::try_start(args, env) {
            Ok(server) => server,
            Err(message) => panic!("{message}"),
        }
    }

    /// Like [`Server::start`], returning the exit code and stderr when the server does not come up.
    pub fn try_start<I, S>(args: I, env: &[(&str, &str)]) -> Result<Server, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        use std::io::BufRead;
        use std::sync::{Arc, Mutex};
        let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().to_os_string()).collect();
        let wants_admin = args.iter().any(|a| a == "--admin-listen");
        let token_file = args.iter().position(|a| a == "--admin-token-file").and_then(|i| args.get(i + 1)).map(PathBuf::from);
        let mut cmd = wasmzip();
        cmd.arg("serve").args(&args).env("NO_COLOR", "1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("wasmzip serve starts");

        let stderr_lines = Arc::new(Mutex::new(Vec::new()));
        let stdout_lines = Arc::new(Mutex::new(Vec::new()));
        let err = child.stderr.take().unwrap();
        let sink = stderr_lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(strip_ansi(&line));
            }
        });
        let out = child.stdout.take().unwrap();
        let sink = stdout_lines.clone();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });

        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let (mut public, mut admin) = (None, None);
        while public.is_none() || (wants_admin && admin.is_none()) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left.max(std::time::Duration::from_millis(1))) {
                Ok(line) => {
                    if let Some(a) = line.strip_prefix("serving on http://") {
                        public = Some(a.trim().to_string());
                    } else if let Some(a) = line.strip_prefix("admin on http://") {
                        admin = Some(a.trim().to_string());
                    }
                }
                Err(e) => {
                    let timed_out = matches!(e, std::sync::mpsc::RecvTimeoutError::Timeout);
                    if timed_out {
                        let _ = child.kill();
                    }
                    let status = child.wait().ok();
                    // Let the stderr thread catch up.
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    let stderr = stderr_lines.lock().unwrap().join("\n");
                    return Err(format!(
                        "wasmzip serve {} (status {status:?})\n--- stderr\n{stderr}",
                        if timed_out { "did not print its addresses within 60 s" } else { "exited before it was ready" }
                    ));
                }
            }
        }
        Ok(Server { child: Some(child), public: public.unwrap(), admin, token_file, stderr: stderr_lines, stdout: stdout_lines })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Stderr lines so far (ANSI colours removed).
    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// Stderr so far, one string.
    pub fn stderr_text(&self) -> String {
        self.stderr().join("\n")
    }

    /// Stdout lines so far.
    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// Waits (polling) until a stderr line contains every fragment; returns that line.
    #[track_caller]
    pub fn wait_for_log(&self, fragments: &[&str], within: std::time::Duration) -> String {
        let mut found = None;
        wait_until(within, || {
            found = self.stderr().into_iter().find(|l| fragments.iter().all(|f| l.contains(f)));
            found.is_some()
        });
        found.unwrap_or_else(|| panic!("no stderr line with {fragments:?} within {within:?}\n--- stderr\n{}", self.stderr_text()))
    }

    /// Sends `signal` (e.g. `-TERM`, `-KILL`) with `kill`.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([signal, &self.pid().to_string()]).status().expect("kill runs");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Waits up to `within` for the process to exit; returns its status, or none if it still runs.
    pub fn wait_exit(&mut self, within: std::time::Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut().expect("running");
        let mut status = None;
        wait_until(within, || {
            status = child.try_wait().ok().flatten();
            status.is_some()
        });
        status
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A request to the public listener.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
        http_request(&self.public, method, path, headers, body)
    }

    /// `GET path` on the public listener.
    pub fn get(&self, path: &str) -> HttpResponse {
        self.request("GET", path, &[], b"")
    }

    /// `POST path` with `body` on the public listener.
    pub fn post(&self, path: &str, body: &[u8]) -> HttpResponse {
        self.request("POST", path, &[], body)
    }

    /// The admin address, which must exist.
    pub fn admin_addr(&self) -> &str {
        self.admin.as_deref().expect("the server has an admin listener")
    }

    /// A request to the admin listener.
    pub fn admin_request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
        http_request(self.admin_addr(), method, path, headers, body)
    }

    /// `GET /metrics` on the admin listener, as text.
    pub fn metrics(&self) -> String {
        let r = self.admin_request("GET", "/metrics", &[], b"");
        assert_eq!(r.status, 200, "GET /metrics: {}", r.text());
        r.text()
    }

    /// Runs a client command (`deploy PKG`, `functions`, `rollback NAME`, ...) against this server's
    /// admin listener with its token file.
    pub fn cli<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Run {
        let mut all: Vec<std::ffi::OsString> = args.iter().map(|a| a.as_ref().to_os_string()).collect();
        all.push("--server".into());
        all.push(format!("http://{}", self.admin_addr()).into());
        all.push("--token-file".into());
        all.push(self.token_file.clone().expect("the server has an admin token file").into());
        run(all)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// The body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }
}

/// One HTTP/1.1 request with `Connection: close` over a fresh connection; reads the whole answer
/// (30 s read timeout) and decodes a chunked body.
pub fn http_request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
    try_http_request(addr, method, path, headers, body).unwrap_or_else(|e| panic!("{method} http://{addr}{path}: {e}"))
}

/// [`http_request`], with failures as errors.
pub fn try_http_request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<HttpResponse, String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    stream.set_write_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    // A server may answer (and close) before it reads the whole body: a failed write is fine as long
    // as an answer comes back.
    let write_error = stream.write_all(&request).err();
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            // A reset after a complete answer (unread request bytes) still leaves the answer.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !raw.is_empty() => break,
            Err(e) => return Err(format!("read: {e} (write error: {write_error:?}; read so far: {:?})", String::from_utf8_lossy(&raw))),
        }
    }
    parse_response(&raw).map_err(|e| format!("{e} (write error: {write_error:?}); raw: {:?}", String::from_utf8_lossy(&raw)))
}

fn parse_response(raw: &[u8]) -> Result<HttpResponse, String> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no complete header block")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "header block is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or("no status line")?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("bad status line {status_line:?}"));
    }
    let status: u16 = parts.next().and_then(|s| s.parse().ok()).ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':').ok_or_else(|| format!("bad header line {line:?}"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let rest = &raw[end + 4..];
    let find = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let body = if find("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        decode_chunked(rest)?
    } else if let Some(length) = find("content-length") {
        let length: usize = length.parse().map_err(|_| format!("bad content-length {length:?}"))?;
        if rest.len() < length {
            return Err(format!("body ended after {} of {length} bytes", rest.len()));
        }
        rest[..length].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(HttpResponse { status, headers, body })
}

fn decode_chunked(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n").ok_or("chunk size line never ends")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).map_err(|_| "chunk size is not UTF-8")?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| format!("bad chunk size {size_text:?}"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if rest.len() < size + 2 {
            return Err(format!("chunk of {size} bytes is cut short"));
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// What an [`Upstream`] saw of one request.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    /// `GET /path HTTP/1.1`.
    pub request_line: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
}

impl SeenRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A tiny upstream HTTP server on 127.0.0.1 answering every request the same way and recording what
/// it saw. It serves at most `max_connections` connections, one request each, and stops when dropped.
pub struct Upstream {
    pub port: u16,
    seen: std::sync::Arc<std::sync::Mutex<Vec<SeenRequest>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Upstream {
    /// Answers `200` with `body`.
    pub fn ok(body: &str) -> Upstream {
        Upstream::start(200, &[], body, 8)
    }

    /// Answers `302` with `location`.
    pub fn redirect(location: &str) -> Upstream {
        Upstream::start(302, &[("Location", location)], "", 8)
    }

    /// Answers every request with `status`, `headers` and `body`.
    pub fn start(status: u16, headers: &[(&str, &str)], body: &str, max_connections: usize) -> Upstream {
        Upstream::start_on("127.0.0.1:0", status, headers, body, max_connections)
    }

    /// [`Upstream::start`] on another address, e.g. `[::1]:0`.
    pub fn start_on(bind: &str, status: u16, headers: &[(&str, &str)], body: &str, max_connections: usize) -> Upstream {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind(bind).expect("bind upstream");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut answer = format!("HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
        for (n, v) in headers {
            answer.push_str(&format!("{n}: {v}\r\n"));
        }
        answer.push_str("\r\n");
        answer.push_str(body);
        let (seen2, stop2) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut served = 0;
            while served < max_connections && !stop2.load(Ordering::SeqCst) {
                let (mut stream, _) = match listener.accept() {
                    Ok(c) => c,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        continue;
                    }
                    Err(_) => break,
                };
                served += 1;
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                let mut raw = Vec::new();
                let mut buf = [0u8; 4096];
                while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => raw.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&raw).into_owned();
                let mut lines = text.split("\r\n");
                let request_line = lines.next().unwrap_or_default().to_string();
                let headers = lines
                    .take_while(|l| !l.is_empty())
                    .filter_map(|l| l.split_once(':'))
                    .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect();
                seen2.lock().unwrap().push(SeenRequest { request_line, headers });
                let _ = stream.write_all(answer.as_bytes());
                let _ = stream.flush();
            }
        });
        Upstream { port, seen, stop }
    }

    /// Requests seen so far.
    pub fn seen(&self) -> Vec<SeenRequest> {
        self.seen.lock().unwrap().clone()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Percent-encodes a query value (everything but unreserved characters).
pub fn query_encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Server {
    /// `wasmzip deploy PACKAGE EXTRA...` against this server.
    pub fn deploy_with(&self, package: &Path, extra: &[&str]) -> Run {
        let mut args: Vec<std::ffi::OsString> = vec!["deploy".into(), package.into()];
        args.extend(extra.iter().map(Into::into));
        self.cli(&args)
    }

    /// `wasmzip deploy PACKAGE` against this server.
    pub fn deploy(&self, package: &Path) -> Run {
        self.deploy_with(package, &[])
    }
}

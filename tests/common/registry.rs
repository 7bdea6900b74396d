//! A real OCI registry for the tests: Debian's `docker-registry` (distribution 2.8), started on
//! 127.0.0.1 with a port the OS picks and a private storage root, optionally behind htpasswd (bcrypt)
//! basic authentication and TLS with a CA made here by `openssl`. Killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::wait_until;

/// The registry binary (Debian's `docker-registry` package).
pub const BINARY: &str = "/usr/bin/docker-registry";

/// How to start a [`Registry`].
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// A user and password every request must carry (htpasswd, bcrypt).
    pub htpasswd: Option<(String, String)>,
    /// Serve TLS with a certificate for `localhost` and 127.0.0.1 issued by a CA made for this
    /// registry ([`Registry::ca`]); references then use `localhost:PORT`.
    pub tls: bool,
}

/// A running `docker-registry`, killed when dropped.
pub struct Registry {
    dir: tempfile::TempDir,
    port: u16,
    tls: bool,
    child: Option<Child>,
}

/// A port the OS picked and released.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0").local_addr().unwrap().port()
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA (`ca.pem`) and a server certificate for `localhost` and 127.0.0.1 (`server.pem`,
/// `server.key`) it issued, in `dir`.
pub fn make_certificates(dir: &Path) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=wasmzip test registry CA"]);
    ca.extend(["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
    openssl(dir, &ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend(["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext"],
    );
}

impl Registry {
    /// Starts a registry and waits until it accepts connections (retrying on another port if the
    /// one picked was taken meanwhile).
    pub fn start(options: RegistryOptions) -> Registry {
        assert!(Path::new(BINARY).exists(), "{BINARY} is missing: apt-get install docker-registry (see .ci/setup)");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("storage")).unwrap();
        let mut auth = String::new();
        if let Some((user, password)) = &options.htpasswd {
            let hash = bcrypt::hash(password, 4).expect("bcrypt");
            std::fs::write(dir.path().join("htpasswd"), format!("{user}:{hash}\n")).unwrap();
            auth = format!("auth:\n  htpasswd:\n    realm: wasmzip-test\n    path: {}\n", dir.path().join("htpasswd").display());
        }
        if options.tls {
            make_certificates(dir.path());
        }
        let mut registry = Registry { dir, port: 0, tls: options.tls, child: None };
        for _ in 0..5 {
            registry.port = free_port();
            registry.write_config(&auth);
            if registry.spawn() {
                return registry;
            }
        }
        panic!("docker-registry did not start:\n{}", registry.log());
    }

    fn write_config(&self, auth: &str) {
        let tls = if self.tls {
            format!("  tls:\n    certificate: {}\n    key: {}\n", self.dir.path().join("server.pem").display(), self.dir.path().join("server.key").display())
        } else {
            String::new()
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: 127.0.0.1:{}\n  secret: wasmzip-test-secret\n{tls}{auth}",
            self.storage().display(),
            self.port
        );
        std::fs::write(self.dir.path().join("config.yml"), config).unwrap();
    }

    /// Starts the process on the configured port; false if it exited (the port was taken). Ready
    /// means it logged that it listens there (since this start) and accepts connections.
    fn spawn(&mut self) -> bool {
        let logged_before = self.log().len();
        let listening = format!("listening on 127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("registry.log")).unwrap();
        let child = Command::new(BINARY)
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry starts");
        self.child = Some(child);
        let addr: std::net::SocketAddr = self.addr().parse().unwrap();
        let mut exited = false;
        let up = wait_until(Duration::from_secs(20), || {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                exited = true;
                return true;
            }
            self.log().get(logged_before..).is_some_and(|l| l.contains(&listening)) && std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        });
        if exited || !up {
            self.stop();
            return false;
        }
        true
    }

    /// `127.0.0.1:PORT`, where it listens.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The host references use: `127.0.0.1:PORT` (plain HTTP), or `localhost:PORT` with TLS.
    pub fn host(&self) -> String {
        if self.tls { format!("localhost:{}", self.port) } else { self.addr() }
    }

    /// `HOST/path` for a repository path with its tag or digest (`team/orders:1.0.0`).
    pub fn reference(&self, path: &str) -> String {
        format!("{}/{path}", self.host())
    }

    /// The storage root (`docker/registry/v2/...` below it).
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// Where the registry keeps the blob `sha256:HEX` (or bare `HEX`).
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.storage().join("docker/registry/v2/blobs/sha256").join(&hex[..2]).join(hex).join("data")
    }

    /// The CA certificate (PEM) that issued the registry's certificate, with TLS.
    pub fn ca(&self) -> Option<PathBuf> {
        self.tls.then(|| self.dir.path().join("ca.pem"))
    }

    /// The registry's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Kills the registry (its storage stays): an outage.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again after [`Registry::stop`], on the same port and storage.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the registry is running");
        assert!(self.spawn(), "docker-registry did not start again on {}:\n{}", self.addr(), self.log());
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

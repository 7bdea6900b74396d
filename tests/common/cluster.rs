//! Real servers for the cluster tests, started on 127.0.0.1 with ports the OS picks: a JetStream
//! cluster of `nats-server` 2.15 processes (scripts/nats-server.sh) and HAProxy (Debian's `haproxy`)
//! in front of `serve` nodes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::wait_until;

/// A port the OS picked and released (the server started on it binds it again at once).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0").local_addr().unwrap().port()
}

fn nats_server_binary() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let out = Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/nats-server.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("scripts/nats-server.sh runs");
        assert!(out.status.success(), "scripts/nats-server.sh failed");
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
    .clone()
}

/// One `nats-server` of a [`NatsCluster`].
struct NatsNode {
    client: u16,
    route: u16,
    monitor: u16,
    config: PathBuf,
    child: Option<Child>,
    log: PathBuf,
}

/// A JetStream cluster of `nats-server` processes, each with its own store directory, killed when
/// dropped. Nodes can be killed and started again on the same ports and store.
pub struct NatsCluster {
    nodes: Vec<NatsNode>,
    /// User and password every client must present, when asked for.
    pub auth: Option<(String, String)>,
}

impl NatsCluster {
    /// Starts `size` servers in `dir` and waits until JetStream answers on every one.
    pub fn start(dir: &Path, size: usize, auth: Option<(&str, &str)>) -> NatsCluster {
        Self::start_with(dir, size, auth, "")
    }

    /// As [`NatsCluster::start`], with `extra` added to every server's configuration (a `tls`
    /// block, an `authorization` block); one server runs without a cluster block.
    pub fn start_with(dir: &Path, size: usize, auth: Option<(&str, &str)>, extra: &str) -> NatsCluster {
        let ports: Vec<(u16, u16, u16)> = (0..size).map(|_| (free_port(), free_port(), free_port())).collect();
        let mut nodes = Vec::new();
        for (i, &(client, route, monitor)) in ports.iter().enumerate() {
            let store = dir.join(format!("nats-{i}"));
            std::fs::create_dir_all(&store).unwrap();
            let routes: Vec<String> = ports.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, p)| format!("\"nats-route://127.0.0.1:{}\"", p.1)).collect();
            let authorization = auth.map(|(u, p)| format!("authorization {{\n  user: \"{u}\"\n  password: \"{p}\"\n}}\n")).unwrap_or_default();
            let cluster = if size > 1 {
                format!("cluster {{\n  name: wasmzip-test\n  listen: 127.0.0.1:{route}\n  routes: [{}]\n}}\n", routes.join(", "))
            } else {
                String::new()
            };
            let config = format!(
                "server_name: n{i}\nlisten: 127.0.0.1:{client}\nhttp: 127.0.0.1:{monitor}\n{authorization}{extra}\njetstream {{\n  store_dir: \"{}\"\n  max_memory_store: 64MB\n  max_file_store: 1GB\n}}\n{cluster}",
                store.display(),
            );
            let path = dir.join(format!("nats-{i}.conf"));
            std::fs::write(&path, config).unwrap();
            nodes.push(NatsNode { client, route, monitor, config: path, child: None, log: dir.join(format!("nats-{i}.log")) });
        }
        let mut cluster = NatsCluster { nodes, auth: auth.map(|(u, p)| (u.to_string(), p.to_string())) };
        for i in 0..size {
            cluster.spawn(i);
        }
        cluster.wait_ready();
        cluster
    }

    fn spawn(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&node.log).unwrap();
        let child = Command::new(nats_server_binary())
            .arg("-c")
            .arg(&node.config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("nats-server starts");
        node.child = Some(child);
    }

    /// Waits until every running server says JetStream is healthy (meta leader elected).
    pub fn wait_ready(&self) {
        for (i, node) in self.nodes.iter().enumerate() {
            if node.child.is_none() {
                continue;
            }
            let ok = wait_until(Duration::from_secs(30), || {
                super::try_http_request(&format!("127.0.0.1:{}", node.monitor), "GET", "/healthz?js-enabled-only=true", &[], b"").is_ok_and(|r| r.status == 200)
                    && super::try_http_request(&format!("127.0.0.1:{}", node.monitor), "GET", "/healthz", &[], b"").is_ok_and(|r| r.status == 200)
            });
            assert!(ok, "nats-server {i} did not become healthy within 30 s\n--- log\n{}", self.log(i));
        }
    }

    /// The server `i`'s log so far.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.nodes[i].log).unwrap_or_default()
    }

    /// `nats://127.0.0.1:PORT,…` for `--cluster`.
    pub fn urls(&self) -> String {
        self.nodes.iter().map(|n| format!("nats://127.0.0.1:{}", n.client)).collect::<Vec<_>>().join(",")
    }

    /// The client port of server `i`.
    pub fn client_port(&self, i: usize) -> u16 {
        self.nodes[i].client
    }

    /// The route port of server `i`.
    pub fn route_port(&self, i: usize) -> u16 {
        self.nodes[i].route
    }

    /// Kills server `i` with SIGKILL.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts server `i` again, on its ports and store.
    pub fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].child.is_none(), "nats-server {i} is running");
        self.spawn(i);
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// HAProxy balancing round-robin over `serve` nodes, checking each node's `/readyz` on its admin
/// listener; killed when dropped.
pub struct Haproxy {
    child: Child,
    /// `127.0.0.1:PORT` of the front end.
    pub addr: String,
}

impl Haproxy {
    /// Starts HAProxy in `dir` over `backends`: (public address, admin address) pairs.
    pub fn start(dir: &Path, backends: &[(String, String)]) -> Haproxy {
        let port = free_port();
        let mut config = format!(
            "global\n  maxconn 4096\n\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n  retries 2\n  option redispatch\n\nfrontend public\n  bind 127.0.0.1:{port}\n  default_backend nodes\n\nbackend nodes\n  balance roundrobin\n  option httpchk\n  http-check send meth GET uri /readyz\n"
        );
        for (i, (public, admin)) in backends.iter().enumerate() {
            let admin_port = admin.rsplit(':').next().unwrap();
            config.push_str(&format!("  server node{i} {public} check port {admin_port} inter 500ms fall 2 rise 1\n"));
        }
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, config).unwrap();
        let check = Command::new("haproxy").arg("-c").arg("-f").arg(&path).output().expect("haproxy runs (Debian package haproxy)");
        assert!(check.status.success(), "haproxy refuses its config: {}", String::from_utf8_lossy(&check.stderr));
        let child = Command::new("haproxy").arg("-db").arg("-f").arg(&path).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("haproxy starts");
        let addr = format!("127.0.0.1:{port}");
        assert!(wait_until(Duration::from_secs(10), || std::net::TcpStream::connect(&addr).is_ok()), "haproxy does not listen on {addr}");
        Haproxy { child, addr }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! Cluster mode end to end: three `wasmzip serve` nodes over a three-server NATS JetStream cluster
//! and a registry (Debian's `docker-registry` 2.8), with HAProxy in front, all real processes on
//! 127.0.0.1; packages deployed through one node's admin API reach every node.

mod common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::cluster::{Haproxy, NatsCluster, free_port};
use common::registry::{Registry, RegistryOptions};
use common::{HttpResponse, Server, Workspace, http_request, try_http_request, wait_until};

const CONVERGE: Duration = Duration::from_secs(30);

/// One `serve` node: fixed ports (HAProxy names them), its own data and cache directories.
struct Node {
    name: String,
    public: String,
    admin: String,
    data: PathBuf,
    args: Vec<OsString>,
    server: Option<Server>,
}

impl Node {
    /// A node of `nats`'s cluster putting uploads in `registry`'s `wasmzip` repository (none: it
    /// refuses uploads, and still fetches what the desired state names).
    fn new(ws: &Workspace, name: &str, nats: &NatsCluster, registry: Option<&str>, extra: &[&str]) -> Node {
        let (public, admin) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
        // Trust as a Kubernetes node has it: a directory of keys (a mounted ConfigMap).
        let trust = ws.path("trust");
        std::fs::create_dir_all(&trust).unwrap();
        std::fs::copy(ws.public_key(), trust.join("dev.pub")).unwrap();
        let data = ws.path(&format!("{name}-data"));
        let cache = ws.path(&format!("{name}-cache"));
        let mut args: Vec<OsString> = vec![
            "--listen".into(),
            public.clone().into(),
            "--admin-listen".into(),
            admin.clone().into(),
            "--admin-token-file".into(),
            ws.token_file().into(),
            "--data-dir".into(),
            data.clone().into(),
            "--cache-dir".into(),
            cache.clone().into(),
            "--trust".into(),
            trust.into(),
            "--cluster".into(),
            nats.urls().into(),
            "--node-name".into(),
            name.into(),
            "--cluster-node-ttl".into(),
            "3s".into(),
            "--cluster-resync".into(),
            "2s".into(),
        ];
        if let Some(registry) = registry {
            args.extend(["--cluster-registry".into(), format!("{registry}/wasmzip").into()]);
        }
        if !extra.contains(&"--cluster-replicas") {
            args.extend(["--cluster-replicas".into(), "3".into()]);
        }
        if let Some((user, password)) = &nats.auth {
            let file = ws.path("nats.password");
            std::fs::write(&file, password).unwrap();
            args.extend(["--cluster-user".into(), user.into(), "--cluster-password-file".into(), file.into()]);
        }
        args.extend(extra.iter().map(OsString::from));
        let mut node = Node { name: name.to_string(), public, admin, data, args, server: None };
        node.start();
        node
    }

    fn start(&mut self) {
        assert!(self.server.is_none(), "{} runs", self.name);
        self.server = Some(Server::start(&self.args, &[("WASMZIP_LOG", "info,wasmzip::cluster=debug")]));
    }

    fn server(&self) -> &Server {
        self.server.as_ref().unwrap_or_else(|| panic!("{} is not running", self.name))
    }

    fn kill(&mut self) {
        if let Some(mut s) = self.server.take() {
            s.kill();
        }
    }

    /// The version of `function` this node serves, per its own admin API.
    fn serving(&self, function: &str) -> Option<String> {
        let r = try_http_request(&self.admin, "GET", "/v1/functions", &[("authorization", &format!("Bearer {}", common::ADMIN_TOKEN))], b"").ok()?;
        let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
        v["functions"].as_array()?.iter().find(|f| f["name"] == function)?["active"]["version"].as_str().map(str::to_string)
    }

    fn readyz(&self) -> serde_json::Value {
        let r = http_request(&self.admin, "GET", "/readyz", &[], b"");
        assert_eq!(r.status, 200, "/readyz on {}: {}", self.name, r.text());
        serde_json::from_slice(&r.body).unwrap()
    }

    fn get(&self, path: &str) -> HttpResponse {
        http_request(&self.public, "GET", path, &[], b"")
    }

    fn log(&self) -> String {
        self.server.as_ref().map(|s| s.stderr_text()).unwrap_or_default()
    }
}

/// Deploys `package` through `node`'s admin API; the status and the answer.
fn deploy(node: &Node, package: &Path) -> (u16, String) {
    let body = std::fs::read(package).unwrap();
    let r = http_request(&node.admin, "POST", "/v1/functions", &[("authorization", &format!("Bearer {}", common::ADMIN_TOKEN))], &body);
    (r.status, r.text())
}

/// [`deploy`], again while the answer is 503 (as a client honouring `Retry-After` would: a JetStream
/// cluster that just lost a server elects new leaders for a few seconds).
fn deploy_retrying(node: &Node, package: &Path) -> (u16, String) {
    let deadline = std::time::Instant::now() + CONVERGE;
    loop {
        let (status, body) = deploy(node, package);
        if status != 503 || std::time::Instant::now() > deadline {
            return (status, body);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[track_caller]
fn wait_all_serve(nodes: &[&Node], function: &str, version: &str) {
    for node in nodes {
        let ok = wait_until(CONVERGE, || node.serving(function).as_deref() == Some(version));
        assert!(ok, "{} does not serve {function} {version} (serves {:?})\n--- log\n{}", node.name, node.serving(function), node.log());
    }
}

/// A JSON answer from `wasmzip functions --nodes --json` through `node`.
fn nodes_view(node: &Node) -> serde_json::Value {
    let run = node.server().cli(&["functions", "--nodes", "--json"]);
    run.expect_code(0);
    serde_json::from_str(&run.stdout).unwrap()
}

struct Setup {
    ws: Workspace,
    nats: NatsCluster,
    registry: Registry,
    nodes: Vec<Node>,
}

fn setup(auth: Option<(&str, &str)>) -> Setup {
    let ws = Workspace::new();
    let nats = NatsCluster::start(&ws.path("nats"), 3, auth);
    let registry = Registry::start(RegistryOptions::default());
    let nodes: Vec<Node> = (1..=3).map(|i| Node::new(&ws, &format!("node-{i}"), &nats, Some(&registry.addr()), &[])).collect();
    for node in &nodes {
        assert!(wait_until(CONVERGE, || node.readyz()["status"] == "ready"), "{} never synchronised: {}\n{}", node.name, node.readyz(), node.log());
    }
    Setup { ws, nats, registry, nodes }
}

/// The version the desired state serves for `function`, as `functions --nodes` shows it.
fn desired_version(view: &serde_json::Value, function: &str) -> Option<String> {
    view["nodes"].as_array()?.iter().flat_map(|n| n["functions"].as_array().cloned().unwrap_or_default()).find(|f| f["name"] == function)?["desired_version"]
        .as_str()
        .map(str::to_string)
}

/// The error node `node` reports for `function`, if any.
fn node_error(view: &serde_json::Value, node: &str, function: &str) -> Option<String> {
    let n = view["nodes"].as_array()?.iter().find(|n| n["node"] == node)?;
    n["functions"].as_array()?.iter().find(|f| f["name"] == function)?["error"].as_str().map(str::to_string)
}

/// Writes `record` as function `function`'s desired state straight into the bucket, as a
/// compromised control plane could, bypassing every node's admin API.
fn forge_desired_state(nats: &NatsCluster, function: &str, add: serde_json::Value) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut options = async_nats::ConnectOptions::new();
        if let Some((user, password)) = &nats.auth {
            options = options.user_and_password(user.clone(), password.clone());
        }
        let client = options.connect(nats.urls().split(',').map(|u| u.parse::<async_nats::ServerAddr>().unwrap()).collect::<Vec<_>>()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let kv = js.get_key_value("wasmzip").await.unwrap();
        let entry = kv.entry(function).await.unwrap().expect("the function has a desired state");
        let mut value: serde_json::Value = serde_json::from_slice(&entry.value).unwrap();
        let mut add = add;
        add["sequence"] = (entry.revision + 1).into();
        value["versions"].as_array_mut().unwrap().push(add);
        kv.update(function, serde_json::to_vec(&value).unwrap().into(), entry.revision).await.unwrap();
    });
}

#[test]
fn a_deploy_through_one_node_reaches_every_node_and_rolls_back_through_another() {
    let Setup { ws, nats, registry, mut nodes } = setup(Some(("wasmzip", "nats-secret-password")));
    let v1 = ws.http("greeter", "hello_http").version("1.0.0").build();
    let v2 = ws.http("greeter", "echo").version("2.0.0").build();

    // Deploy through node 1: all three serve it, and through HAProxy too.
    let (status, body) = deploy(&nodes[0], &v1);
    assert_eq!(status, 201, "{body}");
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    let reference = info["active"]["reference"].as_str().unwrap().to_string();
    assert!(reference.starts_with(&format!("{}/wasmzip/greeter:1.0.0@sha256:", registry.addr())), "{reference}");
    wait_all_serve(&nodes.iter().collect::<Vec<_>>(), "greeter", "1.0.0");
    for node in &nodes {
        let r = node.get("/greeter");
        assert_eq!((r.status, r.text().as_str()), (200, "Hello from wasmzip!\n"), "{}", node.name);
    }
    let lb = Haproxy::start(&ws.path(""), &nodes.iter().map(|n| (n.public.clone(), n.admin.clone())).collect::<Vec<_>>());
    for _ in 0..6 {
        let r = http_request(&lb.addr, "GET", "/greeter", &[], b"");
        assert_eq!(r.status, 200, "{}", r.text());
    }

    // Every node reports, converged.
    let listed = |view: &serde_json::Value| -> Vec<String> { view["nodes"].as_array().unwrap().iter().map(|n| n["node"].as_str().unwrap().to_string()).collect() };
    assert!(wait_until(CONVERGE, || listed(&nodes_view(&nodes[1])) == ["node-1", "node-2", "node-3"]), "{:#}", nodes_view(&nodes[1]));
    assert!(wait_until(CONVERGE, || nodes_view(&nodes[1])["nodes"].as_array().unwrap().iter().all(|n| n["converged"] == true)), "{:#}", nodes_view(&nodes[1]));
    nodes[2].server().cli(&["functions", "--nodes"]).expect_code(0).stdout_has(&["node-1", "node-2", "node-3", "converged", "greeter", "1.0.0 (sequence"]);

    // v2 through node 2; roll back through node 3.
    let (status, body) = deploy(&nodes[1], &v2);
    assert_eq!(status, 201, "{body}");
    wait_all_serve(&nodes.iter().collect::<Vec<_>>(), "greeter", "2.0.0");
    assert!(nodes[0].get("/greeter").text().contains("\"method\""), "node 1 serves the echo guest now");
    nodes[2].server().cli(&["rollback", "greeter"]).expect_code(0);
    wait_all_serve(&nodes.iter().collect::<Vec<_>>(), "greeter", "1.0.0");
    assert_eq!(nodes[1].get("/greeter").text(), "Hello from wasmzip!\n");

    // Two deploys of one function at once, through two nodes: one wins and the other is told to try
    // again (when they did not overlap, both land, in order); nothing is lost either way.
    let v3 = ws.http("greeter", "echo").version("3.0.0").build();
    let v4 = ws.http("greeter", "hello_http").version("4.0.0").build();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| deploy(&nodes[0], &v3));
        let b = s.spawn(|| deploy(&nodes[1], &v4));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!([a.0, b.0].iter().all(|s| *s == 201 || *s == 409) && (a.0 == 201 || b.0 == 201), "{a:?} {b:?}");
    for (status, message) in [&a, &b] {
        if *status == 409 {
            assert!(message.contains("changed while") && message.contains("greeter"), "{message}");
        }
    }
    let mut winner = None;
    assert!(wait_until(CONVERGE, || {
        winner = desired_version(&nodes_view(&nodes[2]), "greeter");
        winner.as_deref().is_some_and(|w| w == "3.0.0" || w == "4.0.0")
    }));
    let winner = winner.unwrap();
    match (a.0, b.0) {
        (201, 409) => assert_eq!(winner, "3.0.0"),
        (409, 201) => assert_eq!(winner, "4.0.0"),
        _ => assert!(winner == "3.0.0" || winner == "4.0.0", "{winner}"),
    }
    wait_all_serve(&nodes.iter().collect::<Vec<_>>(), "greeter", &winner);

    // A late node with an empty data directory converges from the bucket alone; without
    // --cluster-registry it fetches what the desired state names, and refuses uploads.
    let late = Node::new(&ws, "node-4", &nats, None, &[]);
    wait_all_serve(&[&late], "greeter", &winner);
    let (status, body) = deploy(&late, &v1);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("--cluster-registry"), "{body}");
    drop(late);

    // A registry that gives other bytes than the digest named: node 3, stopped while v5 is
    // deployed, finds the package tampered with when it starts again, keeps what it served, and
    // says why; the others serve v5.
    nodes[2].kill();
    let v5 = ws.http("greeter", "echo").version("5.0.0").build();
    let (status, body) = deploy(&nodes[0], &v5);
    assert_eq!(status, 201, "{body}");
    wait_all_serve(&[&nodes[0], &nodes[1]], "greeter", "5.0.0");
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    let archive = info["active"]["archive_digest"].as_str().unwrap().to_string();
    let blob = registry.storage().join(format!("docker/registry/v2/blobs/sha256/{}/{archive}/data", &archive[..2]));
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();
    nodes[2].start();
    let reported = wait_until(CONVERGE, || node_error(&nodes_view(&nodes[0]), "node-3", "greeter").is_some_and(|e| e.contains(&archive)));
    assert!(reported, "node 3 does not report the tampered package: {:#}\n{}", nodes_view(&nodes[0]), nodes[2].log());
    assert_eq!(nodes[2].serving("greeter").as_deref(), Some(winner.as_str()), "node 3 keeps what it served");
    assert_eq!(nodes[2].get("/greeter").status, 200);

    // A package signed by a key no node trusts, written straight into the desired state (as a
    // compromised control plane could): every node refuses it and keeps serving.
    common::run([OsString::from("keygen"), ws.path("rogue").into()]).expect_code(0);
    let rogue = ws.http("greeter", "hello_http").version("6.0.0").signed_with(&ws.path("rogue.key")).build();
    let pushed = common::run([OsString::from("push"), rogue.clone().into(), format!("{}/wasmzip/greeter:6.0.0", registry.addr()).into()]);
    pushed.expect_code(0);
    let reference = pushed.stdout.lines().find_map(|l| l.strip_prefix("pushed ")).expect("push names the reference").trim().to_string();
    let inspect = common::run([OsString::from("inspect"), rogue.clone().into(), "--json".into()]);
    inspect.expect_code(0);
    let report: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    let bare = |v: &serde_json::Value| v.as_str().unwrap().trim_start_matches("sha256:").to_string();
    forge_desired_state(
        &nats,
        "greeter",
        serde_json::json!({
            "version": "6.0.0",
            "digest": bare(&report["digest"]),
            "archive_digest": bare(&report["archive_digest"]),
            "reference": reference,
            "grants": [],
            "grant_requested": false,
            "sequence": 0,
            "deployed_at": 0,
        }),
    );
    for node in &nodes {
        let refused = wait_until(CONVERGE, || node_error(&nodes_view(&nodes[0]), &node.name, "greeter").is_some_and(|e| e.contains("does not trust") || e.contains("not trusted")));
        assert!(refused, "{} does not refuse the untrusted package: {:#}\n{}", node.name, nodes_view(&nodes[0]), node.log());
        assert_ne!(node.serving("greeter").as_deref(), Some("6.0.0"));
        assert_eq!(node.get("/greeter").status, 200);
    }
}

#[test]
fn a_node_reaches_nats_over_tls_with_a_token() {
    let ws = Workspace::new();
    let certs = ws.path("nats-certs");
    std::fs::create_dir_all(&certs).unwrap();
    common::registry::make_certificates(&certs);
    let tls = format!(
        "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n}}\nauthorization {{\n  token: \"nats-test-token-1234\"\n}}\n",
        certs.join("server.pem").display(),
        certs.join("server.key").display()
    );
    let nats = NatsCluster::start_with(&ws.path("nats"), 1, None, &tls);
    let registry = Registry::start(RegistryOptions::default());
    let token = ws.path("nats.token");
    std::fs::write(&token, "nats-test-token-1234\n").unwrap();
    let ca = certs.join("ca.pem");
    let args = ["--cluster-replicas", "1", "--cluster-tls-ca", ca.to_str().unwrap(), "--cluster-token-file", token.to_str().unwrap(), "--cluster-tls-required"];
    let node = Node::new(&ws, "node-tls", &nats, Some(&registry.addr()), &args);
    assert!(wait_until(CONVERGE, || node.readyz()["status"] == "ready"), "{}\n{}", node.readyz(), node.log());
    let v1 = ws.http("greeter", "hello_http").version("1.0.0").build();
    let (status, body) = deploy(&node, &v1);
    assert_eq!(status, 201, "{body}");
    assert_eq!(node.get("/greeter").text(), "Hello from wasmzip!\n");

    // Without the CA, or with a wrong token, the node never synchronises: it says why, and serves on.
    std::fs::write(ws.path("wrong.token"), "not-the-token\n").unwrap();
    let wrong_token = ws.path("wrong.token");
    let wrong = Node::new(
        &ws,
        "node-wrong-token",
        &nats,
        Some(&registry.addr()),
        &["--cluster-replicas", "1", "--cluster-tls-ca", ca.to_str().unwrap(), "--cluster-token-file", wrong_token.to_str().unwrap()],
    );
    let untrusted = Node::new(&ws, "node-no-ca", &nats, Some(&registry.addr()), &["--cluster-replicas", "1", "--cluster-token-file", token.to_str().unwrap()]);
    std::thread::sleep(Duration::from_secs(3));
    for n in [&wrong, &untrusted] {
        let ready = n.readyz();
        assert_eq!(ready["status"], "degraded", "{}: {ready}", n.name);
        let (status, body) = deploy(n, &v1);
        assert_eq!(status, 503, "{}: {body}", n.name);
    }
}

#[test]
fn serving_goes_on_through_nats_and_registry_outages_and_a_killed_node() {
    let Setup { ws, mut nats, mut registry, mut nodes } = setup(None);
    let token = format!("Bearer {}", common::ADMIN_TOKEN);
    let v1 = ws.http("greeter", "hello_http").version("1.0.0").build();
    let (status, body) = deploy(&nodes[0], &v1);
    assert_eq!(status, 201, "{body}");
    wait_all_serve(&nodes.iter().collect::<Vec<_>>(), "greeter", "1.0.0");

    // One NATS server of three killed while a deploy is under way: the quorum holds, nothing is
    // lost (a write that met the leader election is answered 503 and sent again).
    let v2 = ws.http("greeter", "echo").version("2.0.0").build();
    let (status, body) = std::thread::scope(|s| {
        let deploying = s.spawn(|| deploy_retrying(&nodes[1], &v2));
        std::thread::sleep(Duration::from_millis(50));
        nats.kill(1);
        deploying.join().unwrap()
    });
    assert_eq!(status, 201, "{body}");
    wait_all_serve(&nodes.iter().collect::<Vec<_>>(), "greeter", "2.0.0");
    nats.restart(1);
    nats.wait_ready();

    // The registry down: serving goes on, a deploy answers 503 and the desired state is unchanged.
    registry.stop();
    let v3 = ws.http("greeter", "hello_http").version("3.0.0").build();
    let (status, body) = deploy(&nodes[0], &v3);
    assert_eq!(status, 503, "{body}");
    // (Node statuses live 3 s here: after the NATS failover above they may be renewing.)
    let unchanged = wait_until(CONVERGE, || desired_version(&nodes_view(&nodes[2]), "greeter").as_deref() == Some("2.0.0"));
    assert!(unchanged, "{:#}", nodes_view(&nodes[2]));
    for node in &nodes {
        assert_eq!(node.get("/greeter").status, 200);
    }
    registry.start_again();

    // All of NATS down: every node keeps serving, says it is degraded, and refuses admin writes
    // with 503; then catches up when NATS is back.
    for i in 0..3 {
        nats.kill(i);
    }
    for node in &nodes {
        assert!(wait_until(CONVERGE, || node.readyz()["status"] == "degraded"), "{}: {}", node.name, node.readyz());
        assert_eq!(node.get("/greeter").status, 200, "{} serves while NATS is down", node.name);
    }
    let (status, body) = deploy(&nodes[0], &v3);
    assert_eq!(status, 503, "{body}");
    let r = http_request(&nodes[1].admin, "POST", "/v1/functions/greeter/rollback", &[("authorization", &token)], b"");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    nodes[2].server().cli(&["functions", "--nodes"]).expect_code(common::REFUSED).stderr_has(&["503"]);
    for i in 0..3 {
        nats.restart(i);
    }
    nats.wait_ready();
    for node in &nodes {
        assert!(wait_until(CONVERGE, || node.readyz()["status"] == "ready"), "{} did not recover: {}\n{}", node.name, node.readyz(), node.log());
    }
    let (status, body) = deploy_retrying(&nodes[0], &v3);
    assert_eq!(status, 201, "{body}");
    wait_all_serve(&nodes.iter().collect::<Vec<_>>(), "greeter", "3.0.0");

    // A node killed with SIGKILL while it converges restarts into a consistent state and converges.
    let v4 = ws.http("greeter", "echo").version("4.0.0").build();
    let (status, body) = deploy_retrying(&nodes[0], &v4);
    assert_eq!(status, 201, "{body}");
    nodes[2].kill();
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(nodes[2].data.join("deployments.json")).unwrap()).expect("the record is whole");
    let recorded = record["functions"]["greeter"]["versions"].as_array().unwrap().last().unwrap()["version"].as_str().unwrap().to_string();
    assert!(recorded == "3.0.0" || recorded == "4.0.0", "{record:#}");
    nodes[2].start();
    wait_all_serve(&nodes.iter().collect::<Vec<_>>(), "greeter", "4.0.0");
    assert!(std::fs::read_dir(nodes[2].data.join("staging")).unwrap().next().is_none(), "no half-fetched package is left");

    // A node that stops reporting drops out of the list.
    nodes[2].kill();
    let gone = wait_until(Duration::from_secs(20), || nodes_view(&nodes[0])["nodes"].as_array().unwrap().len() == 2);
    assert!(gone, "{:#}", nodes_view(&nodes[0]));
}

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Milliseconds from now until every node serves `version` of `function`.
fn until_all_serve(nodes: &[&Node], function: &str, version: &str) -> f64 {
    let t0 = std::time::Instant::now();
    for node in nodes {
        assert!(
            wait_until(CONVERGE, || node.serving(function).as_deref() == Some(version)),
            "{} does not serve {function} {version}\n{}",
            node.name,
            node.log()
        );
    }
    t0.elapsed().as_secs_f64() * 1000.0
}

/// Requests/s wrk measures at `addr` over `seconds` with 16 connections.
fn wrk(addr: &str, seconds: usize) -> f64 {
    let out = std::process::Command::new("wrk")
        .args(["-t2", "-c16", &format!("-d{seconds}s"), &format!("http://{addr}/small")])
        .output()
        .expect("wrk runs (Debian package wrk; bench/cluster.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("Non-2xx"), "wrk saw errors at {addr}:\n{text}");
    text.lines().find_map(|l| l.strip_prefix("Requests/sec:")).and_then(|v| v.trim().parse().ok()).unwrap_or_else(|| panic!("no Requests/sec from wrk:\n{text}"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The figures of docs/benchmarks.md's cluster section; run by `bash bench/cluster.sh`.
#[test]
#[ignore = "a benchmark: bash bench/cluster.sh"]
fn cluster_figures() {
    let deploys = knob("DEPLOYS", 50);
    let rollbacks = knob("ROLLBACKS", 20);
    let rounds = knob("ROUNDS", 5);
    let seconds = knob("DURATION_S", 5);
    // (The registry must outlive the deploys: it is bound until the end.)
    let Setup { ws, mut nats, registry: _registry, nodes } = setup(None);
    let all: Vec<&Node> = nodes.iter().collect();
    let stats = |name: &str, mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        println!("| {name} | {} | {:.0} | {:.0} | {:.0} |", v.len(), percentile(&v, 50.0), percentile(&v, 99.0), v[v.len() - 1]);
    };
    println!("\n| what | n | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|");

    // Deploy returning → all three serving, for a small package whose code each node compiles
    // (every version's component carries a different custom section).
    let (mut call, mut spread) = (Vec::new(), Vec::new());
    for i in 0..deploys {
        let version = format!("1.0.{i}");
        let package = ws.http("small", if i % 2 == 0 { "hello_http" } else { "echo" }).version(&version).unique_code(&version).build();
        let t0 = std::time::Instant::now();
        let (status, body) = deploy(all[i % 3], &package);
        assert_eq!(status, 201, "{body}");
        call.push(t0.elapsed().as_secs_f64() * 1000.0);
        spread.push(until_all_serve(&all, "small", &version));
    }
    stats("deploy call (upload → 201; verify, compile, push, pull back, write)", call);
    stats("deploy returned → all 3 nodes serve it (small package, compiled on each node)", spread);

    // Rollback returning → all three serving the previous version (its package and code are on every
    // node already).
    let mut back = Vec::new();
    for i in 0..rollbacks {
        let version = format!("2.0.{i}");
        let package = ws.http("small", "echo").version(&version).unique_code(&version).build();
        assert_eq!(deploy(all[0], &package).0, 201);
        until_all_serve(&all, "small", &version);
        let r = http_request(&all[1].admin, "POST", "/v1/functions/small/rollback", &[("authorization", &format!("Bearer {}", common::ADMIN_TOKEN))], b"");
        assert_eq!(r.status, 200, "{}", r.text());
        let info: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let active = info["active"]["version"].as_str().unwrap().to_string();
        back.push(until_all_serve(&all, "small", &active));
        // Forward again, so that the next round rolls back one step too.
        assert_eq!(deploy(all[2], &package).0, 201);
        until_all_serve(&all, "small", &version);
    }
    stats("rollback returned → all 3 nodes serve the previous version", back);

    // A large component (guests/big-http, megabytes of code): its cold compile on every node.
    let big = ws.http("big", "big_http").version("1.0.0").unique_code("cold").build();
    let t0 = std::time::Instant::now();
    let (status, body) = deploy(all[0], &big);
    assert_eq!(status, 201, "{body}");
    let big_call = t0.elapsed().as_secs_f64() * 1000.0;
    let big_spread = until_all_serve(&all, "big", "1.0.0");
    println!("| large component ({} bytes of code): deploy call | 1 | {big_call:.0} | | |", std::fs::metadata(common::guest("big_http")).unwrap().len());
    println!("| large component: deploy returned → all 3 nodes serve it | 1 | {big_spread:.0} | | |");
    println!();

    // Requests/s through HAProxy: three nodes against one node alone, on the same two cores.
    let lb3 = Haproxy::start(&ws.path("lb3"), &nodes.iter().map(|n| (n.public.clone(), n.admin.clone())).collect::<Vec<_>>());
    let lb1 = Haproxy::start(&ws.path("lb1"), &[(nodes[0].public.clone(), nodes[0].admin.clone())]);
    let local_data = ws.path("local-data");
    let serving = ws.http("small", "hello_http").version("9.0.0").build();
    assert_eq!(deploy(all[0], &serving).0, 201);
    until_all_serve(&all, "small", "9.0.0");
    let local = Server::start(ws.serve_args(&local_data, &[serving.as_os_str()]), &[]);
    let (mut three, mut one, mut cluster_rps, mut local_rps) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    wrk(&lb3.addr, 1);
    wrk(&lb1.addr, 1);
    wrk(&local.public, 1);
    for _ in 0..rounds {
        three.push(wrk(&lb3.addr, seconds));
        one.push(wrk(&lb1.addr, seconds));
        cluster_rps.push(wrk(&nodes[0].public, seconds));
        local_rps.push(wrk(&local.public, seconds));
    }
    let ratios = |a: &[f64], b: &[f64]| median(a.iter().zip(b).map(|(x, y)| x / y).collect());
    println!("| requests/s through HAProxy, 3 nodes | {:.0} |", median(three.clone()));
    println!("| requests/s through HAProxy, 1 node | {:.0} |", median(one.clone()));
    println!("| ratio 3 nodes / 1 node (median of {rounds} interleaved rounds) | {:.2} |", ratios(&three, &one));
    println!("| requests/s, one node in cluster mode | {:.0} |", median(cluster_rps.clone()));
    println!("| requests/s, one node in local mode | {:.0} |", median(local_rps.clone()));
    println!("| ratio cluster / local (median of {rounds} interleaved rounds) | {:.3} |", ratios(&cluster_rps, &local_rps));
    drop(local);
    println!();

    // Recovery after all of NATS returns: until every node is synchronised again, and until a deploy
    // through one node is served by all.
    for i in 0..3 {
        nats.kill(i);
    }
    for node in &all {
        assert!(wait_until(CONVERGE, || node.readyz()["status"] == "degraded"));
    }
    let t0 = std::time::Instant::now();
    for i in 0..3 {
        nats.restart(i);
    }
    for node in &all {
        assert!(wait_until(CONVERGE, || node.readyz()["status"] == "ready"), "{}", node.log());
    }
    let ready = t0.elapsed().as_secs_f64() * 1000.0;
    let package = ws.http("small", "hello_http").version("3.0.0").unique_code("3.0.0").build();
    let deployed = loop {
        if deploy(all[0], &package).0 == 201 {
            break t0.elapsed().as_secs_f64() * 1000.0;
        }
        assert!(t0.elapsed() < CONVERGE, "no deploy succeeded within {CONVERGE:?} of NATS returning");
        std::thread::sleep(Duration::from_millis(20));
    };
    until_all_serve(&all, "small", "3.0.0");
    println!("| NATS restarted → every node synchronised | {ready:.0} ms |");
    println!("| NATS restarted → first deploy accepted | {deployed:.0} ms |");
}

/// The NATS backend of the desired-state seam against a real server: compare-and-set refuses a
/// write that read an older revision, deletes too; a watch sees every change in order.
#[test]
fn the_nats_desired_state_compares_and_sets_on_the_key_revision() {
    use futures_util::StreamExt;
    use wasmzip_server::desired::{DesiredError, DesiredEvent, DesiredState};
    use wasmzip_server::store::{DeployedVersion, FunctionRecord};
    let ws = Workspace::new();
    let nats = NatsCluster::start(&ws.path("nats"), 1, None);
    let version = |n: u64| DeployedVersion {
        version: format!("1.0.{n}"),
        digest: format!("{n:064x}"),
        archive_digest: format!("{:064x}", n + 1),
        reference: String::new(),
        signers: vec![],
        grants: vec![],
        grant_requested: false,
        sequence: n,
        deployed_at: 0,
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    rt.block_on(async {
        let options = wasmzip_server::nats::NatsOptions {
            servers: vec![nats.urls()],
            bucket: "cas-test".into(),
            replicas: 1,
            node_ttl: Duration::from_secs(5),
            credentials_file: None,
            user_password: None,
            token: None,
            nkey_seed: None,
            tls_ca: vec![],
            tls_client: None,
            tls_required: false,
            client_name: "test".into(),
        };
        let store = wasmzip_server::nats::NatsCluster::connect(options).await.unwrap();
        let deadline = std::time::Instant::now() + CONVERGE;
        while !store.connected() {
            assert!(std::time::Instant::now() < deadline, "never connected");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut watch = store.watch().await.unwrap();
        assert_eq!(store.get("f").await.unwrap(), (None, 0));
        let one = FunctionRecord { versions: vec![version(1)] };
        let two = FunctionRecord { versions: vec![version(1), version(2)] };
        let r1 = store.compare_and_set("f", Some(&one), 0).await.unwrap();
        let stale = store.compare_and_set("f", Some(&two), 0).await.unwrap_err();
        assert!(matches!(stale, DesiredError::Conflict { expected: 0, found, .. } if found == r1), "{stale}");
        assert_eq!(store.get("f").await.unwrap(), (Some(one.clone()), r1));
        let r2 = store.compare_and_set("f", Some(&two), r1).await.unwrap();
        assert!(matches!(store.compare_and_set("f", None, r1).await, Err(DesiredError::Conflict { .. })));
        let listing = store.list().await.unwrap();
        assert_eq!(listing.functions["f"].record, two);
        assert_eq!(listing.functions["f"].revision, r2);
        let r3 = store.compare_and_set("f", None, r2).await.unwrap();
        assert!(r3 > r2);
        assert_eq!(store.get("f").await.unwrap(), (None, r3));
        assert!(store.list().await.unwrap().functions.is_empty());
        let seen: Vec<DesiredEvent> = watch.by_ref().take(3).collect().await;
        assert_eq!(
            seen,
            [
                DesiredEvent::Changed { function: "f".into(), record: Some(one), revision: r1 },
                DesiredEvent::Changed { function: "f".into(), record: Some(two), revision: r2 },
                DesiredEvent::Changed { function: "f".into(), record: None, revision: r3 },
            ]
        );
    });
}

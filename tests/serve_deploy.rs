//! `wasmzip serve`'s admin API and the client commands (`deploy`, `functions`, `rollback`, `remove`)
//! end to end: authorisation, versions, refusals, persistence, in-flight requests, shutdown, crashes.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

const NONE: &[&str] = &[];
const HELLO: &str = "Hello from wasmzip!\n";

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// `functions --json`, parsed.
#[track_caller]
fn functions(server: &Server) -> serde_json::Value {
    let r = server.cli(&["functions", "--json"]);
    r.expect_code(0);
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("functions --json is not JSON ({e}): {}", r.stdout))
}

/// The entry for `name` in `functions --json`, if any.
fn function(server: &Server, name: &str) -> Option<serde_json::Value> {
    functions(server)["functions"].as_array().unwrap().iter().find(|f| f["name"] == name).cloned()
}

fn versions(f: &serde_json::Value) -> Vec<String> {
    f["versions"].as_array().unwrap().iter().map(|v| v["version"].as_str().unwrap().to_string()).collect()
}

/// Which of the two test versions answered: hello-http is `1.0.0`, echo is `2.0.0`.
#[track_caller]
fn served_version(r: &HttpResponse) -> &'static str {
    assert_eq!(r.status, 200, "{}", r.text());
    if r.text() == HELLO {
        "1.0.0"
    } else {
        let v = r.json();
        assert!(v["path"].is_string() && v["counter"] == 1, "neither version answered: {}", r.text());
        "2.0.0"
    }
}

/// Every file name in `dir` (none when it does not exist).
fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

#[test]
fn the_admin_api_needs_a_configured_token_and_the_right_one() {
    let ws = Workspace::new();
    let pkg = ws.http("hello", "hello_http").build();

    // No token file: every /v1 call is refused, metrics still answer.
    let args: Vec<std::ffi::OsString> = vec![
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--admin-listen".into(),
        "127.0.0.1:0".into(),
        "--data-dir".into(),
        ws.path("data-open").into(),
        "--trust".into(),
        ws.public_key().into(),
    ];
    let open = Server::start(args, &[]);
    for (method, path) in [("GET", "/v1/functions"), ("POST", "/v1/functions"), ("POST", "/v1/functions/hello/rollback"), ("DELETE", "/v1/functions/hello")] {
        let r = open.admin_request(method, path, &[("authorization", &bearer(ADMIN_TOKEN))], b"");
        assert_eq!(r.status, 403, "{method} {path}: {}", r.text());
        assert!(r.json()["error"].as_str().unwrap().contains("--admin-token-file"), "{}", r.text());
    }
    assert!(open.metrics().contains("wasmzip_functions_deployed 0"));
    drop(open);

    let server = ws.serve(NONE);
    let bytes = std::fs::read(&pkg).unwrap();
    for auth in [None, Some("Bearer wrong-token-wrong-token"), Some("Basic dGVzdDp0ZXN0"), Some(ADMIN_TOKEN)] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        for (method, path, body) in [("GET", "/v1/functions", &[][..]), ("POST", "/v1/functions", &bytes[..]), ("DELETE", "/v1/functions/hello", &[][..])] {
            let r = server.admin_request(method, path, &headers, body);
            assert_eq!(r.status, 401, "{method} {path} with {auth:?}: {}", r.text());
        }
    }
    assert_eq!(server.get("/hello").status, 404, "a refused deploy deploys nothing");
    let r = server.admin_request("GET", "/v1/functions", &[("authorization", &bearer(ADMIN_TOKEN))], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["functions"], serde_json::json!([]));

    // The client command with a wrong token file fails and says why.
    std::fs::write(ws.path("wrong.token"), "not-the-admin-token\n").unwrap();
    let server_url = format!("http://{}", server.admin_addr());
    let r = run(["deploy".as_ref(), pkg.as_os_str(), "--server".as_ref(), server_url.as_ref(), "--token-file".as_ref(), ws.path("wrong.token").as_os_str()]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("401"), "{}", r.stderr);
    assert_eq!(server.get("/hello").status, 404);
}

#[test]
fn deploy_functions_rollback_and_remove() {
    let ws = Workspace::new();
    let v1 = ws.http("app", "hello_http").version("1.0.0").build();
    let v2 = ws.http("app", "echo").version("2.0.0").build();
    let server = ws.serve(NONE);
    assert_eq!(server.get("/app").status, 404);

    server.deploy(&v1).expect_code(0).stdout_has(&["deployed app 1.0.0", "/app"]);
    assert_eq!(served_version(&server.get("/app")), "1.0.0");
    server.deploy(&v2).expect_code(0).stdout_has(&["deployed app 2.0.0"]);
    let r = server.get("/app/x?q=1");
    assert_eq!(served_version(&r), "2.0.0");
    assert_eq!(r.json()["path"], "/app/x?q=1");

    let listing = server.cli(&["functions"]);
    listing.expect_code(0).stdout_has(&["app", "routes /app"]);
    let active_line = listing.stdout.lines().find(|l| l.contains("2.0.0")).unwrap_or_else(|| panic!("{}", listing.stdout));
    let old_line = listing.stdout.lines().find(|l| l.contains("1.0.0")).unwrap_or_else(|| panic!("{}", listing.stdout));
    assert!(active_line.trim_start().starts_with('*'), "2.0.0 is marked active: {}", listing.stdout);
    assert!(!old_line.trim_start().starts_with('*'), "1.0.0 is not: {}", listing.stdout);
    let f = function(&server, "app").unwrap();
    assert_eq!(versions(&f), ["1.0.0", "2.0.0"]);
    assert_eq!(f["active"]["version"], "2.0.0");
    assert_eq!(f["routes"], serde_json::json!(["/app"]));
    assert!(server.metrics().contains("wasmzip_functions_deployed 1"));

    server.cli(&["rollback", "app"]).expect_code(0).stdout_has(&["app now serves version 1.0.0"]);
    assert_eq!(served_version(&server.get("/app")), "1.0.0");
    let f = function(&server, "app").unwrap();
    assert_eq!(versions(&f), ["1.0.0"]);
    assert_eq!(f["active"]["version"], "1.0.0");

    // Nothing older to go back to.
    let r = server.cli(&["rollback", "app"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("409") && r.stderr.contains("no previous version"), "{}", r.stderr);
    assert_eq!(served_version(&server.get("/app")), "1.0.0");

    server.cli(&["remove", "app"]).expect_code(0).stdout_has(&["removed app"]);
    assert_eq!(server.get("/app").status, 404);
    server.cli(&["functions"]).expect_code(0).stdout_has(&["no functions deployed"]);
    assert!(server.metrics().contains("wasmzip_functions_deployed 0"));

    for args in [["remove", "app"], ["rollback", "app"]] {
        let r = server.cli(&args);
        assert_ne!(r.code, 0, "{args:?}");
        assert!(r.stderr.contains("404") && r.stderr.contains("no function named `app`"), "{args:?}: {}", r.stderr);
    }
}

#[test]
fn a_second_function_claiming_a_taken_route_is_409_and_changes_nothing() {
    let ws = Workspace::new();
    let first = ws.http("first", "hello_http").routes(&["/shared", "/first"]).build();
    let second = ws.http("second", "echo").routes(&["/second", "/shared/"]).build();
    let server = ws.serve(NONE);
    server.deploy(&first).expect_code(0);
    let state_before = std::fs::read(ws.path("data/deployments.json")).unwrap();

    let r = server.deploy(&second);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("409") && r.stderr.contains("/shared"), "{}", r.stderr);
    let raw = server.admin_request("POST", "/v1/functions", &[("authorization", &bearer(ADMIN_TOKEN))], &std::fs::read(&second).unwrap());
    assert_eq!(raw.status, 409, "{}", raw.text());
    assert_eq!(raw.json()["error"], "route `/shared` is claimed by both `first` and `second`");

    assert_eq!(server.get("/shared/x").text(), HELLO);
    assert_eq!(server.get("/second").status, 404, "no part of the refused function serves");
    assert!(function(&server, "second").is_none());
    assert_eq!(std::fs::read(ws.path("data/deployments.json")).unwrap(), state_before, "the record is unchanged");
}

#[test]
fn untrusted_unsigned_and_tampered_packages_are_refused_and_change_nothing() {
    use wasmzip_package::archive::{ArchiveLimits, ArchiveReader, ArchiveWriter, Compression};
    let ws = Workspace::new();
    let good = ws.http("app", "hello_http").build();
    let server = ws.serve(NONE);
    server.deploy(&good).expect_code(0);
    let state_before = std::fs::read(ws.path("data/deployments.json")).unwrap();
    let packages_before = file_names(&ws.path("data/packages"));

    // Signed by a key the server does not trust.
    let stranger = Workspace::new();
    let untrusted = stranger.http("app", "echo").version("2.0.0").build();
    // No signature at all.
    let unsigned = ws.http("app", "echo").version("3.0.0").unsigned().build();
    // A trusted package whose component was changed after signing (a valid archive otherwise).
    let source = ws.http("app", "echo").version("4.0.0").build();
    let tampered = ws.path("tampered.wasmzip");
    {
        let mut reader = ArchiveReader::open(std::fs::File::open(&source).unwrap(), &ArchiveLimits::default()).unwrap();
        let mut writer = ArchiveWriter::new(std::fs::File::create(&tampered).unwrap());
        let mut changed = false;
        for i in 0..reader.entries().len() {
            let name = reader.entries()[i].name.clone();
            let mut bytes = reader.read_entry_to_vec(i, u64::MAX).unwrap();
            if name.ends_with(".wasm") {
                let at = bytes.len() - 10;
                bytes[at] ^= 1;
                changed = true;
            }
            writer.add(&name, Compression::Deflated, &mut &bytes[..]).unwrap();
        }
        writer.finish().unwrap();
        assert!(changed);
    }
    // Not a package at all.
    let garbage = ws.path("garbage.wasmzip");
    std::fs::write(&garbage, b"this is not a wasmzip package").unwrap();

    for (what, pkg, fragment) in [
        ("untrusted", &untrusted, "422"),
        ("unsigned", &unsigned, "422"),
        ("tampered", &tampered, "SHA-256 differs"),
        ("garbage", &garbage, "422"),
    ] {
        let r = server.deploy(&pkg);
        assert_ne!(r.code, 0, "{what} was deployed: {}", r.stdout);
        assert!(r.stderr.contains("422") && r.stderr.contains(fragment), "{what}: {}", r.stderr);
        assert_eq!(server.get("/app").text(), HELLO, "{what}: version 1 still serves");
    }
    let f = function(&server, "app").unwrap();
    assert_eq!(versions(&f), ["1.0.0"]);
    assert_eq!(std::fs::read(ws.path("data/deployments.json")).unwrap(), state_before);
    assert_eq!(file_names(&ws.path("data/packages")), packages_before, "no refused package is kept");
    assert!(file_names(&ws.path("data/staging")).is_empty(), "no upload is left behind");
}

#[test]
fn memory_above_the_pool_ceiling_is_refused_at_deploy_and_at_start() {
    let ws = Workspace::new();
    let too_big = ws.http("big", "hello_http").limits(r#"memory = "128MiB""#).build();
    let fits = ws.http("small", "hello_http").limits(r#"memory = "32MiB""#).build();
    let server = ws.serve(&["--pool-max-memory", "64MiB"]);

    let r = server.deploy(&too_big);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("422") && r.stderr.contains("--pool-max-memory"), "{}", r.stderr);
    assert_eq!(server.get("/big").status, 404);
    server.deploy(&fits).expect_code(0);
    assert_eq!(server.get("/small").text(), HELLO);
    drop(server);

    let args = ws.serve_args(&ws.path("data-2"), &[too_big.as_os_str(), "--pool-max-memory".as_ref(), "64MiB".as_ref()]);
    match Server::try_start(args, &[]) {
        Ok(_) => panic!("serve started with a package above --pool-max-memory"),
        Err(message) => assert!(message.contains("--pool-max-memory"), "{message}"),
    }
}

#[test]
fn deployments_survive_a_restart() {
    let ws = Workspace::new();
    let v1 = ws.http("app", "hello_http").version("1.0.0").build();
    let v2 = ws.http("app", "echo").version("2.0.0").build();
    let mut server = ws.serve(NONE);
    server.deploy(&v1).expect_code(0);
    server.deploy(&v2).expect_code(0);
    assert_eq!(served_version(&server.get("/app")), "2.0.0");
    server.signal("-TERM");
    assert!(server.wait_exit(Duration::from_secs(10)).is_some_and(|s| s.success()));
    drop(server);

    // No packages on the command line: everything comes from the data directory.
    let server = ws.serve(NONE);
    assert_eq!(served_version(&server.get("/app")), "2.0.0");
    let f = function(&server, "app").unwrap();
    assert_eq!(versions(&f), ["1.0.0", "2.0.0"]);
    server.cli(&["rollback", "app"]).expect_code(0);
    assert_eq!(served_version(&server.get("/app")), "1.0.0");
    drop(server);

    let server = ws.serve(NONE);
    assert_eq!(served_version(&server.get("/app")), "1.0.0", "the rollback was kept too");
}

#[test]
fn a_request_in_flight_finishes_on_its_version_across_a_deploy() {
    let ws = Workspace::new();
    let v1 = ws.http("slow", "sleepy").version("1.0.0").build();
    let v2 = ws.http("slow", "hello_http").version("2.0.0").build();
    let server = ws.serve(&[v1]);
    let public = server.public.clone();

    let started = Instant::now();
    let slow = std::thread::spawn(move || http_request(&public, "GET", "/slow?ms=1500", &[], b""));
    server.wait_for_log(&["sleepy: sleeping 1500 ms", "version=1.0.0"], Duration::from_secs(10));
    server.deploy(&v2).expect_code(0);
    assert_eq!(server.get("/slow").text(), HELLO, "new requests get version 2");
    let r = slow.join().unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "slept 1500\n"), "the request that started on version 1 finished there");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn sigterm_lets_in_flight_requests_finish_then_exits_0() {
    let ws = Workspace::new();
    let sleepy = ws.http("sleepy", "sleepy").build();
    let mut server = ws.serve(&[sleepy]);
    let public = server.public.clone();

    let slow = std::thread::spawn(move || http_request(&public, "GET", "/sleepy?ms=1000", &[], b""));
    server.wait_for_log(&["sleepy: sleeping 1000 ms"], Duration::from_secs(10));
    let signalled = Instant::now();
    server.signal("-TERM");
    let status = server.wait_exit(Duration::from_secs(8)).expect("the server exits after SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", server.stderr_text());
    assert!(signalled.elapsed() < Duration::from_secs(6), "exiting took {:?}", signalled.elapsed());
    let r = slow.join().unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "slept 1000\n"));
    assert!(std::net::TcpStream::connect(&server.public).is_err(), "nothing listens any more");
}

#[test]
fn sigterm_does_not_wait_past_the_grace_period() {
    let ws = Workspace::new();
    let sleepy = ws.http("sleepy", "sleepy").build();
    let mut server = ws.serve(&[sleepy.as_os_str(), "--grace-period".as_ref(), "500ms".as_ref()]);
    let public = server.public.clone();

    let slow = std::thread::spawn(move || try_http_request(&public, "GET", "/sleepy?ms=20000", &[], b""));
    server.wait_for_log(&["sleepy: sleeping 20000 ms"], Duration::from_secs(10));
    let signalled = Instant::now();
    server.signal("-TERM");
    let status = server.wait_exit(Duration::from_secs(8)).expect("the server exits once the grace period is over");
    assert!(signalled.elapsed() < Duration::from_secs(5), "exiting took {:?}", signalled.elapsed());
    assert_eq!(status.code(), Some(0), "{}", server.stderr_text());
    match slow.join().unwrap() {
        Ok(r) => assert_ne!(r.status, 200, "the cut-off request cannot have succeeded: {r:?}"),
        Err(_) => {} // the connection was closed without an answer
    }
}

#[test]
fn killing_the_server_during_deploys_always_leaves_one_whole_version() {
    let ws = Workspace::new();
    let data = ws.path("data");
    let packages: [(PathBuf, &str); 2] = [
        (ws.http("crashy", "hello_http").version("1.0.0").build(), "1.0.0"),
        (ws.http("crashy", "echo").version("2.0.0").build(), "2.0.0"),
    ];
    // Compile both versions into the shared cache first, so that deploys in the loop are quick and
    // the kills land at every stage of one, not only while compiling.
    drop(Server::start(ws.serve_args(&ws.path("warm-up"), &[&packages[0].0, &packages[1].0]), &[]));

    let mut server = ws.serve(NONE);
    let mut served: Option<&str> = None;
    // Random-ish kill times from 0 to 300 ms, different on every run.
    let mut seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64 | 1;
    for round in 0..8u64 {
        let (package, version) = &packages[(round % 2) as usize];
        let args: Vec<std::ffi::OsString> = vec![
            "deploy".into(),
            package.into(),
            "--server".into(),
            format!("http://{}", server.admin_addr()).into(),
            "--token-file".into(),
            ws.token_file().into(),
        ];
        let deploy = std::thread::spawn(move || run(args));
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let delay = Duration::from_millis((seed >> 33) % 301);
        std::thread::sleep(delay);
        server.kill();
        let deployed = deploy.join().unwrap();

        server = ws.serve(NONE);
        let state = match std::fs::read(data.join("deployments.json")) {
            Ok(bytes) => Some(serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or_else(|e| {
                panic!("round {round}: deployments.json does not parse ({e}): {}", String::from_utf8_lossy(&bytes))
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => panic!("{e}"),
        };
        let recorded = state
            .as_ref()
            .and_then(|s| s["functions"]["crashy"]["versions"].as_array().and_then(|v| v.last()).map(|v| v["version"].as_str().unwrap().to_string()));
        let r = server.get("/crashy");
        let now = if r.status == 404 {
            assert!(served.is_none(), "round {round}: {served:?} served before the crash, nothing after");
            assert_ne!(deployed.code, 0, "round {round}: the deploy was confirmed but nothing serves");
            assert_eq!(recorded, None, "round {round}: recorded but not serving");
            None
        } else {
            let now = served_version(&r);
            assert_eq!(recorded.as_deref(), Some(now), "round {round}: the record and what serves disagree");
            Some(now)
        };
        if deployed.code == 0 {
            assert_eq!(now, Some(*version), "round {round}: a confirmed deploy of {version} was lost (killed after {delay:?})");
        } else {
            assert!(now == served || now == Some(*version), "round {round}: serving {now:?}, neither the old {served:?} nor the new {version}");
        }
        eprintln!("round {round}: killed {delay:?} into deploying {version}: deploy exit {}, now serving {now:?}", deployed.code);
        served = now;
        assert!(file_names(&data.join("staging")).is_empty(), "round {round}: abandoned uploads are cleaned at start");
        let mut referenced: Vec<String> = state
            .iter()
            .flat_map(|s| s["functions"]["crashy"]["versions"].as_array().cloned().unwrap_or_default())
            .map(|v| format!("{}.wasmzip", v["digest"].as_str().unwrap()))
            .collect();
        referenced.sort();
        referenced.dedup();
        assert_eq!(file_names(&data.join("packages")), referenced, "round {round}: stored packages are exactly the recorded ones");
    }
}

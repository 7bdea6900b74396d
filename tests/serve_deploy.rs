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
    // Malformed deploy queries are refused before anything is read.
    for query in ["?bogus=1", "?grant=not-a-capability"] {
        let r = server.admin_request("POST", &format!("/v1/functions{query}"), &[("authorization", &bearer(ADMIN_TOKEN))], &bytes);
        assert_eq!(r.status, 400, "{query}: {}", r.text());
    }

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

    // A new version of the same function may move its routes; another function then takes the freed
    // one, and rolling the first back onto it is a conflict that changes nothing.
    let first_v2 = ws.http("first", "hello_http").version("2.0.0").routes(&["/first"]).build();
    server.deploy(&first_v2).expect_code(0);
    let third = ws.http("third", "echo").routes(&["/shared"]).build();
    server.deploy(&third).expect_code(0);
    assert_eq!(server.get("/shared").json()["headers"]["x-wasmzip-route-prefix"], "/shared");
    let r = server.cli(&["rollback", "first"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("409") && r.stderr.contains("/shared"), "{}", r.stderr);
    assert_eq!(server.get("/shared").json()["headers"]["x-wasmzip-route-prefix"], "/shared", "third still serves");
    assert_eq!(server.get("/first").text(), HELLO);
    assert_eq!(versions(&function(&server, "first").unwrap()), ["1.0.0", "2.0.0"]);
    // A version of an existing function claiming another's route is refused too.
    let first_v3 = ws.http("first", "hello_http").version("3.0.0").routes(&["/first", "/shared"]).build();
    let r = server.deploy(&first_v3);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("409"), "{}", r.stderr);
    assert_eq!(function(&server, "first").unwrap()["active"]["version"], "2.0.0");
}

#[test]
fn untrusted_unsigned_and_tampered_packages_are_refused_and_change_nothing() {
    use wasmzip_package::archive::{ArchiveLimits, ArchiveReader, ArchiveWriter};
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
            // Each member stored as it was: only the component's bytes differ.
            writer.add(&name, reader.entries()[i].compression, &mut &bytes[..]).unwrap();
        }
        writer.finish().unwrap();
        assert!(changed);
    }
    // Not a package at all.
    let garbage = ws.path("garbage.wasmzip");
    std::fs::write(&garbage, b"this is not a wasmzip package").unwrap();
    // A trusted package with no `http` component.
    let cli = ws.package("app", "hello", &[], "", &[], true);

    for (what, pkg, fragment) in [
        ("untrusted", &untrusted, "which this server does not trust"),
        ("unsigned", &unsigned, "it is not signed"),
        ("tampered", &tampered, "manifest.json pins"),
        ("garbage", &garbage, "422"),
        ("cli", &cli, "no single `http` component"),
    ] {
        let r = server.deploy(&pkg);
        assert_ne!(r.code, 0, "{what} was deployed: {}", r.stdout);
        assert!(r.stderr.contains("422") && r.stderr.contains(fragment), "{what}: {}", r.stderr);
        // The client hears what is wrong with its package, named by its digest: not the server's
        // staging path, nor advice for the server's operator.
        let (digest, _) = wasmzip_package::sha256_file(pkg).unwrap();
        assert!(r.stderr.contains(&format!("the uploaded package (sha256:{digest}) was refused")), "{what}: {}", r.stderr);
        for leaked in ["staging", "--trust", "WASMZIP_TRUST", ws.path("data").to_str().unwrap()] {
            assert!(!r.stderr.contains(leaked), "{what}: the answer mentions `{leaked}`: {}", r.stderr);
        }
        // The server logs the refusal at warn, with the details.
        server.wait_for_log(&["refused a deployment", &digest], Duration::from_secs(5));
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
fn sigint_or_a_second_sigterm_stops_at_once() {
    let ws = Workspace::new();
    let sleepy = ws.http("sleepy", "sleepy").build();
    for signals in [&["-INT"][..], &["-TERM", "-TERM"]] {
        let mut server = ws.serve(&[sleepy.as_os_str(), "--grace-period".as_ref(), "30s".as_ref()]);
        let public = server.public.clone();
        let slow = std::thread::spawn(move || try_http_request(&public, "GET", "/sleepy?ms=20000", &[], b""));
        server.wait_for_log(&["sleepy: sleeping 20000 ms"], Duration::from_secs(10));
        let signalled = Instant::now();
        for s in signals {
            server.signal(s);
            std::thread::sleep(Duration::from_millis(200));
        }
        let status = server.wait_exit(Duration::from_secs(8)).expect("the server stops without waiting for the grace period");
        assert!(signalled.elapsed() < Duration::from_secs(5), "{signals:?}: exiting took {:?}", signalled.elapsed());
        assert_eq!(status.code(), Some(0), "{}", server.stderr_text());
        assert!(server.stderr_text().contains("stopping now"), "{}", server.stderr_text());
        if let Ok(r) = slow.join().unwrap() {
            assert_ne!(r.status, 200, "{signals:?}: the cut-off request cannot have succeeded: {r:?}");
        }
    }
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
    // A few MiB of incompressible resources make each deploy take long enough (upload, hashing,
    // extraction, syncing) for the kills to land inside it.
    let ballast = |seed: u64| {
        let mut x = seed;
        (0..6 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect::<Vec<u8>>()
    };
    let packages: [(PathBuf, &str); 2] = [
        (ws.http("crashy", "hello_http").version("1.0.0").resource("ballast.bin", ballast(1)).build(), "1.0.0"),
        (ws.http("crashy", "echo").version("2.0.0").resource("ballast.bin", ballast(2)).build(), "2.0.0"),
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
        // Half the rounds kill early (0-120 ms, mostly inside the deploy), half anywhere up to 300 ms.
        let delay = Duration::from_millis((seed >> 33) % if round % 4 < 2 { 121 } else { 301 });
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
        assert!(
            file_names(&data).iter().all(|n| !n.starts_with("deployments.json.tmp")),
            "round {round}: a half-written record is cleaned at start: {:?}",
            file_names(&data)
        );
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

#[test]
fn deploy_time_grants_apply_and_persist() {
    let ws = Workspace::new();
    let upstream = Upstream::ok("granted");
    let token = format!("network:outbound:127.0.0.1:{}", upstream.port);
    let v1 = ws.http("fetch", "fetch").capabilities(&[&token]).build();
    let v2 = ws.http("fetch", "fetch").version("2.0.0").capabilities(&[&token]).build();
    let path = format!("/fetch?url={}", query_encode(&upstream.url()));
    let mut server = ws.serve(NONE);

    server.deploy_with(&v1, &["--grant", &token]).expect_code(0);
    assert_eq!(server.get(&path).text(), "upstream 200\ngranted");
    let f = function(&server, "fetch").unwrap();
    assert_eq!(f["capabilities"], serde_json::json!([token]));
    assert_eq!(f["active"]["grants"], serde_json::json!([token]));

    server.kill();
    let server2 = ws.serve(NONE);
    assert_eq!(server2.get(&path).text(), "upstream 200\ngranted", "the grant was kept with the deployment");

    // A new version deployed without the grant runs without it.
    server2.deploy(&v2).expect_code(0);
    let r = server2.get(&path);
    assert_eq!((r.status, r.text().as_str()), (502, "error HttpRequestDenied"));
    assert_eq!(function(&server2, "fetch").unwrap()["capabilities"], serde_json::json!([]));
    // Rolling back brings the granted version back, grant included.
    server2.cli(&["rollback", "fetch"]).expect_code(0);
    assert_eq!(server2.get(&path).text(), "upstream 200\ngranted");
    assert_eq!(upstream.seen().len(), 3);
}

#[test]
fn restarting_with_the_same_package_does_not_add_versions() {
    let ws = Workspace::new();
    let pkg = ws.http("app", "hello_http").build();
    for _ in 0..2 {
        let server = ws.serve(&[&pkg]);
        assert_eq!(server.get("/app").text(), HELLO);
        assert_eq!(versions(&function(&server, "app").unwrap()), ["1.0.0"]);
    }
    // Other grants make it a new deployment.
    let server = ws.serve(&[pkg.as_os_str(), "--grant".as_ref(), "env:HOME".as_ref()]);
    let f = function(&server, "app").unwrap();
    assert_eq!(versions(&f), ["1.0.0", "1.0.0"]);
    assert_eq!(f["active"]["grants"], serde_json::json!(["env:HOME"]));
}

#[test]
fn concurrent_deploys_of_different_functions_all_land() {
    let ws = Workspace::new();
    let packages: Vec<PathBuf> = (0..4).map(|i| ws.http(&format!("f{i}"), "hello_http").build()).collect();
    let server = ws.serve(NONE);
    let url = format!("http://{}", server.admin_addr());
    let token = ws.token_file();
    let handles: Vec<_> = packages
        .iter()
        .map(|p| {
            let args: Vec<std::ffi::OsString> =
                vec!["deploy".into(), p.into(), "--server".into(), url.clone().into(), "--token-file".into(), token.clone().into()];
            std::thread::spawn(move || run(args))
        })
        .collect();
    for h in handles {
        h.join().unwrap().expect_code(0);
    }
    for i in 0..4 {
        assert_eq!(server.get(&format!("/f{i}")).text(), HELLO, "f{i}");
    }
    let listed = functions(&server);
    assert_eq!(listed["functions"].as_array().unwrap().len(), 4, "{listed}");
    let sequences: std::collections::BTreeSet<u64> =
        listed["functions"].as_array().unwrap().iter().map(|f| f["active"]["sequence"].as_u64().unwrap()).collect();
    assert_eq!(sequences, (1..=4).collect(), "each deploy got its own sequence number");
    assert!(server.metrics().contains("wasmzip_functions_deployed 4"));
}

#[test]
fn five_versions_are_kept_for_rollback() {
    let ws = Workspace::new();
    let server = ws.serve(NONE);
    for minor in 1..=7 {
        let pkg = ws.http("app", "hello_http").version(&format!("1.{minor}.0")).build();
        server.deploy(&pkg).expect_code(0).stdout_has(&[&format!("deployed app 1.{minor}.0")]);
    }
    let f = function(&server, "app").unwrap();
    assert_eq!(versions(&f), ["1.3.0", "1.4.0", "1.5.0", "1.6.0", "1.7.0"]);
    for back_to in ["1.6.0", "1.5.0", "1.4.0", "1.3.0"] {
        server.cli(&["rollback", "app"]).expect_code(0).stdout_has(&[&format!("now serves version {back_to}")]);
    }
    let r = server.cli(&["rollback", "app"]);
    assert_ne!(r.code, 0, "the oldest kept version has nothing before it");
    assert_eq!(server.get("/app").text(), HELLO);
}

#[test]
fn stored_packages_do_not_outgrow_the_kept_versions() {
    let ws = Workspace::new();
    let server = ws.serve(NONE);
    for minor in 1..=8 {
        let pkg = ws.http("app", "hello_http").version(&format!("1.{minor}.0")).build();
        server.deploy(&pkg).expect_code(0);
    }
    let stored = file_names(&ws.path("data/packages"));
    assert_eq!(stored.len(), 5, "{stored:?}");
}

#[test]
fn a_remove_does_not_break_a_deploy_being_uploaded() {
    use std::io::{Read, Write};
    let ws = Workspace::new();
    let other = ws.http("other", "hello_http").build();
    let app = ws.http("app", "hello_http").build();
    let server = ws.serve(NONE);
    server.deploy(&other).expect_code(0);

    // Upload half of app's package and hold the rest back.
    let bytes = std::fs::read(&app).unwrap();
    let mut stream = std::net::TcpStream::connect(server.admin_addr()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!(
        "POST /v1/functions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        bytes.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let half = bytes.len() / 2;
    stream.write_all(&bytes[..half]).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || !file_names(&ws.path("data/staging")).is_empty()),
        "the upload never reached staging/"
    );

    // Meanwhile another function is removed.
    server.cli(&["remove", "other"]).expect_code(0);

    stream.write_all(&bytes[half..]).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let answer = String::from_utf8_lossy(&raw);
    assert!(answer.starts_with("HTTP/1.1 201"), "the deploy failed: {answer}");
    assert_eq!(server.get("/app").text(), HELLO);
}

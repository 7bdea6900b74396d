//! `wasmzip serve` with WASI 0.3 handlers (`wasi:http/service`): instance reuse and its limits,
//! per-request scope inside a shared instance, deadlines, traps, outbound policy, deploys under
//! load, admission, and bare `.wasm` components. The real binary, the real `-p3` guests.

mod common;

use std::ffi::{OsStr, OsString};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;

/// `wasmzip serve` with one connection thread. Each connection thread has its own instances of a
/// WASI 0.3 version, so the tests about which requests share an instance serve on one thread
/// (`each_connection_thread_has_its_own_instances` covers two).
fn serve_one_thread<S: AsRef<OsStr>>(ws: &Workspace, extra: &[S]) -> Server {
    let mut args: Vec<OsString> = extra.iter().map(|a| a.as_ref().to_owned()).collect();
    args.extend(["--workers".into(), "1".into()]);
    ws.serve(&args)
}

/// A trace id for requests a test wants to recognise.
fn trace(n: u8) -> String {
    format!("{:032x}", 0x0af7_6519_16cd_43dd_8448_eb21_1c80_3100u128 + u128::from(n))
}

fn traceparent(id: &str) -> String {
    format!("00-{id}-b7ad6b7169203331-01")
}

/// `(instance, count)` from a `counter-p3` answer.
#[track_caller]
fn counted(r: &HttpResponse) -> (String, u64) {
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    (v["instance"].as_str().unwrap().to_string(), v["count"].as_u64().unwrap())
}

#[test]
fn a_counter_climbs_to_the_per_instance_limit_then_starts_over() {
    let ws = Workspace::new();
    let counter = ws.http("counter", "counter_p3").line("reuse = { max_requests = 3 }").build();
    let server = serve_one_thread(&ws, &[counter]);
    let answers: Vec<(String, u64)> = (0..7).map(|_| counted(&server.get("/counter"))).collect();
    let counts: Vec<u64> = answers.iter().map(|a| a.1).collect();
    assert_eq!(counts, [1, 2, 3, 1, 2, 3, 1], "{answers:?}");
    assert_eq!(answers[0].0, answers[2].0, "one instance served the first three");
    assert_ne!(answers[2].0, answers[3].0, "the fourth request got a new instance");
    assert_ne!(answers[3].0, answers[6].0);

    // The admin API says what it serves.
    let r = server.cli(&["functions", "--json"]);
    r.expect_code(0);
    let listed: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let f = &listed["functions"][0];
    assert_eq!((f["wasi"].as_str(), f["reuse_max_requests"].as_u64(), f["reuse_max_concurrent"].as_u64()), (Some("0.3"), Some(3), Some(16)), "{f}");
}

#[test]
fn reuse_off_in_the_manifest_or_by_the_operator_gives_fresh_instances() {
    let ws = Workspace::new();
    let fresh = ws.http("fresh", "counter_p3").line("reuse = false").build();
    let reused = ws.http("reused", "counter_p3").build();
    let server = serve_one_thread(&ws, &[&fresh, &reused]);
    let a: Vec<(String, u64)> = (0..3).map(|_| counted(&server.get("/fresh"))).collect();
    assert!(a.iter().all(|(_, n)| *n == 1), "{a:?}");
    assert!(a[0].0 != a[1].0 && a[1].0 != a[2].0, "{a:?}");
    // Reused by default (128 requests per instance), while the other is not.
    let b: Vec<u64> = (0..3).map(|_| counted(&server.get("/reused")).1).collect();
    assert_eq!(b, [1, 2, 3]);
    drop(server);

    // The operator turns reuse off for every function, and lowers the manifest's limits.
    let server = Server::start(ws.serve_args(&ws.path("data2"), &[reused.as_os_str(), "--no-reuse".as_ref(), "--workers".as_ref(), "1".as_ref()]), &[]);
    let c: Vec<u64> = (0..3).map(|_| counted(&server.get("/reused")).1).collect();
    assert_eq!(c, [1, 1, 1]);
    drop(server);
    let server = Server::start(ws.serve_args(&ws.path("data3"), &[reused.as_os_str(), "--reuse-max-requests".as_ref(), "2".as_ref(), "--workers".as_ref(), "1".as_ref()]), &[]);
    let d: Vec<u64> = (0..4).map(|_| counted(&server.get("/reused")).1).collect();
    assert_eq!(d, [1, 2, 1, 2]);
}

#[test]
fn a_manifest_that_asks_for_reuse_carries_its_limits() {
    let ws = Workspace::new();
    for (pkg, limited) in [(ws.http("plain", "counter_p3").build(), false), (ws.http("limited", "counter_p3").line("reuse = { max_concurrent = 4, idle_timeout = \"250ms\" }").build(), true)] {
        let r = run(["inspect".as_ref(), pkg.as_os_str(), "--json".as_ref()]);
        r.expect_code(0);
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout));
        // Every package `pack` writes is schema 2 (format 2); `reuse` is only written when asked for.
        assert_eq!(v["schema"].as_u64(), Some(2), "{v}");
        let reuse = v["components"][0]["reuse"].clone();
        if limited {
            assert_eq!(reuse, serde_json::json!({"enabled": true, "max_concurrent": 4, "idle_timeout_ms": 250}));
        } else {
            assert!(reuse.is_null(), "{v}");
        }
    }
    // Bad values name the key and the file.
    let dir = ws.path("bad");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(guest("counter_p3"), dir.join("c.wasm")).unwrap();
    for (line, expected) in [
        ("reuse = { max_requests = 0 }", "greater than zero"),
        ("reuse = { max_request = 3 }", "unknown field `max_request`"),
        ("reuse = \"yes\"", "`false`, `true`, or a table"),
    ] {
        std::fs::write(dir.join("wasmzip.toml"), format!("[package]\nname = \"bad\"\nversion = \"1.0.0\"\n[components.bad]\nfile = \"c.wasm\"\nworld = \"http\"\n{line}\n")).unwrap();
        let r = run(["pack".as_ref(), dir.as_os_str(), "--unsigned".as_ref(), "-o".as_ref(), ws.path("bad.wasmzip").as_os_str()]);
        r.expect_code(125).stderr_has(&["wasmzip.toml", "reuse", expected]);
    }
    std::fs::write(dir.join("wasmzip.toml"), "[package]\nname = \"bad\"\nversion = \"1.0.0\"\n[components.bad]\nfile = \"c.wasm\"\nworld = \"cli\"\nreuse = false\n").unwrap();
    let r = run(["pack".as_ref(), dir.as_os_str(), "--unsigned".as_ref(), "-o".as_ref(), ws.path("bad.wasmzip").as_os_str()]);
    r.expect_code(125).stderr_has(&["components.bad", "apply to `http` components"]);
}

#[test]
fn a_slow_request_does_not_hold_up_a_fast_one_in_the_same_instance_and_alone_gets_504() {
    let ws = Workspace::new();
    let echo = ws.http("echo", "echo_p3").limits("timeout = \"700ms\"").build();
    let server = Arc::new(serve_one_thread(&ws, &[echo]));
    let slow = {
        let server = server.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let r = server.get("/echo?wait=5000");
            (r, started.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(150));
    let started = Instant::now();
    let fast = server.get("/echo?wait=10");
    let fast_took = started.elapsed();
    assert_eq!(fast.status, 200, "{}", fast.text());
    assert_eq!(fast.json()["counter"], 2, "the fast request ran in the slow one's instance: {}", fast.text());
    assert!(fast_took < Duration::from_millis(500), "the fast request waited {fast_took:?}");
    let (slow, slow_took) = slow.join().unwrap();
    assert_eq!(slow.status, 504, "{}", slow.text());
    assert!(slow_took < Duration::from_millis(2000), "the 504 took {slow_took:?}");
    server.wait_for_log(&["exceeded its time limit of 700ms"], Duration::from_secs(5));
    // The instance took no new request once one was past its deadline: the next one is fresh.
    let next = server.get("/echo");
    assert_eq!((next.status, next.json()["counter"].as_u64()), (200, Some(1)), "{}", next.text());
}

#[test]
fn a_trap_fails_only_the_requests_of_its_instance() {
    let ws = Workspace::new();
    let echo = ws.http("echo", "echo_p3").build();
    let other = ws.http("other", "counter_p3").build();
    let server = Arc::new(serve_one_thread(&ws, &[echo, other]));
    assert_eq!(counted(&server.get("/other")).1, 1);
    let waiting = {
        let server = server.clone();
        std::thread::spawn(move || server.get("/echo?wait=1500"))
    };
    std::thread::sleep(Duration::from_millis(200));
    let trapped = server.get("/echo?trap");
    assert_eq!(trapped.status, 500, "{}", trapped.text());
    let trapped_id = trapped.header("x-request-id").unwrap().to_string();
    assert!(trapped.text().contains("trapped") && trapped.text().contains(&trapped_id), "{}", trapped.text());
    // The request that shared the instance fails too, with its own id.
    let waiting = waiting.join().unwrap();
    assert_eq!(waiting.status, 500, "{}", waiting.text());
    let waiting_id = waiting.header("x-request-id").unwrap().to_string();
    assert_ne!(waiting_id, trapped_id);
    assert!(waiting.text().contains(&waiting_id), "{}", waiting.text());
    server.wait_for_log(&["echo-p3 asked to trap", &trapped_id], Duration::from_secs(5));
    let line = server.wait_for_log(&["the function trapped", "wasm trap"], Duration::from_secs(5));
    assert!(line.contains("instance 1 ended after 2 requests"), "{line}");
    // The next request gets a new instance; the other function's instance lives on.
    let next = server.get("/echo");
    assert_eq!((next.status, next.json()["counter"].as_u64()), (200, Some(1)), "{}", next.text());
    assert_eq!(counted(&server.get("/other")).1, 2);
    assert!(server.metrics().contains(r#"wasmzip_traps_total{function="echo",version="1.0.0"} 1"#), "{}", server.metrics());
}

#[test]
fn requests_in_one_instance_keep_their_own_ids_in_logs_and_outbound_trace_context() {
    let ws = Workspace::new();
    let upstream = Upstream::ok("upstream-ok");
    let token = format!("network:outbound:127.0.0.1:{}", upstream.port);
    let fetch = ws.http("fetch", "fetch_p3").capabilities(&[&token]).build();
    let sleepy = ws.http("sleepy", "sleepy_p3").build();
    let server = Arc::new(serve_one_thread(&ws, &[fetch.as_os_str(), sleepy.as_os_str(), "--grant-requested".as_ref()]));
    let url = format!("/fetch?url={}", query_encode(&format!("{}/x", upstream.url())));
    for n in 1..=2 {
        let r = server.request("GET", &url, &[("traceparent", &traceparent(&trace(n)))], b"");
        assert_eq!((r.status, r.text().as_str()), (200, "upstream 200\nupstream-ok"));
    }
    let seen = upstream.seen();
    for (i, n) in (1..=2).enumerate() {
        let tp = seen[i].header("traceparent").unwrap_or_default();
        assert!(tp.starts_with(&format!("00-{}-", trace(n))), "request {n} carried {tp}: {seen:?}");
    }

    // Two requests in flight in one instance at once: each line is tagged with its own request.
    let clients: Vec<_> = (3..=4)
        .map(|n| {
            let server = server.clone();
            std::thread::spawn(move || server.request("GET", "/sleepy?ms=300", &[("traceparent", &traceparent(&trace(n)))], b""))
        })
        .collect();
    for c in clients {
        assert_eq!(c.join().unwrap().status, 200);
    }
    for n in 3..=4 {
        let line = server.wait_for_log(&["sleepy-p3: sleeping 300 ms", &trace(n)], Duration::from_secs(5));
        assert!(line.contains("function=sleepy"), "{line}");
        server.wait_for_log(&["sleepy-p3: stdout line", &trace(n)], Duration::from_secs(5));
    }
}

#[test]
fn outbound_denials_budgets_and_audit_lines_are_per_request() {
    let ws = Workspace::new();
    let target = Upstream::ok("from-b");
    let redirect = Upstream::start(302, &[("Location", &format!("{}/landed", target.url()))], "", 16);
    let a = format!("network:outbound:127.0.0.1:{}", redirect.port);
    let b = format!("network:outbound:127.0.0.1:{}", target.port);
    let denied = ws.http("denied", "fetch_p3").capabilities(&[&a]).build();
    let limited = ws.http("limited", "fetch_p3").capabilities(&[&a, &b]).limits("outbound_requests = 1").build();
    let server = serve_one_thread(&ws, &[denied.as_os_str(), limited.as_os_str(), "--grant-requested".as_ref()]);
    let url = format!("{}/start", redirect.url());

    let r = server.request("GET", &format!("/denied?url={}", query_encode(&url)), &[("traceparent", &traceparent(&trace(1)))], b"");
    assert_eq!((r.status, r.text().as_str()), (502, "error HttpRequestDenied"));
    let line = server.wait_for_log(&["wasmzip::audit", "denied@1.0.0", &format!("(needs {b})")], Duration::from_secs(5));
    assert!(line.contains(&format!("request {}", trace(1))), "the audit line names the request: {line}");

    // One outbound request per request: each request of the reused instance has its own budget.
    for n in 2..=3 {
        let r = server.request("GET", &format!("/limited?url={}", query_encode(&url)), &[("traceparent", &traceparent(&trace(n)))], b"");
        assert_eq!((r.status, r.text().as_str()), (502, "error HttpRequestDenied"), "request {n}");
        let line = server.wait_for_log(&["wasmzip::audit", "over the limit of 1", &trace(n)], Duration::from_secs(5));
        assert!(line.contains("limited@1.0.0"), "{line}");
    }
    assert_eq!(target.seen().len(), 0, "no second hop went out");
    let direct = format!("{}/direct", target.url());
    let r = server.get(&format!("/limited?url={}", query_encode(&direct)));
    assert_eq!((r.status, r.text().as_str()), (200, "upstream 200\nfrom-b"));
    let metrics = server.metrics();
    assert!(metrics.contains(r#"wasmzip_denials_total{function="limited",kind="outbound-limit"} 2"#), "{metrics}");
    assert!(metrics.contains(r#"wasmzip_denials_total{function="denied",kind="outbound-http"} 1"#), "{metrics}");
}

#[test]
fn deploys_and_rollbacks_under_load_drop_no_request() {
    let ws = Workspace::new();
    let v1 = ws.http("svc", "counter_p3").version("1.0.0").build();
    let v2 = ws.http("svc", "echo_p3").version("2.0.0").build();
    let server = Arc::new(serve_one_thread(&ws, &[v1]));
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (from_v1, from_v2) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (server, stop, failures, from_v1, from_v2) = (server.clone(), stop.clone(), failures.clone(), from_v1.clone(), from_v2.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match try_http_request(&server.public, "GET", "/svc", &[], b"") {
                        Ok(r) if r.status == 200 => {
                            let which = if r.json().get("instance").is_some() { &from_v1 } else { &from_v2 };
                            which.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => failures.lock().unwrap().push(format!("{} {}", r.status, r.text())),
                        Err(e) => failures.lock().unwrap().push(e),
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    server.deploy(&v2).expect_code(0);
    std::thread::sleep(Duration::from_millis(500));
    server.cli(&["rollback", "svc"]).expect_code(0);
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let failures = failures.lock().unwrap();
    assert!(failures.is_empty(), "{} requests failed: {:?}", failures.len(), &failures[..failures.len().min(5)]);
    assert!(from_v1.load(Ordering::Relaxed) > 0 && from_v2.load(Ordering::Relaxed) > 0, "v1 {from_v1:?}, v2 {from_v2:?}");
    // After the rollback only version 1 answers.
    assert!(server.get("/svc").json().get("instance").is_some());
}

#[test]
fn overload_answers_503_with_retry_after() {
    let ws = Workspace::new();
    let sleepy = ws.http("sleepy", "sleepy_p3").build();
    // At most two requests in flight server-wide.
    let server = Arc::new(serve_one_thread(&ws, &[sleepy.as_os_str(), "--max-in-flight".as_ref(), "2".as_ref()]));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let server = server.clone();
            std::thread::spawn(move || server.get("/sleepy?ms=1000"))
        })
        .collect();
    let answers: Vec<HttpResponse> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let shed: Vec<&HttpResponse> = answers.iter().filter(|r| r.status == 503).collect();
    assert_eq!((answers.len() - shed.len(), shed.len()), (2, 2), "{:?}", answers.iter().map(|r| r.status).collect::<Vec<_>>());
    assert!(shed.iter().all(|r| r.header("retry-after") == Some("1")), "{shed:?}");
    drop(server);

    // One pool slot and one request per instance: a second request at once needs a second
    // instance, and there is no slot for one.
    let args = [sleepy.as_os_str(), "--pool-instances".as_ref(), "1".as_ref(), "--reuse-max-concurrent".as_ref(), "1".as_ref(), "--no-spares".as_ref()];
    let server = Arc::new(Server::start(ws.serve_args(&ws.path("data2"), &args), &[]));
    let first = {
        let server = server.clone();
        std::thread::spawn(move || server.get("/sleepy?ms=800"))
    };
    std::thread::sleep(Duration::from_millis(200));
    let second = server.get("/sleepy?ms=10");
    assert_eq!(second.status, 503, "{}", second.text());
    assert_eq!(second.header("retry-after"), Some("1"));
    assert_eq!(first.join().unwrap().status, 200);
    assert!(server.metrics().contains("wasmzip_shed_total 1"), "{}", server.metrics());
}

#[test]
fn a_bare_wasm_is_served_at_the_root_and_its_address_comes_first_on_stderr() {
    let ws = Workspace::new();
    let hello = guest("hello_http_p3");
    // Unsigned code needs the operator's word.
    let r = run(["serve".as_ref(), hello.as_os_str(), "--listen".as_ref(), "127.0.0.1:0".as_ref(), "--data-dir".as_ref(), ws.path("d0").as_os_str()]);
    r.expect_code(125).stderr_has(&["hello_http_p3.wasm is a bare .wasm", "--allow-unsigned"]);

    let args = ws.serve_args(&ws.path("data"), &[hello.as_os_str(), "--allow-unsigned".as_ref()]);
    let server = Server::start(args, &[]);
    let first = server.stderr().first().cloned().unwrap_or_default();
    assert_eq!(first, format!("http://{}", server.public), "{}", server.stderr_text());
    let r = server.get("/");
    assert_eq!((r.status, r.text().as_str()), (200, "Hello from wasmzip!\n"));
    assert_eq!(server.get("/any/path").status, 200);

    // `deploy` takes one too, granted only what --grant says.
    let upstream = Upstream::ok("upstream-ok");
    let token = format!("network:outbound:127.0.0.1:{}", upstream.port);
    let ws2 = Workspace::new();
    let server = ws2.serve(&["--allow-unsigned"]);
    server.deploy_with(&guest("fetch_p3"), &["--grant", &token]).expect_code(0).stdout_has(&["deployed fetch-p3 0.0.0", "on /"]);
    let r = server.get(&format!("/?url={}", query_encode(&upstream.url())));
    assert_eq!((r.status, r.text().as_str()), (200, "upstream 200\nupstream-ok"));
}

#[test]
fn wasi_0_2_and_0_3_functions_are_served_side_by_side() {
    let ws = Workspace::new();
    let p2 = ws.http("echo2", "echo").build();
    let p3 = ws.http("echo3", "echo_p3").build();
    let server = serve_one_thread(&ws, &[p2, p3]);
    for _ in 0..3 {
        let r = server.post("/echo2/x?a=1", b"two");
        assert_eq!((r.status, r.json()["counter"].as_u64()), (200, Some(1)), "0.2: a fresh instance each time");
    }
    let mut counters = Vec::new();
    for _ in 0..3 {
        let r = server.post("/echo3/x?a=1", b"three");
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        assert_eq!((v["path"].as_str(), v["body"].as_str()), (Some("/echo3/x?a=1"), Some("three")));
        assert_eq!(v["headers"]["x-wasmzip-route-prefix"], "/echo3");
        counters.push(v["counter"].as_u64().unwrap());
    }
    assert_eq!(counters, [1, 2, 3], "0.3: one instance serves them all");
    // Bodies over the limit are refused before the guest, as for 0.2.
    drop(server);
    let small = ws.http("small", "echo_p3").limits("request_body = \"1KiB\"").build();
    let server = Server::start(ws.serve_args(&ws.path("data2"), &[small]), &[]);
    assert_eq!(server.post("/small", &[b'x'; 2048]).status, 413);
    assert_eq!(server.post("/small", &[b'x'; 1024]).status, 200);
}

#[test]
fn a_request_that_computes_without_yielding_is_stopped_at_its_deadline() {
    let ws = Workspace::new();
    let sleepy = ws.http("sleepy", "sleepy_p3").limits("timeout = \"500ms\"").build();
    let other = ws.http("other", "counter_p3").build();
    let server = Arc::new(serve_one_thread(&ws, &[sleepy, other]));
    let spinning = {
        let server = server.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            (server.get("/sleepy?spin=5000"), started.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    // Another function's instance is not held up by the spinning one.
    let started = Instant::now();
    assert_eq!(counted(&server.get("/other")).1, 1);
    assert!(started.elapsed() < Duration::from_millis(400), "the other function waited {:?}", started.elapsed());
    let (r, took) = spinning.join().unwrap();
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(took < Duration::from_millis(2500), "the 504 took {took:?}");
    // The function serves again, from a new instance.
    let r = server.get("/sleepy?ms=1");
    assert_eq!((r.status, r.text().as_str()), (200, "slept 1\n"));
}

/// The typed-serde transform as a 0.3 service (reused) and as its 0.2 twin (fresh instances): the
/// same bytes out for the same body, and a body that is not an array of records is a 400 that
/// names where serde_json stopped.
#[test]
fn the_serde_json_transform_answers_alike_under_wasi_0_2_and_0_3() {
    let ws = Workspace::new();
    let p3 = ws.http("json3", "json_transform_p3").build();
    let p2 = ws.http("json2", "json_transform_serde").build();
    let server = serve_one_thread(&ws, &[p3, p2]);
    let body = r#"[{"name":"straße","price":2.5,"quantity":4,"active":true,"sku":"x"},{"name":"b","active":false},{"price":1,"active":true}]"#.as_bytes();
    let three = server.post("/json3", body);
    let two = server.post("/json2", body);
    assert_eq!((three.status, two.status), (200, 200), "{} / {}", three.text(), two.text());
    assert_eq!(three.text(), two.text());
    assert_eq!(
        three.json(),
        serde_json::json!({"count": 2, "sum_total": 10.0, "records": [
            {"name": "straße", "price": 2.5, "quantity": 4.0, "active": true, "total": 10.0, "name_upper": "STRASSE"},
            {"price": 1.0, "active": true, "total": 0.0},
        ]})
    );
    for path in ["/json3", "/json2"] {
        let r = server.post(path, b"[{\"price\": \"cheap\"}]");
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        let error = r.json()["error"].as_str().unwrap().to_string();
        assert!(error.contains("invalid type") && error.contains("line 1 column"), "{path}: {error}");
    }
}

/// With two connection threads, a request on a new connection while the first thread's only
/// instance is busy goes to the other thread (the one with fewer connections), which has
/// instances of its own: it starts a fresh one there and is not held up.
#[test]
fn each_connection_thread_has_its_own_instances() {
    let ws = Workspace::new();
    let echo = ws.http("echo", "echo_p3").build();
    let server = Arc::new(ws.serve(&[echo.as_os_str(), "--workers".as_ref(), "2".as_ref()]));
    let slow = {
        let server = server.clone();
        std::thread::spawn(move || server.get("/echo?wait=1500"))
    };
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let other = server.get("/echo?wait=10");
    assert_eq!((other.status, other.json()["counter"].as_u64()), (200, Some(1)), "{}", other.text());
    assert!(started.elapsed() < Duration::from_millis(1000), "waited {:?}", started.elapsed());
    let slow = slow.join().unwrap();
    assert_eq!((slow.status, slow.json()["counter"].as_u64()), (200, Some(1)), "{}", slow.text());
}

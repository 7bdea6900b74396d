//! `wasmzip run` with WASI 0.3 components end to end: the same capabilities, denials, audit lines
//! and limits as for 0.2, through the real binary and the 0.3 guests (`fs-tool-p3`, `net-probe-p3`,
//! `concurrent-p3`), packaged and bare.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::*;

fn fs_layout(ws: &Workspace) {
    std::fs::create_dir_all(ws.path("data")).unwrap();
    std::fs::create_dir_all(ws.path("out")).unwrap();
    std::fs::write(ws.path("data/in.txt"), "hello data").unwrap();
    std::fs::write(ws.path("secret.txt"), "TOP SECRET").unwrap();
}

/// An upstream on 127.0.0.1 that answers each connection's first chunk with `pong`, forever.
fn pong_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 64];
                let _ = stream.read(&mut buf);
                let _ = stream.write_all(b"pong\n");
            });
        }
    });
    port
}

#[test]
fn inspect_names_the_wasi_versions() {
    let ws = Workspace::new();
    let pkg = ws.package("fsp3", "fs_tool_p3", &["filesystem:read:/data"], "", &[], true);
    let r = run(["inspect".as_ref(), pkg.as_os_str()]);
    r.expect_code(0).stdout_has(&["wasi 0.2 + 0.3", "wasi:cli/run@0.3", "wasi:filesystem/types@0.3"]);
    let json = run(["inspect".as_ref(), pkg.as_os_str(), "--json".as_ref()]);
    let value: serde_json::Value = serde_json::from_str(&json.expect_code(0).stdout).unwrap();
    assert_eq!(value["components"][0]["wasi"], serde_json::json!(["0.2", "0.3"]), "{}", json.stdout);
    let p2 = ws.package("fsp2", "fs-tool", &[], "", &[], true);
    run(["inspect".as_ref(), p2.as_os_str()]).expect_code(0).stdout_has(&["wasi 0.2)"]);
}

#[test]
fn filesystem_grants_apply_to_streams() {
    let ws = Workspace::new();
    fs_layout(&ws);
    let pkg = ws.package("fsp3", "fs_tool_p3", &["filesystem:read:/data", "filesystem:write:/out"], "", &[], true);
    let data = format!("/data={}", ws.path("data").display());
    let out = format!("/out={}", ws.path("out").display());
    let fs = |args: &[&str]| {
        let mut all = vec!["--grant-requested", "--mount", &data, "--mount", &out, "--"];
        all.extend_from_slice(args);
        ws.run_pkg(&pkg, &all)
    };
    fs(&["read", "/data/in.txt"]).expect_code(0).stdout_has(&["ok\nhello data"]);
    fs(&["ls", "/data"]).expect_code(0).stdout_has(&["ok\nin.txt"]);
    fs(&["stat", "/data/in.txt"]).expect_code(0).stdout_has(&["len=10"]);
    // Read-only: every change is refused by the host, and nothing changes.
    for args in [&["write", "/data/new.txt", "x"][..], &["rm", "/data/in.txt"], &["mkdir", "/data/d"]] {
        let r = fs(args);
        r.expect_code(1);
        assert!(r.stdout.starts_with("error: "), "{args:?}: {}", r.stdout);
    }
    assert_eq!(std::fs::read_to_string(ws.path("data/in.txt")).unwrap(), "hello data");
    assert!(!ws.path("data/new.txt").exists() && !ws.path("data/d").exists());
    // Writable: a stream of bytes lands in the file.
    fs(&["write", "/out/new.txt", "streamed through wasi 0.3"]).expect_code(0);
    assert_eq!(std::fs::read_to_string(ws.path("out/new.txt")).unwrap(), "streamed through wasi 0.3");
    fs(&["mkdir", "/out/d"]).expect_code(0);
    assert!(ws.path("out/d").is_dir());
    // Outside every preopen, and `..` out of one: nothing to open.
    fs(&["read", "/secret.txt"]).expect_code(1).stdout_has(&["error: no-preopen"]);
    let r = fs(&["read", "/data/../secret.txt"]);
    r.expect_code(1);
    assert!(!r.stdout.contains("TOP SECRET"), "{}", r.stdout);

    // Not granted: no preopen at all, and a warning names the request.
    let r = ws.run_pkg(&pkg, &["--mount", &data, "--", "read", "/data/in.txt"]);
    r.expect_code(1).stdout_has(&["error: no-preopen"]).stderr_has(&["not granted", "filesystem:read:/data"]);
}

#[test]
fn environment_is_only_what_is_granted() {
    let ws = Workspace::new();
    let pkg = ws.package("envp3", "fs_tool_p3", &["env:GREETING"], "", &[], true);
    ws.run_pkg(&pkg, &["--grant-requested", "--env", "GREETING=hi", "--", "env", "GREETING"]).expect_code(0).stdout_has(&["ok\nhi"]);
    ws.run_pkg(&pkg, &["--env", "GREETING=hi", "--", "env", "GREETING"]).expect_code(0).stdout_has(&["<unset>"]);
    ws.run_pkg(&pkg, &["--grant-requested", "--env", "OTHER=x", "--", "env", "OTHER"]).expect_code(0).stdout_has(&["<unset>"]);
}

#[test]
fn sockets_go_through_the_same_address_check_and_lookup_filter() {
    let port = pong_server();
    let wasm = guest("net_probe_p3");
    let probe = |grants: &[String], probes: &[String]| {
        let mut args: Vec<String> = vec!["run".into()];
        for g in grants {
            args.extend(["--grant".into(), g.clone()]);
        }
        args.push(wasm.display().to_string());
        args.push("--".into());
        args.extend(probes.iter().cloned());
        run(&args)
    };
    let connect = format!("connect:127.0.0.1:{port}");
    let by_name = format!("connect:localhost:{port}");
    // Nothing granted: every use is denied, and each denial is an audit line naming the token.
    let r = probe(&[], &[connect.clone(), "resolve:localhost".into(), "listen:0".into()]);
    r.expect_code(0).stdout_has(&[&format!("connect 127.0.0.1:{port} error ErrorCode::AccessDenied"), "resolve localhost error ErrorCode::AccessDenied", "listen 0 error"]);
    r.stderr_has(&[&format!("needs network:outbound:127.0.0.1:{port}"), "needs network:outbound:localhost:*", "wasmzip::audit"]);
    // Granted by address: that address and port only.
    let r = probe(&[format!("network:outbound:127.0.0.1:{port}")], &[connect.clone(), format!("connect:127.0.0.1:{}", port.wrapping_add(1))]);
    r.expect_code(0).stdout_has(&[&format!("connect 127.0.0.1:{port} ok pong"), "error ErrorCode::AccessDenied"]);
    // Granted by name: the lookup is allowed and the addresses it returned may be reached.
    let r = probe(&[format!("network:outbound:localhost:{port}")], &["resolve:localhost".into(), by_name, connect]);
    r.expect_code(0).stdout_has(&["resolve localhost ok 127.0.0.1", &format!("connect localhost:{port} ok pong")]);
}

#[test]
fn outbound_http_goes_through_the_same_policy() {
    let upstream = Upstream::ok("upstream says hi");
    let port = upstream.port;
    let wasm = guest("net_probe_p3");
    let url = format!("http:http://127.0.0.1:{port}/hello");
    let w = wasm.display().to_string();
    let granted = format!("network:outbound:127.0.0.1:{port}");
    run(["run", "--grant", &granted, &w, "--", &url]).expect_code(0).stdout_has(&[&format!("http http://127.0.0.1:{port}/hello ok 200 upstream says hi")]);
    let r = run(["run", &w, "--", &url]);
    r.expect_code(0).stdout_has(&["error ErrorCode::HttpRequestDenied"]).stderr_has(&["outbound HTTP request to 127.0.0.1", &format!("needs {granted}")]);
    // A wildcard grant never reaches a private address.
    let r = run(["run", "--grant", "network:outbound:*", &w, "--", &url]);
    r.expect_code(0).stdout_has(&["error ErrorCode::HttpRequestDenied"]).stderr_has(&["private address 127.0.0.1"]);
}

#[test]
fn many_futures_run_at_once() {
    let wasm = guest("concurrent_p3");
    let w = wasm.display().to_string();
    // 500 timers of 300 ms each, joined: they wait together, not one after another.
    let started = Instant::now();
    let r = run(["run", &w, "--", "timers", "500", "300"]);
    r.expect_code(0).stdout_has(&["timers 500 ok"]);
    let elapsed: u64 = r.stdout.trim().rsplit(' ').next().unwrap().parse().unwrap();
    assert!((300..3_000).contains(&elapsed), "500 concurrent 300 ms timers took {elapsed} ms");
    assert!(started.elapsed() < Duration::from_secs(20));
    // 40 sockets connected and exchanging at once, each through the address check.
    let port = pong_server();
    let target = format!("127.0.0.1:{port}");
    let granted = format!("network:outbound:{target}");
    run(["run", "--grant", &granted, &w, "--", "connects", "40", &target]).expect_code(0).stdout_has(&["connects 40 ok 40"]);
    run(["run", &w, "--", "connects", "5", &target]).expect_code(0).stdout_has(&["connects 5 error ErrorCode::AccessDenied"]);
}

#[test]
fn limits_hold_while_a_guest_waits_or_computes() {
    let wasm = guest("concurrent_p3");
    let w = wasm.display().to_string();
    // A guest waiting on a future that never resolves, on a long timer, or computing without
    // yielding, is stopped at its deadline.
    for args in [&["never"][..], &["sleep", "60000"], &["spin"]] {
        let started = Instant::now();
        let mut all = vec!["run", "--timeout", "500ms", &w, "--"];
        all.extend_from_slice(args);
        run(&all).expect_code(TIMEOUT).stderr_has(&["time limit of 500ms"]);
        assert!(started.elapsed() < Duration::from_secs(10), "{args:?} took {:?}", started.elapsed());
    }
    run(["run", "--timeout", "5s", &w, "--", "sleep", "50"]).expect_code(0).stdout_has(&["slept 50"]);
    // Memory: all memories together, under the operator's limit.
    run(["run", "--max-memory", "64MiB", &w, "--", "alloc", "16"]).expect_code(0).stdout_has(&["alloc 16 ok"]);
    run(["run", "--max-memory", "64MiB", &w, "--", "alloc", "128"]).expect_code(MEMORY).stderr_has(&["memory limit of 64MiB"]);
    // Handles: the streams and futures a guest makes count against the same cap as its resources,
    // each end one handle: 8,000 pairs fit in 16,384, 9,000 do not.
    run(["run", &w, "--", "handles", "8000"]).expect_code(0).stdout_has(&["handles 8000 ok"]);
    run(["run", &w, "--", "handles", "9000"]).expect_code(TRAP).stderr_has(&["store handle limit exceeded"]);
}

#[test]
fn a_manifest_timeout_applies_to_0_3_guests() {
    let ws = Workspace::new();
    let pkg = ws.package("slow", "concurrent_p3", &[], "limits = { timeout = \"300ms\" }", &[], true);
    ws.run_pkg(&pkg, &["--", "sleep", "30000"]).expect_code(TIMEOUT).stderr_has(&["time limit of 300ms"]);
    ws.run_pkg(&pkg, &["--", "sleep", "10"]).expect_code(0).stdout_has(&["slept 10"]);
}

#[test]
fn the_program_name_is_the_file_name_or_the_component_name() {
    let wasm = guest("concurrent_p3");
    run(["run".as_ref(), wasm.as_os_str(), "--".as_ref(), "argv0".as_ref()]).expect_code(0).stdout_has(&["argv0 concurrent_p3.wasm"]);
    let ws = Workspace::new();
    let pkg = ws.package("named", "concurrent_p3", &[], "", &[], true);
    ws.run_pkg(&pkg, &["--", "argv0"]).expect_code(0).stdout_has(&["argv0 named"]);
}

#[test]
fn an_http_handler_is_not_run_as_a_command() {
    let http = guest("hello_http");
    run(["run".as_ref(), http.as_os_str()]).expect_code(REFUSED).stderr_has(&["HTTP handler", "`wasmzip run` cannot run"]);
}

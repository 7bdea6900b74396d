//! `wasmzip run` end to end: every capability granted and denied, through the real binary and guests.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;

use common::*;

/// Host directories for the filesystem tests: `data/` (read-only to the guest), `out/` (writable),
/// and `secret.txt` beside them, which the guest must never reach.
fn fs_layout(ws: &Workspace) {
    std::fs::create_dir_all(ws.path("data/sub")).unwrap();
    std::fs::create_dir_all(ws.path("out")).unwrap();
    std::fs::write(ws.path("data/in.txt"), "hello data").unwrap();
    std::fs::write(ws.path("secret.txt"), "TOP SECRET").unwrap();
    std::os::unix::fs::symlink("../secret.txt", ws.path("data/escape")).unwrap();
}

fn fs_package(ws: &Workspace) -> std::path::PathBuf {
    ws.package("fs", "fs-tool", &["filesystem:read:/data", "filesystem:write:/out"], "", &[], true)
}

fn fs_run(ws: &Workspace, pkg: &Path, args: &[&str]) -> Run {
    let data = format!("/data={}", ws.path("data").display());
    let out = format!("/out={}", ws.path("out").display());
    let mut all = vec!["--grant-requested", "--mount", &data, "--mount", &out, "--"];
    all.extend_from_slice(args);
    ws.run_pkg(pkg, &all)
}

#[test]
fn filesystem_read_grant_reads_but_never_writes() {
    let ws = Workspace::new();
    fs_layout(&ws);
    let pkg = fs_package(&ws);
    fs_run(&ws, &pkg, &["read", "/data/in.txt"]).expect_code(0).stdout_has(&["ok\nhello data"]);
    fs_run(&ws, &pkg, &["ls", "/data"]).expect_code(0).stdout_has(&["in.txt", "sub"]);

    for args in [
        &["write", "/data/new.txt", "x"][..],
        &["append", "/data/in.txt", "more"],
        &["truncate", "/data/in.txt", "0"],
        &["rm", "/data/in.txt"],
        &["mkdir", "/data/newdir"],
        &["rename", "/data/in.txt", "/data/moved.txt"],
        &["rename", "/data/in.txt", "/out/moved.txt"],
        &["hardlink", "/data/in.txt", "/out/linked.txt"],
        &["symlink", "/etc/passwd", "/data/link"],
    ] {
        let r = fs_run(&ws, &pkg, args);
        assert!(r.stdout.starts_with("error: "), "{args:?} should fail: {}{}", r.stdout, r.stderr);
    }
    assert_eq!(std::fs::read_to_string(ws.path("data/in.txt")).unwrap(), "hello data", "the read-only file is unchanged");
    for name in ["data/new.txt", "data/newdir", "data/moved.txt", "out/moved.txt", "out/linked.txt", "data/link"] {
        assert!(!ws.path(name).exists(), "{name} must not exist");
    }
}

#[test]
fn filesystem_nothing_outside_granted_directories() {
    let ws = Workspace::new();
    fs_layout(&ws);
    let pkg = fs_package(&ws);
    let secret_abs = ws.path("secret.txt").display().to_string();
    for path in ["/data/../secret.txt", "/data/escape", "/secret.txt", secret_abs.as_str(), "/etc/passwd", "/out/../secret.txt"] {
        let r = fs_run(&ws, &pkg, &["read", path]);
        assert!(r.stdout.starts_with("error: "), "reading {path} must fail: {}", r.stdout);
        assert!(!r.stdout.contains("TOP SECRET"));
    }
    fs_run(&ws, &pkg, &["write", "/data/../out/x", "x"]);
    assert!(!ws.path("out/x").exists() || std::fs::read_to_string(ws.path("out/x")).is_err());
}

#[test]
fn filesystem_write_grant_creates_renames_and_deletes_inside_only() {
    let ws = Workspace::new();
    fs_layout(&ws);
    let pkg = fs_package(&ws);
    fs_run(&ws, &pkg, &["write", "/out/a.txt", "alpha"]).expect_code(0);
    assert_eq!(std::fs::read_to_string(ws.path("out/a.txt")).unwrap(), "alpha");
    fs_run(&ws, &pkg, &["append", "/out/a.txt", "+beta"]).expect_code(0);
    fs_run(&ws, &pkg, &["rename", "/out/a.txt", "/out/b.txt"]).expect_code(0);
    fs_run(&ws, &pkg, &["truncate", "/out/b.txt", "5"]).expect_code(0);
    assert_eq!(std::fs::read_to_string(ws.path("out/b.txt")).unwrap(), "alpha");
    fs_run(&ws, &pkg, &["mkdir", "/out/d"]).expect_code(0);
    fs_run(&ws, &pkg, &["rm", "/out/b.txt"]).expect_code(0);
    assert!(!ws.path("out/b.txt").exists());
    // A hard link inside the writable directory is fine; one pointing into it from outside is not.
    fs_run(&ws, &pkg, &["write", "/out/c.txt", "c"]).expect_code(0);
    fs_run(&ws, &pkg, &["hardlink", "/out/c.txt", "/out/c2.txt"]).expect_code(0);
    let r = fs_run(&ws, &pkg, &["rename", "/out/c.txt", "/data/c.txt"]);
    assert!(r.stdout.starts_with("error: "), "{}", r.stdout);
    assert!(!ws.path("data/c.txt").exists());
}

#[test]
fn filesystem_ungranted_request_gets_nothing_and_write_grant_gives_only_read_requested() {
    let ws = Workspace::new();
    fs_layout(&ws);
    let pkg = ws.package("fsro", "fs-tool", &["filesystem:read:/data"], "", &[], true);
    let data = format!("/data={}", ws.path("data").display());
    // Not granted: no preopen at all, and a warning names the request.
    let r = ws.run_pkg(&pkg, &["--mount", &data, "--", "read", "/data/in.txt"]);
    assert!(r.stdout.starts_with("error: "), "{}", r.stdout);
    r.stderr_has(&["not granted", "filesystem:read:/data"]);
    // Granting write covers the read request, but the guest still gets only read.
    ws.run_pkg(&pkg, &["--grant", "filesystem:write:/data", "--mount", &data, "--", "read", "/data/in.txt"]).expect_code(0);
    let r = ws.run_pkg(&pkg, &["--grant", "filesystem:write:/data", "--mount", &data, "--", "write", "/data/in.txt", "x"]);
    assert!(r.stdout.starts_with("error: "), "{}", r.stdout);
    assert_eq!(std::fs::read_to_string(ws.path("data/in.txt")).unwrap(), "hello data");
}

#[test]
fn filesystem_missing_host_directory_is_refused_with_the_token() {
    let ws = Workspace::new();
    let pkg = ws.package("fsmiss", "fs-tool", &["filesystem:read:/nonexistent-wasmzip-dir"], "", &[], true);
    ws.run_pkg(&pkg, &["--grant-requested", "--", "ls", "/nonexistent-wasmzip-dir"])
        .expect_code(REFUSED)
        .stderr_has(&["filesystem:read:/nonexistent-wasmzip-dir", "does not exist"]);
}

#[test]
fn env_only_requested_and_granted_names() {
    let ws = Workspace::new();
    let pkg = ws.package("envs", "hello", &["env:GREETING_NAME", "env:APP_*", "env:NOT_GRANTED"], "", &[], true);
    let r = wasmzip()
        .args(["run".as_ref(), pkg.as_os_str(), "--trust".as_ref(), ws.public_key().as_os_str()])
        .args(["--grant", "env:GREETING_NAME", "--grant", "env:APP_*", "--env", "GREETING_NAME=Ada"])
        .env("APP_MODE", "fast")
        .env("NOT_GRANTED", "leak")
        .env("HOST_SECRET", "leak")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&r.stdout);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("Hello, Ada!"), "{stdout}");
    assert!(stdout.contains("env: APP_MODE=fast"), "{stdout}");
    assert!(stdout.contains("env: GREETING_NAME=Ada"), "{stdout}");
    assert!(!stdout.contains("leak"), "ungranted variables are absent: {stdout}");
    assert!(stderr.contains("env:NOT_GRANTED"), "the uncovered request is listed: {stderr}");
    assert_eq!(stdout.matches("env: ").count(), 2, "{stdout}");
}

#[test]
fn resources_are_visible_read_only_at_pkg() {
    let ws = Workspace::new();
    let pkg = ws.package("res", "fs-tool", &[], "", &[("greeting.txt", b"from the package"), ("data/nested.bin", b"\x00\x01")], true);
    ws.run_pkg(&pkg, &["--", "read", "/pkg/greeting.txt"]).expect_code(0).stdout_has(&["from the package"]);
    ws.run_pkg(&pkg, &["--", "ls", "/pkg/data"]).expect_code(0).stdout_has(&["nested.bin"]);
    let r = ws.run_pkg(&pkg, &["--", "write", "/pkg/greeting.txt", "changed"]);
    assert!(r.stdout.starts_with("error: "), "{}", r.stdout);
    ws.run_pkg(&pkg, &["--", "read", "/pkg/greeting.txt"]).stdout_has(&["from the package"]);
    // A package without resources has no /pkg at all (docs/package-format.md, docs/cli.md).
    let bare = ws.package("nores", "fs-tool", &[], "", &[], true);
    let r = ws.run_pkg(&bare, &["--", "ls", "/pkg"]);
    r.expect_code(1);
    assert!(r.stdout.starts_with("error: "), "{}", r.stdout);
}

/// A loopback TCP server that answers each connection with `pong`, for a bounded number of connections.
fn pong_server(connections: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(connections) {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 16];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"pong\n");
        }
    });
    port
}

#[test]
fn network_ip_grants_and_audited_denials() {
    let ws = Workspace::new();
    let port = pong_server(8);
    let other = pong_server(8);
    let token = format!("network:outbound:127.0.0.1:{port}");
    let pkg = ws.package("net", "net-probe", &[&token], "", &[], true);
    let target = format!("connect:127.0.0.1:{port}");
    let other_target = format!("connect:127.0.0.1:{other}");

    let r = ws.run_pkg(&pkg, &["--grant-requested", "--", &target, &other_target]);
    r.expect_code(0).stdout_has(&[&format!("connect 127.0.0.1:{port} ok pong")]);
    assert!(r.stdout.contains(&format!("connect 127.0.0.1:{other} error")), "only the requested port: {}", r.stdout);
    r.stderr_has(&["denied connect", &format!("network:outbound:127.0.0.1:{other}")]);

    // A grant broader than the request still gives only the request.
    let r = ws.run_pkg(&pkg, &["--grant", "network:outbound:*", "--", &other_target]);
    assert!(r.stdout.contains("error"), "{}", r.stdout);

    // Not granted at all: denied, and audited with the token that would allow it.
    let r = ws.run_pkg(&pkg, &["--", &target]);
    assert!(r.stdout.contains(&format!("connect 127.0.0.1:{port} error")), "{}", r.stdout);
    r.stderr_has(&["audit", &token]);
}

#[test]
fn network_name_grants_filter_lookup_and_connect() {
    let ws = Workspace::new();
    let port = pong_server(8);
    let other = pong_server(8);
    let token = format!("network:outbound:localhost:{port}");
    let pkg = ws.package("netname", "net-probe", &[&token], "", &[], true);
    let r = ws.run_pkg(
        &pkg,
        &["--grant-requested", "--", "resolve:localhost", &format!("connect:localhost:{port}"), &format!("connect:localhost:{other}"), "resolve:example.invalid"],
    );
    r.expect_code(0);
    assert!(r.stdout.contains("resolve localhost ok") && r.stdout.contains("127.0.0.1"), "{}", r.stdout);
    r.stdout_has(&[&format!("connect localhost:{port} ok pong")]);
    assert!(r.stdout.contains(&format!("connect localhost:{other} error")), "{}", r.stdout);
    assert!(r.stdout.contains("resolve example.invalid error"), "{}", r.stdout);
    r.stderr_has(&["name lookup of example.invalid", "network:outbound:example.invalid:*"]);

    // Without the grant even the lookup is refused.
    let r = ws.run_pkg(&pkg, &["--", "resolve:localhost"]);
    assert!(r.stdout.contains("resolve localhost error"), "{}", r.stdout);
    r.stderr_has(&["name lookup of localhost"]);
}

#[test]
fn network_inbound_listen_needs_a_grant() {
    let ws = Workspace::new();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let token = format!("network:inbound:{port}");
    let pkg = ws.package("listen", "net-probe", &[&token], "", &[], true);
    let probe = format!("listen:{port}");
    ws.run_pkg(&pkg, &["--grant-requested", "--", &probe]).expect_code(0).stdout_has(&[&format!("listen {port} ok")]);
    let r = ws.run_pkg(&pkg, &["--", &probe]);
    assert!(r.stdout.contains(&format!("listen {port} error")), "{}", r.stdout);
    r.stderr_has(&[&token]);
}

#[test]
fn malformed_grants_are_refused_with_position() {
    let ws = Workspace::new();
    let pkg = ws.package("badgrant", "hello", &[], "", &[], true);
    ws.run_pkg(&pkg, &["--grant", "network:outbound:example.com:http"])
        .expect_code(REFUSED)
        .stderr_has(&["network:outbound:example.com:http", "position 30", "not a port"]);
}

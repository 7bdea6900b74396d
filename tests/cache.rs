//! `wasmzip cache` and the cache's size cap, end to end: entries listed least recently used first,
//! pruned to a cap (by `cache prune` and after a run that writes to the cache), and what a running
//! server uses is never pruned from under it.

mod common;

use std::path::Path;

use common::*;

fn cache_json(dir: &Path) -> serde_json::Value {
    let r = run(["cache".as_ref(), "list".as_ref(), "--json".as_ref(), "--cache-dir".as_ref(), dir.as_os_str()]);
    serde_json::from_str(&r.expect_code(0).stdout).unwrap()
}

fn package_entries(value: &serde_json::Value) -> Vec<String> {
    value["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "package")
        .map(|e| Path::new(e["path"].as_str().unwrap()).file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn the_cache_is_listed_pruned_least_recently_used_first_and_capped() {
    let ws = Workspace::new();
    let cache = ws.path("cache");
    let c = cache.to_str().unwrap();
    let mut digests = Vec::new();
    for name in ["a", "b", "c"] {
        let body = format!("resource of {name} ").repeat(2000);
        let pkg = ws.package(name, "fs-tool", &[], "", &[("r.txt", body.as_bytes())], true);
        ws.run_pkg(&pkg, &["--cache-dir", c, "--", "stat", "/pkg/r.txt"]).expect_code(0);
        let r = run(["verify".as_ref(), pkg.as_os_str(), "--trust".as_ref(), ws.public_key().as_os_str()]);
        digests.push(r.stdout.split("sha256:").nth(1).unwrap().split_whitespace().next().unwrap().to_string());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let listed = cache_json(&cache);
    assert_eq!(package_entries(&listed), digests, "oldest first: {listed:#}");
    assert!(listed["entries"].as_array().unwrap().iter().any(|e| e["kind"] == "compiled"), "{listed:#}");
    let text = run(["cache", "list", "--cache-dir", c]);
    text.expect_code(0).stdout_has(&["package", "compiled", &digests[0]]);

    // Using `a` again makes it the most recent; a prune that must drop one package drops `b`.
    let a = ws.path("a.wasmzip");
    ws.run_pkg(&a, &["--cache-dir", c, "--", "stat", "/pkg/r.txt"]).expect_code(0);
    let total = listed["bytes"].as_u64().unwrap();
    let one_package = listed["entries"].as_array().unwrap().iter().find(|e| e["kind"] == "package").unwrap()["bytes"].as_u64().unwrap();
    let r = run(["cache", "prune", "--cache-dir", c, "--max-size", &(total - one_package).to_string()]);
    r.expect_code(0).stdout_has(&["removed"]);
    let left = package_entries(&cache_json(&cache));
    assert!(!left.contains(&digests[1]) && left.contains(&digests[0]) && left.contains(&digests[2]), "{left:?}\n{}", r.stdout);

    // A run that compiles something new prunes to the cap afterwards: only what it used survives.
    let d = ws.package("d", "hello", &[], "", &[("greeting.txt", b"hi")], true);
    std::fs::remove_dir_all(cache.join("compiled")).unwrap();
    ws.run_pkg(&d, &["--cache-dir", c, "--cache-max-size", "1"]).expect_code(0);
    let left = package_entries(&cache_json(&cache));
    assert_eq!(left.len(), 1, "only the package in use was kept: {left:?}");

    // New resources alone (code from the cache) also prune to the cap afterwards: with room for the
    // code and one package's resources, running a second package of the same code drops the first's.
    let big = |tag: &str| format!("{tag} ").repeat(100_000).into_bytes();
    let e = ws.package("e", "fs-tool", &[], "", &[("r.txt", &big("e"))], true);
    ws.run_pkg(&e, &["--cache-dir", c, "--", "stat", "/pkg/r.txt"]).expect_code(0);
    let after_e = cache_json(&cache);
    let compiled: u64 = after_e["entries"].as_array().unwrap().iter().filter(|e| e["kind"] == "compiled").map(|e| e["bytes"].as_u64().unwrap()).sum();
    assert!(compiled > 0, "{after_e:#}");
    let cap = (compiled + 300_000).to_string();
    let f = ws.package("f", "fs-tool", &[], "", &[("r.txt", &big("f"))], true);
    ws.run_pkg(&f, &["--cache-dir", c, "--cache-max-size", &cap, "--", "stat", "/pkg/r.txt"]).expect_code(0);
    let left = cache_json(&cache);
    let f_digest = run(["verify".as_ref(), f.as_os_str(), "--trust".as_ref(), ws.public_key().as_os_str()]).stdout;
    let packages = package_entries(&left);
    assert!(packages.len() == 1 && f_digest.contains(&packages[0]), "only f's resources were kept: {left:#}");
    assert!(left["entries"].as_array().unwrap().iter().any(|e| e["kind"] == "compiled"), "the code stays: {left:#}");

    // Everything else goes with --max-size 0.
    run(["cache", "prune", "--cache-dir", c, "--max-size", "0"]).expect_code(0);
    assert!(cache_json(&cache)["entries"].as_array().unwrap().is_empty());
}

#[test]
fn a_running_server_keeps_what_it_uses() {
    let ws = Workspace::new();
    let cache = ws.path("cache");
    let reader = ws.http("reader", "read_file").resource("note.txt", b"still here".to_vec()).build();
    let server = Server::start(
        ws.serve_args(&ws.path("data"), &[reader.as_os_str(), "--cache-dir".as_ref(), cache.as_os_str()]),
        &[],
    );
    assert_eq!(server.get("/reader?/pkg/note.txt").text(), "still here");
    let r = run(["cache".as_ref(), "prune".as_ref(), "--max-size".as_ref(), "0".as_ref(), "--cache-dir".as_ref(), cache.as_os_str()]);
    r.expect_code(0).stdout_has(&["kept", "in use by a running wasmzip"]);
    assert_eq!(package_entries(&cache_json(&cache)).len(), 1);
    assert_eq!(server.get("/reader?/pkg/note.txt").text(), "still here");
    drop(server);
    run(["cache".as_ref(), "prune".as_ref(), "--max-size".as_ref(), "0".as_ref(), "--cache-dir".as_ref(), cache.as_os_str()]).expect_code(0);
    assert!(package_entries(&cache_json(&cache)).is_empty(), "released once the server is gone");
}

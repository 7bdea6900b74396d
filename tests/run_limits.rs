//! `wasmzip run` end to end: exit codes, limits, traps, bare components and preview-1 modules, and the
//! compile cache.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn hello_prints_args_and_passes_its_exit_code_through() {
    let ws = Workspace::new();
    let pkg = ws.package("hello", "hello", &[], "", &[("greeting.txt", b"hi from resources\n")], true);
    ws.run_pkg(&pkg, &["--", "a", "b c"]).expect_code(0).stdout_has(&["Hello, world!", "args: a b c", "resource: hi from resources"]);
    ws.run_pkg(&pkg, &["--", "--exit", "7"]).expect_code(7);
    ws.run_pkg(&pkg, &["--", "--exit", "0"]).expect_code(0);
}

#[test]
fn spin_forever_is_stopped_at_its_deadline() {
    let guest = guest("spin-forever");
    let start = Instant::now();
    let r = run(["run".as_ref(), guest.as_os_str(), "--timeout".as_ref(), "300ms".as_ref()]);
    r.expect_code(TIMEOUT).stderr_has(&["time limit of 300ms"]).stdout_has(&["spinning"]);
    assert!(start.elapsed() < Duration::from_secs(20), "generous bound; precision is the benchmark's job");
}

#[test]
fn a_guest_sleeping_in_a_host_call_is_stopped_at_its_deadline() {
    let ws = Workspace::new();
    // The manifest's own timeout applies without any flag, and a larger flag cannot widen it.
    let pkg = ws.package("nap", "nap", &[], "limits = { timeout = \"300ms\" }", &[], true);
    let start = Instant::now();
    ws.run_pkg(&pkg, &["--timeout", "60s", "--", "60000"]).expect_code(TIMEOUT).stderr_has(&["time limit of 300ms"]);
    assert!(start.elapsed() < Duration::from_secs(20));
    ws.run_pkg(&pkg, &["--", "10"]).expect_code(0).stdout_has(&["awake"]);
}

#[test]
fn mem_hog_hits_its_memory_limit() {
    let guest = guest("mem-hog");
    run(["run".as_ref(), guest.as_os_str(), "--max-memory".as_ref(), "32MiB".as_ref()])
        .expect_code(MEMORY)
        .stderr_has(&["memory limit of 32MiB"]);
    // The manifest's limit applies, and the operator can lower it further.
    let ws = Workspace::new();
    let pkg = ws.package("hog", "mem-hog", &[], "limits = { memory = \"48MiB\" }", &[], true);
    ws.run_pkg(&pkg, &[]).expect_code(MEMORY).stderr_has(&["memory limit of 48MiB"]);
    ws.run_pkg(&pkg, &["--max-memory", "1GiB"]).expect_code(MEMORY).stderr_has(&["memory limit of 48MiB"]);
    ws.run_pkg(&pkg, &["--max-memory", "24MiB"]).expect_code(MEMORY).stderr_has(&["memory limit of 24MiB"]);
}

#[test]
fn crash_traps_with_a_source_backtrace() {
    let guest = guest("crash");
    run(["run".as_ref(), guest.as_os_str()])
        .expect_code(TRAP)
        .stderr_has(&["crash guest panicked on purpose", "the guest trapped", "explode", "crash/src/main.rs:"]);
}

#[test]
fn bare_component_gets_only_what_is_granted() {
    let guest = guest("hello");
    let r = wasmzip().args(["run".as_ref(), guest.as_os_str()]).env("GREETING_NAME", "Host").output().unwrap();
    assert!(String::from_utf8_lossy(&r.stdout).contains("Hello, world!"));
    let r = wasmzip()
        .args(["run".as_ref(), guest.as_os_str(), "--grant".as_ref(), "env:GREETING_NAME".as_ref()])
        .env("GREETING_NAME", "Host")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&r.stdout).contains("Hello, Host!"));
    run(["run".as_ref(), guest.as_os_str(), "--grant-requested".as_ref()]).expect_code(REFUSED).stderr_has(&["needs a package"]);
}

#[test]
fn preview1_core_module_runs() {
    let dir = tempfile::tempdir().unwrap();
    let module = wat::parse_str(
        r#"(module
            (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
            (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
            (memory (export "memory") 1)
            (data (i32.const 16) "hello from preview1\n")
            (func (export "_start")
              (i32.store (i32.const 0) (i32.const 16))
              (i32.store (i32.const 4) (i32.const 20))
              (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
              (call $proc_exit (i32.const 3))))"#,
    )
    .unwrap();
    let path = dir.path().join("p1.wasm");
    std::fs::write(&path, module).unwrap();
    run(["run".as_ref(), path.as_os_str()]).expect_code(3).stdout_has(&["hello from preview1"]);
}

#[test]
fn not_wasm_and_missing_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "hello").unwrap();
    run(["run".as_ref(), path.as_os_str()]).expect_code(REFUSED).stderr_has(&["notes.txt", "neither"]);
    run(["run", "/nonexistent/x.wasm"]).expect_code(REFUSED).stderr_has(&["/nonexistent/x.wasm"]);
}

#[test]
fn compile_cache_is_used_and_corrupt_entries_are_recompiled() {
    let cache = tempfile::tempdir().unwrap();
    let guest = guest("hello");
    let go = || {
        let out = wasmzip()
            .env("WASMZIP_CACHE_DIR", cache.path())
            .env("WASMZIP_LOG", "warn,wasmzip::cache=debug")
            .args(["run".as_ref(), guest.as_os_str()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("Hello, world!"));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let first = go();
    assert!(!first.contains("from the cache"), "{first}");
    let entries: Vec<_> = std::fs::read_dir(cache.path().join("compiled")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    let original = std::fs::read(entry).unwrap();
    // The second run maps the entry: the code starts the file (Wasmtime's ELF), the trailer ends it.
    let second = go();
    assert!(second.contains("compiled code from the cache"), "{second}");
    assert_eq!(&original[..4], b"\x7fELF");
    assert_eq!(&original[original.len() - 48..original.len() - 40], b"WZCACHE2");

    // Flip one byte of compiled code: the checksum catches it, the entry is discarded and rebuilt.
    let mut corrupt = original.clone();
    let at = corrupt.len() / 2;
    corrupt[at] ^= 0xff;
    std::fs::write(entry, &corrupt).unwrap();
    let stderr = go();
    assert!(stderr.contains("corrupt compile-cache entry"), "{stderr}");
    assert_eq!(std::fs::read(entry).unwrap().len(), original.len(), "rewritten");

    // Garbage, truncation and deletion are all survivable.
    std::fs::write(entry, b"garbage").unwrap();
    go();
    std::fs::write(entry, &original[..original.len() / 3]).unwrap();
    go();
    std::fs::remove_dir_all(cache.path()).unwrap();
    go();
}

/// The handle cap counts what the guest holds: a clock pollable is one handle to the guest, though
/// the host keeps two table entries for it, so 16,000 fit under the cap of 16,384 and 17,000 do not.
#[test]
fn the_handle_cap_counts_the_guests_handles() {
    let nap = guest("nap");
    let nap = nap.to_str().unwrap();
    run(["run", nap, "--", "--pollables", "16000"]).expect_code(0).stdout_has(&["pollables 16000 ok"]);
    run(["run", nap, "--", "--pollables", "17000"]).expect_code(TRAP).stderr_has(&["store handle limit exceeded"]);
}

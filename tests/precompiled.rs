//! `wasmzip compile` and `--precompiled`, end to end: artefacts for this machine, for Pulley and for
//! other machines; every binding (package, target, engine) and every damage refused with a clear
//! error; and Pulley running a guest with no executable memory mapped beyond the binary's own.

mod common;

use common::*;

fn compile(ws: &Workspace, package: &std::path::Path, target: Option<&str>, out: &str) -> std::path::PathBuf {
    let out = ws.path(out);
    let mut args: Vec<std::ffi::OsString> = vec!["compile".into(), package.into(), "--trust".into(), ws.public_key().into(), "-o".into(), out.clone().into()];
    if let Some(t) = target {
        args.extend(["--target".into(), t.into()]);
    }
    run(args).expect_code(0).stdout_has(&["compiled hello 1.0.0 (1 component)"]);
    out
}

#[test]
fn artefacts_run_where_they_fit_and_are_refused_where_they_do_not() {
    let ws = Workspace::new();
    let pkg = ws.package("hello", "hello", &[], "", &[("greeting.txt", b"hi\n")], true);
    let native = compile(&ws, &pkg, None, "native.aot");
    let pulley = compile(&ws, &pkg, Some("pulley64"), "pulley.aot");
    let aarch64 = compile(&ws, &pkg, Some("aarch64-linux-gnu"), "aarch64.aot");
    compile(&ws, &pkg, Some("riscv64gc-unknown-linux-gnu"), "riscv64.aot");

    let n = native.to_str().unwrap();
    let p = pulley.to_str().unwrap();
    ws.run_pkg(&pkg, &["--precompiled", n, "--", "a"]).expect_code(0).stdout_has(&["Hello, world!", "args: a"]);
    ws.run_pkg(&pkg, &["--engine", "pulley", "--precompiled", p, "--", "b"]).expect_code(0).stdout_has(&["args: b"]);
    ws.run_pkg(&pkg, &["--engine", "pulley", "--", "c"]).expect_code(0).stdout_has(&["args: c"]);

    // Another target or engine.
    ws.run_pkg(&pkg, &["--precompiled", aarch64.to_str().unwrap()]).expect_code(REFUSED).stderr_has(&["holds code for aarch64-unknown-linux-gnu", "this engine runs x86_64"]);
    ws.run_pkg(&pkg, &["--precompiled", p]).expect_code(REFUSED).stderr_has(&["holds code for pulley64", "--engine pulley"]);
    ws.run_pkg(&pkg, &["--engine", "pulley", "--precompiled", n]).expect_code(REFUSED).stderr_has(&["this engine runs pulley64"]);

    // Another package: the same guest under another name.
    let other = ws.package("other", "hello", &[], "", &[], true);
    ws.run_pkg(&other, &["--precompiled", n]).expect_code(REFUSED).stderr_has(&["was compiled from package hello 1.0.0", "not other 1.0.0"]);

    // A damaged artefact, and a file that is none.
    let mut bytes = std::fs::read(&native).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    let damaged = ws.path("damaged.aot");
    std::fs::write(&damaged, &bytes).unwrap();
    ws.run_pkg(&pkg, &["--precompiled", damaged.to_str().unwrap()]).expect_code(REFUSED).stderr_has(&["is corrupt", "checksum"]);
    ws.run_pkg(&pkg, &["--precompiled", pkg.to_str().unwrap()]).expect_code(REFUSED).stderr_has(&["is not a wasmzip precompiled artefact"]);

    // The package is verified first: an untrusted one is refused before the artefact is read.
    let r = run(["run".as_ref(), pkg.as_os_str(), "--precompiled".as_ref(), damaged.as_os_str()]);
    assert_eq!(r.code, REFUSED, "{}", r.stderr);
    assert!(!r.stderr.contains("corrupt"), "the artefact was read before the package verified: {}", r.stderr);
}

/// Under Pulley no anonymous executable memory exists while the guest runs (Cranelift's code
/// lives in such mappings, or in mapped cache files); only the binary and its libraries are.
#[test]
fn pulley_maps_no_executable_memory() {
    let guest = guest("spin-forever");
    let mut child = wasmzip()
        .args(["run".as_ref(), guest.as_os_str(), "--engine".as_ref(), "pulley".as_ref(), "--timeout".as_ref(), "20s".as_ref()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Read as _;
    let mut first = [0u8; 8];
    child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", child.id())).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let exe = std::fs::canonicalize(env!("CARGO_BIN_EXE_wasmzip")).unwrap();
    let foreign: Vec<&str> = maps
        .lines()
        .filter(|l| l.split_whitespace().nth(1).is_some_and(|perms| perms.contains('x')))
        .filter(|l| {
            let path = l.split_whitespace().nth(5).unwrap_or("");
            !(path == exe.to_str().unwrap() || path.starts_with("/usr/lib") || path.starts_with("/lib") || path == "[vdso]" || path == "[vsyscall]")
        })
        .collect();
    assert!(foreign.is_empty(), "executable mappings beyond the binary and its libraries:\n{}", foreign.join("\n"));
}

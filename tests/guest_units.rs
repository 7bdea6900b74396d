//! The guests' own unit tests, run natively: the pure parts of the guests (json-transform's scanner
//! against its serde_json reference, json-records' serde transform, wasmzip-guest's byte formats,
//! wasi-nn-guest's preprocessing)
//! are tested where they are written, and this runs them with the rest of the suite.

use std::path::Path;
use std::process::Command;

fn host_triple() -> String {
    let out = Command::new("rustc").arg("-vV").output().expect("rustc runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .expect("rustc -vV names the host")
}

#[test]
fn guest_library_unit_tests_pass() {
    let guests = Path::new(env!("CARGO_MANIFEST_DIR")).join("guests");
    let output = Command::new(env!("CARGO"))
        .current_dir(&guests)
        .args(["test", "--locked", "--target", &host_triple(), "--manifest-path"])
        .arg(guests.join("Cargo.toml"))
        .args(["-p", "json-transform", "-p", "json-records", "-p", "wasmzip-guest", "-p", "wasi-nn-guest"])
        .env("CARGO_TARGET_DIR", guests.join("target"))
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "guest unit tests failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let passed: usize = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("test result: ok. ")?.split(' ').next()?.parse::<usize>().ok())
        .sum();
    assert!(passed >= 20, "only {passed} guest unit tests ran");
}

//! `wasmzip push` and `wasmzip pull` against a real registry (Debian's `docker-registry`, distribution
//! 2.8): byte-for-byte round trips by tag and digest, verification of what is pulled, basic
//! authentication, TLS with a private CA, tampered storage, a bearer token on the wire, an outage,
//! and the component pulled by ORAS as standard OCI tooling does.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::registry::{Registry, RegistryOptions};
use common::*;

/// `wasmzip ARGS` in `dir`.
fn run_in(dir: &Path, args: &[&std::ffi::OsStr]) -> Run {
    let output = wasmzip().current_dir(dir).args(args).output().expect("wasmzip runs");
    Run { code: output.status.code().unwrap_or(-1), stdout: String::from_utf8_lossy(&output.stdout).into_owned(), stderr: String::from_utf8_lossy(&output.stderr).into_owned() }
}

/// `wasmzip ARGS` with string-ish arguments.
fn wz<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    run(args.iter().map(|a| a.as_ref().to_os_string()).collect::<Vec<_>>())
}

/// The value after `prefix` on the stdout line that starts with it.
fn line_value(run: &Run, prefix: &str) -> String {
    run.stdout.lines().find_map(|l| l.strip_prefix(prefix)).unwrap_or_else(|| panic!("no `{prefix}` line in\n{}", run.stdout)).trim().to_string()
}

/// The archive digest `wasmzip verify` prints for a package.
fn verified_archive(ws: &Workspace, package: &Path) -> String {
    let verify = wz(&["verify".as_ref(), package.as_os_str(), "--trust".as_ref(), ws.public_key().as_os_str()]);
    verify.expect_code(0);
    line_value(&verify, "archive sha256:")
}

/// Files in `dir`, sorted by name.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// A new empty directory in the workspace.
fn empty_dir(ws: &Workspace, name: &str) -> PathBuf {
    let dir = ws.path(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn push_and_pull_round_trip_byte_for_byte_by_tag_and_by_digest() {
    let ws = Workspace::new();
    let package = ws.http("orders", "hello_http").version("1.4.0").build();
    let registry = Registry::start(RegistryOptions::default());
    let reference = registry.reference("team/orders:1.4.0");

    let push = wz(&["push".as_ref(), package.as_os_str(), reference.as_ref()]);
    push.expect_code(0);
    let pushed = line_value(&push, "pushed ");
    let (tagged, manifest_digest) = pushed.split_once('@').expect("pushed REF@DIGEST");
    assert_eq!(tagged, reference);
    assert!(manifest_digest.starts_with("sha256:") && manifest_digest.len() == 71, "{pushed}");
    let archive = line_value(&push, "archive sha256:");
    assert_eq!(archive, verified_archive(&ws, &package), "push reports the archive digest verify prints");

    // The same package pushed again is the same manifest.
    let again = wz(&["push".as_ref(), package.as_os_str(), reference.as_ref()]);
    again.expect_code(0);
    assert_eq!(line_value(&again, "pushed "), pushed);

    let original = std::fs::read(&package).unwrap();
    let trust = ws.public_key();
    // By tag, into the default name in the current directory.
    let here = empty_dir(&ws, "by-tag");
    let pull = run_in(&here, &["pull".as_ref(), reference.as_ref(), "--trust".as_ref(), trust.as_os_str()]);
    pull.expect_code(0).stdout_has(&["verified orders 1.4.0: signed by trusted key"]);
    assert_eq!(line_value(&pull, "manifest "), manifest_digest);
    assert_eq!(line_value(&pull, "archive sha256:"), archive);
    assert_eq!(line_value(&pull, "pulled "), format!("{pushed} to orders-1.4.0.wasmzip"));
    assert_eq!(listing(&here), ["orders-1.4.0.wasmzip"], "only the package is left");
    assert_eq!(std::fs::read(here.join("orders-1.4.0.wasmzip")).unwrap(), original);

    // By digest, with and without the tag, to an explicit file and into a directory.
    let by_digest = format!("{}@{manifest_digest}", registry.reference("team/orders"));
    for (i, r) in [pushed.as_str(), by_digest.as_str()].into_iter().enumerate() {
        let out = ws.path(&format!("pulled-{i}.wasmzip"));
        let pull = wz(&["pull".as_ref(), r.as_ref(), "-o".as_ref(), out.as_os_str(), "--trust".as_ref(), trust.as_os_str()]);
        pull.expect_code(0);
        assert_eq!(line_value(&pull, "manifest "), manifest_digest);
        assert_eq!(std::fs::read(&out).unwrap(), original, "{r}");
    }
    let into = empty_dir(&ws, "into");
    wz(&["pull".as_ref(), by_digest.as_ref(), "-o".as_ref(), into.as_os_str(), "--trust".as_ref(), trust.as_os_str()]).expect_code(0);
    assert_eq!(listing(&into), ["orders-1.4.0.wasmzip"]);

    // The archive digest can be pinned: a pin that does not match refuses before anything is written.
    let out = ws.path("pinned.wasmzip");
    let wrong = "0".repeat(64);
    wz(&["pull".as_ref(), reference.as_ref(), "-o".as_ref(), out.as_os_str(), "--archive-digest".as_ref(), wrong.as_ref(), "--trust".as_ref(), trust.as_os_str()])
        .expect_code(REFUSED)
        .stderr_has(&[&reference, &format!("archive sha256:{archive}"), &format!("expected sha256:{wrong}")]);
    assert!(!out.exists());
    wz(&["pull".as_ref(), reference.as_ref(), "-o".as_ref(), out.as_os_str(), "--archive-digest".as_ref(), archive.as_ref(), "--trust".as_ref(), trust.as_os_str()]).expect_code(0);
    assert_eq!(std::fs::read(&out).unwrap(), original);
}

#[test]
fn pull_verifies_signature_and_trust_before_anything_lands() {
    let ws = Workspace::new();
    let unsigned = ws.http("loose", "hello_http").unsigned().build();
    let signed = ws.http("orders", "hello_http").build();
    let registry = Registry::start(RegistryOptions::default());
    let (loose_ref, orders_ref) = (registry.reference("team/loose:1.0.0"), registry.reference("team/orders:1.0.0"));
    // Push decides no trust: it only checks the package reads and its digests hold.
    wz(&["push".as_ref(), unsigned.as_os_str(), loose_ref.as_ref()]).expect_code(0);
    wz(&["push".as_ref(), signed.as_os_str(), orders_ref.as_ref()]).expect_code(0);

    let dir = empty_dir(&ws, "refused");
    run_in(&dir, &["pull".as_ref(), loose_ref.as_ref(), "--trust".as_ref(), ws.public_key().as_os_str()])
        .expect_code(REFUSED)
        .stderr_has(&[&loose_ref, "not signed", "--allow-unsigned"]);
    assert!(listing(&dir).is_empty(), "a refused package leaves nothing behind: {:?}", listing(&dir));

    // A key other than the signer's.
    let other = ws.path("other");
    wz(&["keygen".as_ref(), other.as_os_str()]).expect_code(0);
    let other_pub = ws.path("other.pub");
    run_in(&dir, &["pull".as_ref(), orders_ref.as_ref(), "--trust".as_ref(), other_pub.as_os_str()]).expect_code(REFUSED).stderr_has(&[&orders_ref, "not trusted"]);
    assert!(listing(&dir).is_empty(), "{:?}", listing(&dir));

    let pull = run_in(&dir, &["pull".as_ref(), loose_ref.as_ref(), "--allow-unsigned".as_ref()]);
    pull.expect_code(0).stdout_has(&["verified loose 1.0.0: unsigned"]).stderr_has(&["is not signed"]);
    assert_eq!(std::fs::read(dir.join("loose-1.0.0.wasmzip")).unwrap(), std::fs::read(&unsigned).unwrap());
}

#[test]
fn push_refuses_a_file_that_is_not_a_valid_package() {
    let ws = Workspace::new();
    let registry = Registry::start(RegistryOptions::default());
    let junk = ws.path("junk.wasmzip");
    std::fs::write(&junk, b"PK\x03\x04 not really").unwrap();
    wz(&["push".as_ref(), junk.as_os_str(), registry.reference("team/junk:1").as_ref()]).expect_code(REFUSED).stderr_has(&["cannot push", "junk.wasmzip"]);
    // A package whose member no longer matches its pin.
    let package = ws.http("orders", "hello_http").build();
    let mut bytes = std::fs::read(&package).unwrap();
    let last = bytes.len() - 200;
    bytes[last] ^= 0x55;
    let broken = ws.path("broken.wasmzip");
    std::fs::write(&broken, bytes).unwrap();
    wz(&["push".as_ref(), broken.as_os_str(), registry.reference("team/orders:1").as_ref()]).expect_code(REFUSED).stderr_has(&["cannot push", "broken.wasmzip"]);
    // A digest is not something to push to.
    let digest = format!("{}@sha256:{}", registry.reference("team/orders"), "a".repeat(64));
    wz(&["push".as_ref(), package.as_os_str(), digest.as_ref()]).expect_code(REFUSED).stderr_has(&["push needs a tag"]);
}

#[test]
fn basic_authentication_with_the_right_password_and_refusal_otherwise() {
    let ws = Workspace::new();
    let package = ws.http("orders", "hello_http").build();
    let registry = Registry::start(RegistryOptions { htpasswd: Some(("ci".into(), "s3cret-pass".into())), ..Default::default() });
    let reference = registry.reference("team/orders:1.0.0");
    let right = ws.path("right.pw");
    std::fs::write(&right, "s3cret-pass\n").unwrap();
    let wrong = ws.path("wrong.pw");
    std::fs::write(&wrong, "guess\n").unwrap();

    wz(&["push".as_ref(), package.as_os_str(), reference.as_ref()]).expect_code(REFUSED).stderr_has(&[&reference, "requires credentials"]);
    wz(&["push".as_ref(), package.as_os_str(), reference.as_ref(), "--registry-user".as_ref(), "ci".as_ref(), "--registry-password-file".as_ref(), wrong.as_os_str()])
        .expect_code(REFUSED)
        .stderr_has(&[&reference, "refused the credentials"]);
    wz(&["push".as_ref(), package.as_os_str(), reference.as_ref(), "--registry-user".as_ref(), "ci".as_ref(), "--registry-password-file".as_ref(), right.as_os_str()]).expect_code(0);

    let out = ws.path("pulled.wasmzip");
    let trust = ws.public_key();
    let pull = |extra: &[&std::ffi::OsStr], env: Option<&Path>| {
        let mut cmd = wasmzip();
        cmd.args(["pull".as_ref(), reference.as_ref(), "-o".as_ref(), out.as_os_str(), "--trust".as_ref(), trust.as_os_str()]).args(extra);
        cmd.env_remove("WASMZIP_REGISTRY_PASSWORD_FILE");
        if let Some(file) = env {
            cmd.env("WASMZIP_REGISTRY_PASSWORD_FILE", file);
        }
        let output = cmd.output().unwrap();
        Run { code: output.status.code().unwrap_or(-1), stdout: String::from_utf8_lossy(&output.stdout).into_owned(), stderr: String::from_utf8_lossy(&output.stderr).into_owned() }
    };
    pull(&[], None).expect_code(REFUSED).stderr_has(&[&reference, "requires credentials"]);
    pull(&["--registry-user".as_ref(), "ci".as_ref()], Some(&wrong)).expect_code(REFUSED).stderr_has(&["refused the credentials"]);
    assert!(!out.exists());
    // The password file from the environment, as a server's unit file would set it.
    pull(&["--registry-user".as_ref(), "ci".as_ref()], Some(&right)).expect_code(0);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&package).unwrap());
    pull(&["--registry-user".as_ref(), "ci".as_ref()], None).expect_code(REFUSED).stderr_has(&["--registry-user needs --registry-password-file"]);
}

#[test]
fn tls_with_the_registry_ca_and_refused_without_it() {
    let ws = Workspace::new();
    let package = ws.http("orders", "hello_http").build();
    let registry = Registry::start(RegistryOptions { tls: true, ..Default::default() });
    let ca = registry.ca().unwrap();
    let reference = registry.reference("team/orders:1.0.0");
    assert!(reference.starts_with("localhost:"), "{reference}");

    // `localhost` is not a loopback IP literal: TLS, which this CA is not a root for by default.
    wz(&["push".as_ref(), package.as_os_str(), reference.as_ref()]).expect_code(REFUSED).stderr_has(&[&reference, "TLS", "UnknownIssuer"]);
    wz(&["push".as_ref(), package.as_os_str(), reference.as_ref(), "--registry-ca".as_ref(), ca.as_os_str()]).expect_code(0);
    let out = ws.path("pulled.wasmzip");
    let trust = ws.public_key();
    wz(&["pull".as_ref(), reference.as_ref(), "-o".as_ref(), out.as_os_str(), "--trust".as_ref(), trust.as_os_str()]).expect_code(REFUSED).stderr_has(&["TLS", "UnknownIssuer"]);
    assert!(!out.exists());
    wz(&["pull".as_ref(), reference.as_ref(), "-o".as_ref(), out.as_os_str(), "--trust".as_ref(), trust.as_os_str(), "--registry-ca".as_ref(), ca.as_os_str()]).expect_code(0);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&package).unwrap());
    // Plain HTTP to a TLS registry is not silently upgraded or accepted.
    let plain = wz(&["pull".as_ref(), reference.as_ref(), "-o".as_ref(), out.as_os_str(), "--registry-plain-http".as_ref(), "localhost".as_ref()]);
    plain.expect_code(REFUSED).stderr_has(&[&reference]);
}

#[test]
fn a_tampered_blob_or_manifest_in_storage_is_refused_naming_the_digest() {
    let ws = Workspace::new();
    let package = ws.http("orders", "hello_http").build();
    let registry = Registry::start(RegistryOptions::default());
    let reference = registry.reference("team/orders:1.0.0");
    let push = wz(&["push".as_ref(), package.as_os_str(), reference.as_ref()]);
    push.expect_code(0);
    let pushed = line_value(&push, "pushed ");
    let manifest_digest = pushed.split_once('@').unwrap().1.to_string();
    let archive = line_value(&push, "archive sha256:");

    // The package layer's blob is the package file; flip one byte of it in the registry's storage.
    let blob = registry.blob_path(&archive);
    let mut bytes = std::fs::read(&blob).unwrap();
    assert_eq!(bytes, std::fs::read(&package).unwrap());
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&blob, &bytes).unwrap();
    let dir = empty_dir(&ws, "tampered");
    for r in [&reference, &pushed] {
        run_in(&dir, &["pull".as_ref(), r.as_ref(), "--trust".as_ref(), ws.public_key().as_os_str()])
            .expect_code(REFUSED)
            .stderr_has(&[r, &format!("refused blob sha256:{archive}")]);
        assert!(listing(&dir).is_empty(), "no output and no partial file: {:?}", listing(&dir));
    }
    bytes[middle] ^= 0x01;
    std::fs::write(&blob, &bytes).unwrap();

    // The manifest's own bytes: same length, still valid JSON, other digest.
    let manifest_blob = registry.blob_path(&manifest_digest);
    let original = std::fs::read(&manifest_blob).unwrap();
    let text = String::from_utf8(original.clone()).unwrap();
    assert!(text.contains("orders-1.0.0.wasmzip"), "{text}");
    std::fs::write(&manifest_blob, text.replace("orders-1.0.0.wasmzip", "orders-1.0.1.wasmzip")).unwrap();
    run_in(&dir, &["pull".as_ref(), pushed.as_ref(), "--trust".as_ref(), ws.public_key().as_os_str()])
        .expect_code(REFUSED)
        .stderr_has(&[&format!("refused manifest {manifest_digest}")]);
    assert!(listing(&dir).is_empty(), "{:?}", listing(&dir));
    std::fs::write(&manifest_blob, original).unwrap();
    run_in(&dir, &["pull".as_ref(), pushed.as_ref(), "--trust".as_ref(), ws.public_key().as_os_str()]).expect_code(0);
    assert_eq!(listing(&dir), ["orders-1.0.0.wasmzip"]);
}

#[test]
fn a_missing_tag_or_repository_is_a_clear_error() {
    let ws = Workspace::new();
    let package = ws.http("orders", "hello_http").build();
    let registry = Registry::start(RegistryOptions::default());
    wz(&["push".as_ref(), package.as_os_str(), registry.reference("team/orders:1.0.0").as_ref()]).expect_code(0);
    let dir = empty_dir(&ws, "missing");
    for missing in [registry.reference("team/orders:9.9.9"), registry.reference("team/nobody:1.0.0")] {
        run_in(&dir, &["pull".as_ref(), missing.as_ref(), "--allow-unsigned".as_ref()]).expect_code(REFUSED).stderr_has(&[&missing, "not found in the registry"]);
    }
    assert!(listing(&dir).is_empty());
    // Not a reference at all: clap names the text and what is wrong with it.
    wz(&["pull", "team/orders:1.0.0"]).expect_code(REFUSED).stderr_has(&["`team/orders:1.0.0` is not a registry reference", "needs a dot, a port or `localhost`"]);
    wz(&["pull", "127.0.0.1:5000/team/orders"]).expect_code(REFUSED).stderr_has(&["neither a tag nor a digest"]);
}

#[test]
fn an_outage_is_reported_as_unavailable_and_pull_works_once_the_registry_is_back() {
    let ws = Workspace::new();
    let package = ws.http("orders", "hello_http").build();
    let mut registry = Registry::start(RegistryOptions::default());
    let reference = registry.reference("team/orders:1.0.0");
    wz(&["push".as_ref(), package.as_os_str(), reference.as_ref()]).expect_code(0);
    registry.stop();
    let out = ws.path("pulled.wasmzip");
    let trust = ws.public_key();
    let pull = || wz(&["pull".as_ref(), reference.as_ref(), "-o".as_ref(), out.as_os_str(), "--trust".as_ref(), trust.as_os_str()]);
    pull().expect_code(REFUSED).stderr_has(&[&reference, "registry unavailable"]);
    assert!(!out.exists());
    registry.start_again();
    pull().expect_code(0);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&package).unwrap());
}

#[test]
fn a_bearer_token_is_sent_as_it_is() {
    let ws = Workspace::new();
    let token = ws.path("registry.token");
    std::fs::write(&token, "tok-0123456789\n").unwrap();
    // A stand-in registry that records the request and knows no manifest.
    let envelope = r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#;
    let upstream = Upstream::start(404, &[], envelope, 4);
    let reference = format!("127.0.0.1:{}/team/orders:1.0.0", upstream.port);
    wz(&["pull".as_ref(), reference.as_ref(), "--registry-token-file".as_ref(), token.as_os_str(), "--allow-unsigned".as_ref()])
        .expect_code(REFUSED)
        .stderr_has(&[&reference, "not found in the registry"]);
    let seen = upstream.seen();
    let manifest = seen.iter().find(|r| r.request_line.starts_with("GET /v2/team/orders/manifests/1.0.0 ")).unwrap_or_else(|| panic!("{seen:?}"));
    assert_eq!(manifest.header("authorization"), Some("Bearer tok-0123456789"));
}

/// The Python interpreter of scripts/oras.sh's venv (installed on first use).
fn oras_python() -> PathBuf {
    static PYTHON: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let out = Command::new("bash")
                .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/oras.sh"))
                .stderr(std::process::Stdio::inherit())
                .output()
                .expect("scripts/oras.sh runs");
            assert!(out.status.success(), "scripts/oras.sh failed");
            PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
        })
        .clone()
}

/// Pulls TARGET with ORAS into OUTDIR and prints the manifest and the files as JSON.
const ORAS_PULL: &str = r#"
import json, sys
import oras.provider
host, target, outdir = sys.argv[1:4]
registry = oras.provider.Registry(hostname=host, insecure=True)
manifest = registry.get_manifest(target)
files = registry.pull(target=target, outdir=outdir)
print(json.dumps({"manifest": manifest, "files": files}))
"#;

#[test]
fn oras_pulls_the_component_as_an_application_wasm_layer() {
    let ws = Workspace::new();
    let package = ws.http("orders", "hello_http").build();
    let registry = Registry::start(RegistryOptions::default());
    let reference = registry.reference("team/orders:1.0.0");
    wz(&["push".as_ref(), package.as_os_str(), reference.as_ref()]).expect_code(0);

    let outdir = empty_dir(&ws, "oras");
    let out = Command::new(oras_python()).args(["-c", ORAS_PULL, &registry.addr(), &reference]).arg(&outdir).output().expect("python runs");
    assert!(out.status.success(), "oras pull failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the script prints JSON");
    let manifest = &report["manifest"];
    assert_eq!(manifest["config"]["mediaType"], "application/vnd.wasm.config.v0+json");
    assert_eq!(manifest["artifactType"], "application/vnd.wasmzip.package.v2");
    let wasm_layers: Vec<&serde_json::Value> = manifest["layers"].as_array().unwrap().iter().filter(|l| l["mediaType"] == "application/wasm").collect();
    assert_eq!(wasm_layers.len(), 1, "{manifest}");
    let title = wasm_layers[0]["annotations"]["org.opencontainers.image.title"].as_str().unwrap();
    assert_eq!(title, "orders.wasm");
    // The layer ORAS wrote is the component the package carries, byte for byte.
    let pulled = std::fs::read(outdir.join(title)).unwrap();
    assert_eq!(pulled, std::fs::read(guest("hello_http")).unwrap());
    // And the package layer, under its own title, is the package file.
    assert_eq!(std::fs::read(outdir.join("orders-1.0.0.wasmzip")).unwrap(), std::fs::read(&package).unwrap());
}

#[test]
fn serve_and_deploy_take_an_oci_reference_where_they_take_a_file() {
    let ws = Workspace::new();
    let registry = Registry::start(RegistryOptions::default());
    let v1 = ws.http("orders", "hello_http").version("1.0.0").build();
    let v2 = ws.http("orders", "echo").version("2.0.0").build();
    let r1 = registry.reference("team/orders:1.0.0");
    wz(&["push".as_ref(), v1.as_os_str(), r1.as_ref()]).expect_code(0);
    let push = wz(&["push".as_ref(), v2.as_os_str(), registry.reference("team/orders:2.0.0").as_ref()]);
    push.expect_code(0);
    let by_digest = line_value(&push, "pushed ");

    // `serve REF`: pulled, verified against the server's keys, served.
    let server = ws.serve(&[r1.as_str()]);
    let r = server.get("/orders");
    assert_eq!((r.status, r.text().as_str()), (200, "Hello from wasmzip!\n"));

    // `deploy REF@DIGEST`: pulled by the client, uploaded, verified by the server.
    server.cli(&["deploy", by_digest.as_str()]).expect_code(0).stdout_has(&["deployed orders 2.0.0"]);
    assert!(server.get("/orders").text().contains("\"method\""), "2.0.0 (the echo guest) serves");

    // A reference with no such tag is an error naming it; nothing changes.
    let missing = registry.reference("team/orders:9.9.9");
    server.cli(&["deploy", missing.as_str()]).expect_code(REFUSED).stderr_has(&["team/orders:9.9.9", "not found"]);
    assert!(server.get("/orders").text().contains("\"method\""));

    // A package signed by a key the server does not trust is refused by the server, not the client.
    wz(&["keygen".as_ref(), ws.path("rogue").as_os_str()]).expect_code(0);
    let rogue = ws.http("orders", "hello_http").version("3.0.0").signed_with(&ws.path("rogue.key")).build();
    let r3 = registry.reference("team/orders:3.0.0");
    wz(&["push".as_ref(), rogue.as_os_str(), r3.as_ref()]).expect_code(0);
    server.cli(&["deploy", r3.as_str()]).expect_code(REFUSED).stderr_has(&["422", "does not trust"]);
}

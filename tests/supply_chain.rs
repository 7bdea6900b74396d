//! Package format 2 end to end through the real binary: no byte of a signed archive may change, the
//! SBOM inside (validated by the CycloneDX project's own library), provenance, several signers, and
//! the deploy policy on `run` and `serve`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A package of a tiny component (the archive is what these tests are about, so it is kept small
/// enough to copy thousands of times), signed by `dev` and by `release`.
fn small_two_signer_package(ws: &Workspace) -> PathBuf {
    let dir = ws.path("src-small");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tiny.wasm"), wat::parse_str("(component)").unwrap()).unwrap();
    std::fs::write(dir.join("greeting.txt"), b"hi from resources\n").unwrap();
    std::fs::write(
        dir.join("wasmzip.toml"),
        "[package]\nname = \"small\"\nversion = \"1.0.0\"\nresources = [\"greeting.txt\"]\n\n[components.small]\nfile = \"tiny.wasm\"\nworld = \"cli\"\ncapabilities = [\"env:GREETING_NAME\"]\n",
    )
    .unwrap();
    let out = ws.path("small.wasmzip");
    run(["pack".as_ref(), dir.as_os_str(), "--key".as_ref(), ws.key().as_os_str(), "-o".as_ref(), out.as_os_str()]).expect_code(0);
    keygen(ws, "release");
    run(["sign".as_ref(), out.as_os_str(), "--key".as_ref(), ws.path("release.key").as_os_str()]).expect_code(0).stdout_has(&["2 signatures"]);
    out
}

fn keygen(ws: &Workspace, name: &str) {
    run(["keygen".as_ref(), ws.path(name).as_os_str()]).expect_code(0);
}

/// The byte ranges of an archive's records (local headers with their names, the central directory,
/// the end record), and of its member data, walked from the bytes themselves.
fn header_and_data_ranges(bytes: &[u8]) -> (Vec<std::ops::Range<usize>>, Vec<std::ops::Range<usize>>) {
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]) as usize;
    let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap()) as usize;
    let end = bytes.len() - 22;
    let cd_offset = u32_at(end + 16);
    let (mut headers, mut data) = (Vec::new(), Vec::new());
    let mut at = 0;
    while at < cd_offset {
        assert_eq!(u32_at(at), 0x0403_4b50, "a local header at {at}");
        let header_end = at + 30 + u16_at(at + 26) + u16_at(at + 28);
        let data_end = header_end + u32_at(at + 18);
        headers.push(at..header_end);
        data.push(header_end..data_end);
        at = data_end;
    }
    headers.push(cd_offset..bytes.len());
    (headers, data)
}

/// Verifies every file in `paths` with one `wasmzip verify` per batch, trusting `trust`, and asserts
/// that each one is refused.
fn all_refused(paths: &[PathBuf], trust: &[&Path]) {
    for batch in paths.chunks(800) {
        let mut args: Vec<std::ffi::OsString> = vec!["verify".into()];
        for t in trust {
            args.extend(["--trust".into(), t.as_os_str().to_os_string()]);
        }
        args.extend(batch.iter().map(|p| p.as_os_str().to_os_string()));
        let r = run(args);
        let verified: Vec<&str> = r.stdout.lines().filter(|l| l.starts_with("verified ")).collect();
        assert!(verified.is_empty(), "changed archives still verify:\n{}", verified.join("\n"));
        r.expect_code(REFUSED).stderr_has(&[&format!("{} of {} packages failed to verify", batch.len(), batch.len())]);
    }
}

#[test]
fn no_bit_of_a_signed_format_2_package_may_change() {
    let ws = Workspace::new();
    let pkg = small_two_signer_package(&ws);
    let (dev, release) = (ws.public_key(), ws.path("release.pub"));
    let trust = [dev.as_path(), release.as_path()];
    let original = std::fs::read(&pkg).unwrap();
    let (headers, data) = header_and_data_ranges(&original);
    verify_ok(&pkg, &trust);

    // Every one-bit flip of every header byte: local headers and names, the central directory, the
    // end record.
    let flips_dir = ws.path("flips");
    std::fs::create_dir(&flips_dir).unwrap();
    let write = |n: usize, byte: usize, bit: u8| {
        let mut bytes = original.clone();
        bytes[byte] ^= 1 << bit;
        let path = flips_dir.join(format!("{n}.wasmzip"));
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let mut paths = Vec::new();
    for range in &headers {
        for byte in range.clone() {
            for bit in 0..8 {
                paths.push(write(paths.len(), byte, bit));
            }
        }
    }
    let header_flips = paths.len();
    assert!(header_flips > 3000, "{header_flips} header bits");
    all_refused(&paths, &trust);
    for p in &paths {
        std::fs::remove_file(p).unwrap();
    }

    // A few thousand random one-bit flips in the member data: the stored manifest and envelope, the
    // deflated SBOM, component and resource.
    let data_bytes: Vec<usize> = data.iter().flat_map(|r| r.clone()).collect();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut paths = Vec::new();
    for _ in 0..3000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let byte = data_bytes[(state % data_bytes.len() as u64) as usize];
        paths.push(write(paths.len(), byte, (state >> 32) as u8 % 8));
    }
    all_refused(&paths, &trust);
    eprintln!("refused {header_flips} header flips and {} data flips", paths.len());
}

fn verify_ok(pkg: &Path, trust: &[&Path]) -> Run {
    let mut args: Vec<std::ffi::OsString> = vec!["verify".into(), pkg.as_os_str().to_os_string()];
    for t in trust {
        args.extend(["--trust".into(), t.as_os_str().to_os_string()]);
    }
    let r = run(args);
    r.expect_code(0);
    r
}

#[test]
fn a_second_signer_changes_the_archive_but_not_the_package() {
    let ws = Workspace::new();
    let pkg = ws.package("hello", "hello", &["env:GREETING_NAME"], "", &[("greeting.txt", b"hi\n")], true);
    let before = verify_ok(&pkg, &[&ws.public_key()]);
    let digest = |r: &Run, what: &str| r.stdout.lines().find(|l| l.starts_with(what)).unwrap().to_string();
    keygen(&ws, "release");
    let signed = ws.path("hello-release.wasmzip");
    run(["sign".as_ref(), pkg.as_os_str(), "--key".as_ref(), ws.path("release.key").as_os_str(), "-o".as_ref(), signed.as_os_str()]).expect_code(0);
    let release = ws.path("release.pub");
    let both = verify_ok(&signed, &[&ws.public_key(), &release]);
    both.stdout_has(&["and 1 more"]);
    assert_eq!(both.stdout.matches("(valid, trusted)").count(), 2, "{}", both.stdout);
    assert_eq!(digest(&before, "digest "), digest(&both, "digest "), "the package digest stays");
    assert_ne!(digest(&before, "archive "), digest(&both, "archive "), "the archive's own digest changes");
    // Trusting only the release key: the dev signature is still checked (it carries its key).
    verify_ok(&signed, &[&release]).stdout_has(&["(valid, key not trusted)", "(valid, trusted)"]);
    // It still runs, and the second signature cannot be added twice.
    ws.run_pkg(&signed, &[]).expect_code(0).stdout_has(&["Hello, world!"]);
    run(["sign".as_ref(), signed.as_os_str(), "--key".as_ref(), ws.path("release.key").as_os_str()]).expect_code(REFUSED).stderr_has(&["has signed this package already"]);
    // A damaged package is not signed, and the file is left as it was.
    let mut bytes = std::fs::read(&pkg).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    let damaged = ws.path("damaged.wasmzip");
    std::fs::write(&damaged, &bytes).unwrap();
    run(["sign".as_ref(), damaged.as_os_str(), "--key".as_ref(), ws.path("release.key").as_os_str()]).expect_code(REFUSED).stderr_has(&["damaged.wasmzip"]);
    assert_eq!(std::fs::read(&damaged).unwrap(), bytes);
    assert!(std::fs::read_dir(ws.path("")).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().contains(".tmp-")), "no temporary file is left");
}

#[test]
fn schema_1_packages_keep_verifying_running_and_taking_signatures() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schema1");
    let pkg = fixtures.join("hello-schema1-1.0.0.wasmzip");
    let key = fixtures.join("schema1.pub");
    verify_ok(&pkg, &[&key]).stdout_has(&[
        "verified hello-schema1 1.0.0",
        "schema 1",
        "sbom none",
        "digest sha256:5db16b5111fe2fb6be0e774c8073064ea603301ce5cfaa9d4cf72df4b7aabaf9",
    ]);
    let ws = Workspace::new();
    let out = run(["run".as_ref(), pkg.as_os_str(), "--trust".as_ref(), key.as_os_str(), "--cache-dir".as_ref(), ws.path("cache").as_os_str(), "--grant-requested".as_ref()]);
    out.expect_code(0).stdout_has(&["Hello, world!", "resource: from a schema-1 package"]);
    run(["sbom".as_ref(), pkg.as_os_str()]).expect_code(REFUSED).stderr_has(&["carries no SBOM", "schema 1"]);
    // A second signature on a schema-1 package keeps it schema 1, readable as before.
    let copy = ws.path("schema1.wasmzip");
    run(["sign".as_ref(), pkg.as_os_str(), "--key".as_ref(), ws.key().as_os_str(), "-o".as_ref(), copy.as_os_str()]).expect_code(0);
    let both = verify_ok(&copy, &[&key, &ws.public_key()]);
    both.stdout_has(&["schema 1", "digest sha256:5db16b5111fe2fb6be0e774c8073064ea603301ce5cfaa9d4cf72df4b7aabaf9"]);
    // Schema-1 signatures do not carry their key: one by a key nobody trusts cannot be checked.
    verify_ok(&copy, &[&key]).stdout_has(&["not checked: schema 1 and the key is not trusted"]);
}

/// An interpreter with cyclonedx-python-lib (scripts/cyclonedx-validator.sh, installed by .ci/setup).
fn cyclonedx_python() -> String {
    let out = Command::new("bash").arg(repo_path("scripts/cyclonedx-validator.sh")).output().expect("bash runs");
    assert!(out.status.success(), "cyclonedx-validator.sh failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Exports the package's SBOM, validates it with the CycloneDX library and returns it as JSON.
fn exported_sbom(ws: &Workspace, pkg: &Path) -> serde_json::Value {
    let file = ws.path(&format!("{}.cdx.json", pkg.file_stem().unwrap().to_string_lossy()));
    run(["sbom".as_ref(), pkg.as_os_str(), "-o".as_ref(), file.as_os_str()]).expect_code(0);
    let out = Command::new(cyclonedx_python()).arg(repo_path("tests/fixtures/validate_sbom.py")).arg(&file).output().unwrap();
    assert!(out.status.success(), "{}: {}{}", file.display(), String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // `inspect --sbom` prints the same bytes.
    let printed = run(["inspect".as_ref(), pkg.as_os_str(), "--sbom".as_ref()]);
    assert_eq!(printed.expect_code(0).stdout.as_bytes(), std::fs::read(&file).unwrap());
    serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap()
}

fn components_named<'a>(sbom: &'a serde_json::Value, name: &str) -> Vec<&'a serde_json::Value> {
    sbom["components"].as_array().unwrap().iter().filter(|c| c["name"] == name).collect()
}

/// The `json-transform-serde` guest built with `cargo auditable`, which embeds its dependency tree
/// (a `.dep-v0` section in the core module inside the component).
fn auditable_guest() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let target = repo_path("guests/target-auditable");
            let status = Command::new("cargo")
                .current_dir(repo_path("guests"))
                .args(["auditable", "build", "--release", "--quiet", "--target", "wasm32-wasip2", "-p", "json-transform-serde"])
                .env("CARGO_TARGET_DIR", &target)
                .status()
                .expect("cargo runs");
            assert!(status.success(), "cargo auditable build failed (is cargo-auditable installed? .ci/setup installs it)");
            target.join("wasm32-wasip2/release/json_transform_serde.wasm")
        })
        .clone()
}

fn pack_dir(ws: &Workspace, name: &str, wasm: &Path, world: &str, extra: &str) -> PathBuf {
    let dir = ws.path(&format!("src-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(wasm, dir.join("component.wasm")).unwrap();
    std::fs::write(
        dir.join("wasmzip.toml"),
        format!("[package]\nname = \"{name}\"\nversion = \"1.0.0\"\n{extra}\n[components.{name}]\nfile = \"component.wasm\"\nworld = \"{world}\"\ncapabilities = [\"env:GREETING_NAME\"]\n"),
    )
    .unwrap();
    dir
}

fn pack(ws: &Workspace, dir: &Path, flags: &[&str]) -> PathBuf {
    let out = dir.with_extension("wasmzip");
    let mut args: Vec<std::ffi::OsString> = vec!["pack".into(), dir.into(), "--key".into(), ws.key().into(), "-o".into(), out.clone().into()];
    args.extend(flags.iter().map(|f| f.into()));
    run(args).expect_code(0);
    out
}

#[test]
fn the_sbom_describes_components_dependencies_and_resources() {
    let ws = Workspace::new();
    // Without a dependency section: the component with its digest and what its own metadata says.
    let plain = ws.package("hello", "hello", &["env:GREETING_NAME"], "", &[("greeting.txt", b"hi\n")], true);
    let sbom = exported_sbom(&ws, &plain);
    assert_eq!(sbom["specVersion"], "1.5");
    let pin = |pkg: &Path, member: &str| {
        let r = run(["inspect".as_ref(), pkg.as_os_str(), "--json".as_ref()]);
        let v: serde_json::Value = serde_json::from_str(&r.expect_code(0).stdout).unwrap();
        v["members"].as_array().unwrap().iter().find(|m| m["name"] == member).unwrap()["sha256"].as_str().unwrap().to_string()
    };
    let hello = components_named(&sbom, "hello");
    assert_eq!(hello.len(), 1, "{sbom:#}");
    assert_eq!(hello[0]["hashes"][0]["content"], pin(&plain, "components/hello.wasm"));
    assert!(sbom.to_string().contains("Rust"), "the producers section names the language: {sbom:#}");
    let resource = components_named(&sbom, "resources/greeting.txt");
    assert_eq!(resource.len(), 1, "{sbom:#}");
    assert_eq!(resource[0]["type"], "file");
    assert!(sbom["components"].as_array().unwrap().iter().all(|c| c["type"] != "library"), "no dependencies are made up: {sbom:#}");

    // `cargo auditable`: the dependency tree from the component itself.
    let dir = pack_dir(&ws, "audited", &auditable_guest(), "http", "");
    let audited = pack(&ws, &dir, &[]);
    let sbom = exported_sbom(&ws, &audited);
    let serde = components_named(&sbom, "serde");
    assert_eq!(serde.len(), 1, "{sbom:#}");
    assert_eq!(serde[0]["type"], "library");
    assert!(serde[0]["purl"].as_str().unwrap().starts_with("pkg:cargo/serde@1."), "{:#}", serde[0]);
    let refs: Vec<&str> = sbom["dependencies"].as_array().unwrap().iter().flat_map(|d| d["dependsOn"].as_array().into_iter().flatten().filter_map(|r| r.as_str())).collect();
    assert!(refs.contains(&serde[0]["bom-ref"].as_str().unwrap()), "serde is in the dependency graph");

    // `--sbom-from Cargo.lock` for a component without a section.
    let dir = pack_dir(&ws, "locked", &guest("hello"), "cli", "");
    let locked = pack(&ws, &dir, &["--sbom-from", repo_path("guests/Cargo.lock").to_str().unwrap()]);
    let sbom = exported_sbom(&ws, &locked);
    let wit_bindgen = components_named(&sbom, "wit-bindgen");
    assert!(!wit_bindgen.is_empty(), "the lock file's packages are listed");
    assert_eq!(wit_bindgen[0]["hashes"][0]["alg"], "SHA-256", "with the lock file's checksum");
    // A component whose custom sections do not parse cannot be described, so it is not packed.
    let mut broken = wat::parse_str("(component)").unwrap();
    broken.extend_from_slice(b"\0\x04name");
    let broken_wasm = ws.path("broken.wasm");
    std::fs::write(&broken_wasm, broken).unwrap();
    let bdir = pack_dir(&ws, "broken", &broken_wasm, "cli", "");
    let r = run(["pack".as_ref(), bdir.as_os_str(), "--unsigned".as_ref(), "-o".as_ref(), ws.path("broken.wasmzip").as_os_str()]);
    r.expect_code(REFUSED).stderr_has(&["components/broken.wasm", "metadata"]);
    assert!(!ws.path("broken.wasmzip").exists());
    let bad_lock = ws.path("Bad.lock");
    std::fs::write(&bad_lock, "[[package]]\nname = \"x\"\n").unwrap();
    let r = run(["pack".as_ref(), dir.as_os_str(), "--unsigned".as_ref(), "-o".as_ref(), ws.path("bad.wasmzip").as_os_str(), "--sbom-from".as_ref(), bad_lock.as_os_str()]);
    r.expect_code(REFUSED).stderr_has(&["Bad.lock"]);
    assert!(!ws.path("bad.wasmzip").exists());
}

#[test]
fn an_author_supplied_sbom_is_validated_and_embedded_as_it_is() {
    let ws = Workspace::new();
    let supplied = r#"{
  "bomFormat": "CycloneDX",
  "specVersion": "1.5",
  "version": 1,
  "metadata": { "component": { "type": "application", "bom-ref": "app", "name": "supplied", "version": "1.0.0" } },
  "components": [
    { "type": "library", "bom-ref": "copyleft", "name": "copyleft", "version": "2.0.0", "purl": "pkg:cargo/copyleft@2.0.0", "licenses": [ { "license": { "id": "GPL-3.0-only" } } ] }
  ],
  "dependencies": [ { "ref": "app", "dependsOn": ["copyleft"] } ]
}
"#;
    let dir = pack_dir(&ws, "supplied", &guest("hello"), "cli", "\n[sbom]\nfile = \"bom.json\"\n");
    std::fs::write(dir.join("bom.json"), supplied).unwrap();
    let pkg = pack(&ws, &dir, &[]);
    run(["sbom".as_ref(), pkg.as_os_str()]).expect_code(0).stdout_has(&["\"copyleft\""]);
    assert_eq!(run(["sbom".as_ref(), pkg.as_os_str()]).stdout, supplied, "embedded byte for byte");
    exported_sbom(&ws, &pkg);
    // A broken one is refused at pack, naming the file and what is wrong.
    std::fs::write(dir.join("bom.json"), supplied.replace(r#""dependsOn": ["copyleft"]"#, r#""dependsOn": ["nowhere"]"#)).unwrap();
    let r = run(["pack".as_ref(), dir.as_os_str(), "--unsigned".as_ref(), "-o".as_ref(), ws.path("broken.wasmzip").as_os_str()]);
    r.expect_code(REFUSED).stderr_has(&["bom.json", "nowhere"]);
    std::fs::write(dir.join("bom.json"), "not json").unwrap();
    run(["pack".as_ref(), dir.as_os_str(), "--unsigned".as_ref(), "-o".as_ref(), ws.path("broken.wasmzip").as_os_str()]).expect_code(REFUSED).stderr_has(&["bom.json"]);
    assert!(!ws.path("broken.wasmzip").exists());
}

#[test]
fn provenance_records_the_builder_the_revision_and_the_lock_file() {
    let ws = Workspace::new();
    let dir = pack_dir(&ws, "built", &guest("hello"), "cli", "");
    std::fs::write(dir.join("Cargo.lock"), "# a lock file\n").unwrap();
    let git = |args: &[&str]| {
        let out = Command::new("git").current_dir(&dir).args(["-c", "user.name=t", "-c", "user.email=t@example.com"]).args(args).output().unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "source"]);
    let commit = git(&["rev-parse", "HEAD"]);
    let pkg = pack(&ws, &dir, &["--provenance", "--builder-id", "https://ci.example.com/builders/1"]);
    let lock_sha = wasmzip_package::sha256_file(&dir.join("Cargo.lock")).unwrap().0;
    let r = verify_ok(&pkg, &[&ws.public_key()]);
    r.stdout_has(&["provenance builder https://ci.example.com/builders/1", &format!("gitCommit:{commit}"), &format!("Cargo.lock sha256:{lock_sha}")]);
    assert!(!r.stdout.contains("dirty"), "{}", r.stdout);
    // A change not yet committed is recorded as such.
    std::fs::write(dir.join("Cargo.lock"), "# changed\n").unwrap();
    let pkg = pack(&ws, &dir, &["--provenance"]);
    verify_ok(&pkg, &[&ws.public_key()]).stdout_has(&["(dirty work tree)", "provenance builder urn:wasmzip:pack:"]);
    // Provenance is a signed statement: not for unsigned packages.
    run(["pack".as_ref(), dir.as_os_str(), "--unsigned".as_ref(), "--provenance".as_ref()]).expect_code(REFUSED).stderr_has(&["--key"]);
}

/// A policy file in the workspace whose `[keys]` names `dev.pub` as `dev` (and `release.pub` as
/// `release`, once there is one), then `text`.
fn policy(ws: &Workspace, name: &str, text: &str) -> PathBuf {
    let mut keys = vec![("dev", ws.public_key())];
    if ws.path("release.pub").exists() {
        keys.push(("release", ws.path("release.pub")));
    }
    policy_with_keys(ws, name, &keys, text)
}

fn policy_with_keys(ws: &Workspace, name: &str, keys: &[(&str, PathBuf)], text: &str) -> PathBuf {
    let path = ws.path(&format!("{name}.toml"));
    let keys: String = keys.iter().map(|(n, p)| format!("{n} = \"{}\"\n", p.display())).collect();
    std::fs::write(&path, format!("[keys]\n{keys}\n{text}")).unwrap();
    path
}

fn run_with_policy(ws: &Workspace, pkg: &Path, policy: &Path, extra: &[&str]) -> Run {
    let mut args: Vec<std::ffi::OsString> =
        vec!["run".into(), pkg.into(), "--policy".into(), policy.into(), "--cache-dir".into(), ws.path("cache").into(), "--grant-requested".into()];
    args.extend(extra.iter().map(|e| e.into()));
    run(args)
}

#[test]
fn the_deploy_policy_refuses_and_allows_by_each_rule() {
    let ws = Workspace::new();
    keygen(&ws, "release");
    let pkg = ws.package("hello", "hello", &["env:GREETING_NAME"], "", &[("greeting.txt", b"hi\n")], true);
    let extracted = || std::fs::read_dir(ws.path("cache/packages")).map(|d| d.count()).unwrap_or(0);
    let refused = |make: &dyn Fn() -> Run, fragments: &[&str]| {
        let before = extracted();
        let r = make();
        r.expect_code(REFUSED).stderr_has(fragments).stderr_has(&["wasmzip::audit", "hello@1.0.0"]);
        assert!(r.stdout.is_empty(), "the guest must not run: {}", r.stdout);
        // The policy decides before anything is read out of the package: no resource was extracted.
        assert_eq!(extracted(), before, "a refused package's resources were extracted");
    };

    // Signers: only release may ship hello*, and two signatures are needed for it.
    let signers = policy(&ws, "signers", "[[functions]]\nnames = [\"hello*\"]\nsigners = [\"release\"]\n");
    refused(&|| run_with_policy(&ws, &pkg, &signers, &[]), &["functions[0].signatures", "release"]);
    run(["sign".as_ref(), pkg.as_os_str(), "--key".as_ref(), ws.path("release.key").as_os_str()]).expect_code(0);
    run_with_policy(&ws, &pkg, &signers, &[]).expect_code(0).stdout_has(&["Hello, world!", "resource: hi"]);
    std::fs::remove_dir_all(ws.path("cache")).unwrap();
    let two = policy(&ws, "two", "[[functions]]\nnames = [\"*\"]\nsigners = [\"dev\", \"release\"]\nsignatures = 2\n");
    run_with_policy(&ws, &pkg, &two, &[]).expect_code(0);
    let other = ws.package("other", "hello", &[], "", &[], true);
    let r = run_with_policy(&ws, &other, &two, &[]);
    r.expect_code(REFUSED).stderr_has(&["functions[0].signatures", "other@1.0.0"]);
    // No rule for the name.
    let none = policy(&ws, "none", "[[functions]]\nnames = [\"payments-*\"]\nsigners = [\"dev\"]\n");
    refused(&|| run_with_policy(&ws, &pkg, &none, &[]), &["rule functions", "hello"]);

    // A ceiling on grants: hello may never see more than GREETING_NAME.
    let wide = ws.package("hello-wide", "hello", &["env:GREETING_NAME", "env:HOME"], "", &[], true);
    let ceiling = policy(&ws, "ceiling", "[[functions]]\nnames = [\"hello*\"]\nsigners = [\"dev\"]\ngrant_ceiling = [\"env:GREETING_NAME\"]\n");
    let r = run_with_policy(&ws, &wide, &ceiling, &[]);
    r.expect_code(REFUSED).stderr_has(&["functions[0].grant_ceiling", "env:HOME"]);
    run_with_policy(&ws, &pkg, &ceiling, &[]).expect_code(0);

    // An SBOM is required: a schema-1 package has none.
    let fixtures = repo_path("tests/fixtures/schema1");
    let required = policy_with_keys(
        &ws,
        "sbom",
        &[("dev", ws.public_key()), ("old", fixtures.join("schema1.pub"))],
        "[[functions]]\nnames = [\"*\"]\nsigners = [\"dev\", \"old\"]\n\n[sbom]\nrequired = true\n",
    );
    let r = run_with_policy(&ws, &fixtures.join("hello-schema1-1.0.0.wasmzip"), &required, &[]);
    r.expect_code(REFUSED).stderr_has(&["sbom.required", "hello-schema1@1.0.0"]);
    run_with_policy(&ws, &pkg, &required, &[]).expect_code(0);

    // Refused licences, from an SBOM the author supplied.
    let dir = pack_dir(&ws, "hello-gpl", &guest("hello"), "cli", "\n[sbom]\nfile = \"bom.json\"\n");
    std::fs::write(
        dir.join("bom.json"),
        r#"{"bomFormat":"CycloneDX","specVersion":"1.5","version":1,"components":[{"type":"library","bom-ref":"c","name":"copyleft","version":"2.0.0","licenses":[{"expression":"GPL-3.0-only OR AGPL-3.0-only"}]},{"type":"library","bom-ref":"d","name":"dual","version":"1.0.0","licenses":[{"expression":"MIT OR GPL-3.0-only"}]}]}"#,
    )
    .unwrap();
    let gpl = pack(&ws, &dir, &[]);
    let licences = policy(&ws, "licences", "[[functions]]\nnames = [\"*\"]\nsigners = [\"dev\"]\n\n[sbom]\nrefuse_licenses = [\"GPL-*\", \"AGPL-*\"]\n");
    let r = run_with_policy(&ws, &gpl, &licences, &[]);
    r.expect_code(REFUSED).stderr_has(&["sbom.refuse_licenses", "copyleft"]);
    assert!(!r.stderr.contains("dual"), "an OR with an acceptable branch is allowed: {}", r.stderr);
    run_with_policy(&ws, &pkg, &licences, &[]).expect_code(0);
}

#[test]
fn refused_dependencies_and_advisories_name_what_matched() {
    let ws = Workspace::new();
    let dir = pack_dir(&ws, "audited", &auditable_guest(), "http", "");
    let pkg = pack(&ws, &dir, &[]);
    let sbom: serde_json::Value = serde_json::from_str(&run(["sbom".as_ref(), pkg.as_os_str()]).expect_code(0).stdout).unwrap();
    let serde_version = components_named(&sbom, "serde")[0]["version"].as_str().unwrap().to_string();
    let serve_refuses = |policy: &Path, advisories: Option<&Path>, fragments: &[&str]| {
        let mut extra: Vec<std::ffi::OsString> = vec!["--policy".into(), policy.into()];
        if let Some(a) = advisories {
            extra.extend(["--advisories".into(), a.into()]);
        }
        let data = ws.path(&format!("data-{}", policy.file_stem().unwrap().to_string_lossy()));
        let server = Server::start(ws.serve_args(&data, &extra), &[]);
        let r = server.cli(&["deploy".as_ref(), pkg.as_os_str(), "--grant-requested".as_ref()]);
        r.expect_code(REFUSED).stderr_has(fragments);
        server.wait_for_log(&["wasmzip::audit", "audited@1.0.0"], std::time::Duration::from_secs(10));
        // Nothing is stored for a refused deploy.
        server.cli(&["functions"]).expect_code(0).stdout_has(&["no functions deployed"]);
        let stored: Vec<_> = std::fs::read_dir(data.join("packages")).map(|d| d.collect()).unwrap_or_default();
        assert!(stored.is_empty(), "a refused package was stored: {stored:?}");
        server
    };
    let deps = policy(&ws, "deps", &format!("[[functions]]\nnames = [\"*\"]\nsigners = [\"dev\"]\n\n[[sbom.refuse_dependencies]]\nname = \"serde\"\nversions = \"<={serde_version}\"\n"));
    serve_refuses(&deps, None, &["sbom.refuse_dependencies[0]", &format!("serde {serde_version}")]);
    // The same rule for versions this serde is not: deployed, and the log names both digests.
    let old_deps = policy(&ws, "old-deps", "[[functions]]\nnames = [\"*\"]\nsigners = [\"dev\"]\n\n[[sbom.refuse_dependencies]]\nname = \"serde\"\nversions = \"<1.0.0\"\n");
    let server = Server::start(ws.serve_args(&ws.path("data-old-deps"), &["--policy".as_ref(), old_deps.as_os_str()]), &[]);
    server.cli(&["deploy".as_ref(), pkg.as_os_str(), "--grant-requested".as_ref()]).expect_code(0);
    let archive = wasmzip_package::sha256_file(&pkg).unwrap().0;
    server.wait_for_log(&["deployed", &archive], std::time::Duration::from_secs(10));
    drop(server);

    // An OSV advisory against that serde: refused, naming the advisory and the dependency.
    let advisories = ws.path("advisories");
    std::fs::create_dir_all(advisories.join("crates")).unwrap();
    std::fs::write(
        advisories.join("crates/RUSTSEC-2099-0001.json"),
        format!(r#"{{"id":"RUSTSEC-2099-0001","summary":"a test advisory","modified":"2026-01-01T00:00:00Z","affected":[{{"package":{{"ecosystem":"crates.io","name":"serde"}},"ranges":[{{"type":"SEMVER","events":[{{"introduced":"0"}},{{"fixed":"99.0.0"}}]}}]}}]}}"#),
    )
    .unwrap();
    let refuse = policy(&ws, "advise", "[[functions]]\nnames = [\"*\"]\nsigners = [\"dev\"]\n");
    serve_refuses(&refuse, Some(&advisories), &["RUSTSEC-2099-0001", &format!("serde {serde_version}")]);
    // Under `on_match = "warn"` it runs, with an audit warning.
    let warn = policy(&ws, "warn", "[[functions]]\nnames = [\"*\"]\nsigners = [\"dev\"]\n\n[advisories]\non_match = \"warn\"\n");
    let server = Server::start(ws.serve_args(&ws.path("data-warn"), &["--policy".as_ref(), warn.as_os_str(), "--advisories".as_ref(), advisories.as_os_str()]), &[]);
    server.cli(&["deploy".as_ref(), pkg.as_os_str(), "--grant-requested".as_ref()]).expect_code(0);
    server.wait_for_log(&["policy warning", "RUSTSEC-2099-0001"], std::time::Duration::from_secs(10));
}

#[test]
fn a_downgrade_needs_allow_downgrade_and_records_carry_the_archive_digest() {
    let ws = Workspace::new();
    let newer = ws.http("app", "hello_http").version("1.1.0").build();
    let older = ws.http("app", "hello_http").version("1.0.0").build();
    let policy = policy(&ws, "downgrade", "[[functions]]\nnames = [\"*\"]\nsigners = [\"dev\"]\n");
    let server = ws.serve(&["--policy".as_ref(), policy.as_os_str()]);
    server.cli(&["deploy".as_ref(), newer.as_os_str()]).expect_code(0);
    let r = server.cli(&["deploy".as_ref(), older.as_os_str()]);
    r.expect_code(REFUSED).stderr_has(&["versions.downgrade", "1.0.0", "1.1.0", "--allow-downgrade"]);
    server.wait_for_log(&["wasmzip::audit", "app@1.0.0", "versions.downgrade"], std::time::Duration::from_secs(10));
    let listed: serde_json::Value = serde_json::from_str(&server.cli(&["functions", "--json"]).expect_code(0).stdout).unwrap();
    let app = &listed["functions"][0];
    assert_eq!(app["active"]["version"], "1.1.0", "the refused deploy changed nothing: {listed:#}");
    assert_eq!(app["versions"].as_array().unwrap().len(), 1);
    let archive = wasmzip_package::sha256_file(&newer).unwrap().0;
    assert_eq!(app["active"]["archive_digest"], archive, "the record carries the archive's own SHA-256");
    assert_eq!(app["active"]["signers"].as_array().unwrap().len(), 1);
    server.cli(&["deploy".as_ref(), older.as_os_str(), "--allow-downgrade".as_ref()]).expect_code(0).stdout_has(&["deployed app 1.0.0"]);
    server.cli(&["deploy".as_ref(), newer.as_os_str()]).expect_code(0);
    drop(server);

    // A package on `serve`'s command line below the version its data directory serves: refused
    // (nothing starts), unless `serve --allow-downgrade`.
    let args = |extra: &[&std::ffi::OsStr]| {
        let mut all: Vec<&std::ffi::OsStr> = vec![older.as_os_str(), "--policy".as_ref(), policy.as_os_str()];
        all.extend_from_slice(extra);
        ws.serve_args(&ws.path("data"), &all)
    };
    let err = Server::try_start(args(&[]), &[]).err().expect("serve refuses the downgrade");
    assert!(err.contains("versions.downgrade") && err.contains("--allow-downgrade"), "{err}");
    let server = Server::start(args(&["--allow-downgrade".as_ref()]), &[]);
    let listed: serde_json::Value = serde_json::from_str(&server.cli(&["functions", "--json"]).expect_code(0).stdout).unwrap();
    assert_eq!(listed["functions"][0]["active"]["version"], "1.0.0");
}

#[test]
fn hundreds_of_resources_fit_in_a_signed_package() {
    // Each format-2 pin is some 300 bytes of manifest, which the envelope carries again as base64.
    let ws = Workspace::new();
    let files: Vec<(String, Vec<u8>)> = (0..400).map(|i| (format!("static/f{i:03}.txt"), format!("file {i}\n").into_bytes())).collect();
    let resources: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
    let pkg = ws.package("many", "hello", &[], "", &resources, true);
    verify_ok(&pkg, &[&ws.public_key()]).stdout_has(&["402 pinned members"]);
    // A package a key does not verify is named by its file, also among several.
    let stranger = Workspace::new();
    let r = run(["verify".as_ref(), pkg.as_os_str(), pkg.as_os_str(), "--trust".as_ref(), stranger.public_key().as_os_str()]);
    r.expect_code(REFUSED).stderr_has(&[&format!("{}: the package is signed by key", pkg.display()), "2 of 2 packages failed"]);
}

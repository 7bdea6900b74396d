//! Packing, signing, verifying and inspecting end to end, including every kind of hostile archive.
//! Hostile archives are built here, from a real package, with the package crate's writer or by
//! patching bytes.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use wasmzip_package::archive::{ArchiveLimits, ArchiveReader, ArchiveWriter, Compression};

/// Rewrites `src` into `dst`, passing every member through `edit` (which may drop, change or add).
/// Each member keeps the way it was stored (a format-2 package pins that); added ones are deflated.
fn rebuild(src: &Path, dst: &Path, mut edit: impl FnMut(String, Vec<u8>) -> Vec<(String, Vec<u8>)>) {
    let mut reader = ArchiveReader::open(std::fs::File::open(src).unwrap(), &ArchiveLimits::default()).unwrap();
    let mut members = Vec::new();
    let mut how = std::collections::HashMap::new();
    for i in 0..reader.entries().len() {
        let name = reader.entries()[i].name.clone();
        how.insert(name.clone(), reader.entries()[i].compression);
        let bytes = reader.read_entry_to_vec(i, u64::MAX).unwrap();
        members.extend(edit(name, bytes));
    }
    let mut writer = ArchiveWriter::new(std::fs::File::create(dst).unwrap());
    for (name, bytes) in members {
        let compression = how.get(&name).copied().unwrap_or(Compression::Deflated);
        writer.add(&name, compression, &mut &bytes[..]).unwrap();
    }
    writer.finish().unwrap();
}

/// Rewrites `src` into `dst` with every member deflated, as a lenient (schema 1) writer might.
fn rebuild_deflated(src: &Path, dst: &Path) {
    let mut reader = ArchiveReader::open(std::fs::File::open(src).unwrap(), &ArchiveLimits::default()).unwrap();
    let mut writer = ArchiveWriter::new(std::fs::File::create(dst).unwrap());
    for i in 0..reader.entries().len() {
        let name = reader.entries()[i].name.clone();
        let bytes = reader.read_entry_to_vec(i, u64::MAX).unwrap();
        writer.add(&name, Compression::Deflated, &mut &bytes[..]).unwrap();
    }
    writer.finish().unwrap();
}

/// Replaces every occurrence of `from` with `to` (same length) in the file: names appear in both the
/// local and the central header.
fn patch(path: &Path, from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let mut bytes = std::fs::read(path).unwrap();
    let mut hits = 0;
    let mut i = 0;
    while i + from.len() <= bytes.len() {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + from.len()].copy_from_slice(to);
            hits += 1;
        }
        i += 1;
    }
    assert!(hits > 0, "pattern not found");
    std::fs::write(path, bytes).unwrap();
}

fn hello_package(ws: &Workspace) -> PathBuf {
    ws.package("hello", "hello", &["env:GREETING_NAME"], "", &[("greeting.txt", b"hi from resources\n")], true)
}

fn verify(ws: &Workspace, pkg: &Path) -> Run {
    run(["verify".as_ref(), pkg.as_os_str(), "--trust".as_ref(), ws.public_key().as_os_str()])
}

/// A hostile package is refused by `verify` and by `run`, naming `fragment`, and the guest never runs.
#[track_caller]
fn refused(ws: &Workspace, pkg: &Path, fragments: &[&str]) {
    verify(ws, pkg).expect_code(REFUSED).stderr_has(fragments);
    let r = ws.run_pkg(pkg, &[]);
    r.expect_code(REFUSED).stderr_has(fragments);
    assert!(r.stdout.is_empty(), "the guest must not run: {}", r.stdout);
}

#[test]
fn pack_is_deterministic_and_verifies() {
    let ws = Workspace::new();
    let pkg = hello_package(&ws);
    let first = std::fs::read(&pkg).unwrap();
    // Touch every input: timestamps must not matter.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    for f in ["src-hello/component.wasm", "src-hello/greeting.txt"] {
        let bytes = std::fs::read(ws.path(f)).unwrap();
        std::fs::write(ws.path(f), bytes).unwrap();
    }
    let again = ws.path("again.wasmzip");
    run(["pack".as_ref(), ws.path("src-hello").as_os_str(), "--key".as_ref(), ws.key().as_os_str(), "-o".as_ref(), again.as_os_str()]).expect_code(0);
    assert_eq!(first, std::fs::read(&again).unwrap(), "byte-identical archives");
    verify(&ws, &pkg).expect_code(0).stdout_has(&["verified hello 1.0.0", "signed by trusted key"]);
    ws.run_pkg(&pkg, &[]).expect_code(0).stdout_has(&["resource: hi from resources"]);
}

#[test]
fn large_resources_are_stored_uncompressed() {
    let ws = Workspace::new();
    let big = vec![7u8; 3 << 20];
    let pkg = ws.package("big", "hello", &[], "", &[("big.bin", &big), ("small.txt", b"small")], true);
    let reader = ArchiveReader::open(std::fs::File::open(&pkg).unwrap(), &ArchiveLimits::default()).unwrap();
    let entry = |name: &str| reader.entries().iter().find(|e| e.name == name).unwrap().clone();
    assert_eq!(entry("resources/big.bin").compression, Compression::Stored);
    assert_eq!(entry("resources/small.txt").compression, Compression::Deflated);
    verify(&ws, &pkg).expect_code(0);
}

#[test]
fn tampering_with_any_member_or_the_signature_is_refused() {
    let ws = Workspace::new();
    let pkg = hello_package(&ws);

    // A resource changed, same size (valid CRC): the pinned digest catches it.
    let t = ws.path("t1.wasmzip");
    rebuild(&pkg, &t, |n, mut b| {
        if n == "resources/greeting.txt" {
            b[0] ^= 1;
        }
        vec![(n, b)]
    });
    refused(&ws, &t, &["resources/greeting.txt", "SHA-256 differs"]);

    // The component changed.
    let t = ws.path("t2.wasmzip");
    rebuild(&pkg, &t, |n, mut b| {
        if n == "components/hello.wasm" {
            let at = b.len() - 10;
            b[at] ^= 1;
        }
        vec![(n, b)]
    });
    // Deflated again, its stored size no longer matches the pin of its stored bytes.
    refused(&ws, &t, &["components/hello.wasm", "deflated bytes but manifest.json pins"]);

    // A resource of another size.
    let t = ws.path("t3.wasmzip");
    rebuild(&pkg, &t, |n, b| if n == "resources/greeting.txt" { vec![(n, b"longer than before\n".to_vec())] } else { vec![(n, b)] });
    refused(&ws, &t, &["resources/greeting.txt", "pins 18"]);

    // A byte flipped inside the archive, CRC left as it was.
    let t = ws.path("t4.wasmzip");
    let mut bytes = std::fs::read(&pkg).unwrap();
    let name = b"resources/greeting.txt";
    let local = (0..bytes.len() - 4)
        .find(|&i| bytes[i..i + 4] == [0x50, 0x4b, 0x03, 0x04] && bytes[i + 30..].starts_with(name))
        .expect("local header");
    bytes[local + 30 + name.len() + 2] ^= 0x55;
    std::fs::write(&t, bytes).unwrap();
    refused(&ws, &t, &["resources/greeting.txt"]);

    // The manifest changed (asking for more): the signed payload no longer matches.
    let t = ws.path("t5.wasmzip");
    rebuild(&pkg, &t, |n, b| {
        if n == "manifest.json" {
            let text = String::from_utf8(b).unwrap().replace("env:GREETING_NAME", "env:*");
            vec![(n, text.into_bytes())]
        } else {
            vec![(n, b)]
        }
    });
    refused(&ws, &t, &["signature", "differs from manifest.json"]);

    // Manifest and envelope payload changed together: the signature does not verify.
    let t = ws.path("t6.wasmzip");
    let mut new_manifest = Vec::new();
    rebuild(&pkg, &t, |n, b| match n.as_str() {
        "manifest.json" => {
            new_manifest = String::from_utf8(b).unwrap().replace("env:GREETING_NAME", "env:*").into_bytes();
            vec![(n, new_manifest.clone())]
        }
        "signature.dsse.json" => {
            let mut env: serde_json::Value = serde_json::from_slice(&b).unwrap();
            use base64_engine::encode;
            env["payload"] = serde_json::Value::String(encode(&new_manifest));
            vec![(n, canonical_json(&env))]
        }
        _ => vec![(n, b)],
    });
    refused(&ws, &t, &["does not verify"]);

    // The signature itself altered.
    let t = ws.path("t7.wasmzip");
    rebuild(&pkg, &t, |n, b| {
        if n == "signature.dsse.json" {
            let mut env: serde_json::Value = serde_json::from_slice(&b).unwrap();
            let sig = env["signatures"][0]["sig"].as_str().unwrap().to_string();
            let flipped = if sig.starts_with('A') { format!("B{}", &sig[1..]) } else { format!("A{}", &sig[1..]) };
            env["signatures"][0]["sig"] = serde_json::Value::String(flipped);
            vec![(n, canonical_json(&env))]
        } else {
            vec![(n, b)]
        }
    });
    refused(&ws, &t, &["does not verify"]);

    // The signature removed: now it is an unsigned package, refused without --allow-unsigned.
    let t = ws.path("t8.wasmzip");
    rebuild(&pkg, &t, |n, b| if n == "signature.dsse.json" { vec![] } else { vec![(n, b)] });
    refused(&ws, &t, &["not signed", "--allow-unsigned"]);
}

/// An envelope in the one form format 2 accepts: pretty JSON, keys in order, a trailing newline.
fn canonical_json(value: &serde_json::Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).unwrap();
    bytes.push(b'\n');
    bytes
}

/// Minimal standard base64 for re-encoding a payload in a test.
mod base64_engine {
    pub fn encode(bytes: &[u8]) -> String {
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = (chunk[0] as u32) << 16 | (*chunk.get(1).unwrap_or(&0) as u32) << 8 | *chunk.get(2).unwrap_or(&0) as u32;
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}

#[test]
fn trust_rules() {
    let ws = Workspace::new();
    let pkg = hello_package(&ws);
    let other = Workspace::new();
    // Signed by a key that is not trusted.
    run(["verify".as_ref(), pkg.as_os_str(), "--trust".as_ref(), other.public_key().as_os_str()])
        .expect_code(REFUSED)
        .stderr_has(&["not trusted"]);
    // No trust anchors at all.
    run(["verify".as_ref(), pkg.as_os_str()]).expect_code(REFUSED).stderr_has(&["no trusted keys"]);
    let r = run(["run".as_ref(), pkg.as_os_str()]);
    r.expect_code(REFUSED);
    assert!(r.stdout.is_empty());
    // A trust directory.
    let trust_dir = ws.path("trusted");
    std::fs::create_dir(&trust_dir).unwrap();
    std::fs::copy(other.public_key(), trust_dir.join("other.pub")).unwrap();
    std::fs::copy(ws.public_key(), trust_dir.join("dev.pub")).unwrap();
    let out = wasmzip().args(["verify".as_ref(), pkg.as_os_str()]).env("WASMZIP_TRUST", &trust_dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Unsigned packages run only when allowed, with a warning.
    let unsigned = ws.package("plain", "hello", &[], "", &[], false);
    ws.run_pkg(&unsigned, &[]).expect_code(REFUSED).stderr_has(&["not signed"]);
    let warned = ws.run_pkg(&unsigned, &["--allow-unsigned"]);
    warned.expect_code(0).stderr_has(&["unsigned"]).stdout_has(&["Hello, world!"]);
    // stderr is a pipe here: the log line is plain text, without terminal colour codes.
    assert!(!warned.stderr.contains('\x1b'), "colour codes in piped log output: {:?}", warned.stderr);
}

#[test]
fn hostile_archives_are_rejected_naming_the_member() {
    let ws = Workspace::new();
    let pkg = hello_package(&ws);

    let t = ws.path("unpinned.wasmzip");
    rebuild(&pkg, &t, |n, b| {
        let extra = n == "resources/greeting.txt";
        let mut v = vec![(n, b)];
        if extra {
            v.push(("resources/extra.sh".into(), b"rm -rf /".to_vec()));
        }
        v
    });
    refused(&ws, &t, &["resources/extra.sh", "not pinned"]);

    let t = ws.path("missing.wasmzip");
    rebuild(&pkg, &t, |n, b| if n == "resources/greeting.txt" { vec![] } else { vec![(n, b)] });
    refused(&ws, &t, &["resources/greeting.txt", "missing from the archive"]);

    // Names the writer would refuse, patched into the bytes.
    let cases: [(&str, &[u8], &[u8], &str); 4] = [
        ("dup", b"resources/greetinX.txt", b"resources/greeting.txt", "duplicate"),
        ("dotdot", b"resources/aa/evil.txt", b"resources/../evil.txt", ".."),
        ("absolute", b"xresources/evil.txt", b"/resources/evil.txt", "absolute"),
        ("backslash", b"resources/a_evil.txt", b"resources/a\\evil.txt", "backslash"),
    ];
    for (label, placeholder, hostile, reason) in cases {
        let t = ws.path(&format!("{label}.wasmzip"));
        let placeholder_name = String::from_utf8(placeholder.to_vec()).unwrap();
        rebuild(&pkg, &t, |n, b| {
            let add = n == "resources/greeting.txt";
            let mut v = vec![(n, b)];
            if add {
                v.push((placeholder_name.clone(), b"x".to_vec()));
            }
            v
        });
        patch(&t, placeholder, hostile);
        let shown = String::from_utf8_lossy(hostile).into_owned();
        verify(&ws, &t).expect_code(REFUSED).stderr_has(&[&shown]);
        let r = verify(&ws, &t);
        assert!(r.stderr.to_lowercase().contains(reason), "{label}: {}", r.stderr);
    }

    // A symbolic link entry: Unix mode S_IFLNK in the central directory's external attributes.
    let t = ws.path("symlink.wasmzip");
    std::fs::copy(&pkg, &t).unwrap();
    let mut bytes = std::fs::read(&t).unwrap();
    let name = b"resources/greeting.txt";
    let cd = (0..bytes.len() - 4)
        .find(|&i| bytes[i..i + 4] == [0x50, 0x4b, 0x01, 0x02] && bytes[i + 46..].starts_with(name))
        .expect("central directory entry");
    bytes[cd + 38..cd + 42].copy_from_slice(&((0o120777u32) << 16).to_le_bytes());
    std::fs::write(&t, bytes).unwrap();
    refused(&ws, &t, &["resources/greeting.txt", "symbolic link"]);

    // Bytes outside the listed members: appended, and prepended.
    let t = ws.path("trailing.wasmzip");
    let mut bytes = std::fs::read(&pkg).unwrap();
    bytes.extend_from_slice(b"hidden payload");
    std::fs::write(&t, &bytes).unwrap();
    refused(&ws, &t, &["not a valid archive"]);
    let t = ws.path("prefixed.wasmzip");
    let mut bytes = b"#!/bin/sh\nexit 0\n".to_vec();
    bytes.extend_from_slice(&std::fs::read(&pkg).unwrap());
    std::fs::write(&t, &bytes).unwrap();
    verify(&ws, &t).expect_code(REFUSED);

    // Not a zip at all.
    let t = ws.path("garbage.wasmzip");
    std::fs::write(&t, b"PK\x03\x04 this is not really an archive").unwrap();
    verify(&ws, &t).expect_code(REFUSED).stderr_has(&["garbage.wasmzip"]);
}

#[test]
fn compression_bombs_are_rejected() {
    let ws = Workspace::new();
    let zeros = vec![0u8; 20 << 20];
    let pkg = ws.package("bomb", "hello", &[], "", &[("zeros.bin", &zeros)], true);
    verify(&ws, &pkg).expect_code(0);
    // Same bytes and digests, but deflated: format 2 pins the member as stored, so it is refused
    // before a byte is inflated (the ratio check, which guards schema-1 packages, is tested in the
    // archive reader's own tests).
    let t = ws.path("bomb2.wasmzip");
    rebuild_deflated(&pkg, &t);
    refused(&ws, &t, &["manifest.json", "is deflated, which format 2 does not allow"]);
}

#[test]
fn keys_are_openssl_compatible() {
    let ws = Workspace::new();
    let out = std::process::Command::new("openssl").args(["pkey", "-in"]).arg(ws.key()).arg("-noout").output().expect("openssl");
    assert!(out.status.success(), "openssl reads our private key: {}", String::from_utf8_lossy(&out.stderr));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(ws.key()).unwrap().permissions().mode() & 0o777, 0o600);

    // The key id is the SHA-256 of the DER public key.
    let der = std::process::Command::new("openssl").args(["pkey", "-pubin", "-outform", "DER", "-in"]).arg(ws.public_key()).output().unwrap();
    assert!(der.status.success());
    let id = wasmzip_package::sha256_hex(&der.stdout);
    let pkg = hello_package(&ws);
    verify(&ws, &pkg).stdout_has(&[&id]);

    // A key made by openssl signs packages we verify.
    let key = ws.path("ossl.key");
    let public = ws.path("ossl.pub");
    assert!(std::process::Command::new("openssl").args(["genpkey", "-algorithm", "ed25519", "-out"]).arg(&key).status().unwrap().success());
    assert!(std::process::Command::new("openssl").args(["pkey", "-pubout", "-in"]).arg(&key).arg("-out").arg(&public).status().unwrap().success());
    let signed = ws.path("ossl.wasmzip");
    run(["pack".as_ref(), ws.path("src-hello").as_os_str(), "--key".as_ref(), key.as_os_str(), "-o".as_ref(), signed.as_os_str()]).expect_code(0);
    run(["verify".as_ref(), signed.as_os_str(), "--trust".as_ref(), public.as_os_str()]).expect_code(0);

    // keygen never overwrites.
    run(["keygen".as_ref(), ws.path("dev").as_os_str()]).expect_code(REFUSED).stderr_has(&["already exists"]);
}

#[test]
fn author_manifest_errors_name_file_line_and_key() {
    let ws = Workspace::new();
    let dir = ws.path("bad");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(guest("hello"), dir.join("hello.wasm")).unwrap();
    let pack = |toml: &str| {
        std::fs::write(dir.join("wasmzip.toml"), toml).unwrap();
        run(["pack".as_ref(), dir.as_os_str(), "--unsigned".as_ref(), "-o".as_ref(), ws.path("bad.wasmzip").as_os_str()])
    };
    let good = "[package]\nname = \"bad\"\nversion = \"1.0.0\"\n\n[components.bad]\nfile = \"hello.wasm\"\nworld = \"cli\"\n";
    pack(good).expect_code(0);
    pack(&format!("{good}colour = \"blue\"\n")).expect_code(REFUSED).stderr_has(&["wasmzip.toml", "line 8", "colour"]);
    pack(&good.replace("\"cli\"", "\"cli\"\ncapabilities = [\"network:outbound:host:99999\"]"))
        .expect_code(REFUSED)
        .stderr_has(&["line 8", "network:outbound:host:99999", "position 23"]);
    pack(&good.replace("hello.wasm", "missing.wasm")).expect_code(REFUSED).stderr_has(&["components.bad.file", "missing.wasm"]);
    pack(&good.replace("version = \"1.0.0\"", "version = \"1.0.0\"\nresources = [\"../outside.txt\"]"))
        .expect_code(REFUSED)
        .stderr_has(&["resources", "../outside.txt"]);
    // A core module is not a component.
    std::fs::write(dir.join("hello.wasm"), wat::parse_str("(module)").unwrap()).unwrap();
    pack(good).expect_code(REFUSED).stderr_has(&["core WebAssembly module", "wasm32-wasip2"]);
}

#[test]
fn inspect_lists_members_imports_and_warnings() {
    let ws = Workspace::new();
    let pkg = ws.package("probe", "net-probe", &["env:LOG_LEVEL"], "", &[("notes.txt", b"n")], true);
    let r = run(["inspect".as_ref(), pkg.as_os_str()]);
    r.expect_code(0).stdout_has(&[
        "package   probe 1.0.0",
        "components/probe.wasm",
        "resources/notes.txt",
        "env:LOG_LEVEL",
        "wasi:sockets/tcp",
        "wasi:cli/run",
        "requests no network capability",
    ]);
    let r = run(["inspect".as_ref(), pkg.as_os_str(), "--json".as_ref()]);
    r.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["name"], "probe");
    assert_eq!(v["components"][0]["capabilities"][0], "env:LOG_LEVEL");
    assert!(v["components"][0]["imports"].as_array().unwrap().iter().any(|i| i.as_str().unwrap().starts_with("wasi:sockets/")));
    assert_eq!(v["signers"].as_array().unwrap().len(), 1);

    let hello = ws.package("hellonet", "hello", &["network:outbound:example.com:443"], "", &[], true);
    run(["inspect".as_ref(), hello.as_os_str()]).expect_code(0).stdout_has(&["network:outbound:example.com:443` but imports neither wasi:sockets"]);
}

/// A download cut short is said to look truncated, and faults inside a package name the package file.
#[test]
fn cut_short_and_damaged_packages_name_the_file_and_the_fault() {
    let ws = Workspace::new();
    let pkg = hello_package(&ws);
    let bytes = std::fs::read(&pkg).unwrap();
    for keep in [bytes.len() - 3, bytes.len() / 2] {
        let cut = ws.path("cut.wasmzip");
        std::fs::write(&cut, &bytes[..keep]).unwrap();
        refused(&ws, &cut, &["cut.wasmzip", "looks truncated"]);
    }
    let t = ws.path("damaged.wasmzip");
    rebuild(&pkg, &t, |n, mut b| {
        if n == "resources/greeting.txt" {
            b[0] ^= 1;
        }
        vec![(n, b)]
    });
    refused(&ws, &t, &["damaged.wasmzip: ", "resources/greeting.txt"]);
    let inspected = run(["inspect".as_ref(), t.as_os_str()]);
    inspected.expect_code(REFUSED).stderr_has(&["damaged.wasmzip: ", "resources/greeting.txt"]);
}

/// A command-line mistake is reported on a first line of wasmzip's own, with clap's hint after it.
#[test]
fn command_line_errors_start_with_a_wasmzip_error_line() {
    let r = run(["run", "--no-such-flag", "x.wasm"]);
    r.expect_code(REFUSED);
    let first = r.stderr.lines().next().unwrap_or_default();
    assert!(first.starts_with("wasmzip: error: ") && first.contains("--no-such-flag"), "{}", r.stderr);
    assert!(r.stderr.contains("--help"), "a short hint follows: {}", r.stderr);
    assert!(!r.stderr.lines().any(|l| l.trim().is_empty()), "no blank lines: {}", r.stderr);
    // --help is not an error.
    run(["run", "--help"]).expect_code(0).stdout_has(&["Usage: wasmzip run"]);
}

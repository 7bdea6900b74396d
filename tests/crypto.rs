//! Host-held keys end to end, for both keystores: `wasmzip keys`, the `vault` command guest through
//! `wasmzip run`, and the `signer` HTTP guest through `wasmzip serve`. The PKCS#11 cases use a fresh
//! SoftHSM2 token per test (Debian's `softhsm2`; CI installs it).

mod common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use common::*;

const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const PIN: &str = "4321";
const PASSPHRASE: &str = "correct horse battery staple";

/// Exit codes of the vault guest (guests/vault).
const VAULT_DENIED: i32 = 3;
const VAULT_NOT_FOUND: i32 = 4;
const VAULT_AUTH_FAILED: i32 = 5;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Software,
    Pkcs11,
}

/// One keystore for one test, with the flags and environment every `wasmzip` call needs to reach it.
struct Keys {
    flags: Vec<OsString>,
    env: Vec<(String, String)>,
    token: String,
}

impl Keys {
    fn new(ws: &Workspace, kind: Kind) -> Keys {
        match kind {
            Kind::Software => {
                std::fs::write(ws.path("passphrase"), format!("{PASSPHRASE}\n")).unwrap();
                Keys {
                    flags: vec!["--keystore-dir".into(), ws.path("keys").into(), "--passphrase-file".into(), ws.path("passphrase").into()],
                    env: Vec::new(),
                    token: String::new(),
                }
            }
            Kind::Pkcs11 => {
                assert!(
                    Path::new(SOFTHSM_MODULE).exists(),
                    "{SOFTHSM_MODULE} is missing: install SoftHSM2 (`apt-get install softhsm2`; .ci/run does)"
                );
                let tokens = ws.path("tokens");
                std::fs::create_dir_all(&tokens).unwrap();
                let conf = ws.path("softhsm2.conf");
                std::fs::write(&conf, format!("directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n", tokens.display())).unwrap();
                let token = "wasmzip-test".to_string();
                let out = std::process::Command::new("softhsm2-util")
                    .env("SOFTHSM2_CONF", &conf)
                    .args(["--init-token", "--free", "--label", &token, "--pin", PIN, "--so-pin", "87654321"])
                    .output()
                    .expect("softhsm2-util runs");
                assert!(out.status.success(), "softhsm2-util: {}", String::from_utf8_lossy(&out.stderr));
                std::fs::write(ws.path("pin"), format!("{PIN}\n")).unwrap();
                Keys {
                    flags: vec![
                        "--keystore".into(),
                        "pkcs11".into(),
                        "--pkcs11-module".into(),
                        SOFTHSM_MODULE.into(),
                        "--pkcs11-token".into(),
                        token.clone().into(),
                        "--pin-file".into(),
                        ws.path("pin").into(),
                    ],
                    env: vec![("SOFTHSM2_CONF".into(), conf.display().to_string())],
                    token,
                }
            }
        }
    }

    /// `wasmzip ARGS` with this keystore's flags appended.
    fn wasmzip<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Run {
        self.wasmzip_with(args, &self.flags)
    }

    fn wasmzip_with<S: AsRef<std::ffi::OsStr>>(&self, args: &[S], flags: &[OsString]) -> Run {
        let mut cmd = wasmzip();
        // The keystore flags go before a `--` that passes guest arguments.
        let args: Vec<OsString> = args.iter().map(|a| a.as_ref().to_os_string()).collect();
        let split = args.iter().position(|a| a == "--").unwrap_or(args.len());
        cmd.args(&args[..split]).args(flags).args(&args[split..]);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("wasmzip runs");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn keys(&self, args: &[&str]) -> Run {
        let mut all = vec!["keys"];
        all.extend_from_slice(args);
        self.wasmzip(&all)
    }

    /// `wasmzip run PKG --trust dev.pub --mount /data=DATA EXTRA... -- VAULT_ARGS...`.
    fn vault(&self, ws: &Workspace, pkg: &Path, grants: &[&str], vault_args: &[&str]) -> Run {
        let mut args: Vec<OsString> = vec!["run".into(), pkg.into(), "--trust".into(), ws.public_key().into()];
        args.extend(["--mount".into(), format!("/data={}", ws.path("data").display()).into()]);
        args.extend(["--grant".into(), "filesystem:write:/data".into()]);
        for g in grants {
            args.extend(["--grant".into(), (*g).into()]);
        }
        args.push("--".into());
        args.extend(vault_args.iter().map(Into::into));
        self.wasmzip(&args)
    }

    fn serve(&self, ws: &Workspace, extra: &[&str]) -> Server {
        let mut args: Vec<OsString> = extra.iter().map(Into::into).collect();
        args.extend(self.flags.iter().cloned());
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Server::start(ws.serve_args(&ws.path("served"), &args), &env)
    }

    /// `keys public NAME` written to a PEM file.
    fn public_pem(&self, ws: &Workspace, name: &str, version: Option<u32>) -> PathBuf {
        let v = version.map(|v| v.to_string());
        let mut args = vec!["public", name];
        if let Some(v) = &v {
            args.extend(["--version", v]);
        }
        let r = self.keys(&args);
        r.expect_code(0).stdout_has(&["-----BEGIN PUBLIC KEY-----"]);
        let path = ws.path(&format!("{name}-{}.pem", v.as_deref().unwrap_or("current")));
        std::fs::write(&path, &r.stdout).unwrap();
        path
    }
}

fn vault_package(ws: &Workspace) -> PathBuf {
    std::fs::create_dir_all(ws.path("data")).unwrap();
    ws.package(
        "vault",
        "vault",
        &["filesystem:write:/data", "crypto:key:vault-key:seal", "crypto:key:vault-key:open", "crypto:key:signing:sign", "crypto:key:mac-key:mac"],
        "",
        &[],
        true,
    )
}

/// Verifies a signature with the openssl command line: Ed25519 raw, P-256 as DER over SHA-256.
fn openssl_verifies(ws: &Workspace, pem: &Path, key_type: &str, message: &[u8], signature: &[u8]) -> bool {
    let msg = ws.path("openssl-msg");
    let sig = ws.path("openssl-sig");
    std::fs::write(&msg, message).unwrap();
    std::fs::write(&sig, signature).unwrap();
    let mut cmd = std::process::Command::new("openssl");
    if key_type == "ed25519" {
        cmd.args(["pkeyutl", "-verify", "-pubin", "-rawin", "-inkey"]).arg(pem).arg("-in").arg(&msg).arg("-sigfile").arg(&sig);
    } else {
        cmd.args(["dgst", "-sha256", "-verify"]).arg(pem).arg("-signature").arg(&sig).arg(&msg);
    }
    let out = cmd.output().expect("openssl runs");
    out.status.success()
}

/// `vault sign` prints `version=N signature=HEX`.
fn parse_vault_signature(stdout: &str) -> (u32, Vec<u8>) {
    let mut version = None;
    let mut signature = None;
    for field in stdout.split_whitespace() {
        if let Some(v) = field.strip_prefix("version=") {
            version = v.parse().ok();
        } else if let Some(s) = field.strip_prefix("signature=") {
            signature = hex::decode(s).ok();
        }
    }
    (version.unwrap_or_else(|| panic!("no version in {stdout:?}")), signature.unwrap_or_else(|| panic!("no signature in {stdout:?}")))
}

fn signatures_verify_with_openssl(kind: Kind) {
    for key_type in ["ed25519", "p256"] {
        let ws = Workspace::new();
        let keys = Keys::new(&ws, kind);
        let pkg = vault_package(&ws);
        std::fs::write(ws.path("data/msg.txt"), b"pay 10 EUR to alice").unwrap();
        keys.keys(&["create", "signing", "--type", key_type]).expect_code(0).stdout_has(&["created signing (", key_type]);
        let r = keys.vault(&ws, &pkg, &["crypto:key:signing:sign"], &["sign", "signing", "/data/msg.txt"]);
        r.expect_code(0);
        let (version, signature) = parse_vault_signature(&r.stdout);
        assert_eq!(version, 1);
        let pem = keys.public_pem(&ws, "signing", None);
        assert!(openssl_verifies(&ws, &pem, key_type, b"pay 10 EUR to alice", &signature), "{key_type}: openssl rejects the signature");
        assert!(!openssl_verifies(&ws, &pem, key_type, b"pay 99 EUR to alice", &signature), "{key_type}: openssl accepts a wrong message");

        // After a rotation the new version signs; the old public key still verifies the old signature.
        keys.keys(&["rotate", "signing"]).expect_code(0).stdout_has(&["version 2 now signs"]);
        let r = keys.vault(&ws, &pkg, &["crypto:key:signing:sign"], &["sign", "signing", "/data/msg.txt"]);
        let (version2, signature2) = parse_vault_signature(&r.expect_code(0).stdout);
        assert_eq!(version2, 2);
        let pem2 = keys.public_pem(&ws, "signing", Some(2));
        let pem1 = keys.public_pem(&ws, "signing", Some(1));
        assert!(openssl_verifies(&ws, &pem2, key_type, b"pay 10 EUR to alice", &signature2));
        assert!(openssl_verifies(&ws, &pem1, key_type, b"pay 10 EUR to alice", &signature));
        assert!(!openssl_verifies(&ws, &pem1, key_type, b"pay 10 EUR to alice", &signature2));
    }
}

#[test]
fn software_signatures_verify_with_openssl() {
    signatures_verify_with_openssl(Kind::Software);
}

#[test]
fn pkcs11_signatures_verify_with_openssl() {
    signatures_verify_with_openssl(Kind::Pkcs11);
}

fn sealed_data_opens_after_rotation(kind: Kind) {
    let ws = Workspace::new();
    let keys = Keys::new(&ws, kind);
    let pkg = vault_package(&ws);
    keys.keys(&["create", "vault-key", "--type", "aes256gcm"]).expect_code(0);
    let secret = b"the launch codes are 0000".repeat(1000);
    std::fs::write(ws.path("data/plain.txt"), &secret).unwrap();
    let both = ["crypto:key:vault-key:seal", "crypto:key:vault-key:open"];
    keys.vault(&ws, &pkg, &both, &["seal", "vault-key", "/data/plain.txt", "/data/v1.sealed", "--aad", "doc-1"]).expect_code(0);
    let sealed = std::fs::read(ws.path("data/v1.sealed")).unwrap();
    assert!(!sealed.windows(9).any(|w| w == b"launch co"), "the sealed file holds the plaintext");

    keys.keys(&["rotate", "vault-key"]).expect_code(0);
    keys.vault(&ws, &pkg, &both, &["open", "vault-key", "/data/v1.sealed", "/data/v1.out", "--aad", "doc-1"]).expect_code(0);
    assert_eq!(std::fs::read(ws.path("data/v1.out")).unwrap(), secret);
    keys.vault(&ws, &pkg, &both, &["seal", "vault-key", "/data/plain.txt", "/data/v2.sealed"]).expect_code(0);
    keys.vault(&ws, &pkg, &both, &["open", "vault-key", "/data/v2.sealed", "/data/v2.out"]).expect_code(0);
    assert_eq!(std::fs::read(ws.path("data/v2.out")).unwrap(), secret);
    let listed = keys.keys(&["list", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&listed.expect_code(0).stdout).unwrap();
    assert_eq!(json[0]["name"], "vault-key");
    assert_eq!(json[0]["versions"], serde_json::json!([1, 2]));

    // Tampering: one flipped bit of ciphertext, or other associated data, never opens.
    let mut tampered = sealed.clone();
    let last = tampered.len() - 20;
    tampered[last] ^= 0x01;
    std::fs::write(ws.path("data/bad.sealed"), &tampered).unwrap();
    keys.vault(&ws, &pkg, &both, &["open", "vault-key", "/data/bad.sealed", "/data/bad.out", "--aad", "doc-1"])
        .expect_code(VAULT_AUTH_FAILED)
        .stderr_has(&["authentication failed"]);
    keys.vault(&ws, &pkg, &both, &["open", "vault-key", "/data/v1.sealed", "/data/bad.out", "--aad", "doc-2"]).expect_code(VAULT_AUTH_FAILED);
    assert!(!ws.path("data/bad.out").exists(), "nothing is written when opening fails");

    // HMAC tags: made and checked by the host, never revealing the key.
    keys.keys(&["create", "mac-key", "--type", "hmac-sha256"]).expect_code(0);
    keys.vault(&ws, &pkg, &["crypto:key:mac-key:mac"], &["tag", "mac-key", "/data/plain.txt"]).expect_code(0).stdout_has(&["version=1"]);

    // A deleted key is gone for good: a clear error in the guest and on the command line.
    keys.keys(&["delete", "vault-key"]).expect_code(0).stdout_has(&["deleted vault-key (versions 1,2)"]);
    keys.vault(&ws, &pkg, &both, &["open", "vault-key", "/data/v2.sealed", "/data/gone.out"])
        .expect_code(VAULT_NOT_FOUND)
        .stderr_has(&["not found"]);
    keys.keys(&["public", "vault-key"]).expect_code(REFUSED).stderr_has(&["no key named `vault-key`"]);
    keys.keys(&["rotate", "vault-key"]).expect_code(REFUSED).stderr_has(&["no key named `vault-key`"]);
}

#[test]
fn software_sealed_data_opens_after_rotation() {
    sealed_data_opens_after_rotation(Kind::Software);
}

#[test]
fn pkcs11_sealed_data_opens_after_rotation() {
    sealed_data_opens_after_rotation(Kind::Pkcs11);
}

fn ungranted_keys_and_operations_are_denied(kind: Kind) {
    let ws = Workspace::new();
    let keys = Keys::new(&ws, kind);
    let pkg = vault_package(&ws);
    keys.keys(&["create", "vault-key", "--type", "aes256gcm"]).expect_code(0);
    keys.keys(&["create", "other", "--type", "aes256gcm"]).expect_code(0);
    std::fs::write(ws.path("data/plain.txt"), b"x").unwrap();
    keys.vault(&ws, &pkg, &["crypto:key:vault-key:seal"], &["seal", "vault-key", "/data/plain.txt", "/data/s"]).expect_code(0);

    // The package requests open, but the operator granted only seal.
    let r = keys.vault(&ws, &pkg, &["crypto:key:vault-key:seal"], &["open", "vault-key", "/data/s", "/data/o"]);
    r.expect_code(VAULT_DENIED).stderr_has(&["denied", "crypto:key:vault-key:open"]);
    // And the other way round (`seal` reads its input straight from guest memory; the check comes first).
    let r = keys.vault(&ws, &pkg, &["crypto:key:vault-key:open"], &["seal", "vault-key", "/data/plain.txt", "/data/s2"]);
    r.expect_code(VAULT_DENIED).stderr_has(&["denied", "crypto:key:vault-key:seal"]);
    assert!(!ws.path("data/s2").exists());
    // A key that exists but is not granted and one that does not exist look the same to the guest.
    let exists = keys.vault(&ws, &pkg, &["crypto:key:vault-key:*"], &["seal", "other", "/data/plain.txt", "/data/o"]);
    let absent = keys.vault(&ws, &pkg, &["crypto:key:vault-key:*"], &["seal", "ghost", "/data/plain.txt", "/data/o"]);
    exists.expect_code(VAULT_DENIED).stderr_has(&["needs crypto:key:other:*"]);
    absent.expect_code(VAULT_DENIED).stderr_has(&["needs crypto:key:ghost:*"]);
    let guest_line = |r: &Run| r.stderr.lines().find(|l| l.starts_with("vault:")).map(|l| l.replace("ghost", "other")).unwrap_or_default();
    assert_eq!(guest_line(&exists), guest_line(&absent), "the guest must not learn which keys exist");
    // A grant the package did not request gives nothing: the guest never gets more than it asked for.
    keys.vault(&ws, &pkg, &["crypto:key:other:seal"], &["seal", "other", "/data/plain.txt", "/data/o"]).expect_code(VAULT_DENIED);
    // No grant at all and no keystore flags: nothing is opened, and the key is still denied.
    let data = format!("/data={}", ws.path("data").display());
    let trust = ws.public_key();
    let args = ["run", pkg.to_str().unwrap(), "--trust", trust.to_str().unwrap(), "--mount", &data];
    let args = [&args[..], &["--grant", "filesystem:write:/data", "--", "seal", "vault-key", "/data/plain.txt", "/data/o"]].concat();
    keys.wasmzip_with(&args, &[]).expect_code(VAULT_DENIED).stderr_has(&["crypto:key:vault-key:seal"]);
}

#[test]
fn software_ungranted_keys_and_operations_are_denied() {
    ungranted_keys_and_operations_are_denied(Kind::Software);
}

#[test]
fn pkcs11_ungranted_keys_and_operations_are_denied() {
    ungranted_keys_and_operations_are_denied(Kind::Pkcs11);
}

fn signer_serves_signatures(kind: Kind) {
    let ws = Workspace::new();
    let keys = Keys::new(&ws, kind);
    keys.keys(&["create", "signer", "--type", "ed25519"]).expect_code(0);
    keys.keys(&["create", "ecdsa", "--type", "p256"]).expect_code(0);
    keys.keys(&["create", "secret", "--type", "ed25519"]).expect_code(0);
    let pkg = ws.http("signer", "signer").capabilities(&["crypto:key:signer:sign", "crypto:key:ecdsa:sign", "crypto:key:secret:sign"]).build();
    let server = keys.serve(&ws, &[pkg.to_str().unwrap(), "--grant", "crypto:key:signer:sign", "--grant", "crypto:key:ecdsa:sign"]);

    let body = b"invoice 42: 1000 EUR";
    for (key, key_type) in [("signer", "ed25519"), ("ecdsa", "p256")] {
        let r = server.request("POST", "/signer", &[("x-key", key)], body);
        assert_eq!(r.status, 200, "{}", r.text());
        let json = r.json();
        assert_eq!(json["key"], key);
        assert_eq!(json["key_version"], 1);
        let signature = hex::decode(json["signature"].as_str().unwrap()).unwrap();
        let pem = keys.public_pem(&ws, key, None);
        assert!(openssl_verifies(&ws, &pem, key_type, body, &signature), "{key}: openssl rejects the served signature");
    }
    // Not granted at deploy (though requested): 403, and an audit line naming the token.
    let r = server.request("POST", "/signer", &[("x-key", "secret")], body);
    assert_eq!(r.status, 403, "{}", r.text());
    server.wait_for_log(&["wasmzip::audit", "needs crypto:key:secret:*"], std::time::Duration::from_secs(5));

    // Many requests at once share the keystore (one session pool for PKCS#11) and all succeed.
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let addr = server.public.clone();
            std::thread::spawn(move || http_request(&addr, "POST", "/signer", &[("x-key", "signer")], format!("m{i}").as_bytes()).status)
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 200);
    }

    // A rotation made by `wasmzip keys` while the server runs is picked up without a restart.
    keys.keys(&["rotate", "signer"]).expect_code(0);
    assert!(
        wait_until(std::time::Duration::from_secs(5), || {
            server.request("POST", "/signer", &[("x-key", "signer")], body).json()["key_version"] == 2
        }),
        "the server keeps signing with version 1 after a rotation"
    );
}

#[test]
fn software_signer_serves_signatures() {
    signer_serves_signatures(Kind::Software);
}

#[test]
fn pkcs11_signer_serves_signatures() {
    signer_serves_signatures(Kind::Pkcs11);
}

#[test]
fn keystore_faults_are_clear_errors() {
    let ws = Workspace::new();
    let keys = Keys::new(&ws, Kind::Pkcs11);
    let pkg = vault_package(&ws);
    keys.keys(&["create", "vault-key", "--type", "aes256gcm"]).expect_code(0);
    let grant = ["crypto:key:vault-key:seal"];
    std::fs::write(ws.path("data/plain.txt"), b"x").unwrap();
    std::fs::write(ws.path("bad-pin"), "0000\n").unwrap();

    let with = |replace: &str, value: &str| -> Vec<OsString> {
        let mut flags = keys.flags.clone();
        let i = flags.iter().position(|f| f == replace).unwrap();
        flags[i + 1] = value.into();
        flags
    };
    let run_with = |flags: &[OsString]| {
        let mut args: Vec<OsString> = vec!["run".into(), pkg.clone().into(), "--trust".into(), ws.public_key().into()];
        args.extend(["--mount".into(), format!("/data={}", ws.path("data").display()).into()]);
        args.extend(["--grant".into(), "filesystem:write:/data".into(), "--grant".into(), grant[0].into()]);
        args.extend(["--".into(), "seal".into(), "vault-key".into(), "/data/plain.txt".into(), "/data/s".into()]);
        keys.wasmzip_with(&args, flags)
    };
    run_with(&with("--pin-file", ws.path("bad-pin").to_str().unwrap())).expect_code(REFUSED).stderr_has(&["wrong PIN", "wasmzip-test"]);
    run_with(&with("--pkcs11-module", "/nonexistent/libpkcs11.so")).expect_code(REFUSED).stderr_has(&["/nonexistent/libpkcs11.so"]);
    run_with(&with("--pkcs11-token", "no-such-token")).expect_code(REFUSED).stderr_has(&["no-such-token", "wasmzip-test"]);
    run_with(&with("--pin-file", ws.path("missing-pin").to_str().unwrap())).expect_code(REFUSED).stderr_has(&["PIN file"]);
    run_with(&keys.flags).expect_code(0);

    // Software keystore: a wrong passphrase, and a keystore that does not exist.
    let soft = Keys::new(&ws, Kind::Software);
    soft.keys(&["create", "k", "--type", "ed25519"]).expect_code(0);
    std::fs::write(ws.path("wrong-pass"), "not it\n").unwrap();
    let mut flags = soft.flags.clone();
    flags[3] = ws.path("wrong-pass").into();
    soft.wasmzip_with(&["keys", "list"], &flags).expect_code(REFUSED).stderr_has(&["wrong passphrase"]);
    let mut flags = soft.flags.clone();
    flags[1] = ws.path("nowhere").into();
    soft.wasmzip_with(&["keys", "list"], &flags).expect_code(REFUSED).stderr_has(&["no keystore at", "nowhere"]);
    soft.keys(&["create", "k", "--type", "p256"]).expect_code(REFUSED).stderr_has(&["already exists"]);
    soft.keys(&["create", "bad/name", "--type", "p256"]).expect_code(REFUSED).stderr_has(&["`/` is not allowed"]);
    soft.keys(&["create", "k2", "--type", "rsa"]).expect_code(REFUSED).stderr_has(&["unknown key type `rsa`"]);
    // A server granted keys but given no keystore refuses at start, naming the fix.
    let pkg = ws.http("signer", "signer").capabilities(&["crypto:key:signer:sign"]).build();
    let err = Server::try_start(ws.serve_args(&ws.path("nokeys"), &[pkg.to_str().unwrap(), "--grant-requested"]), &[]).err().expect("refused");
    assert!(err.contains("no keystore"), "{err}");
}

#[test]
fn pkcs11_private_keys_are_not_extractable() {
    let ws = Workspace::new();
    let keys = Keys::new(&ws, Kind::Pkcs11);
    for (name, key_type) in [("hsm-ed", "ed25519"), ("hsm-ec", "p256"), ("hsm-aes", "aes256gcm"), ("hsm-mac", "hmac-sha256")] {
        keys.keys(&["create", name, "--type", key_type]).expect_code(0);
    }
    keys.keys(&["rotate", "hsm-ed"]).expect_code(0);
    // Read the attributes back with OpenSC's pkcs11-tool, independent of our code: it prints
    // `extractable` in an object's Access line exactly when CKA_EXTRACTABLE is true.
    let out = std::process::Command::new("pkcs11-tool")
        .env("SOFTHSM2_CONF", &keys.env[0].1)
        .args(["--module", SOFTHSM_MODULE, "--token-label", &keys.token, "--login", "--pin", PIN, "--list-objects"])
        .output()
        .expect("pkcs11-tool runs (Debian package opensc; .ci/run installs it)");
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{listing}{}", String::from_utf8_lossy(&out.stderr));
    let mut secret_objects = 0;
    let mut current: Option<String> = None;
    for line in listing.lines() {
        if line.starts_with("Private Key Object") || line.starts_with("Secret Key Object") {
            current = Some(line.to_string());
        } else if line.starts_with("Public Key Object") {
            current = None;
        } else if let (Some(object), Some(access)) = (&current, line.trim().strip_prefix("Access:")) {
            secret_objects += 1;
            let flags: Vec<&str> = access.split(',').map(str::trim).collect();
            assert!(flags.contains(&"sensitive"), "{object}: not sensitive ({access})");
            assert!(!flags.contains(&"extractable"), "{object}: CKA_EXTRACTABLE is true ({access})");
            assert!(flags.contains(&"never extractable"), "{object}: ({access})");
        }
    }
    assert_eq!(secret_objects, 5, "four keys, one rotated, in:\n{listing}");

    // Each key may do exactly its operations: every other usage flag is false (pkcs11-tool lists
    // the true ones on an object's Usage line).
    let expected = |kind: &str, label: &str| -> &[&str] {
        match (kind, label.split(':').nth(1).unwrap_or_default()) {
            ("Private", "hsm-ed" | "hsm-ec") => &["sign"],
            ("Public", "hsm-ed" | "hsm-ec") => &["verify"],
            ("Secret", "hsm-aes") => &["encrypt", "decrypt"],
            // pkcs11-tool never lists `sign` for a secret key; that the HMAC key signs is shown by
            // every tag the other tests make with it.
            ("Secret", "hsm-mac") => &["verify"],
            other => panic!("unexpected object {other:?} in:\n{listing}"),
        }
    };
    let (mut kind, mut label, mut checked) = (String::new(), String::new(), 0);
    for line in listing.lines() {
        if let Some((head, _)) = line.split_once(" Key Object") {
            kind = head.to_string();
        } else if let Some(l) = line.trim().strip_prefix("label:") {
            label = l.trim().to_string();
        } else if let Some(usage) = line.trim().strip_prefix("Usage:") {
            let mut flags: Vec<&str> = usage.split(',').map(str::trim).filter(|f| !f.is_empty() && *f != "none").collect();
            flags.sort();
            let mut want = expected(&kind, &label).to_vec();
            want.sort();
            assert_eq!(flags, want, "{kind} key {label}: usage flags ({usage})");
            checked += 1;
        }
    }
    assert_eq!(checked, 8, "five secret or private objects and three public keys, in:\n{listing}");
}

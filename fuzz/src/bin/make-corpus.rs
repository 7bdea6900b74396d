//! Writes the seed corpora into `fuzz/corpus/TARGET/`: small packages packed by `wasmzip_package::pack`
//! and by the archive writer, `wasmzip.toml` and `manifest.json` examples, capability tokens, DSSE
//! envelopes, and `arbitrary` inputs picked for the shapes they decode to. The same code always writes
//! the same bytes. Run from the repository root:
//! `cargo run --manifest-path fuzz/Cargo.toml --bin make-corpus`.

use std::collections::BTreeSet;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use arbitrary::{Arbitrary, Unstructured};
use wasmzip_fuzz::archive::Member;
use wasmzip_fuzz::package::{COMPONENT_PREAMBLE, MutatedPackage, fuzz_key};
use wasmzip_package::archive::{ArchiveLimits, ArchiveReader, ArchiveWriter, Compression, check_member_name};
use wasmzip_package::{MANIFEST_MEMBER, PackOptions, SIGNATURE_MEMBER, pack};

const HELLO: &str = r#"[package]
name = "hello"
version = "0.1.0"
description = "Greets, and reads a file shipped in the package"
resources = ["greeting.txt"]

[components.hello]
file = "hello.wasm"
world = "cli"
capabilities = ["env:GREETING_NAME", "filesystem:read:/data", "network:outbound:api.example.com:443"]
limits = { memory = "64MiB", timeout = "10s" }
"#;

const HTTP: &str = r#"[package]
name = "hello-http"
version = "0.1.0-beta.1+build.7"

[components.hello-http]
file = "hello.wasm"
world = "http"
routes = ["/hello", "/api/v1/"]
capabilities = ["network:outbound:*.example.com:*", "crypto:key:payments:sign", "env:APP_*"]
limits = { memory = 33554432, timeout = "500ms", request_body = "1MB", response_body = "2MiB", headers = "16KiB", outbound_requests = 4 }
reuse = { max_requests = 32, max_concurrent = 4, idle_timeout = "250ms" }
"#;

const MODELS: &str = r#"[package]
name = "classify"
version = "2.0.0"
resources = ["labels"]

[components.cli]
file = "hello.wasm"
world = "cli"
capabilities = ["nn:model:orientation", "filesystem:write:/out"]

[components.serve]
file = "hello.wasm"
world = "http"

[models.orientation]
file = "model.onnx"
target = "auto"
"#;

const TOKENS: &[&str] = &[
    "filesystem:read:/data\nfilesystem:write:/\nfilesystem:read:/data/sub",
    "filesystem:write:/var/data/\nfilesystem:read:/var/data\nfilesystem:read:/var/database",
    "network:outbound:*.example.com:*\nnetwork:outbound:*.a.example.com:443\nnetwork:outbound:api.a.example.com:443",
    "network:outbound:443\nnetwork:outbound:10.0.0.1:443\nnetwork:outbound:[::ffff:10.0.0.1]:443",
    "network:outbound:[2001:db8::1]:8080\nnetwork:outbound:*:*\nnetwork:inbound:8080",
    "env:*\nenv:APP_*\nenv:APP_MODE",
    "crypto:key:*:*\ncrypto:key:payments:*\ncrypto:key:payments:sign",
    "crypto:key:vault.v2:seal\ncrypto:key:vault.v2:open\ncrypto:key:k-1_a:mac",
    "nn:model:*\nnn:model:orientation\nnn:model:orientation",
    "network:outbound:API.Example.COM:443\nnetwork:outbound:api.example.com:443\nenv:HOME",
];

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let scratch = std::env::temp_dir().join(format!("wasmzip-make-corpus-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let mut corpus = Corpus { root, written: 0, emptied: BTreeSet::new() };

    // Packages packed from files by `pack`, signed and unsigned.
    let mut packages = Vec::new();
    for (name, toml) in [("hello", HELLO), ("http", HTTP), ("models", MODELS)] {
        let dir = scratch.join(name);
        std::fs::create_dir_all(dir.join("labels")).unwrap();
        std::fs::write(dir.join("wasmzip.toml"), toml).unwrap();
        std::fs::write(dir.join("hello.wasm"), [COMPONENT_PREAMBLE, b"\0\x07\x06corpus"].concat()).unwrap();
        std::fs::write(dir.join("greeting.txt"), b"hi from resources\n").unwrap();
        std::fs::write(dir.join("labels/up.txt"), b"0 up\n1 right\n2 down\n3 left\n".repeat(4)).unwrap();
        std::fs::write(dir.join("model.onnx"), b"\x08\x07\x12\x04fuzz").unwrap();
        for signed in [true, false] {
            let out = scratch.join(format!("{name}-{signed}.wasmzip"));
            pack(&dir.join("wasmzip.toml"), &PackOptions { key: signed.then(fuzz_key), output: Some(&out), ..PackOptions::default() }).unwrap();
            let bytes = std::fs::read(&out).unwrap();
            let kind = if signed { "signed" } else { "unsigned" };
            corpus.write("archive_bytes", &format!("{name}-{kind}.wasmzip"), &bytes);
            packages.push((name, bytes));
        }
        corpus.write("author_manifest", &format!("{name}.toml"), toml.as_bytes());
    }
    corpus.write("author_manifest", "bad-token.toml", HELLO.replace("env:GREETING_NAME", "env:GREETING-NAME").as_bytes());

    // Archives from the writer alone.
    let writer_archives: [(&str, &[(&str, Compression, &[u8])]); 3] = [
        ("empty.zip", &[]),
        ("stored.zip", &[("a.txt", Compression::Stored, b"first member"), ("b/c", Compression::Stored, b"")]),
        ("deflated.zip", &[("x/y.bin", Compression::Deflated, &[7; 300]), ("\u{e9}t\u{e9}.txt", Compression::Deflated, b"utf-8 name")]),
    ];
    for (file, members) in writer_archives {
        let mut writer = ArchiveWriter::new(Cursor::new(Vec::new()));
        for (name, compression, data) in members {
            writer.add(name, *compression, &mut &data[..]).unwrap();
        }
        corpus.write("archive_bytes", file, &writer.finish().unwrap().into_inner());
    }

    // The manifests and envelopes inside the packed packages.
    let mut seen = BTreeSet::new();
    for (name, bytes) in &packages {
        let mut reader = ArchiveReader::open(Cursor::new(&bytes[..]), &ArchiveLimits::default()).unwrap();
        for (member, target, file) in
            [(MANIFEST_MEMBER, "package_manifest", "manifest.json"), (SIGNATURE_MEMBER, "dsse_envelope", "signature.dsse.json")]
        {
            if let Some(i) = reader.find(member) {
                let data = reader.read_entry_to_vec(i, 1 << 20).unwrap();
                if seen.insert(data.clone()) {
                    corpus.write(target, &format!("{name}-{file}"), &data);
                }
            }
        }
    }
    let envelope = String::from_utf8(fuzz_key().sign_manifest(b"{}\n", true)).unwrap();
    let two = envelope.replacen("\"signatures\": [", "\"signatures\": [\n    {\n      \"keyid\": \"00000000000000000000000000000000000000000000000000000000000000ff\",\n      \"sig\": \"AAAA\"\n    },", 1);
    corpus.write("dsse_envelope", "two-signatures.json", two.as_bytes());

    for (i, tokens) in TOKENS.iter().enumerate() {
        corpus.write("capability", &format!("tokens-{i}.txt"), tokens.as_bytes());
    }

    // `arbitrary` inputs: pseudo-random bytes, kept for the shapes they decode to.
    let mut rng = Rng(0x5eed_2026);
    let shapes: [(&str, fn(&MutatedPackage) -> bool); 5] = [
        ("intact-signed", |m| m.mutations.is_empty() && m.package.signed && !m.package.resources.is_empty()),
        ("intact-unsigned", |m| m.mutations.is_empty() && !m.package.signed),
        ("stored-manifest", |m| m.mutations.len() == 1 && !m.package.deflate_manifest && m.package.signed),
        ("models", |m| m.mutations.len() <= 2 && m.package.resources.iter().any(|r| r.model)),
        ("many-mutations", |m| m.mutations.len() >= 4 && m.package.components.len() >= 2),
    ];
    for (shape, wanted) in shapes {
        let bytes = rng.find(|bytes| decode::<MutatedPackage>(bytes).is_some_and(|m| wanted(&m) && m.package.build().bytes.len() < 4096));
        corpus.write("archive_mutated", &format!("{shape}.bin"), &bytes);
    }
    for n in [1, 2, 3] {
        let bytes = rng.find_text(|bytes| {
            decode::<Vec<Member>>(bytes).is_some_and(|members| members.iter().filter(|m| check_member_name(&m.name).is_ok()).count() >= n)
        });
        corpus.write("archive_round_trip", &format!("members-{n}.bin"), &bytes);
    }
    std::fs::remove_dir_all(&scratch).unwrap();
    println!("wrote {} seed files under {}", corpus.written, corpus.root.display());
}

/// Decodes `bytes` the way libFuzzer hands them to a target taking `T`.
fn decode<T: for<'a> Arbitrary<'a>>(bytes: &[u8]) -> Option<T> {
    T::arbitrary_take_rest(Unstructured::new(bytes)).ok()
}

struct Corpus {
    root: PathBuf,
    written: usize,
    emptied: BTreeSet<String>,
}

impl Corpus {
    /// Writes one seed; a target's directory is emptied the first time it is written to.
    fn write(&mut self, target: &str, file: &str, bytes: &[u8]) {
        let dir = self.root.join(target);
        if self.emptied.insert(target.to_owned()) && dir.exists() {
            std::fs::remove_dir_all(&dir).unwrap();
        }
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(file), bytes).unwrap();
        self.written += 1;
    }
}

/// A small deterministic generator (a 64-bit LCG), so the seeds are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u8 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u8
    }

    fn bytes(&mut self, len: usize, text: bool) -> Vec<u8> {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789-_/.";
        (0..len)
            .map(|_| {
                let b = self.next();
                if text && b % 4 != 0 { ALPHABET[usize::from(b >> 2) % ALPHABET.len()] } else { b % 24 }
            })
            .collect()
    }

    fn find(&mut self, mut wanted: impl FnMut(&[u8]) -> bool) -> Vec<u8> {
        self.search(false, &mut wanted)
    }

    fn find_text(&mut self, mut wanted: impl FnMut(&[u8]) -> bool) -> Vec<u8> {
        self.search(true, &mut wanted)
    }

    fn search(&mut self, text: bool, wanted: &mut dyn FnMut(&[u8]) -> bool) -> Vec<u8> {
        for attempt in 0..200_000 {
            let len = 64 + (attempt % 8) * 96;
            let bytes = self.bytes(len, text);
            if wanted(&bytes) {
                return bytes;
            }
        }
        panic!("no input of the wanted shape in 200000 tries");
    }
}

//! Valid packages built from `arbitrary` data, then damaged by a list of mutations, read through the
//! archive reader, `inspect_package` and `verify_package`.

use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use arbitrary::Arbitrary;
use wasmzip_package::archive::{self, ArchiveWriter, Compression};
use wasmzip_package::manifest::{ComponentEntry, Limits, MANIFEST_SCHEMA, MANIFEST_SCHEMA_V1, MemberPin, ModelEntry, ModelEncoding, ModelTarget, Name, Reuse, StoredPin};
use wasmzip_package::{
    MANIFEST_MEMBER, PackageError, PackageManifest, ResourceSink, SIGNATURE_MEMBER, Signer, SigningKey, TrustPolicy, World,
    inspect_package, sha256_hex, verify_package,
};

/// The preamble of an empty WebAssembly component: `\0asm`, version 13, layer 1.
pub const COMPONENT_PREAMBLE: &[u8] = b"\0asm\x0d\x00\x01\x00";

/// The Ed25519 key that signs generated packages: fixed, so that every run and every reproduction of a
/// crash sees the same bytes. A test key, trusted by nothing but the fuzzers.
pub const FUZZ_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIMW+ke9wsStD8niOjcsOfOjNAQHY+eo+YBFNlCQQEZqr
-----END PRIVATE KEY-----
";

const COMPONENT_NAMES: [&str; 4] = ["app", "cli", "http", "worker"];
const RESOURCE_DIRS: [&str; 3] = ["data", "img", "deep/er"];
const TOKENS: [&str; 8] = [
    "env:GREETING_NAME",
    "env:APP_*",
    "filesystem:read:/data",
    "filesystem:write:/tmp/out",
    "network:outbound:api.example.com:443",
    "network:inbound:8080",
    "crypto:key:payments:sign",
    "nn:model:*",
];

/// A private scratch directory for this process (several fuzzing processes may run at once).
fn scratch_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("wasmzip-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("creating the scratch directory");
        dir
    })
}

/// The signing key of [`FUZZ_KEY_PEM`].
pub fn fuzz_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let path = scratch_dir().join("fuzz.key");
        std::fs::write(&path, FUZZ_KEY_PEM).expect("writing the fuzz key");
        SigningKey::from_pem_file(&path).expect("the fuzz key parses")
    })
}

/// A package to build: one to four components and any number of resources, some of them models.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq, Hash)]
pub struct PackageSpec {
    /// The components (names are drawn from a fixed list; repeats are dropped, and none means one).
    pub components: Vec<ComponentSpec>,
    /// The resources.
    pub resources: Vec<ResourceSpec>,
    /// Whether `manifest.json` is deflated (stored, its text can be mutated directly).
    pub deflate_manifest: bool,
    /// Whether the package is signed with [`fuzz_key`].
    pub signed: bool,
    /// The package description.
    pub description: Option<String>,
}

/// One component.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq, Hash)]
pub struct ComponentSpec {
    /// Index into the component names.
    pub name: u8,
    /// `http` rather than `cli`.
    pub http: bool,
    /// Indexes into a list of valid tokens.
    pub capabilities: Vec<u8>,
    /// Memory limit in bytes (0: none).
    pub memory: u32,
    /// Bytes after the component preamble.
    pub body: Vec<u8>,
    /// Deflated rather than stored.
    pub deflate: bool,
}

/// One resource.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceSpec {
    /// Index into a list of directories, or at the top of `resources/`.
    pub dir: Option<u8>,
    /// Its bytes.
    pub data: Vec<u8>,
    /// Deflated rather than stored.
    pub deflate: bool,
    /// Also a model (`[models.mN]`).
    pub model: bool,
}

/// [`PackageSpec::build`], remembered: many inputs share a package and differ only in their
/// mutations, and building (deflating, signing) costs more than reading.
fn built(spec: &PackageSpec) -> Arc<BuiltPackage> {
    static BUILT: OnceLock<Mutex<HashMap<PackageSpec, Arc<BuiltPackage>>>> = OnceLock::new();
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if built.len() >= 1024 {
        built.clear();
    }
    built.entry(spec.clone()).or_insert_with(|| Arc::new(spec.build())).clone()
}

/// A package as built: its bytes and what they hold.
pub struct BuiltPackage {
    /// The archive.
    pub bytes: Vec<u8>,
    /// Its manifest.
    pub manifest: PackageManifest,
    /// The bytes of each component.
    pub components: BTreeMap<Name, Vec<u8>>,
    /// Whether it carries a signature.
    pub signed: bool,
    /// Whether it is a format-2 (schema 2) package, whose every byte is pinned.
    pub format_2: bool,
}

fn method(deflate: bool) -> Compression {
    if deflate { Compression::Deflated } else { Compression::Stored }
}

fn name(text: &str) -> Name {
    Name::parse(text).expect("generated names are valid")
}

/// The reuse limits of a generated component: an `http` component whose memory limit is odd asks
/// for reuse (so the package is schema 2), with limits taken from that number. Derived rather than
/// decoded, so that the inputs of the seed corpus keep decoding to the packages they were made for.
fn reuse_of(spec: &ComponentSpec) -> Option<Reuse> {
    let n = spec.memory;
    if !spec.http || n % 2 == 0 {
        return None;
    }
    if n % 4 == 3 {
        return Some(Reuse { enabled: false, max_requests: None, max_concurrent: None, idle_timeout_ms: None });
    }
    Some(Reuse {
        enabled: true,
        max_requests: (n % 3 == 0).then_some(n % 200 + 1),
        max_concurrent: (n % 5 == 0).then_some(n % 16 + 1),
        idle_timeout_ms: (n % 7 == 0).then_some(u64::from(n % 1000) + 1),
    })
}

impl PackageSpec {
    /// Builds the package as `pack` lays it out: `manifest.json`, the signature, the components, then
    /// the resources, each pinned by the manifest.
    pub fn build(&self) -> BuiltPackage {
        let mut members: Vec<(String, Compression, Vec<u8>)> = Vec::new();
        let mut components = BTreeMap::new();
        let mut entries = BTreeMap::new();
        let defaults = [ComponentSpec { name: 0, http: false, capabilities: vec![], memory: 0, body: vec![], deflate: true }];
        let specs = if self.components.is_empty() { &defaults[..] } else { &self.components[..] };
        for spec in specs.iter().take(COMPONENT_NAMES.len()) {
            let component = name(COMPONENT_NAMES[usize::from(spec.name) % COMPONENT_NAMES.len()]);
            if entries.contains_key(&component) {
                continue;
            }
            let member = format!("components/{component}.wasm");
            let mut capabilities = Vec::new();
            for &i in &spec.capabilities {
                let token = TOKENS[usize::from(i) % TOKENS.len()].parse().expect("listed tokens are valid");
                if !capabilities.contains(&token) {
                    capabilities.push(token);
                }
            }
            let limits = Limits { memory_bytes: (spec.memory != 0).then_some(u64::from(spec.memory)), ..Limits::default() };
            let world = if spec.http { World::Http } else { World::Cli };
            entries.insert(component.clone(), ComponentEntry { member: member.clone(), world, capabilities, limits, routes: vec![], reuse: reuse_of(spec) });
            let bytes = [COMPONENT_PREAMBLE, &spec.body].concat();
            members.push((member, method(spec.deflate), bytes.clone()));
            components.insert(component, bytes);
        }
        let mut models = BTreeMap::new();
        for (i, spec) in self.resources.iter().enumerate() {
            let member = match spec.dir {
                Some(d) => format!("resources/{}/r{i}.bin", RESOURCE_DIRS[usize::from(d) % RESOURCE_DIRS.len()]),
                None => format!("resources/r{i}.bin"),
            };
            if spec.model {
                let entry = ModelEntry { member: member.clone(), encoding: ModelEncoding::Onnx, target: ModelTarget::Cpu };
                models.insert(name(&format!("m{i}")), entry);
            }
            members.push((member, method(spec.deflate), spec.data.clone()));
        }
        // Schema 1 (the lenient format, still read) when the manifest is deflated and nothing needs
        // schema 2; otherwise format 2, laid out exactly as `pack` writes it.
        let format_2 = !self.deflate_manifest || entries.values().any(|e: &ComponentEntry| e.reuse.is_some());
        if format_2 {
            // The writer's one order: components by component name, then resources by name.
            members.sort_by_key(|(member, _, _)| match member.strip_prefix("components/").and_then(|m| m.strip_suffix(".wasm")) {
                Some(component) => (0, component.to_string()),
                None => (1, member.clone()),
            });
        }
        let mut deflated = BTreeMap::new();
        for (member, compression, bytes) in &members {
            if format_2 && *compression == Compression::Deflated {
                deflated.insert(member.clone(), archive::deflate(member, &mut &bytes[..]).expect("deflating in memory"));
            }
        }
        let manifest = PackageManifest {
            schema: if format_2 { MANIFEST_SCHEMA } else { MANIFEST_SCHEMA_V1 },
            name: name("fuzz"),
            version: semver::Version::new(1, 0, 0),
            description: self.description.clone(),
            components: entries,
            models,
            members: members
                .iter()
                .map(|(member, _, bytes)| MemberPin {
                    name: member.clone(),
                    size: bytes.len() as u64,
                    sha256: sha256_hex(bytes),
                    deflated: deflated.get(member).map(|d| StoredPin { size: d.bytes.len() as u64, sha256: sha256_hex(&d.bytes) }),
                })
                .collect(),
        };
        let manifest_bytes = manifest.to_bytes();
        let mut writer = ArchiveWriter::new(Cursor::new(Vec::new()));
        let own = if format_2 { Compression::Stored } else { Compression::Deflated };
        writer.add(MANIFEST_MEMBER, if format_2 { Compression::Stored } else { method(self.deflate_manifest) }, &mut &manifest_bytes[..]).expect("a valid member");
        if self.signed {
            writer.add(SIGNATURE_MEMBER, own, &mut &fuzz_key().sign_manifest(&manifest_bytes, format_2)[..]).expect("a valid member");
        }
        for (member, compression, bytes) in &members {
            match deflated.get(member) {
                Some(d) => writer.add_raw(member, Compression::Deflated, d.crc32, d.size, &mut &d.bytes[..], d.bytes.len() as u64),
                None => writer.add(member, *compression, &mut &bytes[..]),
            }
            .expect("generated members are valid");
        }
        let bytes = writer.finish().expect("finishing an in-memory archive").into_inner();
        BuiltPackage { bytes, manifest, components, signed: self.signed, format_2 }
    }
}

/// One change to an archive's bytes; offsets wrap around the current length.
#[derive(Arbitrary, Debug, Clone)]
pub enum Mutation {
    /// Flips one bit.
    FlipBit {
        /// Where.
        offset: u32,
        /// Which bit (modulo 8).
        bit: u8,
    },
    /// Overwrites bytes (as many as fit).
    Overwrite {
        /// Where.
        offset: u32,
        /// With what.
        bytes: Vec<u8>,
    },
    /// Writes a little-endian `u16` (a header field).
    SetU16 {
        /// Where.
        offset: u32,
        /// The value.
        value: u16,
    },
    /// Writes a little-endian `u32` (a header field).
    SetU32 {
        /// Where.
        offset: u32,
        /// The value.
        value: u32,
    },
    /// Cuts the archive short.
    Truncate {
        /// The new length (modulo the current one).
        len: u32,
    },
    /// Adds bytes at the end.
    Append {
        /// What.
        bytes: Vec<u8>,
    },
    /// Inserts bytes.
    Insert {
        /// Where.
        offset: u32,
        /// What.
        bytes: Vec<u8>,
    },
    /// Removes bytes.
    Remove {
        /// Where.
        offset: u32,
        /// How many.
        len: u16,
    },
}

fn at(offset: u32, len: usize) -> usize {
    if len == 0 { 0 } else { offset as usize % len }
}

fn overwrite(bytes: &mut [u8], offset: u32, with: &[u8]) {
    let start = at(offset, bytes.len());
    let n = with.len().min(bytes.len() - start);
    bytes[start..start + n].copy_from_slice(&with[..n]);
}

/// Applies `mutations` in order.
pub fn mutate(bytes: &mut Vec<u8>, mutations: &[Mutation]) {
    for mutation in mutations {
        match mutation {
            Mutation::FlipBit { offset, bit } => {
                if !bytes.is_empty() {
                    let i = at(*offset, bytes.len());
                    bytes[i] ^= 1 << (bit % 8);
                }
            }
            Mutation::Overwrite { offset, bytes: with } => overwrite(bytes, *offset, with),
            Mutation::SetU16 { offset, value } => overwrite(bytes, *offset, &value.to_le_bytes()),
            Mutation::SetU32 { offset, value } => overwrite(bytes, *offset, &value.to_le_bytes()),
            Mutation::Truncate { len } => bytes.truncate(at(*len, bytes.len())),
            Mutation::Append { bytes: more } => bytes.extend_from_slice(more),
            Mutation::Insert { offset, bytes: more } => {
                let i = at(*offset, bytes.len() + 1);
                bytes.splice(i..i, more.iter().copied());
            }
            Mutation::Remove { offset, len } => {
                let i = at(*offset, bytes.len());
                let end = (i + usize::from(*len)).min(bytes.len());
                bytes.drain(i..end);
            }
        }
    }
}

/// A valid package and the damage done to it.
#[derive(Arbitrary, Debug, Clone)]
pub struct MutatedPackage {
    /// The package.
    pub package: PackageSpec,
    /// What is done to its bytes.
    pub mutations: Vec<Mutation>,
}

/// Builds the package, damages it, and reads it with the archive reader ([`crate::archive::read_all`]),
/// `inspect_package` and `verify_package` (trusting only the fuzz key, unsigned refused).
///
/// Intact, a package inspects to exactly what was built, and verifies if signed (an unsigned one is
/// refused as unsigned). Damaged, nothing may panic; a package that still verifies holds exactly the
/// signed manifest and components, and one that still inspects holds components matching their pins.
pub fn check(input: &MutatedPackage) {
    let built = built(&input.package);
    let mut bytes = built.bytes.clone();
    mutate(&mut bytes, &input.mutations);
    let intact = bytes == built.bytes;
    if !crate::archive::read_all(&bytes) {
        assert!(!intact, "an intact package does not open");
        // `inspect` and `verify` open the archive with the same reader and the same limits: they
        // would stop at the same fault.
        return;
    }
    let path = scratch_dir().join("package.wasmzip");
    std::fs::write(&path, &bytes).expect("writing the scratch package");
    let trust = TrustPolicy { trusted: vec![fuzz_key().public_key()], allow_unsigned: false };
    let inspected = inspect_package(&path);
    let verified = verify_package(&path, &trust, ResourceSink::Discard);

    if intact {
        let report = inspected.as_ref().unwrap_or_else(|e| panic!("an intact package does not inspect: {e}"));
        assert_eq!(report.manifest, built.manifest);
        let components: BTreeMap<Name, Vec<u8>> = report.components.iter().map(|(n, b)| (n.clone(), b.to_vec())).collect();
        assert!(components == built.components, "inspect read other components");
        if !built.signed {
            assert!(matches!(verified.as_ref().map_err(|e| e.fault()), Err(PackageError::Unsigned)), "an unsigned package: {:?}", verified.err());
            return;
        }
    }
    if let Ok(report) = &inspected {
        for (component, bytes) in &report.components {
            let member = &report.manifest.components[component].member;
            let pin = report.manifest.members.iter().find(|p| &p.name == member).expect("components are pinned");
            assert_eq!(sha256_hex(bytes), pin.sha256, "inspect returned component `{component}` unlike its pin");
        }
        for (model, bytes) in &report.models {
            let member = &report.manifest.models[model].member;
            let pin = report.manifest.members.iter().find(|p| &p.name == member).expect("models are pinned");
            assert_eq!(sha256_hex(bytes), pin.sha256, "inspect returned model `{model}` unlike its pin");
        }
    }
    match verified {
        Ok(package) => {
            assert!(built.signed, "verified an unsigned package under a policy that refuses them");
            assert_eq!(package.signer(), Signer::Key(fuzz_key().public_key().id()));
            // Format 2: no byte of the archive may change while it still verifies.
            assert!(intact || !built.format_2, "a changed format-2 archive still verifies");
            assert_eq!(package.manifest(), &built.manifest, "verified a manifest that was not signed");
            for (component, expected) in &built.components {
                let got = package.component_bytes(component).expect("a signed component is verified");
                assert!(&got[..] == &expected[..], "verified component `{component}` differs from what was signed");
            }
        }
        Err(e) => assert!(!intact, "an intact signed package does not verify: {e}"),
    }
}

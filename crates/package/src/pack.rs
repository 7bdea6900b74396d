//! `pack`: turns `wasmzip.toml` and the files it names into a deterministic, optionally signed archive.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Component as PathComponent, Path, PathBuf};

use crate::archive::{self, ArchiveWriter, Compression};
use crate::error::PackageError;
use crate::hashing::{HashingReader, sha256_file, sha256_hex};
use crate::capability::Capability;
use crate::manifest::{AuthorComponent, AuthorManifest, AuthorPackage, ComponentEntry, Limits, MANIFEST_SCHEMA, MemberPin, ModelEntry, Name, PROVENANCE_MEMBER, PackageManifest, RoutePrefix, SBOM_MEMBER, StoredPin, World};
use crate::provenance::BuildFacts;
use crate::signing::SigningKey;
use crate::{MANIFEST_MEMBER, MAX_COMPONENT_SIZE, SIGNATURE_MEMBER, STORE_UNCOMPRESSED_FROM};

/// What `pack` wrote.
#[derive(Debug, Clone)]
pub struct PackSummary {
    /// The archive written.
    pub output: PathBuf,
    /// The manifest inside it.
    pub manifest: PackageManifest,
    /// SHA-256 of `manifest.json`: the package digest.
    pub digest: String,
    /// Whether it carries a signature.
    pub signed: bool,
}

/// Finds `wasmzip.toml`: `input` is the file itself or the directory holding it.
pub fn find_author_manifest(input: &Path) -> PathBuf {
    if input.is_dir() { input.join("wasmzip.toml") } else { input.to_path_buf() }
}

/// The default output name for a package: `NAME-VERSION.wasmzip`.
pub fn default_output_name(manifest: &AuthorManifest) -> String {
    format!("{}-{}.wasmzip", manifest.package.name, manifest.package.version)
}

/// How to pack: signing, where to write, and what to record beyond the author's manifest.
#[derive(Debug, Default)]
pub struct PackOptions<'a> {
    /// The key to sign with; `None` packs unsigned.
    pub key: Option<&'a SigningKey>,
    /// The output file (default: `NAME-VERSION.wasmzip` in the current directory).
    pub output: Option<&'a Path>,
    /// A `Cargo.lock` whose packages the SBOM lists for components that carry no dependency section.
    pub sbom_from: Option<&'a Path>,
    /// Record provenance (needs `key`): how the components were built.
    pub provenance: Option<BuildFacts>,
}

/// A member's bytes as they will be stored.
enum Body {
    /// Deflated in memory, with the CRC-32 and size of the input.
    Deflated(archive::Deflated),
    /// Stored as it is, streamed from the file (checked against its pin as it is copied).
    File(PathBuf),
}

struct Input {
    member: String,
    pin: MemberPin,
    body: Body,
}

impl Input {
    /// A member deflated from `bytes`, pinned by its content and by its stored bytes.
    fn deflated(member: String, bytes: &[u8]) -> Result<Self, PackageError> {
        let deflated = archive::deflate(&member, &mut &bytes[..]).map_err(|error| PackageError::member(&member, error.to_string()))?;
        let pin = MemberPin {
            name: member.clone(),
            size: bytes.len() as u64,
            sha256: sha256_hex(bytes),
            deflated: Some(StoredPin { size: deflated.bytes.len() as u64, sha256: sha256_hex(&deflated.bytes) }),
        };
        Ok(Input { member, pin, body: Body::Deflated(deflated) })
    }
}

/// Packs the package described by `manifest_path` into a file (written atomically), signed when
/// `options` has a key. The same inputs always give byte-identical output.
pub fn pack(manifest_path: &Path, options: &PackOptions<'_>) -> Result<PackSummary, PackageError> {
    let author = AuthorManifest::load(manifest_path)?;
    let base = manifest_path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    pack_author(&author, manifest_path, base, options)
}

/// The name a bare `.wasm` is packed under: its file stem, lower-cased, with every character a
/// name cannot hold replaced by `-` (`wasm` if nothing is left).
pub fn bare_package_name(wasm: &Path) -> Name {
    let stem = wasm.file_stem().map(|s| s.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    let cleaned: String = stem.chars().map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() { c } else { '-' }).collect();
    let trimmed: String = cleaned.trim_matches('-').chars().take(crate::manifest::MAX_NAME_LEN).collect();
    Name::parse(trimmed.trim_end_matches('-')).unwrap_or_else(|_| Name::parse("wasm").expect("a valid name"))
}

/// Packs a bare `.wasm` component, unsigned, into `output`: a package named after the file
/// ([`bare_package_name`], version `0.0.0`) whose one component targets `world`, requests exactly
/// `capabilities` (the operator's grants, for development) and, for `http`, serves `/`. This is
/// how `wasmzip serve` and `wasmzip deploy` take a bare `.wasm`.
pub fn pack_bare(wasm: &Path, world: World, capabilities: &[Capability], output: &Path) -> Result<PackSummary, PackageError> {
    let name = bare_package_name(wasm);
    let file = std::path::absolute(wasm).map_err(|e| PackageError::io(wasm, "resolve", e))?;
    let component = AuthorComponent {
        file,
        world,
        capabilities: capabilities.to_vec(),
        limits: Default::default(),
        routes: if world == World::Http { vec![RoutePrefix::parse("/").expect("a valid route")] } else { Vec::new() },
        reuse: None,
    };
    let author = AuthorManifest {
        package: AuthorPackage { name: name.clone(), version: semver::Version::new(0, 0, 0), description: None, resources: Vec::new() },
        components: BTreeMap::from([(name, component)]),
        models: BTreeMap::new(),
        sbom: None,
    };
    crate::manifest::check_capabilities(capabilities).map_err(|message| PackageError::AuthorInput { path: wasm.to_path_buf(), key: "--grant".into(), message })?;
    pack_author(&author, wasm, Path::new("/"), &PackOptions { output: Some(output), ..PackOptions::default() })
}

/// Packs `author` (read from `manifest_path`, which errors name; paths relative to `base`).
fn pack_author(author: &AuthorManifest, manifest_path: &Path, base: &Path, options: &PackOptions<'_>) -> Result<PackSummary, PackageError> {
    let input_error = |key: String, message: String| PackageError::AuthorInput { path: manifest_path.to_path_buf(), key, message };
    if options.provenance.is_some() && options.key.is_none() {
        return Err(input_error("--provenance".into(), "provenance is a signed statement: pack with --key to record it".into()));
    }

    let mut component_inputs: Vec<(Name, Vec<u8>)> = Vec::new();
    let mut components = BTreeMap::new();
    for (name, component) in &author.components {
        let key = format!("components.{name}.file");
        let path = base.join(&component.file);
        let meta = std::fs::metadata(&path).map_err(|e| input_error(key.clone(), format!("{}: {e}", path.display())))?;
        if !meta.is_file() {
            return Err(input_error(key, format!("{} is not a file", path.display())));
        }
        if meta.len() > MAX_COMPONENT_SIZE {
            return Err(input_error(key, format!("{} is {} bytes; components are limited to {MAX_COMPONENT_SIZE}", path.display(), meta.len())));
        }
        let bytes = std::fs::read(&path).map_err(|e| input_error(key.clone(), format!("{}: {e}", path.display())))?;
        check_component_header(&bytes).map_err(|m| input_error(key.clone(), format!("{} {m}", path.display())))?;
        let member = format!("components/{name}.wasm");
        components.insert(
            name.clone(),
            ComponentEntry {
                member,
                world: component.world,
                capabilities: component.capabilities.clone(),
                limits: Limits {
                    memory_bytes: component.limits.memory.map(|m| m.0),
                    timeout_ms: component.limits.timeout.map(|t| u64::try_from(t.0.as_millis()).unwrap_or(u64::MAX)),
                    request_body_bytes: component.limits.request_body.map(|b| b.0),
                    response_body_bytes: component.limits.response_body.map(|b| b.0),
                    header_bytes: component.limits.headers.map(|b| b.0),
                    outbound_requests: component.limits.outbound_requests,
                },
                routes: component.routes.clone(),
                reuse: component.reuse,
            },
        );
        component_inputs.push((name.clone(), bytes));
    }

    let mut resources: BTreeMap<String, PathBuf> = BTreeMap::new();
    for entry in &author.package.resources {
        collect_resources(base, entry, &mut resources).map_err(|m| input_error("resources".into(), m))?;
    }
    // A model is an ordinary resource: listed under `resources` or not, its file becomes a member.
    let mut models = BTreeMap::new();
    for (name, model) in &author.models {
        let key = format!("models.{name}.file");
        let before: Vec<String> = resources.keys().cloned().collect();
        let mut one = BTreeMap::new();
        collect_resources(base, &model.file, &mut one).map_err(|m| input_error(key.clone(), m))?;
        let (Some((member, path)), None) = (one.pop_first(), one.pop_first()) else {
            return Err(input_error(key, format!("{} must be a single file, not a directory", model.file.display())));
        };
        if !before.contains(&member) {
            resources.insert(member.clone(), path);
        }
        models.insert(name.clone(), ModelEntry { member, encoding: model.encoding, target: model.target });
    }

    let mut inputs: Vec<Input> = Vec::new();
    for (name, bytes) in &component_inputs {
        inputs.push(Input::deflated(format!("components/{name}.wasm"), bytes)?);
    }
    for (member, path) in resources {
        let size = std::fs::metadata(&path).map_err(|e| PackageError::io(&path, "read", e))?.len();
        if size >= STORE_UNCOMPRESSED_FROM {
            // Streamed from the file when the archive is written, and hashed again then.
            let (sha256, size) = sha256_file(&path)?;
            inputs.push(Input { member: member.clone(), pin: MemberPin { name: member, size, sha256, deflated: None }, body: Body::File(path) });
        } else {
            // Read once: pinned and deflated from the same bytes.
            let bytes = std::fs::read(&path).map_err(|e| PackageError::io(&path, "read", e))?;
            inputs.push(Input::deflated(member, &bytes)?);
        }
    }

    // The SBOM and the provenance describe the members above, so they are made from them, and come
    // first in the archive.
    let sbom = make_sbom(author, manifest_path, base, options, &component_inputs, &inputs, &models)?;
    let mut meta = vec![Input::deflated(SBOM_MEMBER.to_string(), &sbom)?];
    if let (Some(facts), Some(key)) = (&options.provenance, options.key) {
        let subjects: Vec<(String, String)> = inputs.iter().filter(|i| i.member.starts_with("components/")).map(|i| (i.member.clone(), i.pin.sha256.clone())).collect();
        let envelope = crate::provenance::envelope(author.package.name.as_str(), &author.package.version.to_string(), &subjects, facts, key);
        meta.push(Input::deflated(PROVENANCE_MEMBER.to_string(), &envelope)?);
    }
    meta.append(&mut inputs);
    let inputs = meta;

    if inputs.len() + 2 > archive::MAX_MEMBERS {
        return Err(input_error("resources".into(), format!("{} members; a package holds at most {}", inputs.len() + 2, archive::MAX_MEMBERS)));
    }
    let manifest = PackageManifest {
        schema: MANIFEST_SCHEMA,
        name: author.package.name.clone(),
        version: author.package.version.clone(),
        description: author.package.description.clone(),
        components,
        models,
        members: inputs.iter().map(|i| i.pin.clone()).collect(),
    };
    let manifest_bytes = manifest.to_bytes();
    let digest = sha256_hex(&manifest_bytes);

    let output = match options.output {
        Some(p) => p.to_path_buf(),
        None => PathBuf::from(default_output_name(author)),
    };
    let signature = options.key.map(|k| k.sign_manifest(&manifest_bytes, true));
    if let Some(envelope) = &signature {
        crate::signing::check_envelope_size(envelope)?;
    }
    write_archive(&output, &manifest_bytes, signature.as_deref(), &inputs)?;
    Ok(PackSummary { output, manifest, digest, signed: options.key.is_some() })
}

/// The package's SBOM: the author's (`[sbom] file`), validated, or one made from the members.
fn make_sbom(
    author: &AuthorManifest,
    manifest_path: &Path,
    base: &Path,
    options: &PackOptions<'_>,
    components: &[(Name, Vec<u8>)],
    inputs: &[Input],
    models: &BTreeMap<Name, ModelEntry>,
) -> Result<Vec<u8>, PackageError> {
    let sbom_error = |key: &str, message: String| PackageError::AuthorInput { path: manifest_path.to_path_buf(), key: key.into(), message };
    if let Some(supplied) = &author.sbom {
        if options.sbom_from.is_some() {
            return Err(sbom_error("sbom.file", "an SBOM supplied with `[sbom] file` is embedded as it is; drop --sbom-from".into()));
        }
        let path = base.join(&supplied.file);
        let bytes = std::fs::read(&path).map_err(|e| sbom_error("sbom.file", format!("{}: {e}", path.display())))?;
        crate::sbom::validate_supplied(&bytes, &path.display().to_string()).map_err(|e| sbom_error("sbom.file", e.to_string()))?;
        return Ok(bytes);
    }
    let pin_of = |member: &str| inputs.iter().find(|i| i.member == member).map(|i| &i.pin).expect("every member has an input");
    let component_inputs = components
        .iter()
        .map(|(name, bytes)| {
            let member = format!("components/{name}.wasm");
            (name, member, bytes)
        })
        .collect::<Vec<_>>();
    let model_members: Vec<&str> = models.values().map(|m| m.member.as_str()).collect();
    let inputs_for_sbom = crate::sbom::SbomInputs {
        package_name: author.package.name.as_str(),
        package_version: &author.package.version.to_string(),
        description: author.package.description.as_deref(),
        components: component_inputs
            .iter()
            .map(|(name, member, bytes)| crate::sbom::ComponentInput {
                name: name.as_str(),
                member: member.as_str(),
                bytes: bytes.as_slice(),
                sha256: pin_of(member).sha256.as_str(),
                world: author.components[*name].world.as_str(),
            })
            .collect(),
        resources: inputs
            .iter()
            .filter(|i| i.member.starts_with("resources/") && !model_members.contains(&i.member.as_str()))
            .map(|i| crate::sbom::ResourceInput { member: i.member.as_str(), size: i.pin.size, sha256: i.pin.sha256.as_str() })
            .collect(),
        models: models
            .iter()
            .map(|(name, m)| crate::sbom::ModelInput { name: name.as_str(), member: m.member.as_str(), encoding: m.encoding.as_str(), sha256: pin_of(&m.member).sha256.as_str() })
            .collect(),
        cargo_lock: options.sbom_from,
    };
    crate::sbom::generate(&inputs_for_sbom).map_err(|e| {
        let key = if matches!(e, crate::sbom::SbomError::CargoLock { .. } | crate::sbom::SbomError::Io { .. }) { "--sbom-from" } else { "components" };
        sbom_error(key, e.to_string())
    })
}

/// Writes to a temporary file beside `output` and renames it into place, so a failure leaves nothing
/// half-written. The manifest and the signature are stored as they are; every other member as its
/// pin says.
fn write_archive(output: &Path, manifest: &[u8], signature: Option<&[u8]>, inputs: &[Input]) -> Result<(), PackageError> {
    let fill = |writer: &mut Writer, archive_err: &dyn Fn(archive::ArchiveError) -> PackageError| {
        writer.add(MANIFEST_MEMBER, Compression::Stored, &mut &manifest[..]).map_err(archive_err)?;
        if let Some(sig) = signature {
            writer.add(SIGNATURE_MEMBER, Compression::Stored, &mut &sig[..]).map_err(archive_err)?;
        }
        for input in inputs {
            match &input.body {
                Body::Deflated(d) => {
                    writer.add_raw(&input.member, Compression::Deflated, d.crc32, d.size, &mut &d.bytes[..], d.bytes.len() as u64).map_err(archive_err)?;
                }
                Body::File(path) => {
                    let file = File::open(path).map_err(|e| PackageError::io(path, "open", e))?;
                    let mut reader = HashingReader::new(BufReader::with_capacity(1 << 20, file));
                    writer.add(&input.member, Compression::Stored, &mut reader).map_err(archive_err)?;
                    let (sha256, size) = reader.finish();
                    if sha256 != input.pin.sha256 || size != input.pin.size {
                        return Err(PackageError::member(&input.member, format!("{} changed while it was being packed", path.display())));
                    }
                }
            }
        }
        Ok(())
    };
    write_atomically(output, fill, None)
}

/// The archive writer `fill` adds members to.
pub(crate) type Writer = ArchiveWriter<std::io::BufWriter<File>>;

/// Writes an archive to a new temporary file beside `output`, syncs it, checks it with `check` when
/// given, and renames it into place; on any failure the temporary file is removed and `output` is
/// left as it was.
pub(crate) fn write_atomically(
    output: &Path,
    fill: impl FnOnce(&mut Writer, &dyn Fn(archive::ArchiveError) -> PackageError) -> Result<(), PackageError>,
    check: Option<&dyn Fn(&Path) -> Result<(), PackageError>>,
) -> Result<(), PackageError> {
    let dir = output.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let file_name = output.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut nonce = [0u8; 8];
    let _ = getrandom::fill(&mut nonce);
    let tmp = dir.join(format!(".{file_name}.tmp-{}-{}", std::process::id(), hex::encode(nonce)));
    let result = (|| {
        // A new file, never one that is there already (nor a link someone left in its place).
        let file = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp).map_err(|e| PackageError::io(&tmp, "create", e))?;
        let archive_err = |error| PackageError::Archive { path: output.to_path_buf(), error };
        let mut writer = ArchiveWriter::new(std::io::BufWriter::with_capacity(1 << 20, file));
        fill(&mut writer, &archive_err)?;
        let buffered = writer.finish().map_err(archive_err)?;
        let file = buffered.into_inner().map_err(|e| PackageError::io(&tmp, "write", e.into_error()))?;
        file.sync_all().map_err(|e| PackageError::io(&tmp, "write", e))?;
        if let Some(check) = check {
            check(&tmp)?;
        }
        std::fs::rename(&tmp, output).map_err(|e| PackageError::io(output, "write", e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Checks that `bytes` start like a component; the error follows the file's name.
fn check_component_header(bytes: &[u8]) -> Result<(), String> {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', _, _, 1, 0]) => Ok(()),
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => Err("is a core WebAssembly module; packages hold components (build for wasm32-wasip2)".into()),
        Some(_) => Err("is not a WebAssembly component".into()),
        None => Err("is not a WebAssembly file".into()),
    }
}

/// Adds `entry` (a file, or a directory walked in sorted order) to `out` as `resources/...` members.
fn collect_resources(base: &Path, entry: &Path, out: &mut BTreeMap<String, PathBuf>) -> Result<(), String> {
    let mut rel = Vec::new();
    for part in entry.components() {
        match part {
            PathComponent::Normal(p) => rel.push(p.to_str().ok_or_else(|| format!("{} is not valid UTF-8", entry.display()))?.to_string()),
            PathComponent::CurDir => {}
            _ => return Err(format!("`{}` must be a relative path inside the package directory", entry.display())),
        }
    }
    if rel.is_empty() {
        return Err(format!("`{}` names the package directory itself", entry.display()));
    }
    walk(&base.join(entry), &rel.join("/"), out)
}

fn walk(path: &Path, rel: &str, out: &mut BTreeMap<String, PathBuf>) -> Result<(), String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.file_type().is_symlink() {
        return Err(format!("{} is a symbolic link; resources must be regular files", path.display()));
    }
    if meta.is_dir() {
        let mut children: Vec<_> = std::fs::read_dir(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        children.sort();
        for child in children {
            let name = child.to_str().ok_or_else(|| format!("{}: a file name is not valid UTF-8", path.display()))?;
            walk(&path.join(name), &format!("{rel}/{name}"), out)?;
        }
        return Ok(());
    }
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    let member = format!("resources/{rel}");
    archive::check_member_name(&member).map_err(|e| e.to_string())?;
    if out.insert(member.clone(), path.to_path_buf()).is_some() {
        return Err(format!("`{member}` is listed twice"));
    }
    Ok(())
}

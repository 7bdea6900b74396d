//! Reading a package: structure, signature and trust first, then every member read exactly once while
//! its digest is computed. Only this module can make a [`VerifiedPackage`].

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::archive::{ArchiveLimits, ArchiveReader, Compression};
use crate::error::PackageError;
use crate::hashing::{HashingWriter, sha256_hex};
use crate::component::{ComponentSource, PackagedModel, PackagedParts, VerifiedComponent};
use crate::manifest::{MemberPin, Name, PROVENANCE_MEMBER, PackageManifest, SBOM_MEMBER, World};
use crate::provenance::{MAX_PROVENANCE_SIZE, Provenance};
use crate::signing::{CheckedEnvelope, EnvelopeSignature, KeyId, MAX_ENVELOPE_SIZE, PublicKey, SignatureCheck};
use crate::{MANIFEST_MEMBER, MAX_COMPONENT_SIZE, MAX_MANIFEST_SIZE, SIGNATURE_MEMBER};

/// Largest SBOM member read.
pub const MAX_SBOM_SIZE: u64 = 16 * 1024 * 1024;

/// Which packages may be opened.
#[derive(Debug, Clone, Default)]
pub struct TrustPolicy {
    /// Keys whose signatures are accepted.
    pub trusted: Vec<PublicKey>,
    /// Whether an unsigned package may be opened.
    pub allow_unsigned: bool,
}

/// Who vouched for a verified package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signer {
    /// Signed by this trusted key.
    Key(KeyId),
    /// Unsigned, accepted because the policy allows it.
    Unsigned,
}

/// Where a package's resources go while they are verified.
#[derive(Debug, Clone, Copy)]
pub enum ResourceSink<'a> {
    /// Hash them and drop the bytes.
    Discard,
    /// Keep a private copy in `ROOT/DIGEST/`, written once per package digest.
    Extract {
        /// The directory holding extracted packages.
        root: &'a Path,
    },
}

/// A package whose signature, trust and every member digest have been checked. The bytes it holds are
/// exactly the verified bytes; nothing is read from the archive again.
#[derive(Debug, Clone)]
pub struct VerifiedPackage {
    manifest: PackageManifest,
    digest: String,
    archive: Arc<ArchiveFile>,
    signer: Signer,
    signatures: Vec<SignatureCheck>,
    sbom: Option<Arc<[u8]>>,
    provenance: Option<Provenance>,
    components: BTreeMap<Name, Arc<[u8]>>,
    resources_dir: Option<PathBuf>,
    resources_hold: Option<Arc<ResourcesHold>>,
    wrote_resources: bool,
}

/// A shared lock on a package's extracted resources, held for as long as anything verified from the
/// package lives: pruning the cache (which takes the lock exclusively) leaves them alone meanwhile.
#[derive(Debug)]
pub struct ResourcesHold {
    _dir: File,
}

impl ResourcesHold {
    /// Takes a shared lock on `dir` and marks it used now (its modification time, which is what
    /// least-recently-used pruning goes by).
    fn take(dir: &Path) -> Result<Self, PackageError> {
        use std::os::unix::fs::MetadataExt;
        let file = File::open(dir).map_err(|e| PackageError::io(dir, "open", e))?;
        file.lock_shared().map_err(|e| PackageError::io(dir, "lock", e))?;
        // A prune that held the lock first moved the directory away before releasing it.
        let same = match (file.metadata(), std::fs::metadata(dir)) {
            (Ok(held), Ok(now)) => held.ino() == now.ino() && held.dev() == now.dev(),
            _ => false,
        };
        if !same {
            let pruned = std::io::Error::other("the cache was pruned while the package was verified; run the command again");
            return Err(PackageError::io(dir, "lock", pruned));
        }
        let _ = file.set_modified(std::time::SystemTime::now());
        Ok(ResourcesHold { _dir: file })
    }
}

impl VerifiedPackage {
    /// The verified manifest.
    pub fn manifest(&self) -> &PackageManifest {
        &self.manifest
    }

    /// SHA-256 of `manifest.json`, which pins everything else: the package's identity.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// SHA-256 of the archive file's bytes: the digest an OCI registry names it by. Unlike the
    /// package digest it changes when a signature is added. Computed on the first call (one more pass
    /// over the file verified, which `run` never pays for).
    pub fn archive_digest(&self) -> Result<&str, PackageError> {
        self.archive.digest()
    }

    /// The first trusted key whose signature holds (or `Unsigned`).
    pub fn signer(&self) -> Signer {
        self.signer
    }

    /// Every signature, in envelope order, as checked.
    pub fn signatures(&self) -> &[SignatureCheck] {
        &self.signatures
    }

    /// The keys whose signatures hold, trusted or not (a deploy policy counts those it names).
    pub fn valid_signers(&self) -> Vec<KeyId> {
        self.signatures.iter().filter(|s| s.verified).map(|s| s.key).collect()
    }

    /// The trusted keys whose signatures hold: who vouches for the package (what records keep).
    pub fn trusted_signers(&self) -> Vec<KeyId> {
        self.signatures.iter().filter(|s| s.verified && s.trusted).map(|s| s.key).collect()
    }

    /// The verified bytes of the package's SBOM (`pack` always writes one; a reader does not require
    /// it, which is what a policy's `sbom.required` is for).
    pub fn sbom(&self) -> Option<&[u8]> {
        self.sbom.as_deref()
    }

    /// The package's provenance, checked, when it carries one.
    pub fn provenance(&self) -> Option<&Provenance> {
        self.provenance.as_ref()
    }

    /// The verified bytes of a component.
    pub fn component_bytes(&self, name: &Name) -> Option<Arc<[u8]>> {
        self.components.get(name).cloned()
    }

    /// The component `name`, verified, with what the runtime needs to plan it.
    pub fn component(&self, name: &Name) -> Result<VerifiedComponent, PackageError> {
        let entry = self.manifest.components.get(name).ok_or_else(|| PackageError::NoComponent {
            package: self.manifest.name.to_string(),
            wanted: format!("component `{name}`"),
        })?;
        // Verification read every component named by the manifest, and checked each one's pin.
        let (Some(bytes), Some(pin)) = (self.components.get(name), self.manifest.members.iter().find(|p| p.name == entry.member)) else {
            return Err(PackageError::member(&entry.member, "is named by manifest.json but was not verified"));
        };
        let models = self
            .manifest
            .models
            .iter()
            .filter_map(|(model, m)| {
                let dir = self.resources_dir.as_ref()?;
                let size = self.manifest.members.iter().find(|p| p.name == m.member)?.size;
                Some(PackagedModel { name: model.clone(), path: dir.join(m.resource_path()), size, target: m.target })
            })
            .collect();
        Ok(VerifiedComponent::from_package(PackagedParts {
            source: ComponentSource::Package {
                name: self.manifest.name.clone(),
                version: self.manifest.version.clone(),
                digest: self.digest.clone(),
                signer: self.signer,
            },
            name: name.to_string(),
            bytes: bytes.clone(),
            digest: pin.sha256.clone(),
            world: entry.world,
            capabilities: entry.capabilities.clone(),
            limits: entry.limits,
            reuse: entry.reuse,
            routes: entry.effective_routes(&self.manifest.name),
            resources_dir: self.resources_dir.clone(),
            resources_hold: self.resources_hold.clone(),
            models,
        }))
    }

    /// The only component of `world`: what `run` (cli) and `serve` (http) pick when none is named.
    pub fn only_component(&self, world: World) -> Result<VerifiedComponent, PackageError> {
        let mut of_world = self.manifest.components.iter().filter(|(_, c)| c.world == world).map(|(n, _)| n);
        match (of_world.next(), of_world.next()) {
            (Some(name), None) => self.component(name),
            (None, _) => Err(PackageError::NoComponent { package: self.manifest.name.to_string(), wanted: format!("single `{world}` component") }),
            (Some(_), Some(_)) => Err(PackageError::NoComponent {
                package: self.manifest.name.to_string(),
                wanted: format!("single `{world}` component (it has several)"),
            }),
        }
    }

    /// The private directory holding the verified resources, when they were extracted (never for a
    /// package that ships none).
    pub fn resources_dir(&self) -> Option<&Path> {
        self.resources_dir.as_deref()
    }

    /// Whether verifying wrote the resources into the cache (the first use of this package there),
    /// so that the cache may now be over its cap.
    pub fn wrote_resources(&self) -> bool {
        self.wrote_resources
    }
}

/// A package's contents for display: integrity checked (every digest), trust not decided.
#[derive(Debug, Clone)]
pub struct PackageReport {
    /// The manifest.
    pub manifest: PackageManifest,
    /// SHA-256 of `manifest.json`.
    pub digest: String,
    /// SHA-256 of the archive file.
    pub archive_digest: String,
    /// Key ids the signature envelope names (not verified against any trust anchor).
    pub claimed_signers: Vec<KeyId>,
    /// Each signature as far as it can be checked without trust: a format-2 signature carries its
    /// key and is checked; a schema-1 one cannot be.
    pub signatures: Vec<SignatureCheck>,
    /// The SBOM's bytes, when the package carries one.
    pub sbom: Option<Vec<u8>>,
    /// The provenance, checked against the keys it carries.
    pub provenance: Option<Provenance>,
    /// The bytes of each component.
    pub components: BTreeMap<Name, Arc<[u8]>>,
    /// The bytes of each model, checked against its pin.
    pub models: BTreeMap<Name, Vec<u8>>,
}

/// Opens, verifies and trusts a package, in this order: archive structure, manifest, signature and
/// trust, member set and sizes, then every member's digest as it is read. Fails at the first fault,
/// naming the member, before any member is used.
pub fn verify_package(path: &Path, trust: &TrustPolicy, resources: ResourceSink<'_>) -> Result<VerifiedPackage, PackageError> {
    verify_package_admitted(path, trust, resources, |_| Ok::<(), std::convert::Infallible>(())).map_err(|e| match e {
        AdmitError::Package(e) => e,
        AdmitError::Refused(never) => match never {},
    })
}

/// What a package shows of itself once its manifest, signatures, SBOM and provenance are verified,
/// before any component or resource is read: what a deploy policy decides on.
#[derive(Debug, Clone, Copy)]
pub struct PackageFacts<'a> {
    /// The verified manifest.
    pub manifest: &'a PackageManifest,
    /// The package digest.
    pub digest: &'a str,
    /// Every signature, as checked.
    pub signatures: &'a [SignatureCheck],
    /// The SBOM's verified bytes, if the package carries one.
    pub sbom: Option<&'a [u8]>,
}

impl PackageFacts<'_> {
    /// The keys whose signatures hold, trusted or not.
    pub fn valid_signers(&self) -> Vec<KeyId> {
        self.signatures.iter().filter(|s| s.verified).map(|s| s.key).collect()
    }
}

/// Why [`verify_package_admitted`] gave no package.
#[derive(Debug)]
pub enum AdmitError<E> {
    /// The package is not valid, or not trusted.
    Package(PackageError),
    /// `admit` refused it.
    Refused(E),
}

/// As [`verify_package`], with `admit` deciding on the package's [`PackageFacts`] after its SBOM and
/// provenance are verified and before any component or resource is read, so that a refused package
/// leaves nothing behind (not even extracted resources).
pub fn verify_package_admitted<E>(
    path: &Path,
    trust: &TrustPolicy,
    resources: ResourceSink<'_>,
    admit: impl FnOnce(&PackageFacts<'_>) -> Result<(), E>,
) -> Result<VerifiedPackage, AdmitError<E>> {
    verify_in(path, trust, resources, admit).map_err(|e| match e {
        AdmitError::Package(e) => AdmitError::Package(e.within(path)),
        refused => refused,
    })
}

fn verify_in<E>(
    path: &Path,
    trust: &TrustPolicy,
    resources: ResourceSink<'_>,
    admit: impl FnOnce(&PackageFacts<'_>) -> Result<(), E>,
) -> Result<VerifiedPackage, AdmitError<E>> {
    let package = AdmitError::Package;
    let mut opened = Opened::open(path).map_err(package)?;
    let (signer, signatures) = match &opened.envelope {
        Some(envelope) => {
            let checks = envelope.verify(&opened.manifest_bytes, &trust.trusted).map_err(package)?;
            let first = checks.iter().find(|c| c.trusted && c.verified).expect("verify requires one trusted signature").key;
            (Signer::Key(first), checks)
        }
        None if trust.allow_unsigned => (Signer::Unsigned, Vec::new()),
        None => return Err(package(PackageError::Unsigned)),
    };
    opened.check_member_set().map_err(package)?;
    let meta = opened.read_meta().map_err(package)?;
    let signers: Vec<KeyId> = signatures.iter().map(|s| s.key).collect();
    let provenance = meta.provenance.as_deref().map(|bytes| crate::provenance::read(bytes, &opened.manifest, &signers)).transpose().map_err(package)?;
    let digest = sha256_hex(&opened.manifest_bytes);
    admit(&PackageFacts { manifest: &opened.manifest, digest: &digest, signatures: &signatures, sbom: meta.sbom.as_deref() }).map_err(AdmitError::Refused)?;
    let members = opened.read_payload(resources).map_err(package)?;
    let resources_hold = members.resources_dir.as_deref().map(ResourcesHold::take).transpose().map_err(package)?.map(Arc::new);
    let file = opened.reader.get_ref().try_clone().map_err(|e| package(PackageError::io(path, "open", e)))?;
    Ok(VerifiedPackage {
        digest,
        archive: Arc::new(ArchiveFile { file, path: path.to_path_buf(), digest: Default::default() }),
        manifest: opened.manifest,
        signer,
        signatures,
        sbom: meta.sbom.map(Arc::from),
        provenance,
        components: members.components,
        resources_dir: members.resources_dir,
        resources_hold,
        wrote_resources: members.wrote_resources,
    })
}

/// Reads a package's manifest and its digest without verifying anything else: only to name a package
/// before it is verified (a cluster deploy takes the function's revision first). Nothing it returns
/// is trusted.
pub fn peek_manifest(path: &Path) -> Result<(PackageManifest, String), PackageError> {
    let opened = Opened::open(path).map_err(|e| e.within(path))?;
    let digest = sha256_hex(&opened.manifest_bytes);
    Ok((opened.manifest, digest))
}

/// Opens a package and checks every digest, without deciding trust: for `inspect`.
pub fn inspect_package(path: &Path) -> Result<PackageReport, PackageError> {
    inspect_in(path).map_err(|e| e.within(path))
}

fn inspect_in(path: &Path) -> Result<PackageReport, PackageError> {
    let mut opened = Opened::open(path)?;
    let claimed_signers = opened.envelope.as_ref().map(|e| e.key_ids()).unwrap_or_default();
    let signatures = opened.envelope.as_ref().map(|e| e.check_integrity(&opened.manifest_bytes)).transpose()?.unwrap_or_default();
    opened.check_member_set()?;
    let meta = opened.read_meta()?;
    let provenance = meta.provenance.as_deref().map(|bytes| crate::provenance::read(bytes, &opened.manifest, &claimed_signers)).transpose()?;
    let components = opened.read_payload(ResourceSink::Discard)?.components;
    let mut models = BTreeMap::new();
    for (name, model) in opened.manifest.models.clone() {
        let pin = opened.manifest.members.iter().find(|p| p.name == model.member).cloned().expect("checked in PackageManifest::from_bytes");
        models.insert(name, opened.read_pinned(&pin, Vec::with_capacity(pin.size as usize))?);
    }
    let archive_digest = crate::hashing::sha256_open_file(opened.reader.get_ref()).map_err(|e| PackageError::io(path, "read", e))?;
    Ok(PackageReport {
        digest: sha256_hex(&opened.manifest_bytes),
        archive_digest,
        manifest: opened.manifest,
        claimed_signers,
        signatures,
        sbom: meta.sbom,
        provenance,
        components,
        models,
    })
}

/// Adds `key`'s signature to the package at `path` without changing what is signed, writing the
/// result to `output` (which may be `path`) atomically. The package's integrity (every digest and
/// every signature that can be checked) is verified first; its members are copied exactly as stored,
/// and the new archive is verified the same way before it replaces anything. Returns the signatures
/// now on the package.
pub fn add_signature(path: &Path, key: &crate::SigningKey, output: &Path) -> Result<Vec<KeyId>, PackageError> {
    add_signature_in(path, key, output).map_err(|e| e.within(path))
}

fn add_signature_in(path: &Path, key: &crate::SigningKey, output: &Path) -> Result<Vec<KeyId>, PackageError> {
    let mut opened = Opened::open(path)?;
    let (mut signatures, ids): (Vec<EnvelopeSignature>, Vec<KeyId>) = match &opened.envelope {
        Some(envelope) => {
            envelope.check_integrity(&opened.manifest_bytes)?;
            (envelope.raw(), envelope.key_ids())
        }
        None => (Vec::new(), Vec::new()),
    };
    let id = key.public_key().id();
    if ids.contains(&id) {
        return Err(PackageError::Signature(format!("key {id} has signed this package already")));
    }
    if signatures.len() >= crate::signing::MAX_SIGNATURES {
        return Err(PackageError::Signature(format!("the package carries {} signatures, the most an envelope holds", signatures.len())));
    }
    opened.check_member_set()?;
    opened.read_meta()?;
    opened.read_payload(ResourceSink::Discard)?;
    let format_2 = opened.manifest.is_format_2();
    let new = key.signature(&opened.manifest_bytes, format_2);
    // Format 2 keeps the signatures in key id order, so that a set of signers has one envelope.
    let at = if format_2 { signatures.partition_point(|s| s.keyid < new.keyid) } else { signatures.len() };
    signatures.insert(at, new);
    let envelope = crate::signing::envelope_bytes(&opened.manifest_bytes, &signatures);
    crate::signing::check_envelope_size(&envelope)?;
    let how = |c: Compression| if format_2 { Compression::Stored } else { c };
    let manifest_entry = opened.reader.entries()[opened.reader.find(MANIFEST_MEMBER).expect("read in open")].clone();
    let pins = opened.manifest.members.clone();
    let fill = |writer: &mut crate::pack::Writer, archive_err: &dyn Fn(crate::archive::ArchiveError) -> PackageError| {
        writer.add(MANIFEST_MEMBER, how(manifest_entry.compression), &mut &opened.manifest_bytes[..]).map_err(archive_err)?;
        writer.add(SIGNATURE_MEMBER, how(Compression::Deflated), &mut &envelope[..]).map_err(archive_err)?;
        for pin in &pins {
            let index = opened.reader.find(&pin.name).expect("checked in check_member_set");
            let entry = opened.reader.entries()[index].clone();
            let mut raw = Vec::with_capacity(usize::try_from(entry.compressed_size).unwrap_or(0).min(64 << 20));
            opened.reader.copy_raw(index, &mut raw).map_err(archive_err)?;
            writer.add_raw(&pin.name, entry.compression, entry.crc32, entry.size, &mut &raw[..], raw.len() as u64).map_err(archive_err)?;
        }
        Ok(())
    };
    // What was copied is checked again, in the new file, before it takes the old one's place.
    let check = |written: &Path| check_integrity(written);
    crate::pack::write_atomically(output, fill, Some(&check))?;
    Ok(signatures.iter().filter_map(|s| KeyId::parse(&s.keyid)).collect())
}

/// Every digest and every signature that carries its key, trusting none: what `sign` checks of the
/// file it wrote.
fn check_integrity(path: &Path) -> Result<(), PackageError> {
    let mut opened = Opened::open(path)?;
    if let Some(envelope) = &opened.envelope {
        envelope.check_integrity(&opened.manifest_bytes)?;
    }
    opened.check_member_set()?;
    opened.read_meta()?;
    opened.read_payload(ResourceSink::Discard).map(drop)
}

struct Opened {
    path: PathBuf,
    reader: ArchiveReader<File>,
    manifest_bytes: Vec<u8>,
    manifest: PackageManifest,
    envelope: Option<CheckedEnvelope>,
}

/// The verified package file, kept open so that its own SHA-256 can be computed when it is asked for
/// (`run` never asks; a deploy's record and `verify`'s report do). It is the same open file that was
/// verified, even if the path has been replaced since.
#[derive(Debug)]
struct ArchiveFile {
    file: File,
    path: PathBuf,
    digest: std::sync::OnceLock<String>,
}

impl ArchiveFile {
    fn digest(&self) -> Result<&str, PackageError> {
        if let Some(d) = self.digest.get() {
            return Ok(d);
        }
        let d = crate::hashing::sha256_open_file(&self.file).map_err(|e| PackageError::io(&self.path, "read", e))?;
        Ok(self.digest.get_or_init(|| d))
    }
}

/// The SBOM and provenance, read before anything else.
struct Meta {
    sbom: Option<Vec<u8>>,
    provenance: Option<Vec<u8>>,
}

/// What reading the components and resources gave.
struct Members {
    components: BTreeMap<Name, Arc<[u8]>>,
    resources_dir: Option<PathBuf>,
    wrote_resources: bool,
}

impl Opened {
    /// Structure, manifest and envelope: no member but the manifest and the signature is read here.
    fn open(path: &Path) -> Result<Self, PackageError> {
        let archive_err = |error| PackageError::Archive { path: path.to_path_buf(), error };
        let file = File::open(path).map_err(|e| PackageError::io(path, "open", e))?;
        let mut reader = ArchiveReader::open(file, &ArchiveLimits::default()).map_err(archive_err)?;

        let manifest_index = reader.find(MANIFEST_MEMBER).ok_or_else(|| {
            PackageError::member(MANIFEST_MEMBER, "missing: this is not a wasmzip package")
        })?;
        let manifest_bytes = reader.read_entry_to_vec(manifest_index, MAX_MANIFEST_SIZE).map_err(archive_err)?;
        let manifest = PackageManifest::from_bytes(&manifest_bytes)?;
        if manifest.is_format_2() && reader.entries()[manifest_index].compression != Compression::Stored {
            return Err(PackageError::member(
                MANIFEST_MEMBER,
                "is deflated, which format 2 does not allow: a schema-2 package written by wasmzip before package format 2 (instance reuse only) is not read any more; pack it again",
            ));
        }
        let envelope = match reader.find(SIGNATURE_MEMBER) {
            Some(i) => {
                let bytes = reader.read_entry_to_vec(i, MAX_ENVELOPE_SIZE).map_err(archive_err)?;
                Some(CheckedEnvelope::parse(&bytes, &manifest_bytes, manifest.is_format_2())?)
            }
            None => None,
        };
        Ok(Opened { path: path.to_path_buf(), reader, manifest_bytes, manifest, envelope })
    }

    /// The archive holds exactly the pinned members (plus the manifest and the signature), each of the
    /// pinned size; in format 2, laid out exactly as the writer lays it out.
    fn check_member_set(&self) -> Result<(), PackageError> {
        let mut pinned = HashSet::new();
        for pin in &self.manifest.members {
            pinned.insert(pin.name.as_str());
            let Some(index) = self.reader.find(&pin.name) else {
                return Err(PackageError::member(&pin.name, "pinned by manifest.json but missing from the archive"));
            };
            let entry = &self.reader.entries()[index];
            if entry.size != pin.size {
                return Err(PackageError::member(&pin.name, format!("holds {} bytes but manifest.json pins {}", entry.size, pin.size)));
            }
            if let Some(stored) = &pin.deflated
                && entry.compressed_size != stored.size
            {
                return Err(PackageError::member(&pin.name, format!("stores {} deflated bytes but manifest.json pins {}", entry.compressed_size, stored.size)));
            }
        }
        for entry in self.reader.entries() {
            let name = entry.name.as_str();
            if name != MANIFEST_MEMBER && name != SIGNATURE_MEMBER && !pinned.contains(name) {
                return Err(PackageError::member(name, "is not pinned by manifest.json"));
            }
        }
        if self.manifest.is_format_2() {
            // Every byte is accounted for: the manifest and the envelope are stored as they are, and
            // every other member is where, and stored as, its pin says.
            let mut expected = vec![(MANIFEST_MEMBER, Compression::Stored)];
            if self.envelope.is_some() {
                expected.push((SIGNATURE_MEMBER, Compression::Stored));
            }
            expected.extend(self.manifest.members.iter().map(|p| (p.name.as_str(), if p.deflated.is_some() { Compression::Deflated } else { Compression::Stored })));
            self.reader.check_canonical(&expected).map_err(|error| PackageError::Archive { path: self.path.clone(), error })?;
        }
        Ok(())
    }

    /// Reads the SBOM and the provenance against their pins, into memory.
    fn read_meta(&mut self) -> Result<Meta, PackageError> {
        let members = self.manifest.members.clone();
        let mut meta = |name: &str, max: u64| -> Result<Option<Vec<u8>>, PackageError> {
            let Some(pin) = members.iter().find(|p| p.name == name) else { return Ok(None) };
            if pin.size > max {
                return Err(PackageError::member(name, format!("is {} bytes, more than the {max} read", pin.size)));
            }
            self.read_pinned(pin, Vec::with_capacity(pin.size as usize)).map(Some)
        };
        Ok(Meta { sbom: meta(SBOM_MEMBER, MAX_SBOM_SIZE)?, provenance: meta(PROVENANCE_MEMBER, MAX_PROVENANCE_SIZE)? })
    }

    /// Reads every component and resource against its pin: the components into memory, the resources
    /// into `sink`. Returns the components, the resources' directory, and whether it was written now.
    fn read_payload(&mut self, sink: ResourceSink<'_>) -> Result<Members, PackageError> {
        // Owned copies: reading borrows the archive reader mutably.
        let by_member: BTreeMap<String, Name> =
            self.manifest.components.iter().map(|(n, c)| (c.member.clone(), n.clone())).collect();
        let members = self.manifest.members.clone();
        let mut components = BTreeMap::new();
        let resources: Vec<&MemberPin> = members.iter().filter(|p| p.name.starts_with("resources/")).collect();

        for pin in members.iter().filter(|p| p.name.starts_with("components/")) {
            let Some(name) = by_member.get(pin.name.as_str()) else {
                return Err(PackageError::member(&pin.name, "is not named by any component"));
            };
            if pin.size > MAX_COMPONENT_SIZE {
                return Err(PackageError::member(&pin.name, format!("components are limited to {MAX_COMPONENT_SIZE} bytes")));
            }
            let bytes = self.read_pinned(pin, Vec::with_capacity(pin.size as usize))?;
            components.insert(name.clone(), Arc::from(bytes));
        }

        let (resources_dir, wrote) = match sink {
            ResourceSink::Discard => {
                for pin in resources {
                    self.read_pinned(pin, std::io::sink())?;
                }
                (None, false)
            }
            // Nothing to show at /pkg: no directory, and no preopen for each instance.
            ResourceSink::Extract { .. } if resources.is_empty() => (None, false),
            ResourceSink::Extract { root } => {
                let (dir, wrote) = self.extract(root, &resources)?;
                (Some(dir), wrote)
            }
        };
        Ok(Members { components, resources_dir, wrote_resources: wrote })
    }

    fn read_pinned<W: Write>(&mut self, pin: &MemberPin, sink: W) -> Result<W, PackageError> {
        let index = self.reader.find(&pin.name).expect("checked in open");
        let mut hashing = HashingWriter::new(sink);
        let archive_err = |error| PackageError::Archive { path: self.path.clone(), error };
        let stored = match &pin.deflated {
            Some(_) => Some(self.reader.read_entry_digesting(index, &mut hashing).map_err(archive_err)?.1),
            None => self.reader.read_entry(index, &mut hashing).map(|_| None).map_err(archive_err)?,
        };
        let (sha256, inner) = hashing.finish();
        if sha256 != pin.sha256 {
            return Err(PackageError::member(&pin.name, "SHA-256 differs from the digest pinned in manifest.json: the package was altered"));
        }
        if let (Some(pinned), Some(stored)) = (&pin.deflated, stored)
            && hex::encode(stored) != pinned.sha256
        {
            return Err(PackageError::member(&pin.name, "its deflated bytes differ from those pinned in manifest.json: the package was altered"));
        }
        Ok(inner)
    }

    /// Writes the resources into a fresh private directory and renames it into place once all verify.
    /// An existing directory for this digest was written by an earlier verified extraction, so the
    /// archive's bytes are then only hashed. Says whether it wrote the directory.
    fn extract(&mut self, root: &Path, resources: &[&MemberPin]) -> Result<(PathBuf, bool), PackageError> {
        let digest = sha256_hex(&self.manifest_bytes);
        let target = root.join(&digest);
        if target.is_dir() {
            for pin in resources {
                self.read_pinned(pin, std::io::sink())?;
            }
            return Ok((target, false));
        }
        create_private_dir(root)?;
        let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let tmp = root.join(format!(".tmp-{digest}-{}-{nonce}", std::process::id()));
        let result = (|| {
            std::fs::create_dir(&tmp).map_err(|e| PackageError::io(&tmp, "create", e))?;
            for pin in resources {
                let rel = pin.name.strip_prefix("resources/").expect("filtered by prefix");
                let dest = tmp.join(rel);
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| PackageError::member(&pin.name, format!("cannot extract: {e}")))?;
                }
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&dest)
                    .map_err(|e| PackageError::member(&pin.name, format!("cannot extract: {e}")))?;
                let writer = self.read_pinned(pin, BufWriter::with_capacity(1 << 20, file))?;
                let file = writer.into_inner().map_err(|e| PackageError::io(&dest, "write", e.into_error()))?;
                file.sync_all().map_err(|e| PackageError::io(&dest, "write", e))?;
            }
            match std::fs::rename(&tmp, &target) {
                Ok(()) => Ok(()),
                // Another process extracted the same digest first; its copy is as good as ours.
                Err(_) if target.is_dir() => {
                    let _ = std::fs::remove_dir_all(&tmp);
                    Ok(())
                }
                Err(e) => Err(PackageError::io(&target, "create", e)),
            }
        })();
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result.map(|()| (target, true))
    }
}

fn create_private_dir(dir: &Path) -> Result<(), PackageError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| PackageError::io(dir, "create", e))
}

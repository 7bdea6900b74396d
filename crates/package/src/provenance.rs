//! Provenance: how a package's components were built, as an in-toto statement (SLSA provenance v1
//! predicate) in its own DSSE envelope, signed by the key that packs and pinned like any member.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::PackageError;
use crate::manifest::PackageManifest;
use crate::signing::{self, KeyId, SignatureCheck, SigningKey};

/// The DSSE payload type of an in-toto statement.
pub const INTOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The in-toto statement type written and read.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The SLSA provenance predicate type written and read.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// The build type `pack` records.
pub const BUILD_TYPE: &str = "https://wasmzip.dev/pack/v1";
/// Largest provenance envelope read.
pub const MAX_PROVENANCE_SIZE: u64 = 1024 * 1024;

/// What the author's machine says about the build (gathered by the command line, not this crate).
#[derive(Debug, Clone, Default)]
pub struct BuildFacts {
    /// Who built it: `runDetails.builder.id`.
    pub builder_id: String,
    /// The source the components came from, when the package directory is a git work tree.
    pub source: Option<SourceRevision>,
    /// The lock file the build resolved its dependencies from: its file name and SHA-256.
    pub lock_file: Option<(String, String)>,
}

/// A source revision.
#[derive(Debug, Clone)]
pub struct SourceRevision {
    /// Where the source lives (`git+https://…`, or the work tree's path when it has no remote).
    pub uri: String,
    /// The commit built.
    pub commit: String,
    /// Whether the work tree had changes not in that commit.
    pub dirty: bool,
}

/// The in-toto statement for `subjects` (member name, SHA-256) built as `facts` say.
fn statement(package: &str, version: &str, subjects: &[(String, String)], facts: &BuildFacts) -> Vec<u8> {
    let mut resolved = Vec::new();
    if let Some(src) = &facts.source {
        let mut dep = json!({ "uri": src.uri, "digest": { "gitCommit": src.commit } });
        if src.dirty {
            dep["annotations"] = json!({ "dirty": true });
        }
        resolved.push(dep);
    }
    if let Some((name, sha256)) = &facts.lock_file {
        resolved.push(json!({ "name": name, "digest": { "sha256": sha256 } }));
    }
    let statement = json!({
        "_type": STATEMENT_TYPE,
        "subject": subjects.iter().map(|(name, sha256)| json!({ "name": name, "digest": { "sha256": sha256 } })).collect::<Vec<_>>(),
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": { "package": { "name": package, "version": version } },
                "internalParameters": { "wasmzip": env!("CARGO_PKG_VERSION") },
                "resolvedDependencies": resolved,
            },
            "runDetails": { "builder": { "id": facts.builder_id } },
        },
    });
    let mut bytes = serde_json::to_vec_pretty(&statement).expect("a statement always serialises");
    bytes.push(b'\n');
    bytes
}

/// The provenance member: the statement for `subjects`, in a DSSE envelope signed by `key`.
pub(crate) fn envelope(package: &str, version: &str, subjects: &[(String, String)], facts: &BuildFacts, key: &SigningKey) -> Vec<u8> {
    let payload = statement(package, version, subjects, facts);
    signing::dsse_bytes(INTOTO_PAYLOAD_TYPE, &payload, &[key.sign_payload(INTOTO_PAYLOAD_TYPE, &payload, true)])
}

/// A package's provenance, read back and checked.
#[derive(Debug, Clone)]
pub struct Provenance {
    /// `runDetails.builder.id`.
    pub builder_id: String,
    /// `resolvedDependencies` as (uri or name, digest kind, digest value, dirty).
    pub materials: Vec<Material>,
    /// The envelope's signatures, each checked against the key it carries.
    pub signatures: Vec<SignatureCheck>,
}

/// One resolved dependency of the build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Material {
    /// Its URI or name.
    pub name: String,
    /// Its digest, as `ALGORITHM:VALUE` (`gitCommit:…`, `sha256:…`).
    pub digest: String,
    /// Whether the work tree was dirty (source revisions only).
    pub dirty: bool,
}

#[derive(Deserialize)]
struct Statement {
    #[serde(rename = "_type")]
    kind: String,
    subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    predicate_type: String,
    predicate: Predicate,
}

#[derive(Deserialize)]
struct Subject {
    name: String,
    digest: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Predicate {
    build_definition: BuildDefinition,
    run_details: RunDetails,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BuildDefinition {
    external_parameters: ExternalParameters,
    #[serde(default)]
    resolved_dependencies: Vec<ResourceDescriptor>,
}

#[derive(Deserialize)]
struct ExternalParameters {
    package: PackageParameter,
}

#[derive(Deserialize)]
struct PackageParameter {
    name: String,
    version: String,
}

#[derive(Deserialize, Serialize)]
struct ResourceDescriptor {
    #[serde(default)]
    uri: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    digest: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    annotations: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RunDetails {
    builder: Builder,
}

#[derive(Deserialize)]
struct Builder {
    id: String,
}

/// Parses the provenance member of `manifest`'s package and checks it: a strict envelope of an
/// in-toto statement whose every signature holds, one of them by a key that signs the package
/// (`package_signers`), of the SLSA provenance predicate, about this package's name and version, and
/// naming every component with the digest the manifest pins.
pub(crate) fn read(bytes: &[u8], manifest: &PackageManifest, package_signers: &[KeyId]) -> Result<Provenance, PackageError> {
    let bad = |m: String| PackageError::member(crate::manifest::PROVENANCE_MEMBER, m);
    let (payload, signatures) = signing::open_dsse(INTOTO_PAYLOAD_TYPE, bytes, &[]).map_err(|e| bad(e.to_string()))?;
    if !signatures.iter().any(|s| s.verified && package_signers.contains(&s.key)) {
        let keys = signatures.iter().map(|s| s.key.to_string()).collect::<Vec<_>>().join(", ");
        return Err(bad(format!("is signed by key {keys}, none of which signs the package")));
    }
    let statement: Statement = serde_json::from_slice(&payload).map_err(|e| bad(format!("not an in-toto statement: {e}")))?;
    if statement.kind != STATEMENT_TYPE {
        return Err(bad(format!("statement type `{}` is not `{STATEMENT_TYPE}`", statement.kind)));
    }
    if statement.predicate_type != PREDICATE_TYPE {
        return Err(bad(format!("predicate type `{}` is not `{PREDICATE_TYPE}`", statement.predicate_type)));
    }
    let about = &statement.predicate.build_definition.external_parameters.package;
    if about.name != manifest.name.as_str() || about.version != manifest.version.to_string() {
        return Err(bad(format!("is about {}@{}, not {}@{}", about.name, about.version, manifest.name, manifest.version)));
    }
    for component in manifest.components.values() {
        let pin = manifest.members.iter().find(|p| p.name == component.member).expect("checked when the manifest was read");
        let named = statement.subject.iter().find(|s| s.name == component.member);
        match named.and_then(|s| s.digest.get("sha256")) {
            Some(sha) if *sha == pin.sha256 => {}
            Some(_) => return Err(bad(format!("its subject `{}` has a SHA-256 other than the one manifest.json pins", component.member))),
            None => return Err(bad(format!("names no subject `{}` with a SHA-256", component.member))),
        }
    }
    let materials = statement
        .predicate
        .build_definition
        .resolved_dependencies
        .into_iter()
        .map(|d| Material {
            name: d.uri.or(d.name).unwrap_or_default(),
            digest: d.digest.iter().next().map(|(k, v)| format!("{k}:{v}")).unwrap_or_default(),
            dirty: d.annotations.as_ref().and_then(|a| a.get("dirty")).and_then(|v| v.as_bool()).unwrap_or(false),
        })
        .collect();
    Ok(Provenance { builder_id: statement.predicate.run_details.builder.id, materials, signatures })
}

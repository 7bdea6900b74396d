//! The two manifests: `wasmzip.toml`, which an author writes, and `manifest.json`, which `pack` derives
//! from it, pins every member with, and signs.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::capability::{Capability, GuestDir};
use crate::error::PackageError;

/// The schema version of `manifest.json` that `pack` writes: package format 2, in which no byte of
/// the archive may change (every member pinned as stored, one allowed value for every header field),
/// with an SBOM and provenance as pinned members and a component's `reuse`. This crate reads it and
/// schema 1.
pub const MANIFEST_SCHEMA: u32 = 2;
/// The schema of format-1 packages, which are still read (leniently, as they were written).
pub const MANIFEST_SCHEMA_V1: u32 = 1;
/// The pinned member that holds a format-2 package's CycloneDX SBOM.
pub const SBOM_MEMBER: &str = "sbom.cdx.json";
/// The pinned member that holds a format-2 package's provenance: an in-toto statement in a DSSE
/// envelope.
pub const PROVENANCE_MEMBER: &str = "provenance.dsse.json";
/// The guest directory where a package's resources are always visible, read-only.
pub const RESOURCES_GUEST_DIR: &str = "/pkg";
/// Longest package or component name.
pub const MAX_NAME_LEN: usize = 64;

/// The world a component targets, which decides how it is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum World {
    /// `wasi:cli/command`: run once with `wasmzip run`.
    Cli,
    /// `wasi:http/proxy`: serves requests through `wasi:http/incoming-handler` with `wasmzip serve`.
    Http,
}

impl World {
    /// Its name in manifests: `cli` or `http`.
    pub fn as_str(self) -> &'static str {
        match self {
            World::Cli => "cli",
            World::Http => "http",
        }
    }
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a model runs: chosen per model in the manifest, and the operator may override it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelTarget {
    /// The CPU (the default).
    #[default]
    Cpu,
    /// A GPU; loading fails with a clear error when none is usable.
    Gpu,
    /// A GPU when one is usable, else the CPU.
    Auto,
}

impl fmt::Display for ModelTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ModelTarget::Cpu => "cpu",
            ModelTarget::Gpu => "gpu",
            ModelTarget::Auto => "auto",
        })
    }
}

impl std::str::FromStr for ModelTarget {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" => Ok(ModelTarget::Cpu),
            "gpu" => Ok(ModelTarget::Gpu),
            "auto" => Ok(ModelTarget::Auto),
            _ => Err(format!("unknown model target `{s}`: use cpu, gpu or auto")),
        }
    }
}

/// How a model's bytes are encoded. Only ONNX is supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelEncoding {
    /// An ONNX protobuf file.
    #[default]
    Onnx,
}

impl ModelEncoding {
    /// Its name in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelEncoding::Onnx => "onnx",
        }
    }
}

impl fmt::Display for ModelEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longest route prefix, in bytes.
pub const MAX_ROUTE_LEN: usize = 512;
/// Most routes one component may claim.
pub const MAX_ROUTES: usize = 64;

/// A route prefix an `http` component claims: `/` or `/segment/...`, matched on whole path segments.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct RoutePrefix(String);

impl RoutePrefix {
    /// Parses and normalises a prefix (a trailing `/` is dropped).
    pub fn parse(text: &str) -> Result<Self, String> {
        if !text.starts_with('/') {
            return Err(format!("route `{text}` must start with `/`"));
        }
        if text.len() > MAX_ROUTE_LEN {
            return Err(format!("route `{text}` is longer than {MAX_ROUTE_LEN} bytes"));
        }
        let trimmed = if text.len() > 1 { text.strip_suffix('/').unwrap_or(text) } else { text };
        if trimmed != "/" {
            for segment in trimmed[1..].split('/') {
                if segment.is_empty() || segment == "." || segment == ".." {
                    return Err(format!("route `{text}` has an empty, `.` or `..` segment"));
                }
                let ok = |c: char| c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@%".contains(c);
                if let Some(bad) = segment.chars().find(|c| !ok(*c)) {
                    return Err(format!("route `{text}` contains `{bad}`, which is not allowed in a path segment"));
                }
            }
        }
        Ok(RoutePrefix(trimmed.to_string()))
    }

    /// The prefix as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoutePrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RoutePrefix {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        RoutePrefix::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A package or component name: 1 to 64 of `a-z`, `0-9` and `-`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Name(String);

impl Name {
    /// Checks and wraps a name.
    pub fn parse(text: &str) -> Result<Self, String> {
        let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
        if text.is_empty() || text.len() > MAX_NAME_LEN {
            return Err(format!("`{text}`: a name must be 1 to {MAX_NAME_LEN} characters"));
        }
        if !text.chars().all(ok_char) || text.starts_with('-') {
            return Err(format!("`{text}`: a name uses only `a-z`, `0-9` and `-`, and does not start with `-`"));
        }
        Ok(Name(text.to_string()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Name::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A size in bytes, written `65536`, `"64KiB"`, `"64MiB"` or `"1GiB"` (also `KB`, `MB`, `GB` in powers
/// of ten).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses `123`, `64KiB`, `10MB`, ...
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let number: u64 = digits
            .parse()
            .map_err(|_| format!("`{text}` is not a size: write a number with an optional unit like `64MiB`"))?;
        let factor: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "KB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            other => return Err(format!("unknown size unit `{other}` in `{text}`: use B, KiB, MiB, GiB, KB, MB or GB")),
        };
        number.checked_mul(factor).map(ByteSize).ok_or_else(|| format!("`{text}` is too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        if v >= 1 << 30 && v % (1 << 30) == 0 {
            write!(f, "{}GiB", v >> 30)
        } else if v >= 1 << 20 && v % (1 << 20) == 0 {
            write!(f, "{}MiB", v >> 20)
        } else if v >= 1 << 10 && v % (1 << 10) == 0 {
            write!(f, "{}KiB", v >> 10)
        } else {
            write!(f, "{v}B")
        }
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(ByteSize(n)),
            Raw::Text(t) => ByteSize::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

/// Parses a duration written `500ms`, `30s`, `2m` or `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().map_err(|_| format!("`{text}` is not a duration: write e.g. `500ms`, `30s` or `2m`"))?;
    let d = match unit.trim() {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        "" => return Err(format!("`{text}` needs a unit: ms, s, m or h")),
        other => return Err(format!("unknown duration unit `{other}` in `{text}`: use ms, s, m or h")),
    };
    if d.is_zero() {
        return Err(format!("`{text}`: a duration must be greater than zero"));
    }
    Ok(d)
}

/// A wall-clock duration in a manifest (`"30s"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DurationValue(pub Duration);

impl<'de> Deserialize<'de> for DurationValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_duration(&String::deserialize(d)?).map(DurationValue).map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------------------------------
// wasmzip.toml

/// `wasmzip.toml`, as the author wrote it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorManifest {
    /// `[package]`: name, version, description.
    pub package: AuthorPackage,
    /// `[components.NAME]`: one table per component.
    pub components: BTreeMap<Name, AuthorComponent>,
    /// `[models.NAME]`: models guests load by name through wasi-nn.
    #[serde(default)]
    pub models: BTreeMap<Name, AuthorModel>,
    /// `[sbom]`: an SBOM the author supplies instead of the one `pack` writes.
    #[serde(default)]
    pub sbom: Option<AuthorSbom>,
}

/// `[sbom]` in `wasmzip.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorSbom {
    /// A CycloneDX JSON file (relative to the manifest), validated and embedded as the package's SBOM.
    pub file: PathBuf,
}

/// `[models.NAME]` in `wasmzip.toml`: a model file shipped as a resource.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorModel {
    /// Path of the model file, relative to the manifest; it becomes the member `resources/PATH`.
    pub file: PathBuf,
    /// Its encoding (`onnx`, the default).
    #[serde(default)]
    pub encoding: ModelEncoding,
    /// Where it runs (`cpu`, the default; `gpu`; `auto`).
    #[serde(default)]
    pub target: ModelTarget,
}

/// `[package]` in `wasmzip.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorPackage {
    /// Package name.
    pub name: Name,
    /// Semantic version.
    pub version: semver::Version,
    /// One line describing the package.
    #[serde(default)]
    pub description: Option<String>,
    /// Files and directories (relative to the manifest) shipped under `resources/` and visible at `/pkg`.
    #[serde(default)]
    pub resources: Vec<PathBuf>,
}

/// `[components.NAME]` in `wasmzip.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorComponent {
    /// Path of the `.wasm` component, relative to the manifest.
    pub file: PathBuf,
    /// The world the component targets.
    pub world: World,
    /// Capability tokens the component requests.
    #[serde(default, deserialize_with = "requested_capabilities")]
    pub capabilities: Vec<Capability>,
    /// Resource limits the component runs under.
    #[serde(default)]
    pub limits: AuthorLimits,
    /// Route prefixes an `http` component serves (default `/PACKAGE-NAME`).
    #[serde(default)]
    pub routes: Vec<RoutePrefix>,
    /// Whether (and how far) instances of a WASI 0.3 `http` component serve more than one request:
    /// `reuse = false`, or a table of limits.
    #[serde(default)]
    pub reuse: Option<Reuse>,
}

/// Instance reuse of an `http` component (`reuse` in `wasmzip.toml`, schema 2 of `manifest.json`).
/// WASI 0.3 handlers are reused by default with the host's limits; these lower them, and
/// `enabled = false` (`reuse = false`) gives every request a fresh instance. WASI 0.2 handlers always
/// get a fresh instance per request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Reuse {
    /// Whether an instance may serve more than one request.
    pub enabled: bool,
    /// Most requests one instance serves before it is dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests: Option<u32>,
    /// Most requests one instance serves at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
    /// How long an idle instance is kept for the next request, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_ms: Option<u64>,
}

/// `reuse` in `manifest.json`, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReuseJson {
    enabled: bool,
    #[serde(default)]
    max_requests: Option<u32>,
    #[serde(default)]
    max_concurrent: Option<u32>,
    #[serde(default)]
    idle_timeout_ms: Option<u64>,
}

/// `[components.NAME.reuse]` in `wasmzip.toml`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReuseToml {
    #[serde(default)]
    max_requests: Option<u32>,
    #[serde(default)]
    max_concurrent: Option<u32>,
    #[serde(default)]
    idle_timeout: Option<DurationValue>,
}

impl Reuse {
    fn check(&self) -> Result<(), String> {
        if self.max_requests == Some(0) || self.max_concurrent == Some(0) || self.idle_timeout_ms == Some(0) {
            return Err("reuse limits must be greater than zero".into());
        }
        if !self.enabled && (self.max_requests.is_some() || self.max_concurrent.is_some() || self.idle_timeout_ms.is_some()) {
            return Err("reuse limits have no effect with reuse disabled".into());
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Reuse {
    /// `manifest.json` writes a table with `enabled`; `wasmzip.toml` takes `reuse = false`,
    /// `reuse = true` or a table of limits (which enables reuse).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Reuse;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`false`, `true`, or a table of `max_requests`, `max_concurrent` and `idle_timeout`")
            }
            fn visit_bool<E: serde::de::Error>(self, enabled: bool) -> Result<Reuse, E> {
                Ok(Reuse { enabled, ..Reuse::default() })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Reuse, A::Error> {
                let value = serde_json::Value::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                let reuse = if value.get("enabled").is_some() {
                    let j: ReuseJson = serde_json::from_value(value).map_err(serde::de::Error::custom)?;
                    Reuse { enabled: j.enabled, max_requests: j.max_requests, max_concurrent: j.max_concurrent, idle_timeout_ms: j.idle_timeout_ms }
                } else {
                    let t: ReuseToml = serde_json::from_value(value).map_err(serde::de::Error::custom)?;
                    Reuse {
                        enabled: true,
                        max_requests: t.max_requests,
                        max_concurrent: t.max_concurrent,
                        idle_timeout_ms: t.idle_timeout.map(|d| u64::try_from(d.0.as_millis()).unwrap_or(u64::MAX)),
                    }
                };
                reuse.check().map_err(serde::de::Error::custom)?;
                Ok(reuse)
            }
        }
        d.deserialize_any(Visitor)
    }
}

fn requested_capabilities<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Capability>, D::Error> {
    let caps = Vec::<Capability>::deserialize(d)?;
    check_capabilities(&caps).map_err(serde::de::Error::custom)?;
    Ok(caps)
}

fn nonzero_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<ByteSize>, D::Error> {
    let size = ByteSize::deserialize(d)?;
    if size.0 == 0 {
        return Err(serde::de::Error::custom("must be greater than zero"));
    }
    Ok(Some(size))
}

/// `[components.NAME.limits]` in `wasmzip.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorLimits {
    /// Most linear memory the component may hold.
    #[serde(default, deserialize_with = "nonzero_size")]
    pub memory: Option<ByteSize>,
    /// Wall-clock limit for one run (or one request).
    pub timeout: Option<DurationValue>,
    /// Largest request body an `http` component accepts.
    #[serde(default, deserialize_with = "nonzero_size")]
    pub request_body: Option<ByteSize>,
    /// Largest response body an `http` component may send.
    #[serde(default, deserialize_with = "nonzero_size")]
    pub response_body: Option<ByteSize>,
    /// Largest total size of request headers (names and values).
    #[serde(default, deserialize_with = "nonzero_size")]
    pub headers: Option<ByteSize>,
    /// Most outbound HTTP requests one request may make.
    pub outbound_requests: Option<u32>,
}

impl AuthorManifest {
    /// Reads and checks `wasmzip.toml`; errors name the file, the line and the key.
    pub fn load(path: &Path) -> Result<Self, PackageError> {
        let text = std::fs::read_to_string(path).map_err(|e| PackageError::io(path, "read", e))?;
        Self::parse(&text, path)
    }

    /// Parses the text of `wasmzip.toml` (`path` is only used in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self, PackageError> {
        let manifest: AuthorManifest = toml::from_str(text).map_err(|e| PackageError::AuthorManifest {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let invalid = |message: String| PackageError::AuthorManifest { path: path.to_path_buf(), message };
        if manifest.components.is_empty() {
            return Err(invalid("at least one `[components.NAME]` table is required".into()));
        }
        for (name, component) in &manifest.components {
            check_world_fields(component.world, &component.routes, component.limits.request_body.is_some() || component.limits.response_body.is_some() || component.limits.headers.is_some() || component.limits.outbound_requests.is_some() || component.reuse.is_some())
                .map_err(|m| invalid(format!("components.{name}: {m}")))?;
        }
        Ok(manifest)
    }
}

/// Routes and HTTP limits belong to `http` components only.
fn check_world_fields(world: World, routes: &[RoutePrefix], http_limits: bool) -> Result<(), String> {
    if world != World::Http && (!routes.is_empty() || http_limits) {
        return Err(format!("routes and HTTP limits apply to `http` components, not `{world}`"));
    }
    if routes.len() > MAX_ROUTES {
        return Err(format!("at most {MAX_ROUTES} routes"));
    }
    for (i, r) in routes.iter().enumerate() {
        if routes[..i].contains(r) {
            return Err(format!("route `{r}` is listed twice"));
        }
    }
    Ok(())
}

/// Rejects requests that collide with what the host always provides.
pub(crate) fn check_capabilities(caps: &[Capability]) -> Result<(), String> {
    let reserved = GuestDir::parse(RESOURCES_GUEST_DIR).expect("constant is a valid directory");
    for cap in caps {
        if let Capability::FilesystemRead(dir) | Capability::FilesystemWrite(dir) = cap
            && (reserved.contains(dir) || dir.contains(&reserved))
        {
            return Err(format!("`{cap}` overlaps {RESOURCES_GUEST_DIR}, which is reserved for the package's resources"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// manifest.json

/// `manifest.json`: what is signed, and what pins every other member of the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageManifest {
    /// Schema version; this crate reads and writes [`MANIFEST_SCHEMA`].
    pub schema: u32,
    /// Package name.
    pub name: Name,
    /// Package version.
    pub version: semver::Version,
    /// One line describing the package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The components, by name (a repeated name is an error, not "last one wins").
    #[serde(deserialize_with = "unique_keys")]
    pub components: BTreeMap<Name, ComponentEntry>,
    /// Models guests load by name, each a pinned resource.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "unique_keys")]
    pub models: BTreeMap<Name, ModelEntry>,
    /// Every member except `manifest.json` and `signature.dsse.json`, in archive order.
    pub members: Vec<MemberPin>,
}

/// Deserialises a map, refusing repeated keys: two readers of a signed manifest must never disagree
/// on what it says.
fn unique_keys<'de, D, V>(d: D) -> Result<BTreeMap<Name, V>, D::Error>
where
    D: serde::Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Visitor<V>(std::marker::PhantomData<V>);
    impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Visitor<V> {
        type Value = BTreeMap<Name, V>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of names")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((key, value)) = map.next_entry::<Name, V>()? {
                if out.contains_key(&key) {
                    return Err(serde::de::Error::custom(format!("`{key}` appears twice")));
                }
                out.insert(key, value);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Visitor(std::marker::PhantomData))
}

/// One component in `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentEntry {
    /// The archive member holding the component (`components/NAME.wasm`).
    pub member: String,
    /// The world it targets.
    pub world: World,
    /// Requested capability tokens.
    pub capabilities: Vec<Capability>,
    /// Limits it runs under.
    pub limits: Limits,
    /// Route prefixes (`http` components; empty means `/PACKAGE-NAME`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RoutePrefix>,
    /// Instance reuse (`http` components; schema 2; absent means the host's defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reuse: Option<Reuse>,
}

impl ComponentEntry {
    /// The routes in force: the declared ones, or `/PACKAGE-NAME`.
    pub fn effective_routes(&self, package: &Name) -> Vec<RoutePrefix> {
        if self.routes.is_empty() {
            vec![RoutePrefix(format!("/{package}"))]
        } else {
            self.routes.clone()
        }
    }
}

/// One model in `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// The pinned member holding the model (under `resources/`).
    pub member: String,
    /// Its encoding.
    pub encoding: ModelEncoding,
    /// Where it runs unless the operator says otherwise.
    pub target: ModelTarget,
}

impl ModelEntry {
    /// The model's path relative to the package's extracted resources directory.
    pub fn resource_path(&self) -> &str {
        self.member.strip_prefix("resources/").unwrap_or(&self.member)
    }
}

/// Limits of a component in `manifest.json`; absent means the host's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Most linear memory, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Wall-clock limit of one run or request, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Largest request body, in bytes (`http`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body_bytes: Option<u64>,
    /// Largest response body, in bytes (`http`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_body_bytes: Option<u64>,
    /// Largest total size of request headers, in bytes (`http`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_bytes: Option<u64>,
    /// Most outbound HTTP requests per request (`http`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_requests: Option<u32>,
}

/// The size and SHA-256 of one member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberPin {
    /// Member name in the archive.
    pub name: String,
    /// Uncompressed size in bytes.
    pub size: u64,
    /// Lower-case hex SHA-256 of the uncompressed bytes.
    pub sha256: String,
    /// Schema 2: the member is deflated, and these are the size and SHA-256 of its bytes exactly as
    /// stored. Absent in schema 2 means it is stored uncompressed (so `size` and `sha256` already pin
    /// its stored bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deflated: Option<StoredPin>,
}

/// The size and SHA-256 of a member's bytes as they are stored in the archive (compressed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredPin {
    /// Size of the stored (compressed) bytes.
    pub size: u64,
    /// Lower-case hex SHA-256 of the stored (compressed) bytes.
    pub sha256: String,
}

impl PackageManifest {
    /// Whether this is a format-2 package (schema 2 or later): strict archive, members pinned as
    /// stored.
    pub fn is_format_2(&self) -> bool {
        self.schema >= MANIFEST_SCHEMA
    }

    /// The pin of the package's SBOM, when it carries one.
    pub fn sbom_pin(&self) -> Option<&MemberPin> {
        self.members.iter().find(|p| p.name == SBOM_MEMBER)
    }

    /// The pin of the package's provenance envelope, when it carries one.
    pub fn provenance_pin(&self) -> Option<&MemberPin> {
        self.members.iter().find(|p| p.name == PROVENANCE_MEMBER)
    }

    /// The canonical bytes of the manifest: pretty JSON with a trailing newline, fields in fixed order.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("a manifest always serialises");
        bytes.push(b'\n');
        bytes
    }

    /// Parses `manifest.json` and checks what its types cannot: schema, member references.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PackageError> {
        let bad = |message: String| PackageError::Manifest { message };
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        if let Some(schema) = value.get("schema").and_then(|s| s.as_u64())
            && !(u64::from(MANIFEST_SCHEMA_V1)..=u64::from(MANIFEST_SCHEMA)).contains(&schema)
        {
            return Err(bad(format!("schema {schema} is not supported; this wasmzip reads schemas {MANIFEST_SCHEMA_V1} to {MANIFEST_SCHEMA}")));
        }
        let manifest: PackageManifest = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if manifest.components.is_empty() {
            return Err(bad("a package holds at least one component".into()));
        }
        for (name, component) in &manifest.components {
            let expected = format!("components/{name}.wasm");
            if component.member != expected {
                return Err(bad(format!("component `{name}` must live in member `{expected}`, not `{}`", component.member)));
            }
            if !manifest.members.iter().any(|m| m.name == component.member) {
                return Err(bad(format!("component `{name}` names member `{}`, which is not pinned", component.member)));
            }
            check_capabilities(&component.capabilities).map_err(|m| bad(format!("component `{name}`: {m}")))?;
            let l = &component.limits;
            if [l.memory_bytes, l.timeout_ms, l.request_body_bytes, l.response_body_bytes, l.header_bytes].contains(&Some(0)) {
                return Err(bad(format!("component `{name}`: limits must be greater than zero")));
            }
            if component.reuse.is_some() && manifest.schema < MANIFEST_SCHEMA {
                return Err(bad(format!("component `{name}`: `reuse` needs schema {MANIFEST_SCHEMA}, and this manifest is schema {}", manifest.schema)));
            }
            let http_limits = l.request_body_bytes.is_some() || l.response_body_bytes.is_some() || l.header_bytes.is_some() || l.outbound_requests.is_some() || component.reuse.is_some();
            check_world_fields(component.world, &component.routes, http_limits).map_err(|m| bad(format!("component `{name}`: {m}")))?;
        }
        for (name, model) in &manifest.models {
            if !model.member.starts_with("resources/") || !manifest.members.iter().any(|m| m.name == model.member) {
                return Err(bad(format!("model `{name}` names member `{}`, which is not a pinned resource", model.member)));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        let is_hex = |h: &str| h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        for pin in &manifest.members {
            if !is_hex(&pin.sha256) {
                return Err(bad(format!("member `{}`: sha256 must be 64 lower-case hex digits", pin.name)));
            }
            match &pin.deflated {
                Some(_) if !manifest.is_format_2() => {
                    return Err(bad(format!("member `{}`: `deflated` needs schema {MANIFEST_SCHEMA}, and this manifest is schema {}", pin.name, manifest.schema)));
                }
                Some(stored) if !is_hex(&stored.sha256) => {
                    return Err(bad(format!("member `{}`: deflated.sha256 must be 64 lower-case hex digits", pin.name)));
                }
                _ => {}
            }
            let is_component = pin.name.starts_with("components/") && manifest.components.values().any(|c| c.member == pin.name);
            let is_meta = pin.name == SBOM_MEMBER || pin.name == PROVENANCE_MEMBER;
            if is_meta && !manifest.is_format_2() {
                return Err(bad(format!("member `{}` needs schema {MANIFEST_SCHEMA}, and this manifest is schema {}", pin.name, manifest.schema)));
            }
            if !is_component && !is_meta && !pin.name.starts_with("resources/") {
                return Err(bad(format!("member `{}`: pinned members are components/NAME.wasm of a listed component, {SBOM_MEMBER}, {PROVENANCE_MEMBER}, or under resources/", pin.name)));
            }
            if !names.insert(pin.name.as_str()) {
                return Err(bad(format!("member `{}` is pinned twice", pin.name)));
            }
        }
        // Format 2: one order, the writer's (the SBOM, the provenance, components by name, resources
        // by name), so that one manifest has one archive layout.
        if manifest.is_format_2() {
            let key = |pin: &MemberPin| -> (u8, String) {
                match pin.name.as_str() {
                    SBOM_MEMBER => (0, String::new()),
                    PROVENANCE_MEMBER => (1, String::new()),
                    name => match name.strip_prefix("components/").and_then(|n| n.strip_suffix(".wasm")) {
                        Some(component) => (2, component.to_string()),
                        None => (3, name.to_string()),
                    },
                }
            };
            if let Some(pair) = manifest.members.windows(2).find(|w| key(&w[0]) >= key(&w[1])) {
                return Err(bad(format!("member `{}` is pinned after `{}`; schema 2 pins {SBOM_MEMBER}, {PROVENANCE_MEMBER}, the components by name, then the resources by name", pair[1].name, pair[0].name)));
            }
        }
        // A resource may not also be a directory of other resources (`resources/a` and `resources/a/b`).
        for name in &names {
            let dir = format!("{name}/");
            if names.range(dir.as_str()..).next().is_some_and(|next| next.starts_with(&dir)) {
                return Err(bad(format!("member `{name}` is both a file and a directory of other members")));
            }
        }
        Ok(manifest)
    }

    /// The component to run when none is named: the only one of `world`.
    pub fn default_component(&self, world: World) -> Option<(&Name, &ComponentEntry)> {
        let mut of_world = self.components.iter().filter(|(_, c)| c.world == world);
        match (of_world.next(), of_world.next()) {
            (Some(one), None) => Some(one),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AuthorManifest, String> {
        AuthorManifest::parse(text, Path::new("wasmzip.toml")).map_err(|e| e.to_string())
    }

    const GOOD: &str = r#"
[package]
name = "hello"
version = "1.2.3"

[components.hello]
file = "hello.wasm"
world = "cli"
capabilities = ["env:GREETING_NAME", "filesystem:read:/data"]
limits = { memory = "64MiB", timeout = "5s" }
"#;

    #[test]
    fn parses_a_good_manifest() {
        let m = parse(GOOD).unwrap();
        let c = &m.components[&Name::parse("hello").unwrap()];
        assert_eq!(c.limits.memory, Some(ByteSize(64 << 20)));
        assert_eq!(c.limits.timeout, Some(DurationValue(Duration::from_secs(5))));
        assert_eq!(c.capabilities.len(), 2);
    }

    #[test]
    fn unknown_keys_name_key_and_line() {
        let err = parse(&GOOD.replace("world = \"cli\"", "world = \"cli\"\nentrypoint = \"x\"")).unwrap_err();
        assert!(err.contains("line 9") && err.contains("entrypoint"), "{err}");
        let err = parse(&format!("{GOOD}\n[extras]\nx = 1\n")).unwrap_err();
        assert!(err.contains("extras") && err.contains("line 12"), "{err}");
    }

    #[test]
    fn malformed_values_name_line_and_fault() {
        let err = parse(&GOOD.replace("env:GREETING_NAME", "env:GREETING-NAME")).unwrap_err();
        assert!(err.contains("line 9") && err.contains("position 13"), "{err}");
        let err = parse(&GOOD.replace("64MiB", "64 parsecs")).unwrap_err();
        assert!(err.contains("line 10") && err.contains("parsecs"), "{err}");
        let err = parse(&GOOD.replace("1.2.3", "1.2")).unwrap_err();
        assert!(err.contains("line 4"), "{err}");
        let err = parse(&GOOD.replace("name = \"hello\"", "name = \"Hello World\"")).unwrap_err();
        assert!(err.contains("line 3") && err.contains("a-z"), "{err}");
        let err = parse(&GOOD.replace("world = \"cli\"", "world = \"gui\"")).unwrap_err();
        assert!(err.contains("gui") && err.contains("cli"), "{err}");
    }

    #[test]
    fn models_table() {
        let m = parse(&format!("{GOOD}\n[models.orientation]\nfile = \"m.onnx\"\ntarget = \"gpu\"\n")).unwrap();
        let model = &m.models[&Name::parse("orientation").unwrap()];
        assert_eq!((model.target, model.encoding), (ModelTarget::Gpu, ModelEncoding::Onnx));
        let err = parse(&format!("{GOOD}\n[models.orientation]\nfile = \"m.onnx\"\nencoding = \"tflite\"\n")).unwrap_err();
        assert!(err.contains("tflite") && err.contains("line 14"), "{err}");
        let err = parse(&format!("{GOOD}\n[models.Orientation]\nfile = \"m.onnx\"\n")).unwrap_err();
        assert!(err.contains("a-z"), "{err}");
    }

    #[test]
    fn reserved_pkg_dir() {
        let err = parse(&GOOD.replace("filesystem:read:/data", "filesystem:write:/pkg/x")).unwrap_err();
        assert!(err.contains("reserved"), "{err}");
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(ByteSize::parse("1GiB").unwrap(), ByteSize(1 << 30));
        assert_eq!(ByteSize::parse("10MB").unwrap(), ByteSize(10_000_000));
        assert_eq!(ByteSize::parse("4096").unwrap(), ByteSize(4096));
        assert!(ByteSize::parse("1 TiB").is_err());
        assert_eq!(ByteSize(64 << 20).to_string(), "64MiB");
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("5").unwrap_err().contains("unit"));
        assert!(parse_duration("0s").is_err());
    }

    #[test]
    fn package_manifest_rejects_other_schema_and_unknown_fields() {
        let err = PackageManifest::from_bytes(br#"{"schema": 3}"#).unwrap_err().to_string();
        assert!(err.contains("schema 3") && err.contains("schemas 1 to 2"), "{err}");
        let err = PackageManifest::from_bytes(
            br#"{"schema":1,"name":"a","version":"1.0.0","components":{},"members":[],"extra":1}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("extra") && err.contains("line 1"), "{err}");
    }

    #[test]
    fn reuse_needs_schema_2_and_an_http_component() {
        let http = |reuse: &str| format!(r#""a":{{"member":"components/a.wasm","world":"http","capabilities":[],"limits":{{}},"reuse":{reuse}}}"#);
        let with_schema = |schema: u32, component: &str| {
            let json = String::from_utf8(manifest_json(&format!("{{{component}}}"), &format!("[{PIN_A}]"))).unwrap();
            json.replace(r#""schema":1"#, &format!(r#""schema":{schema}"#)).into_bytes()
        };
        let ok = with_schema(2, &http(r#"{"enabled":true,"max_requests":4}"#));
        let m = PackageManifest::from_bytes(&ok).unwrap();
        assert_eq!(m.components.values().next().unwrap().reuse, Some(Reuse { enabled: true, max_requests: Some(4), max_concurrent: None, idle_timeout_ms: None }));
        assert!(m.is_format_2());
        let err = PackageManifest::from_bytes(&with_schema(1, &http(r#"{"enabled":false}"#))).unwrap_err().to_string();
        assert!(err.contains("`reuse` needs schema 2"), "{err}");
        for (reuse, expected) in [(r#"{"enabled":true,"max_requests":0}"#, "greater than zero"), (r#"{"enabled":false,"max_concurrent":2}"#, "no effect"), (r#"{"enabled":true,"max":1}"#, "unknown field")] {
            let err = PackageManifest::from_bytes(&with_schema(2, &http(reuse))).unwrap_err().to_string();
            assert!(err.contains(expected), "{reuse}: {err}");
        }
        let cli = COMPONENT_A.replace(r#""limits":{}"#, r#""limits":{},"reuse":{"enabled":false}"#);
        let err = PackageManifest::from_bytes(&with_schema(2, &cli)).unwrap_err().to_string();
        assert!(err.contains("apply to `http` components"), "{err}");
    }

    #[test]
    fn deflated_pins_and_meta_members_need_schema_2() {
        let with = |schema: u32, pins: &str| {
            let json = String::from_utf8(manifest_json(&format!("{{{COMPONENT_A}}}"), pins)).unwrap();
            json.replace(r#""schema":1"#, &format!(r#""schema":{schema}"#)).into_bytes()
        };
        let hex = "a".repeat(64);
        let deflated = PIN_A.replace(r#""sha256":"#, &format!(r#""deflated":{{"size":3,"sha256":"{hex}"}},"sha256":"#));
        let m = PackageManifest::from_bytes(&with(2, &format!("[{deflated}]"))).unwrap();
        assert_eq!(m.members[0].deflated, Some(StoredPin { size: 3, sha256: hex.clone() }));
        let err = PackageManifest::from_bytes(&with(1, &format!("[{deflated}]"))).unwrap_err().to_string();
        assert!(err.contains("`deflated` needs schema 2"), "{err}");
        let upper = deflated.replace(&hex, &"A".repeat(64));
        let err = PackageManifest::from_bytes(&with(2, &format!("[{upper}]"))).unwrap_err().to_string();
        assert!(err.contains("deflated.sha256 must be 64 lower-case hex digits"), "{err}");
        let sbom = format!(r#"{{"name":"{SBOM_MEMBER}","size":2,"sha256":"{hex}"}}"#);
        let m = PackageManifest::from_bytes(&with(2, &format!("[{sbom},{PIN_A}]"))).unwrap();
        assert_eq!(m.sbom_pin().map(|p| p.size), Some(2));
        let err = PackageManifest::from_bytes(&with(1, &format!("[{sbom},{PIN_A}]"))).unwrap_err().to_string();
        assert!(err.contains("sbom.cdx.json` needs schema 2"), "{err}");
        // Schema 2 has one pin order: the SBOM first.
        let err = PackageManifest::from_bytes(&with(2, &format!("[{PIN_A},{sbom}]"))).unwrap_err().to_string();
        assert!(err.contains("is pinned after"), "{err}");
        let other = format!(r#"{{"name":"meta/other.json","size":2,"sha256":"{hex}"}}"#);
        let err = PackageManifest::from_bytes(&with(2, &format!("[{other},{PIN_A}]"))).unwrap_err().to_string();
        assert!(err.contains("pinned members are"), "{err}");
    }

    #[test]
    fn author_reuse_takes_false_true_or_limits() {
        let parse = |reuse: &str| {
            let text = format!("[package]\nname = \"a\"\nversion = \"1.0.0\"\n[components.a]\nfile = \"a.wasm\"\nworld = \"http\"\nreuse = {reuse}\n");
            AuthorManifest::parse(&text, Path::new("wasmzip.toml")).map(|m| m.components.values().next().unwrap().reuse).map_err(|e| e.to_string())
        };
        assert_eq!(parse("false").unwrap(), Some(Reuse { enabled: false, ..Reuse::default() }));
        assert_eq!(parse("true").unwrap(), Some(Reuse { enabled: true, ..Reuse::default() }));
        assert_eq!(
            parse(r#"{ max_requests = 8, max_concurrent = 2, idle_timeout = "250ms" }"#).unwrap(),
            Some(Reuse { enabled: true, max_requests: Some(8), max_concurrent: Some(2), idle_timeout_ms: Some(250) })
        );
        let err = parse("{ max_concurrent = 0 }").unwrap_err();
        assert!(err.contains("wasmzip.toml") && err.contains("greater than zero"), "{err}");
        assert!(parse("3").unwrap_err().contains("`false`, `true`, or a table"));
    }

    fn manifest_json(components: &str, members: &str) -> Vec<u8> {
        format!(r#"{{"schema":1,"name":"a","version":"1.0.0","components":{components},"members":{members}}}"#).into_bytes()
    }

    const PIN_A: &str = r#"{"name":"components/a.wasm","size":1,"sha256":"0000000000000000000000000000000000000000000000000000000000000000"}"#;
    const COMPONENT_A: &str = r#""a":{"member":"components/a.wasm","world":"cli","capabilities":[],"limits":{}}"#;

    #[test]
    fn package_manifest_member_rules() {
        let ok = manifest_json(&format!("{{{COMPONENT_A}}}"), &format!("[{PIN_A}]"));
        PackageManifest::from_bytes(&ok).unwrap();
        let dup = manifest_json(&format!("{{{COMPONENT_A},{COMPONENT_A}}}"), &format!("[{PIN_A}]"));
        assert!(PackageManifest::from_bytes(&dup).unwrap_err().to_string().contains("appears twice"));
        let elsewhere = manifest_json(
            r#"{"a":{"member":"resources/a.wasm","world":"cli","capabilities":[],"limits":{}}}"#,
            &format!("[{}]", PIN_A.replace("components/", "resources/")),
        );
        assert!(PackageManifest::from_bytes(&elsewhere).unwrap_err().to_string().contains("must live in member `components/a.wasm`"));
        let pin = |name: &str| PIN_A.replace("components/a.wasm", name);
        let both = manifest_json(&format!("{{{COMPONENT_A}}}"), &format!("[{PIN_A},{},{}]", pin("resources/x"), pin("resources/x/y")));
        assert!(PackageManifest::from_bytes(&both).unwrap_err().to_string().contains("both a file and a directory"));
        let twice = manifest_json(&format!("{{{COMPONENT_A}}}"), &format!("[{PIN_A},{PIN_A}]"));
        assert!(PackageManifest::from_bytes(&twice).unwrap_err().to_string().contains("pinned twice"));
        let stray = manifest_json(&format!("{{{COMPONENT_A}}}"), &format!("[{PIN_A},{}]", pin("other/x")));
        assert!(PackageManifest::from_bytes(&stray).unwrap_err().to_string().contains("other/x"));
        let empty = manifest_json("{}", "[]");
        assert!(PackageManifest::from_bytes(&empty).unwrap_err().to_string().contains("at least one component"));
        let with_model = |member: &str, pins: &str| {
            format!(r#"{{"schema":1,"name":"a","version":"1.0.0","components":{{{COMPONENT_A}}},"models":{{"m":{{"member":"{member}","encoding":"onnx","target":"auto"}}}},"members":[{PIN_A}{pins}]}}"#)
        };
        let model = PackageManifest::from_bytes(with_model("resources/m.onnx", &format!(",{}", pin("resources/m.onnx"))).as_bytes()).unwrap();
        assert_eq!(model.models[&Name::parse("m").unwrap()].target, ModelTarget::Auto);
        assert_eq!(model.models[&Name::parse("m").unwrap()].resource_path(), "m.onnx");
        let unpinned = PackageManifest::from_bytes(with_model("resources/m.onnx", "").as_bytes()).unwrap_err().to_string();
        assert!(unpinned.contains("model `m`") && unpinned.contains("not a pinned resource"), "{unpinned}");
        let component = PackageManifest::from_bytes(with_model("components/a.wasm", "").as_bytes()).unwrap_err().to_string();
        assert!(component.contains("not a pinned resource"), "{component}");
        let target = with_model("resources/m.onnx", &format!(",{}", pin("resources/m.onnx"))).replace("auto", "tpu");
        assert!(PackageManifest::from_bytes(target.as_bytes()).unwrap_err().to_string().contains("tpu"));
        let zero = manifest_json(&format!("{{{}}}", COMPONENT_A.replace("{}", r#"{"timeout_ms":0}"#)), &format!("[{PIN_A}]"));
        assert!(PackageManifest::from_bytes(&zero).unwrap_err().to_string().contains("greater than zero"));
    }
}

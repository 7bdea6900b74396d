//! Known vulnerabilities from OSV advisories (<https://ossf.github.io/osv-schema/>), matched against
//! what an SBOM lists.
//!
//! [`Advisories::load`] reads every `*.json` file below a directory, each one OSV record; a file that
//! is not one is an error naming it. Withdrawn records are skipped. An SBOM item is matched by
//! ecosystem and name: `crates.io` ↔ `pkg:cargo`, `npm` ↔ `pkg:npm` (`@scope/name`), `PyPI` ↔
//! `pkg:pypi` (names normalised per PEP 503), `Go` ↔ `pkg:golang` (the module path); an item without
//! a purl is taken to be a crates.io crate of its name; other purl types match nothing. Its version
//! is affected when `affected[].versions` lists it, or when it falls in a `SEMVER` or `ECOSYSTEM`
//! range, evaluated as the OSV specification says: events sorted by version, `introduced` inclusive
//! (`"0"`: from the first version), `fixed` exclusive, `last_affected` inclusive, `limit` exclusive.
//! Ranges compare with semver. For crates.io, npm and Go, and for every `SEMVER` range, a bound that
//! is not semver is an error in the file; for other ecosystems (PyPI's PEP 440 versions), a plain
//! `N`, `N.N` or `N.N.N` is read as `N.N.N` and a range with any other bound is not evaluated, so
//! only the explicit `versions` list can match there. A version that does not read as semver only
//! matches the explicit list. `GIT` ranges (commit hashes) are ignored: an SBOM names versions, not
//! commits.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use semver::Version;
use serde::Deserialize;

use crate::InventoryItem;
use crate::error::PolicyError;

/// Largest advisory file read, in bytes.
pub const MAX_ADVISORY_FILE_SIZE: u64 = 8 * 1024 * 1024;
/// Deepest directory nesting followed below the advisories directory.
pub const MAX_ADVISORY_DEPTH: usize = 16;

/// An ecosystem this crate can match, by its OSV name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Ecosystem {
    CratesIo,
    Npm,
    PyPI,
    Go,
    /// Any other OSV ecosystem: loaded, never matched.
    Other(String),
}

impl Ecosystem {
    fn from_osv(name: &str) -> Self {
        match name {
            "crates.io" => Ecosystem::CratesIo,
            "npm" => Ecosystem::Npm,
            "PyPI" => Ecosystem::PyPI,
            "Go" => Ecosystem::Go,
            other => Ecosystem::Other(other.to_string()),
        }
    }

    fn from_purl_type(kind: &str) -> Option<Self> {
        match kind {
            "cargo" => Some(Ecosystem::CratesIo),
            "npm" => Some(Ecosystem::Npm),
            "pypi" => Some(Ecosystem::PyPI),
            "golang" => Some(Ecosystem::Go),
            _ => None,
        }
    }

    /// Whether every version of the ecosystem is semver (so a bound that is not is an error).
    fn is_semver(&self) -> bool {
        matches!(self, Ecosystem::CratesIo | Ecosystem::Npm | Ecosystem::Go)
    }

    /// The name as the ecosystem compares it.
    fn normalise(&self, name: &str) -> String {
        match self {
            Ecosystem::PyPI => pep503(name),
            _ => name.to_string(),
        }
    }
}

/// PEP 503: lower case, every run of `-`, `_` and `.` as one `-`.
fn pep503(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_run = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_run {
                out.push('-');
            }
            in_run = true;
        } else {
            out.extend(c.to_lowercase());
            in_run = false;
        }
    }
    out
}

/// One OSV advisory that was loaded.
#[derive(Debug, Clone)]
pub struct Advisory {
    /// The OSV id (`RUSTSEC-2023-0044`, `GHSA-...`).
    pub id: String,
    /// The one-line summary, where the record has one.
    pub summary: Option<String>,
    /// Other ids of the same vulnerability.
    pub aliases: Vec<String>,
    /// The file it was read from.
    pub file: PathBuf,
    affected: Vec<Affected>,
}

#[derive(Debug, Clone)]
struct Affected {
    ecosystem: Ecosystem,
    /// Normalised for the ecosystem.
    name: String,
    /// Explicitly listed versions, a leading `v` removed.
    versions: Vec<String>,
    /// `SEMVER` and `ECOSYSTEM` ranges that can be evaluated, their events sorted.
    ranges: Vec<Vec<Event>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    /// `None`: `"0"`, from the first version.
    Introduced(Option<Version>),
    Fixed(Version),
    LastAffected(Version),
    Limit(Version),
}

impl Event {
    fn version(&self) -> Option<&Version> {
        match self {
            Event::Introduced(v) => v.as_ref(),
            Event::Fixed(v) | Event::LastAffected(v) | Event::Limit(v) => Some(v),
        }
    }

    /// Order among events at the same version: an `introduced` and a `fixed` at one version make an
    /// empty range.
    fn rank(&self) -> u8 {
        match self {
            Event::Introduced(_) => 0,
            Event::LastAffected(_) => 1,
            Event::Fixed(_) => 2,
            Event::Limit(_) => 3,
        }
    }
}

/// Whether `v` lies in a range whose events are sorted (the OSV specification's evaluation).
fn in_range(v: &Version, events: &[Event]) -> bool {
    if events
        .iter()
        .any(|e| matches!(e, Event::Limit(l) if v >= l))
    {
        return false;
    }
    let mut affected = false;
    for event in events {
        match event {
            Event::Introduced(None) => affected = true,
            Event::Introduced(Some(i)) if v >= i => affected = true,
            Event::Fixed(f) if v >= f => affected = false,
            Event::LastAffected(l) if v > l => affected = false,
            _ => {}
        }
    }
    affected
}

/// Reads a version as semver, a leading `v` removed; with `lenient`, `N` and `N.N` too.
fn parse_version(text: &str, lenient: bool) -> Option<Version> {
    if lenient {
        return crate::versions::parse_lenient(text);
    }
    Version::parse(text.strip_prefix('v').unwrap_or(text)).ok()
}

/// The OSV advisories loaded from a directory.
#[derive(Debug, Clone, Default)]
pub struct Advisories {
    advisories: Vec<Advisory>,
    /// (ecosystem, normalised name) → (advisory, affected entry).
    index: HashMap<(Ecosystem, String), Vec<(usize, usize)>>,
    withdrawn: usize,
}

impl Advisories {
    /// Reads every `*.json` file below `dir` (recursively, in path order; symbolic links to
    /// directories are not followed). Withdrawn records are skipped.
    pub fn load(dir: &Path) -> Result<Self, PolicyError> {
        let mut files = Vec::new();
        collect_json(dir, 0, &mut files)?;
        files.sort();
        let mut out = Advisories::default();
        for file in files {
            match parse_file(&file)? {
                Some(advisory) => out.push(advisory),
                None => out.withdrawn += 1,
            }
        }
        Ok(out)
    }

    fn push(&mut self, advisory: Advisory) {
        let at = self.advisories.len();
        for (i, a) in advisory.affected.iter().enumerate() {
            self.index
                .entry((a.ecosystem.clone(), a.name.clone()))
                .or_default()
                .push((at, i));
        }
        self.advisories.push(advisory);
    }

    /// How many advisories were loaded (withdrawn ones not counted).
    pub fn len(&self) -> usize {
        self.advisories.len()
    }

    /// Whether no advisory was loaded.
    pub fn is_empty(&self) -> bool {
        self.advisories.is_empty()
    }

    /// How many withdrawn records were skipped.
    pub fn withdrawn(&self) -> usize {
        self.withdrawn
    }

    /// The advisories that affect `item`, in load order, each once.
    pub fn matching(&self, item: &InventoryItem) -> Vec<&Advisory> {
        let Some((ecosystem, name, version)) = identify(item) else {
            return Vec::new();
        };
        let Some(entries) = self.index.get(&(ecosystem.clone(), name)) else {
            return Vec::new();
        };
        let Some(version) = version else {
            return Vec::new();
        };
        let bare = version.strip_prefix('v').unwrap_or(&version);
        let parsed = parse_version(&version, !ecosystem.is_semver());
        let mut out: Vec<usize> = Vec::new();
        for &(adv, aff) in entries {
            let affected = &self.advisories[adv].affected[aff];
            let hit = affected.versions.iter().any(|v| v == bare)
                || parsed
                    .as_ref()
                    .is_some_and(|v| affected.ranges.iter().any(|r| in_range(v, r)));
            if hit && !out.contains(&adv) {
                out.push(adv);
            }
        }
        out.sort_unstable();
        out.into_iter().map(|i| &self.advisories[i]).collect()
    }
}

/// An item's ecosystem, normalised name and version (from the item, else from its purl).
fn identify(item: &InventoryItem) -> Option<(Ecosystem, String, Option<String>)> {
    let Some(purl) = &item.purl else {
        return Some((Ecosystem::CratesIo, item.name.clone(), item.version.clone()));
    };
    let purl = Purl::parse(purl)?;
    let ecosystem = Ecosystem::from_purl_type(&purl.kind)?;
    let name = ecosystem.normalise(&purl.name);
    Some((ecosystem, name, item.version.clone().or(purl.version)))
}

/// The parts of a package URL (`pkg:TYPE/NAMESPACE/NAME@VERSION?QUALIFIERS#SUBPATH`) matching needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Purl {
    /// The type, lower case.
    pub kind: String,
    /// The namespace and name joined by `/`, percent-decoded (`@types/node`, `github.com/a/b`).
    pub name: String,
    /// The version, percent-decoded.
    pub version: Option<String>,
}

impl Purl {
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let (scheme, rest) = text.split_once(':')?;
        if !scheme.eq_ignore_ascii_case("pkg") {
            return None;
        }
        let rest = rest.trim_start_matches('/');
        let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
        let rest = rest.split_once('?').map_or(rest, |(r, _)| r);
        let (kind, path) = rest.split_once('/')?;
        // The version follows the last `@` after the last `/` (an npm scope may be written `@scope`).
        let last_slash = path.rfind('/').map_or(0, |i| i + 1);
        let (path, version) = match path[last_slash..].rfind('@') {
            Some(at) => (
                &path[..last_slash + at],
                Some(percent_decode(&path[last_slash + at + 1..])),
            ),
            None => (path, None),
        };
        let segments: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(percent_decode)
            .collect();
        if kind.is_empty() || segments.is_empty() {
            return None;
        }
        Some(Purl {
            kind: kind.to_ascii_lowercase(),
            name: segments.join("/"),
            version,
        })
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn collect_json(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<(), PolicyError> {
    let io = |e: std::io::Error| PolicyError::Io {
        path: dir.to_path_buf(),
        action: "read the advisories directory",
        error: e,
    };
    if depth > MAX_ADVISORY_DEPTH {
        return Err(PolicyError::Advisory {
            path: dir.to_path_buf(),
            message: format!("directories nest deeper than {MAX_ADVISORY_DEPTH} levels"),
        });
    }
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        let kind = entry.file_type().map_err(io)?;
        if kind.is_dir() {
            collect_json(&path, depth + 1, out)?;
        } else if path.extension().is_some_and(|x| x == "json") {
            // A link to a file is read; a link to a directory is not followed.
            if kind.is_symlink() && path.is_dir() {
                continue;
            }
            out.push(path);
        }
    }
    Ok(())
}

#[derive(Deserialize)]
struct RawRecord {
    id: String,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    aliases: Option<Vec<String>>,
    #[serde(default)]
    withdrawn: Option<String>,
    #[serde(default)]
    affected: Option<Vec<RawAffected>>,
}

#[derive(Deserialize)]
struct RawAffected {
    #[serde(default)]
    package: Option<RawPackage>,
    #[serde(default)]
    ranges: Option<Vec<RawRange>>,
    #[serde(default)]
    versions: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct RawPackage {
    ecosystem: String,
    name: String,
}

#[derive(Deserialize)]
struct RawRange {
    #[serde(rename = "type")]
    kind: String,
    events: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// Reads one OSV file; `None` for a withdrawn record.
fn parse_file(path: &Path) -> Result<Option<Advisory>, PolicyError> {
    let bad = |message: String| PolicyError::Advisory {
        path: path.to_path_buf(),
        message,
    };
    let io = |e: std::io::Error| PolicyError::Io {
        path: path.to_path_buf(),
        action: "read advisory",
        error: e,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_ADVISORY_FILE_SIZE {
        return Err(bad(format!(
            "{size} bytes: advisory files are limited to {MAX_ADVISORY_FILE_SIZE} bytes"
        )));
    }
    let bytes = std::fs::read(path).map_err(io)?;
    let raw: RawRecord =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("not an OSV record: {e}")))?;
    if raw.id.trim().is_empty() {
        return Err(bad("`id` is empty".into()));
    }
    if raw.withdrawn.is_some() {
        return Ok(None);
    }
    let mut affected = Vec::new();
    for (i, a) in raw.affected.unwrap_or_default().into_iter().enumerate() {
        let at = format!("affected[{i}]");
        // An entry without a package names nothing an SBOM lists.
        let Some(package) = a.package else { continue };
        let ecosystem = Ecosystem::from_osv(&package.ecosystem);
        let mut ranges = Vec::new();
        for (j, r) in a.ranges.unwrap_or_default().into_iter().enumerate() {
            let at = format!("{at}.ranges[{j}]");
            let strict = match r.kind.as_str() {
                "GIT" => continue,
                "SEMVER" => true,
                "ECOSYSTEM" => ecosystem.is_semver(),
                other => {
                    return Err(bad(format!(
                        "{at}: unknown range type `{other}` (SEMVER, ECOSYSTEM or GIT)"
                    )));
                }
            };
            match parse_events(&r.events, strict) {
                Ok(Some(events)) => ranges.push(events),
                Ok(None) => {}
                Err((k, message)) => return Err(bad(format!("{at}.events[{k}]: {message}"))),
            }
        }
        let versions = a
            .versions
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.strip_prefix('v').map(str::to_string).unwrap_or(v))
            .collect();
        affected.push(Affected {
            name: ecosystem.normalise(&package.name),
            ecosystem,
            versions,
            ranges,
        });
    }
    Ok(Some(Advisory {
        id: raw.id,
        summary: raw.summary.filter(|s| !s.trim().is_empty()),
        aliases: raw.aliases.unwrap_or_default(),
        file: path.to_path_buf(),
        affected,
    }))
}

/// Parses and sorts a range's events. With `strict`, a version that is not semver is an error;
/// otherwise it makes the range unevaluable (`None`).
fn parse_events(
    raw: &[serde_json::Map<String, serde_json::Value>],
    strict: bool,
) -> Result<Option<Vec<Event>>, (usize, String)> {
    let mut events = Vec::new();
    for (k, e) in raw.iter().enumerate() {
        let mut fields = e.iter();
        let (Some((kind, value)), None) = (fields.next(), fields.next()) else {
            return Err((
                k,
                "an event has exactly one of `introduced`, `fixed`, `last_affected` or `limit`"
                    .into(),
            ));
        };
        let Some(text) = value.as_str() else {
            return Err((k, format!("`{kind}` is not a string")));
        };
        let version = || match parse_version(text, !strict) {
            Some(v) => Ok(Some(v)),
            None if strict => Err((k, format!("`{kind}` version `{text}` is not semver"))),
            None => Ok(None),
        };
        let event = match kind.as_str() {
            "introduced" if text == "0" => Some(Event::Introduced(None)),
            "introduced" => version()?.map(|v| Event::Introduced(Some(v))),
            "fixed" => version()?.map(Event::Fixed),
            "last_affected" => version()?.map(Event::LastAffected),
            "limit" if text == "*" => continue,
            "limit" => version()?.map(Event::Limit),
            other => {
                return Err((
                    k,
                    format!("unknown event `{other}` (introduced, fixed, last_affected or limit)"),
                ));
            }
        };
        let Some(event) = event else { return Ok(None) };
        events.push(event);
    }
    // "0" sorts first; then by version, and at one version by kind.
    events.sort_by(|a, b| a.version().cmp(&b.version()).then(a.rank().cmp(&b.rank())));
    Ok(Some(events))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(name: &str, version: &str, purl: Option<&str>) -> InventoryItem {
        InventoryItem {
            kind: "library".into(),
            name: name.into(),
            version: Some(version.into()),
            purl: purl.map(str::to_string),
            licenses: Vec::new(),
            ..InventoryItem::default()
        }
    }

    fn write(dir: &Path, rel: &str, json: &str) {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, json).unwrap();
    }

    fn record(id: &str, ecosystem: &str, name: &str, affected_extra: &str) -> String {
        format!(
            r#"{{"schema_version":"1.6.0","id":"{id}","modified":"2024-01-01T00:00:00Z","summary":"{id} summary",
            "aliases":["CVE-{id}"],"affected":[{{"package":{{"ecosystem":"{ecosystem}","name":"{name}"}}{affected_extra}}}]}}"#
        )
    }

    fn ids(adv: &Advisories, item: &InventoryItem) -> Vec<String> {
        adv.matching(item).iter().map(|a| a.id.clone()).collect()
    }

    #[test]
    fn introduced_and_fixed() {
        let dir = tempfile::tempdir().unwrap();
        let ranges = r#","ranges":[{"type":"SEMVER","events":[{"introduced":"1.0.0"},{"fixed":"1.2.3"},{"introduced":"2.0.0"},{"fixed":"2.0.5"}]}]"#;
        write(
            dir.path(),
            "crates/A-1.json",
            &record("A-1", "crates.io", "foo", ranges),
        );
        let adv = Advisories::load(dir.path()).unwrap();
        assert_eq!(adv.len(), 1);
        let a = &adv.matching(&item("foo", "1.0.0", None))[0];
        assert_eq!(a.id, "A-1");
        assert_eq!(a.summary.as_deref(), Some("A-1 summary"));
        assert_eq!(a.aliases, ["CVE-A-1"]);
        assert_eq!(a.file, dir.path().join("crates/A-1.json"));
        for (v, hit) in [
            ("0.9.9", false),
            ("1.0.0", true),
            ("1.2.2", true),
            ("1.2.3", false),
            ("1.9.0", false),
            ("2.0.0", true),
            ("2.0.4", true),
            ("2.0.5", false),
            ("3.0.0", false),
            ("1.2.3-rc.1", true),
        ] {
            assert_eq!(!ids(&adv, &item("foo", v, None)).is_empty(), hit, "foo {v}");
        }
        assert!(ids(&adv, &item("bar", "1.0.0", None)).is_empty());
    }

    #[test]
    fn zero_introduced_and_last_affected() {
        let dir = tempfile::tempdir().unwrap();
        let ranges = r#","ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"last_affected":"0.4.2"}]}]"#;
        write(
            dir.path(),
            "B-1.json",
            &record("B-1", "crates.io", "foo", ranges),
        );
        let adv = Advisories::load(dir.path()).unwrap();
        for (v, hit) in [
            ("0.0.0", true),
            ("0.1.0", true),
            ("0.4.2", true),
            ("0.4.3", false),
            ("1.0.0", false),
        ] {
            assert_eq!(!ids(&adv, &item("foo", v, None)).is_empty(), hit, "foo {v}");
        }
    }

    #[test]
    fn limit_caps_a_range() {
        let dir = tempfile::tempdir().unwrap();
        let ranges =
            r#","ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"limit":"2.0.0"}]}]"#;
        write(
            dir.path(),
            "L.json",
            &record("L-1", "crates.io", "foo", ranges),
        );
        let adv = Advisories::load(dir.path()).unwrap();
        assert!(!ids(&adv, &item("foo", "1.9.9", None)).is_empty());
        assert!(ids(&adv, &item("foo", "2.0.0", None)).is_empty());
    }

    #[test]
    fn explicit_versions_and_unparseable_versions() {
        let dir = tempfile::tempdir().unwrap();
        let extra = r#","versions":["1.0.0","weird-1"],"ranges":[{"type":"SEMVER","events":[{"introduced":"3.0.0"}]}]"#;
        write(
            dir.path(),
            "C.json",
            &record("C-1", "crates.io", "foo", extra),
        );
        let adv = Advisories::load(dir.path()).unwrap();
        assert_eq!(ids(&adv, &item("foo", "1.0.0", None)), ["C-1"]);
        assert!(ids(&adv, &item("foo", "1.0.1", None)).is_empty());
        // Not semver: only the explicit list matches it, never a range.
        assert_eq!(ids(&adv, &item("foo", "weird-1", None)), ["C-1"]);
        assert!(ids(&adv, &item("foo", "weird-3", None)).is_empty());
        assert_eq!(ids(&adv, &item("foo", "3.1.0", None)), ["C-1"]);
        let mut no_version = item("foo", "1.0.0", None);
        no_version.version = None;
        assert!(adv.matching(&no_version).is_empty());
    }

    #[test]
    fn withdrawn_records_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let ranges = r#","ranges":[{"type":"SEMVER","events":[{"introduced":"0"}]}]"#;
        let withdrawn = record("W-1", "crates.io", "foo", ranges).replacen(
            "\"modified\"",
            "\"withdrawn\":\"2024-02-01T00:00:00Z\",\"modified\"",
            1,
        );
        write(dir.path(), "W.json", &withdrawn);
        write(
            dir.path(),
            "deep/er/K.json",
            &record("K-1", "crates.io", "foo", ranges),
        );
        write(dir.path(), "notes.txt", "not json, not read");
        let adv = Advisories::load(dir.path()).unwrap();
        assert_eq!(adv.len(), 1);
        assert_eq!(adv.withdrawn(), 1);
        assert_eq!(ids(&adv, &item("foo", "1.0.0", None)), ["K-1"]);
    }

    #[test]
    fn ecosystems_follow_the_purl_type() {
        let dir = tempfile::tempdir().unwrap();
        let all = r#","ranges":[{"type":"SEMVER","events":[{"introduced":"0"}]}]"#;
        write(
            dir.path(),
            "cargo.json",
            &record("R-1", "crates.io", "left-pad", all),
        );
        write(
            dir.path(),
            "npm.json",
            &record("N-1", "npm", "left-pad", all),
        );
        write(
            dir.path(),
            "npm-scoped.json",
            &record("N-2", "npm", "@types/node", all),
        );
        write(
            dir.path(),
            "pypi.json",
            &record(
                "P-1",
                "PyPI",
                "Zope.Interface",
                r#","ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"5.0"}]}]"#,
            ),
        );
        write(
            dir.path(),
            "go.json",
            &record(
                "G-1",
                "Go",
                "github.com/foo/bar",
                r#","ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.4.0"}]}]"#,
            ),
        );
        write(
            dir.path(),
            "maven.json",
            &record("M-1", "Maven", "org.example:left-pad", all),
        );
        let adv = Advisories::load(dir.path()).unwrap();
        assert_eq!(adv.len(), 6);
        assert_eq!(
            ids(&adv, &item("left-pad", "1.0.0", None)),
            ["R-1"],
            "no purl: crates.io"
        );
        assert_eq!(
            ids(
                &adv,
                &item("left-pad", "1.0.0", Some("pkg:cargo/left-pad@1.0.0"))
            ),
            ["R-1"]
        );
        assert_eq!(
            ids(
                &adv,
                &item("left-pad", "1.0.0", Some("pkg:npm/left-pad@1.0.0"))
            ),
            ["N-1"]
        );
        assert_eq!(
            ids(
                &adv,
                &item("node", "1.0.0", Some("pkg:npm/%40types/node@1.0.0"))
            ),
            ["N-2"]
        );
        assert_eq!(
            ids(
                &adv,
                &item("zope", "4.7", Some("pkg:pypi/zope-interface@4.7"))
            ),
            ["P-1"],
            "PEP 503 names, N.N versions"
        );
        assert!(
            ids(
                &adv,
                &item("zope", "5.0", Some("pkg:pypi/zope_interface@5.0"))
            )
            .is_empty()
        );
        assert_eq!(
            ids(
                &adv,
                &item(
                    "bar",
                    "v1.3.0",
                    Some("pkg:golang/github.com/foo/bar@v1.3.0")
                )
            ),
            ["G-1"]
        );
        assert!(
            ids(
                &adv,
                &item(
                    "bar",
                    "v1.4.0",
                    Some("pkg:golang/github.com/foo/bar@v1.4.0")
                )
            )
            .is_empty()
        );
        assert!(
            ids(
                &adv,
                &item(
                    "left-pad",
                    "1.0.0",
                    Some("pkg:maven/org.example/left-pad@1.0.0")
                )
            )
            .is_empty(),
            "unmapped type"
        );
        assert!(ids(&adv, &item("left-pad", "1.0.0", Some("not a purl"))).is_empty());
    }

    #[test]
    fn git_ranges_are_ignored_and_pep440_ranges_degrade() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "git.json",
            &record(
                "GIT-1",
                "crates.io",
                "foo",
                r#","ranges":[{"type":"GIT","repo":"https://example.com/r","events":[{"introduced":"0"},{"fixed":"abc123"}]}]"#,
            ),
        );
        write(
            dir.path(),
            "py.json",
            &record(
                "PY-1",
                "PyPI",
                "foo",
                r#","versions":["1.0rc1"],"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"2.0.post1"}]}]"#,
            ),
        );
        let adv = Advisories::load(dir.path()).unwrap();
        assert!(ids(&adv, &item("foo", "1.0.0", None)).is_empty());
        assert!(
            ids(&adv, &item("foo", "1.5", Some("pkg:pypi/foo"))).is_empty(),
            "a PEP 440 bound: range not evaluated"
        );
        assert_eq!(
            ids(&adv, &item("foo", "1.0rc1", Some("pkg:pypi/foo"))),
            ["PY-1"]
        );
    }

    #[test]
    fn malformed_files_are_named() {
        let cases = [
            ("{ not json", "not an OSV record"),
            (r#"{"summary":"no id"}"#, "missing field `id`"),
            (
                &record(
                    "X-1",
                    "crates.io",
                    "foo",
                    r#","ranges":[{"type":"SEMVER","events":[{"introduced":"one"}]}]"#,
                ),
                "affected[0].ranges[0].events[0]: `introduced` version `one` is not semver",
            ),
            (
                &record(
                    "X-1",
                    "crates.io",
                    "foo",
                    r#","ranges":[{"type":"SEMVER","events":[{"introduced":"0","fixed":"1.0.0"}]}]"#,
                ),
                "exactly one of",
            ),
            (
                &record(
                    "X-1",
                    "crates.io",
                    "foo",
                    r#","ranges":[{"type":"SEMVER","events":[{"patched":"1.0.0"}]}]"#,
                ),
                "unknown event `patched`",
            ),
            (
                &record(
                    "X-1",
                    "crates.io",
                    "foo",
                    r#","ranges":[{"type":"DATE","events":[]}]"#,
                ),
                "unknown range type `DATE`",
            ),
            (
                &record(
                    "X-1",
                    "npm",
                    "foo",
                    r#","ranges":[{"type":"ECOSYSTEM","events":[{"fixed":"1.x"}]}]"#,
                ),
                "`fixed` version `1.x` is not semver",
            ),
        ];
        for (json, expected) in cases {
            let dir = tempfile::tempdir().unwrap();
            write(dir.path(), "sub/bad.json", json);
            let err = Advisories::load(dir.path()).unwrap_err().to_string();
            assert!(
                err.contains("sub/bad.json") && err.contains(expected),
                "{err} (expected {expected})"
            );
        }
        let err = Advisories::load(Path::new("/nonexistent/advisories"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/advisories"), "{err}");
    }

    #[test]
    fn purls_parse() {
        let p = Purl::parse("pkg:npm/%40angular/core@16.0.0?arch=x#sub").unwrap();
        assert_eq!(
            (p.kind.as_str(), p.name.as_str(), p.version.as_deref()),
            ("npm", "@angular/core", Some("16.0.0"))
        );
        let p = Purl::parse("pkg:npm/@angular/core@16.0.0").unwrap();
        assert_eq!(
            (p.name.as_str(), p.version.as_deref()),
            ("@angular/core", Some("16.0.0"))
        );
        let p = Purl::parse("pkg:Cargo/serde").unwrap();
        assert_eq!(
            (p.kind.as_str(), p.name.as_str(), p.version),
            ("cargo", "serde", None)
        );
        assert!(Purl::parse("pkg:cargo").is_none());
        assert!(Purl::parse("https://x/y").is_none());
        assert_eq!(pep503("Zope.Interface__x"), "zope-interface-x");
    }
}

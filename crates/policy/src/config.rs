//! Reading `policy.toml` into a [`Policy`]: every fault is found here, at load, with its line.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;
use wasmzip_package::{Capability, KeyId, PublicKey};

use crate::glob::Glob;
use crate::{Downgrade, OnMatch, Policy, PolicyError};

/// Largest policy file read, in bytes.
pub const MAX_POLICY_SIZE: u64 = 1024 * 1024;

/// One `[[functions]]` rule, checked.
#[derive(Debug, Clone)]
pub(crate) struct FunctionRule {
    /// `functions[N] (PATTERNS)`, for messages.
    pub label: String,
    /// `functions[N]`, the prefix of the rule names in refusals.
    pub key: String,
    pub names: Vec<Glob>,
    /// The signer keys by policy name; several names may be one key.
    pub signers: Vec<(String, KeyId)>,
    /// Distinct valid signatures required from `signers`; 0 only with `allow_unsigned`.
    pub signatures: usize,
    pub grant_ceiling: Option<Vec<Capability>>,
}

/// One `[[sbom.refuse_dependencies]]` entry, checked.
#[derive(Debug, Clone)]
pub(crate) struct DependencyRule {
    pub key: String,
    pub name: Glob,
    pub versions: Option<semver::VersionReq>,
    /// Lower case.
    pub purl_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    keys: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    functions: Vec<RawRule>,
    #[serde(default)]
    sbom: RawSbom,
    #[serde(default)]
    advisories: RawAdvisories,
    #[serde(default)]
    versions: RawVersions,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    names: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    signers: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    signatures: Option<Spanned<i64>>,
    #[serde(default)]
    allow_unsigned: Option<Spanned<bool>>,
    #[serde(default)]
    grant_ceiling: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSbom {
    #[serde(default)]
    required: bool,
    #[serde(default)]
    refuse_licenses: Vec<Spanned<String>>,
    #[serde(default)]
    refuse_dependencies: Vec<RawDependency>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDependency {
    name: Spanned<String>,
    #[serde(default)]
    versions: Option<Spanned<String>>,
    #[serde(default)]
    purl_type: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAdvisories {
    #[serde(default)]
    on_match: OnMatch,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawVersions {
    #[serde(default)]
    downgrade: Downgrade,
}

/// 1-based line and column (in characters) of a byte offset.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

struct Ctx<'a> {
    text: &'a str,
    label: &'a str,
}

impl Ctx<'_> {
    fn invalid(
        &self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> PolicyError {
        let (line, column) = position(self.text, span.start);
        PolicyError::Invalid {
            file: self.label.to_string(),
            line,
            column,
            key: key.into(),
            message: message.into(),
        }
    }
}

pub(crate) fn parse(text: &str, base_dir: &Path, label: &str) -> Result<Policy, PolicyError> {
    let cx = Ctx { text, label };
    let raw: RawPolicy = toml::from_str(text).map_err(|e| {
        let (line, column) = e.span().map_or((1, 1), |s| position(text, s.start));
        PolicyError::Syntax {
            file: label.to_string(),
            line,
            column,
            message: e.message().trim().to_string(),
        }
    })?;

    let mut keys: Vec<(String, PublicKey)> = Vec::new();
    for (name, path) in &raw.keys {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(cx.invalid(
                path.span(),
                format!("keys.{name}"),
                "a key name is letters, digits, `-`, `_` or `.`",
            ));
        }
        let file = base_dir.join(path.get_ref());
        let key = PublicKey::from_pem_file(&file).map_err(|error| {
            let (line, column) = position(text, path.span().start);
            PolicyError::Key {
                file: label.to_string(),
                line,
                column,
                name: name.clone(),
                error: Box::new(error),
            }
        })?;
        keys.push((name.clone(), key));
    }
    let key_id = |name: &str| keys.iter().find(|(n, _)| n == name).map(|(_, k)| k.id());

    if raw.functions.is_empty() {
        return Err(cx.invalid(
            0..0,
            "functions",
            "the policy has no [[functions]] rule, so it would refuse every package",
        ));
    }
    let mut rules = Vec::new();
    for (i, r) in raw.functions.into_iter().enumerate() {
        let key = format!("functions[{i}]");
        if r.names.get_ref().is_empty() {
            return Err(cx.invalid(
                r.names.span(),
                format!("{key}.names"),
                "a rule names at least one function pattern",
            ));
        }
        if let Some(catch_all) = rules
            .iter()
            .find(|r: &&FunctionRule| r.names.iter().any(|g| g.as_str() == "*"))
        {
            return Err(cx.invalid(
                r.names.span(),
                format!("{key}.names"),
                format!(
                    "this rule can never match: {} before it matches every name",
                    catch_all.key
                ),
            ));
        }
        let mut names = Vec::new();
        for n in r.names.get_ref() {
            names.push(Glob::parse_name(n.get_ref()).map_err(|m| {
                cx.invalid(
                    n.span(),
                    format!("{key}.names"),
                    format!("pattern `{}`: {m}", n.get_ref()),
                )
            })?);
        }
        let mut signers: Vec<(String, KeyId)> = Vec::new();
        for s in r
            .signers
            .as_ref()
            .map(|s| s.get_ref().as_slice())
            .unwrap_or_default()
        {
            let id = key_id(s.get_ref()).ok_or_else(|| {
                let defined = keys
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                let defined = if defined.is_empty() {
                    "none is defined".to_string()
                } else {
                    format!("defined: {defined}")
                };
                cx.invalid(
                    s.span(),
                    format!("{key}.signers"),
                    format!("key `{}` is not defined in [keys] ({defined})", s.get_ref()),
                )
            })?;
            if signers.iter().any(|(n, _)| n == s.get_ref()) {
                return Err(cx.invalid(
                    s.span(),
                    format!("{key}.signers"),
                    format!("key `{}` is named twice", s.get_ref()),
                ));
            }
            signers.push((s.get_ref().clone(), id));
        }
        let allow_unsigned = r.allow_unsigned.as_ref().is_some_and(|a| *a.get_ref());
        let signatures = match &r.signatures {
            Some(n) if *n.get_ref() < 0 => {
                return Err(cx.invalid(
                    n.span(),
                    format!("{key}.signatures"),
                    "a number of signatures is 0 or more",
                ));
            }
            Some(n) if *n.get_ref() == 0 && !allow_unsigned => {
                return Err(cx.invalid(n.span(), format!("{key}.signatures"), "0 signatures would accept unsigned packages: say so with `allow_unsigned = true`"));
            }
            Some(n) if *n.get_ref() > 0 && allow_unsigned => {
                return Err(cx.invalid(
                    n.span(),
                    format!("{key}.signatures"),
                    "`allow_unsigned = true` contradicts a required number of signatures",
                ));
            }
            Some(n) => *n.get_ref() as usize,
            None if allow_unsigned => 0,
            None => 1,
        };
        if signatures > 0 {
            let mut distinct: Vec<KeyId> = signers.iter().map(|(_, id)| *id).collect();
            distinct.sort();
            distinct.dedup();
            if distinct.len() < signatures {
                let span = r
                    .signatures
                    .as_ref()
                    .map(|n| n.span())
                    .or(r.signers.as_ref().map(|s| s.span()))
                    .unwrap_or(r.names.span());
                let message = if distinct.is_empty() {
                    "a rule that requires signatures names its `signers`".to_string()
                } else {
                    format!(
                        "requires {signatures} signatures but `signers` name only {} distinct key(s)",
                        distinct.len()
                    )
                };
                return Err(cx.invalid(span, format!("{key}.signatures"), message));
            }
        }
        let grant_ceiling = match r.grant_ceiling {
            None => None,
            Some(tokens) => {
                let mut caps = Vec::new();
                for t in tokens {
                    caps.push(t.get_ref().parse::<Capability>().map_err(|e| {
                        cx.invalid(t.span(), format!("{key}.grant_ceiling"), e.to_string())
                    })?);
                }
                Some(caps)
            }
        };
        let patterns = names
            .iter()
            .map(Glob::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        rules.push(FunctionRule {
            label: format!("{key} ({patterns})"),
            key,
            names,
            signers,
            signatures,
            grant_ceiling,
        });
    }

    let mut refuse_licenses = Vec::new();
    for l in &raw.sbom.refuse_licenses {
        refuse_licenses.push(Glob::parse(l.get_ref()).map_err(|m| {
            cx.invalid(
                l.span(),
                "sbom.refuse_licenses",
                format!("pattern `{}`: {m}", l.get_ref()),
            )
        })?);
    }
    let mut refuse_dependencies = Vec::new();
    for (i, d) in raw.sbom.refuse_dependencies.into_iter().enumerate() {
        let key = format!("sbom.refuse_dependencies[{i}]");
        let name = Glob::parse_name(d.name.get_ref()).map_err(|m| {
            cx.invalid(
                d.name.span(),
                format!("{key}.name"),
                format!("pattern `{}`: {m}", d.name.get_ref()),
            )
        })?;
        let versions = match &d.versions {
            None => None,
            Some(v) => Some(semver::VersionReq::parse(v.get_ref()).map_err(|e| {
                cx.invalid(
                    v.span(),
                    format!("{key}.versions"),
                    format!("`{}` is not a version requirement: {e}", v.get_ref()),
                )
            })?),
        };
        let purl_type = match &d.purl_type {
            None => None,
            Some(t)
                if !t.get_ref().is_empty()
                    && t.get_ref()
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-')) =>
            {
                Some(t.get_ref().to_ascii_lowercase())
            }
            Some(t) => {
                return Err(cx.invalid(
                    t.span(),
                    format!("{key}.purl_type"),
                    format!(
                        "`{}` is not a purl type (`cargo`, `npm`, `pypi`, ...)",
                        t.get_ref()
                    ),
                ));
            }
        };
        refuse_dependencies.push(DependencyRule {
            key,
            name,
            versions,
            purl_type,
        });
    }

    Ok(Policy {
        label: label.to_string(),
        keys,
        rules,
        sbom_required: raw.sbom.required,
        refuse_licenses,
        refuse_dependencies,
        on_match: raw.advisories.on_match,
        downgrade: raw.versions.downgrade,
    })
}

/// Reads and parses a policy file; keys are relative to its directory and errors name it as given.
pub(crate) fn load(path: &Path) -> Result<Policy, PolicyError> {
    let io = |error| PolicyError::Io {
        path: path.to_path_buf(),
        action: "read policy",
        error,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_POLICY_SIZE {
        return Err(PolicyError::Invalid {
            file: path.display().to_string(),
            line: 1,
            column: 1,
            key: "(file)".into(),
            message: format!("{size} bytes: a policy is limited to {MAX_POLICY_SIZE} bytes"),
        });
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    parse(&text, base, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmzip_package::SigningKey;

    /// A directory with `keys/release.pub`, `keys/ci.pub` and `keys/alias.pub` (the same key as ci).
    fn keys_dir() -> (tempfile::TempDir, KeyId, KeyId) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("keys")).unwrap();
        let release = SigningKey::generate().unwrap();
        release
            .write_pair(&dir.path().join("keys/release"))
            .unwrap();
        let ci = SigningKey::generate().unwrap();
        ci.write_pair(&dir.path().join("keys/ci")).unwrap();
        std::fs::copy(
            dir.path().join("keys/ci.pub"),
            dir.path().join("keys/alias.pub"),
        )
        .unwrap();
        (dir, release.public_key().id(), ci.public_key().id())
    }

    const KEYS: &str = "[keys]\nrelease = \"keys/release.pub\"\nci = \"keys/ci.pub\"\nalias = \"keys/alias.pub\"\n";

    fn load(text: &str) -> Result<Policy, PolicyError> {
        let (dir, ..) = keys_dir();
        Policy::from_toml(text, dir.path(), "policy.toml")
    }

    /// The error's text, which must name the file and `line:column`.
    fn err(text: &str, line: usize) -> String {
        let e = load(text).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("policy.toml:{line}:")),
            "expected line {line}: {e}"
        );
        e
    }

    #[test]
    fn the_documented_example_loads() {
        let (dir, release, ci) = keys_dir();
        let text = r#"
[keys]
release = "keys/release.pub"
ci = "keys/ci.pub"

[[functions]]
names = ["payments-*"]
signers = ["release", "ci"]
signatures = 2
grant_ceiling = ["network:outbound:*.pay.example:443", "env:PAY_*"]

[[functions]]
names = ["dev-*"]
allow_unsigned = true

[[functions]]
names = ["*"]
signers = ["ci"]

[sbom]
required = true
refuse_licenses = ["GPL-3.0-only", "AGPL-*"]

[[sbom.refuse_dependencies]]
name = "openssl-sys"
versions = "<0.9.80"
purl_type = "cargo"

[advisories]
on_match = "warn"

[versions]
downgrade = "allow"
"#;
        let p = Policy::from_toml(text, dir.path(), "policy.toml").unwrap();
        assert_eq!(p.label(), "policy.toml");
        let keys: Vec<(String, KeyId)> = p.keys().into_iter().map(|(n, k)| (n, k.id())).collect();
        assert_eq!(
            keys,
            [("ci".to_string(), ci), ("release".to_string(), release)]
        );
        assert_eq!(p.rules.len(), 3);
        assert_eq!(p.rules[0].label, "functions[0] (payments-*)");
        assert_eq!(p.rules[0].signatures, 2);
        assert_eq!(p.rules[0].grant_ceiling.as_ref().unwrap().len(), 2);
        assert_eq!(p.rules[1].signatures, 0);
        assert_eq!(p.rules[2].signatures, 1, "default");
        assert!(p.rules[2].grant_ceiling.is_none());
        assert!(p.sbom_required);
        assert_eq!(p.refuse_licenses.len(), 2);
        assert_eq!(p.refuse_dependencies[0].purl_type.as_deref(), Some("cargo"));
        assert_eq!(p.on_match(), OnMatch::Warn);
        assert_eq!(p.downgrade, Downgrade::Allow);
    }

    #[test]
    fn defaults() {
        let p = load(&format!(
            "{KEYS}[[functions]]\nnames = [\"*\"]\nsigners = [\"ci\"]\n"
        ))
        .unwrap();
        assert!(!p.sbom_required);
        assert_eq!(p.on_match, OnMatch::Refuse);
        assert_eq!(p.downgrade, Downgrade::Refuse);
    }

    #[test]
    fn load_resolves_keys_beside_the_policy_file() {
        let (dir, _, ci) = keys_dir();
        let path = dir.path().join("policy.toml");
        std::fs::write(
            &path,
            "[keys]\nci = \"keys/ci.pub\"\n[[functions]]\nnames = [\"*\"]\nsigners = [\"ci\"]\n",
        )
        .unwrap();
        let p = Policy::load(&path).unwrap();
        assert_eq!(p.keys()[0].1.id(), ci);
        assert_eq!(p.label(), path.display().to_string());
        let missing = dir.path().join("nope.toml");
        assert!(
            Policy::load(&missing)
                .unwrap_err()
                .to_string()
                .contains("nope.toml")
        );
    }

    #[test]
    fn syntax_and_unknown_keys_name_the_line() {
        let e = err(
            &format!(
                "{KEYS}[[functions]]\nnames = [\"*\"]\nsigners = [\"ci\"]\nsignatures = 1\nsignature = 2\n"
            ),
            9,
        );
        assert!(e.contains("unknown field `signature`"), "{e}");
        let e = err(
            "[sbom]\nrequired = true\nrefuse_license = []\n[[functions]]\nnames = [\"*\"]\n",
            3,
        );
        assert!(e.contains("unknown field `refuse_license`"), "{e}");
        let e = err("[[functions]]\nnames = [\"*\"\n", 2);
        assert!(!e.is_empty());
        let e = err(&format!("{KEYS}[advisories]\non_match = \"ignore\"\n"), 6);
        assert!(e.contains("ignore"), "{e}");
        let e = err(&format!("{KEYS}[versions]\ndowngrade = \"maybe\"\n"), 6);
        assert!(e.contains("maybe"), "{e}");
        let e = err("[[functions]]\nnames = \"*\"\n", 2);
        assert!(e.contains("sequence") || e.contains("array"), "{e}");
        let e = err(&format!("{KEYS}\n[[functions]]\nsigners = [\"ci\"]\n"), 6);
        assert!(e.contains("missing field `names`"), "{e}");
    }

    #[test]
    fn rule_faults_name_the_line_and_key() {
        let rule = |body: &str| format!("{KEYS}[[functions]]\nnames = [\"*\"]\n{body}\n");
        let e = err(&rule("signers = [\"ci\", \"relase\"]"), 7);
        assert!(e.contains("functions[0].signers: key `relase` is not defined in [keys] (defined: alias, ci, release)"), "{e}");
        let e = err(&rule("signers = [\"ci\", \"ci\"]"), 7);
        assert!(e.contains("named twice"), "{e}");
        let e = err(&rule("signers = [\"ci\"]\nsignatures = 0"), 8);
        assert!(
            e.contains("functions[0].signatures") && e.contains("allow_unsigned = true"),
            "{e}"
        );
        let e = err(&rule("signers = [\"ci\"]\nsignatures = -1"), 8);
        assert!(e.contains("0 or more"), "{e}");
        let e = err(&rule("signers = [\"ci\"]\nsignatures = 2"), 8);
        assert!(
            e.contains("requires 2 signatures but `signers` name only 1 distinct key(s)"),
            "{e}"
        );
        // Two names for one key are one key.
        let e = err(&rule("signers = [\"ci\", \"alias\"]\nsignatures = 2"), 8);
        assert!(e.contains("only 1 distinct key"), "{e}");
        let e = err(&rule("signatures = 1"), 7);
        assert!(e.contains("names its `signers`"), "{e}");
        let e = err(&rule(""), 6);
        assert!(e.contains("names its `signers`"), "{e}");
        let e = err(&rule("allow_unsigned = true\nsignatures = 1"), 8);
        assert!(e.contains("contradicts"), "{e}");
        let e = err(
            &rule("signers = [\"ci\"]\ngrant_ceiling = [\"env:PAY_*\", \"network:outbund:443\"]"),
            8,
        );
        assert!(
            e.contains(
                "functions[0].grant_ceiling: invalid capability token `network:outbund:443`"
            ),
            "{e}"
        );
        let e = err(
            &format!("{KEYS}[[functions]]\nnames = [\"pay?\"]\nsigners = [\"ci\"]\n"),
            6,
        );
        assert!(e.contains("functions[0].names: pattern `pay?`"), "{e}");
        let e = err(
            &format!("{KEYS}[[functions]]\nnames = []\nsigners = [\"ci\"]\n"),
            6,
        );
        assert!(e.contains("at least one"), "{e}");
        // The second rule's fault is named as such.
        let e = err(
            &format!(
                "{KEYS}[[functions]]\nnames = [\"a\"]\nsigners = [\"ci\"]\n[[functions]]\nnames = [\"b\"]\nsigners = [\"x\"]\n"
            ),
            10,
        );
        assert!(e.contains("functions[1].signers"), "{e}");
        let e = err(
            &format!(
                "{KEYS}[[functions]]\nnames = [\"x\", \"*\"]\nsigners = [\"ci\"]\n[[functions]]\nnames = [\"b\"]\nsigners = [\"ci\"]\n"
            ),
            9,
        );
        assert!(e.contains("functions[1].names: this rule can never match: functions[0] before it matches every name"), "{e}");
        let e = err(KEYS, 1);
        assert!(e.contains("no [[functions]] rule"), "{e}");
    }

    #[test]
    fn allow_unsigned_needs_no_signers() {
        let p = load("[[functions]]\nnames = [\"dev-*\"]\nallow_unsigned = true\nsignatures = 0\n")
            .unwrap();
        assert_eq!(p.rules[0].signatures, 0);
        assert!(p.keys().is_empty());
    }

    #[test]
    fn sbom_faults_name_the_line_and_key() {
        let f = "[[functions]]\nnames = [\"*\"]\nallow_unsigned = true\n";
        let e = err(
            &format!(
                "{f}[[sbom.refuse_dependencies]]\nname = \"openssl-sys\"\nversions = \"<<0.9\"\n"
            ),
            6,
        );
        assert!(
            e.contains(
                "sbom.refuse_dependencies[0].versions: `<<0.9` is not a version requirement"
            ),
            "{e}"
        );
        let e = err(
            &format!("{f}[[sbom.refuse_dependencies]]\nname = \"a b\"\n"),
            5,
        );
        assert!(e.contains("sbom.refuse_dependencies[0].name"), "{e}");
        let e = err(
            &format!("{f}[[sbom.refuse_dependencies]]\nname = \"x\"\npurl_type = \"car go\"\n"),
            6,
        );
        assert!(e.contains("purl_type"), "{e}");
        let e = err(
            &format!("{f}[sbom]\nrefuse_licenses = [\"MIT\",\n  \"GPL-[23]\"]\n"),
            6,
        );
        assert!(
            e.contains("sbom.refuse_licenses: pattern `GPL-[23]`"),
            "{e}"
        );
        let e = err(
            &format!("{f}[[sbom.refuse_dependencies]]\nversions = \"*\"\n"),
            4,
        );
        assert!(e.contains("missing field `name`"), "{e}");
    }

    #[test]
    fn key_files_that_fail_are_named() {
        let e = err(
            "[keys]\nci = \"keys/missing.pub\"\n[[functions]]\nnames = [\"*\"]\nsigners = [\"ci\"]\n",
            2,
        );
        assert!(
            e.contains("keys.ci") && e.contains("keys/missing.pub"),
            "{e}"
        );
        let e = err(
            "[keys]\nci = \"keys/ci.key\"\n[[functions]]\nnames = [\"*\"]\nsigners = [\"ci\"]\n",
            2,
        );
        assert!(
            e.contains("keys/ci.key") && e.contains("not an Ed25519 SPKI PEM public key"),
            "{e}"
        );
        let e = err(
            "[keys]\n\"a b\" = \"keys/ci.pub\"\n[[functions]]\nnames = [\"*\"]\nallow_unsigned = true\n",
            2,
        );
        assert!(e.contains("keys.a b: a key name is"), "{e}");
    }

    #[test]
    fn positions_count_lines_and_characters() {
        assert_eq!(position("ab\ncd", 0), (1, 1));
        assert_eq!(position("ab\ncd", 4), (2, 2));
        assert_eq!(position("é\nx", 1 + "é".len()), (2, 1));
    }
}

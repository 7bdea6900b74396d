//! [`Policy::check`]: the rules in order, each a small function that refuses or passes.

use std::cmp::Ordering;

use crate::advisories::Purl;
use crate::config::FunctionRule;
use crate::{
    Advisories, Downgrade, Finding, InventoryItem, OnMatch, Policy, Refusal, Subject, Verdict,
    licenses, versions,
};

/// A refusal under construction: the rule, the item and the message.
type Fault = (String, String, String);

pub(crate) fn check(
    policy: &Policy,
    subject: &Subject<'_>,
    advisories: Option<&Advisories>,
) -> Result<Verdict, Refusal> {
    let refuse = |(rule, item, message): Fault| Refusal {
        policy: policy.label.clone(),
        rule,
        package: format!("{}@{}", subject.name, subject.version),
        item,
        message,
    };
    let rule = function_rule(policy, subject.name).map_err(refuse)?;
    signatures(rule, subject).map_err(refuse)?;
    grant_ceiling(rule, subject).map_err(refuse)?;
    if policy.sbom_required && subject.inventory.is_none() {
        return Err(refuse((
            "sbom.required".into(),
            "SBOM".into(),
            "the package has no SBOM, which the policy requires".into(),
        )));
    }
    let inventory = subject.inventory.unwrap_or_default();
    refused_licenses(policy, inventory).map_err(refuse)?;
    refused_dependencies(policy, inventory).map_err(refuse)?;
    let warnings = match advisories {
        Some(adv) => advisory_matches(policy, subject.inventory, adv).map_err(refuse)?,
        None => Vec::new(),
    };
    downgrade(policy, subject).map_err(refuse)?;
    Ok(Verdict {
        warnings,
        rule: rule.label.clone(),
    })
}

fn function_rule<'p>(policy: &'p Policy, name: &str) -> Result<&'p FunctionRule, Fault> {
    policy
        .rules
        .iter()
        .find(|r| r.names.iter().any(|g| g.matches(name)))
        .ok_or_else(|| {
            (
                "functions".to_string(),
                name.to_string(),
                format!(
                    "no [[functions]] rule matches the name `{name}`, so the policy refuses it"
                ),
            )
        })
}

fn signatures(rule: &FunctionRule, subject: &Subject<'_>) -> Result<(), Fault> {
    if rule.signatures == 0 {
        return Ok(());
    }
    // Distinct keys, each shown by its first name in `signers`.
    let mut found: Vec<(&str, wasmzip_package::KeyId)> = Vec::new();
    for (name, id) in &rule.signers {
        if subject.signers.contains(id) && !found.iter().any(|(_, f)| f == id) {
            found.push((name, *id));
        }
    }
    if found.len() >= rule.signatures {
        return Ok(());
    }
    let mut others: Vec<_> = subject
        .signers
        .iter()
        .filter(|s| !rule.signers.iter().any(|(_, id)| id == *s))
        .collect();
    others.sort();
    others.dedup();
    let names: Vec<&str> = found.iter().map(|(n, _)| *n).collect();
    let required: Vec<&str> = rule.signers.iter().map(|(n, _)| n.as_str()).collect();
    let got = match found.len() {
        0 => "no valid signature by a key this rule counts".to_string(),
        1 => format!(
            "1 valid signature by a key this rule counts ({})",
            names.join(", ")
        ),
        n => format!(
            "{n} valid signatures by keys this rule counts ({})",
            names.join(", ")
        ),
    };
    let mut message = format!(
        "{got}, but it requires {} from {}",
        rule.signatures,
        required.join(", ")
    );
    if !others.is_empty() {
        message.push_str(&format!(
            " ({} more by keys it does not count)",
            others.len()
        ));
    }
    let item = if names.is_empty() {
        "signatures: none".to_string()
    } else {
        format!("signatures: {}", names.join(", "))
    };
    Err((format!("{}.signatures", rule.key), item, message))
}

fn grant_ceiling(rule: &FunctionRule, subject: &Subject<'_>) -> Result<(), Fault> {
    let Some(ceiling) = &rule.grant_ceiling else {
        return Ok(());
    };
    for (component, caps) in subject.grants {
        for cap in caps {
            if ceiling.iter().any(|c| c.covers(cap)) {
                continue;
            }
            let shown = if ceiling.is_empty() {
                "the ceiling is empty".to_string()
            } else {
                format!(
                    "ceiling: {}",
                    ceiling
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            return Err((
                format!("{}.grant_ceiling", rule.key),
                format!("{component}: {cap}"),
                format!(
                    "component `{component}` would be granted `{cap}`, which no grant_ceiling token covers ({shown})"
                ),
            ));
        }
    }
    Ok(())
}

fn refused_licenses(policy: &Policy, inventory: &[InventoryItem]) -> Result<(), Fault> {
    for item in inventory {
        for text in &item.licenses {
            let Some(refused) = licenses::check(text, &policy.refuse_licenses) else {
                continue;
            };
            let plain = matches!(refused.terms.as_slice(), [(name, pattern)] if name == pattern && name == text.trim());
            let why = if plain {
                String::new()
            } else {
                let terms: Vec<String> = refused
                    .terms
                    .iter()
                    .map(|(name, pattern)| {
                        if name == pattern {
                            format!("`{name}`")
                        } else {
                            format!("`{name}` matches `{pattern}`")
                        }
                    })
                    .collect();
                format!(" ({})", terms.join(", "))
            };
            return Err((
                "sbom.refuse_licenses".into(),
                item.id(),
                format!(
                    "{} is licensed `{}`, which the policy refuses{why}",
                    item.describe(),
                    text.trim()
                ),
            ));
        }
    }
    Ok(())
}

fn refused_dependencies(policy: &Policy, inventory: &[InventoryItem]) -> Result<(), Fault> {
    for item in inventory {
        for rule in &policy.refuse_dependencies {
            if !rule.name.matches(&item.name) {
                continue;
            }
            if let Some(kind) = &rule.purl_type {
                let item_kind = match &item.purl {
                    None => Some("cargo".to_string()),
                    Some(p) => Purl::parse(p).map(|p| p.kind),
                };
                if item_kind.as_deref() != Some(kind.as_str()) {
                    continue;
                }
            }
            let message = match &rule.versions {
                None => format!(
                    "{} is refused by the policy (every version)",
                    item.describe()
                ),
                Some(req) => match item
                    .version
                    .as_deref()
                    .map(|v| (v, versions::parse_lenient(v)))
                {
                    Some((_, Some(v))) if !versions::req_contains(req, &v) => continue,
                    Some((_, Some(_))) => format!(
                        "{} is refused by the policy (versions `{req}`)",
                        item.describe()
                    ),
                    Some((text, None)) => {
                        format!(
                            "{} is refused: its version `{text}` cannot be compared with the refused versions `{req}`",
                            item.describe()
                        )
                    }
                    None => format!(
                        "{} is refused: it has no version to compare with the refused versions `{req}`",
                        item.describe()
                    ),
                },
            };
            return Err((rule.key.clone(), item.id(), message));
        }
    }
    Ok(())
}

fn advisory_matches(
    policy: &Policy,
    inventory: Option<&[InventoryItem]>,
    advisories: &Advisories,
) -> Result<Vec<Finding>, Fault> {
    let Some(inventory) = inventory else {
        return Ok(vec![Finding {
            rule: "advisories".into(),
            item: "SBOM".into(),
            message: format!(
                "the package has no SBOM, so the {} advisories could not be checked",
                advisories.len()
            ),
        }]);
    };
    let mut warnings = Vec::new();
    for item in inventory {
        let mut reported: Vec<&str> = Vec::new();
        for adv in advisories.matching(item) {
            // One vulnerability under several ids (a RUSTSEC and its GHSA) is reported once.
            if reported
                .iter()
                .any(|r| *r == adv.id || adv.aliases.iter().any(|a| a == r))
            {
                continue;
            }
            reported.push(&adv.id);
            reported.extend(adv.aliases.iter().map(String::as_str));
            let summary = adv
                .summary
                .as_deref()
                .map(|s| format!(" ({})", s.trim()))
                .unwrap_or_default();
            let message = format!(
                "{} is affected by {}{summary}, advisory file {}",
                item.describe(),
                adv.id,
                adv.file.display()
            );
            let finding = Finding {
                rule: "advisories".into(),
                item: item.id(),
                message,
            };
            match policy.on_match {
                OnMatch::Refuse => return Err((finding.rule, finding.item, finding.message)),
                OnMatch::Warn => warnings.push(finding),
            }
        }
    }
    Ok(warnings)
}

fn downgrade(policy: &Policy, subject: &Subject<'_>) -> Result<(), Fault> {
    let Some(deployed) = subject.deployed_version else {
        return Ok(());
    };
    if policy.downgrade == Downgrade::Allow
        || subject.allow_downgrade
        || subject.version.cmp_precedence(deployed) != Ordering::Less
    {
        return Ok(());
    }
    Err((
        "versions.downgrade".into(),
        subject.version.to_string(),
        format!(
            "version {} is lower than the deployed {deployed}: pass --allow-downgrade to deploy it anyway",
            subject.version
        ),
    ))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use semver::Version;
    use wasmzip_package::{Capability, KeyId, SigningKey};

    use super::*;

    struct Fixture {
        _dir: tempfile::TempDir,
        release: KeyId,
        ci: KeyId,
        stranger: KeyId,
        policy: Policy,
    }

    const POLICY: &str = r#"
[keys]
release = "keys/release.pub"
ci = "keys/ci.pub"

[[functions]]
names = ["payments-*"]
signers = ["release", "ci"]
signatures = 2
grant_ceiling = ["network:outbound:*.pay.example:443", "env:PAY_*"]

[[functions]]
names = ["dev-*", "scratch"]
allow_unsigned = true
grant_ceiling = []

[[functions]]
names = ["*"]
signers = ["ci"]
"#;

    fn fixture(extra: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("keys")).unwrap();
        let mut ids = Vec::new();
        for name in ["release", "ci"] {
            let key = SigningKey::generate().unwrap();
            key.write_pair(&dir.path().join("keys").join(name)).unwrap();
            ids.push(key.public_key().id());
        }
        let stranger = SigningKey::generate().unwrap().public_key().id();
        let policy =
            Policy::from_toml(&format!("{POLICY}{extra}"), dir.path(), "policy.toml").unwrap();
        Fixture {
            _dir: dir,
            release: ids[0],
            ci: ids[1],
            stranger,
            policy,
        }
    }

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    fn caps(tokens: &[&str]) -> Vec<Capability> {
        tokens.iter().map(|t| t.parse().unwrap()).collect()
    }

    fn dep(name: &str, version: &str, licenses: &[&str]) -> InventoryItem {
        InventoryItem {
            kind: "library".into(),
            name: name.into(),
            version: Some(version.into()),
            purl: Some(format!("pkg:cargo/{name}@{version}")),
            licenses: licenses.iter().map(|l| l.to_string()).collect(),
            ..InventoryItem::default()
        }
    }

    /// Checks `name@1.2.0` signed by `signers` with the given inventory, no grants, nothing deployed.
    fn check_with(
        f: &Fixture,
        name: &str,
        signers: &[KeyId],
        inventory: Option<&[InventoryItem]>,
        adv: Option<&Advisories>,
    ) -> Result<Verdict, Refusal> {
        let version = v("1.2.0");
        let subject = Subject {
            name,
            version: &version,
            signers,
            grants: &[],
            inventory,
            deployed_version: None,
            allow_downgrade: false,
        };
        f.policy.check(&subject, adv)
    }

    #[test]
    fn first_matching_rule_wins() {
        let f = fixture("");
        // `payments-api` also matches `*`, whose single ci signature would do; the first rule needs two.
        let r = check_with(&f, "payments-api", &[f.ci], None, None).unwrap_err();
        assert_eq!(r.rule, "functions[0].signatures");
        let ok = check_with(&f, "payments-api", &[f.ci, f.release], None, None).unwrap();
        assert_eq!(ok.rule, "functions[0] (payments-*)");
        assert_eq!(
            check_with(&f, "hello", &[f.ci], None, None).unwrap().rule,
            "functions[2] (*)"
        );
        assert_eq!(
            check_with(&f, "scratch", &[], None, None).unwrap().rule,
            "functions[1] (dev-*, scratch)"
        );
    }

    #[test]
    fn a_name_no_rule_matches_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let policy = Policy::from_toml(
            "[[functions]]\nnames = [\"dev-*\"]\nallow_unsigned = true\n",
            dir.path(),
            "p.toml",
        )
        .unwrap();
        let version = v("0.1.0");
        let subject = Subject {
            name: "prod",
            version: &version,
            signers: &[],
            grants: &[],
            inventory: None,
            deployed_version: None,
            allow_downgrade: false,
        };
        let r = policy.check(&subject, None).unwrap_err();
        assert_eq!(
            (r.rule.as_str(), r.package.as_str(), r.item.as_str()),
            ("functions", "prod@0.1.0", "prod")
        );
        assert_eq!(
            r.to_string(),
            "policy p.toml, rule functions: prod@0.1.0: no [[functions]] rule matches the name `prod`, so the policy refuses it"
        );
    }

    #[test]
    fn signatures_count_distinct_keys_of_the_rule() {
        let f = fixture("");
        let r = check_with(&f, "payments-api", &[f.ci, f.ci, f.stranger], None, None).unwrap_err();
        assert_eq!(r.item, "signatures: ci");
        assert_eq!(
            r.message,
            "1 valid signature by a key this rule counts (ci), but it requires 2 from release, ci (1 more by keys it does not count)"
        );
        let r = check_with(&f, "hello", &[f.release, f.stranger], None, None).unwrap_err();
        assert_eq!(r.rule, "functions[2].signatures");
        assert_eq!(
            r.message,
            "no valid signature by a key this rule counts, but it requires 1 from ci (2 more by keys it does not count)"
        );
        let r = check_with(&f, "hello", &[], None, None).unwrap_err();
        assert_eq!(
            r.message,
            "no valid signature by a key this rule counts, but it requires 1 from ci"
        );
        assert!(check_with(&f, "hello", &[f.stranger, f.ci], None, None).is_ok());
        assert!(
            check_with(
                &f,
                "payments-api",
                &[f.release, f.stranger, f.ci],
                None,
                None
            )
            .is_ok()
        );
    }

    #[test]
    fn grant_ceiling_covers_every_component() {
        let f = fixture("");
        let version = v("1.0.0");
        let signers = [f.release, f.ci];
        let grants = |g: &[(String, Vec<Capability>)]| {
            let subject = Subject {
                name: "payments-api",
                version: &version,
                signers: &signers,
                grants: g,
                inventory: None,
                deployed_version: None,
                allow_downgrade: false,
            };
            f.policy.check(&subject, None)
        };
        let within = [
            (
                "api".to_string(),
                caps(&["network:outbound:api.pay.example:443", "env:PAY_KEY"]),
            ),
            ("worker".to_string(), caps(&["env:PAY_*"])),
        ];
        assert!(grants(&within).is_ok());
        let beyond = [
            (
                "api".to_string(),
                caps(&["network:outbound:api.pay.example:443"]),
            ),
            (
                "worker".to_string(),
                caps(&["env:PAY_KEY", "network:outbound:evil.example:443"]),
            ),
        ];
        let r = grants(&beyond).unwrap_err();
        assert_eq!(r.rule, "functions[0].grant_ceiling");
        assert_eq!(r.item, "worker: network:outbound:evil.example:443");
        assert!(
            r.message.contains(
                "component `worker` would be granted `network:outbound:evil.example:443`"
            ),
            "{}",
            r.message
        );
        assert!(
            r.message
                .contains("ceiling: network:outbound:*.pay.example:443, env:PAY_*"),
            "{}",
            r.message
        );
        // A wider port is not covered by a ceiling on one port.
        assert!(
            grants(&[(
                "api".to_string(),
                caps(&["network:outbound:api.pay.example:*"])
            )])
            .is_err()
        );
        // A rule without a ceiling sets none; an empty ceiling allows nothing.
        let subject = Subject {
            name: "hello",
            version: &version,
            signers: &[f.ci],
            grants: &beyond,
            inventory: None,
            deployed_version: None,
            allow_downgrade: false,
        };
        assert!(f.policy.check(&subject, None).is_ok());
        let subject = Subject {
            name: "dev-x",
            ..subject
        };
        let r = f.policy.check(&subject, None).unwrap_err();
        assert!(r.message.contains("the ceiling is empty"), "{}", r.message);
        let subject = Subject {
            grants: &[("api".to_string(), Vec::new())],
            ..subject
        };
        assert!(f.policy.check(&subject, None).is_ok());
    }

    #[test]
    fn sbom_required() {
        let f = fixture("[sbom]\nrequired = true\n");
        let r = check_with(&f, "hello", &[f.ci], None, None).unwrap_err();
        assert_eq!(
            (r.rule.as_str(), r.item.as_str()),
            ("sbom.required", "SBOM")
        );
        assert!(check_with(&f, "hello", &[f.ci], Some(&[]), None).is_ok());
        let lax = fixture("");
        assert!(check_with(&lax, "hello", &[lax.ci], None, None).is_ok());
    }

    #[test]
    fn refused_licenses_name_the_dependency() {
        let f = fixture("[sbom]\nrefuse_licenses = [\"GPL-3.0-only\", \"AGPL-*\"]\n");
        let inv = [
            dep("serde", "1.0.0", &["MIT OR Apache-2.0"]),
            dep("foo", "1.0.0", &["GPL-3.0-only"]),
        ];
        let r = check_with(&f, "hello", &[f.ci], Some(&inv), None).unwrap_err();
        assert_eq!(
            r.to_string(),
            "policy policy.toml, rule sbom.refuse_licenses: hello@1.2.0: dependency `foo 1.0.0` is licensed `GPL-3.0-only`, which the policy refuses"
        );
        assert_eq!(r.item, "foo@1.0.0");
        let inv = [dep("bar", "2.0.0", &["MIT AND AGPL-3.0-or-later"])];
        let r = check_with(&f, "hello", &[f.ci], Some(&inv), None).unwrap_err();
        assert!(r.message.ends_with("is licensed `MIT AND AGPL-3.0-or-later`, which the policy refuses (`AGPL-3.0-or-later` matches `AGPL-*`)"), "{}", r.message);
        // OR with an acceptable branch, and WITH an exception on an acceptable licence, pass.
        let inv = [
            dep("a", "1.0.0", &["MIT OR GPL-3.0-only"]),
            dep("b", "1.0.0", &["GPL-2.0-only WITH Classpath-exception-2.0"]),
        ];
        assert!(check_with(&f, "hello", &[f.ci], Some(&inv), None).is_ok());
        // Several licences on one item all apply.
        let inv = [dep("c", "1.0.0", &["MIT", "GPL-3.0-only"])];
        assert!(check_with(&f, "hello", &[f.ci], Some(&inv), None).is_err());
    }

    #[test]
    fn refused_dependencies_by_name_version_and_type() {
        let f = fixture(
            "[[sbom.refuse_dependencies]]\nname = \"openssl-sys\"\nversions = \"<0.9.80\"\npurl_type = \"cargo\"\n[[sbom.refuse_dependencies]]\nname = \"left-*\"\n",
        );
        let ok = |inv: &[InventoryItem]| check_with(&f, "hello", &[f.ci], Some(inv), None);
        let r = ok(&[
            dep("serde", "1.0.0", &[]),
            dep("openssl-sys", "0.9.79", &[]),
        ])
        .unwrap_err();
        assert_eq!(
            (r.rule.as_str(), r.item.as_str()),
            ("sbom.refuse_dependencies[0]", "openssl-sys@0.9.79")
        );
        assert_eq!(
            r.message,
            "dependency `openssl-sys 0.9.79` is refused by the policy (versions `<0.9.80`)"
        );
        assert!(ok(&[dep("openssl-sys", "0.9.80", &[])]).is_ok());
        assert!(
            ok(&[dep("openssl-sys", "0.9.80-rc.1", &[])]).is_err(),
            "a pre-release below 0.9.80"
        );
        // Another ecosystem's package of that name is not refused; an item without a purl is cargo.
        let mut npm = dep("openssl-sys", "0.1.0", &[]);
        npm.purl = Some("pkg:npm/openssl-sys@0.1.0".into());
        assert!(ok(&[npm.clone()]).is_ok());
        npm.purl = None;
        assert!(ok(&[npm.clone()]).is_err());
        // A version that cannot be compared is refused, saying why.
        let r = ok(&[dep("openssl-sys", "latest", &[])]).unwrap_err();
        assert!(
            r.message.contains(
                "its version `latest` cannot be compared with the refused versions `<0.9.80`"
            ),
            "{}",
            r.message
        );
        // Without `versions`, every version of a matching name.
        let r = ok(&[dep("left-pad", "9.9.9", &[])]).unwrap_err();
        assert_eq!(
            (r.rule.as_str(), r.message.as_str()),
            (
                "sbom.refuse_dependencies[1]",
                "dependency `left-pad 9.9.9` is refused by the policy (every version)"
            )
        );
    }

    fn advisories(dir: &Path) -> Advisories {
        std::fs::write(
            dir.join("RUSTSEC-2024-0001.json"),
            r#"{"id":"RUSTSEC-2024-0001","summary":"Use after free in foo","aliases":["GHSA-aaaa"],
               "affected":[{"package":{"ecosystem":"crates.io","name":"foo"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.1.0"}]}]}]}"#,
        )
        .unwrap();
        std::fs::write(
            dir.join("GHSA-aaaa.json"),
            r#"{"id":"GHSA-aaaa","aliases":["RUSTSEC-2024-0001"],
               "affected":[{"package":{"ecosystem":"crates.io","name":"foo"},"versions":["1.0.0"]}]}"#,
        )
        .unwrap();
        Advisories::load(dir).unwrap()
    }

    #[test]
    fn advisories_refuse_by_default() {
        let f = fixture("");
        let dir = tempfile::tempdir().unwrap();
        let adv = advisories(dir.path());
        let inv = [dep("foo", "1.0.0", &[])];
        let r = check_with(&f, "hello", &[f.ci], Some(&inv), Some(&adv)).unwrap_err();
        assert_eq!(
            (r.rule.as_str(), r.item.as_str()),
            ("advisories", "foo@1.0.0")
        );
        let file = dir.path().join("GHSA-aaaa.json");
        // Files load in path order, so the GHSA file comes first; it has no summary.
        assert_eq!(
            r.message,
            format!(
                "dependency `foo 1.0.0` is affected by GHSA-aaaa, advisory file {}",
                file.display()
            )
        );
        assert!(
            check_with(
                &f,
                "hello",
                &[f.ci],
                Some(&[dep("foo", "1.1.0", &[])]),
                Some(&adv)
            )
            .is_ok()
        );
        // Without advisories, nothing is checked.
        assert!(check_with(&f, "hello", &[f.ci], Some(&inv), None).is_ok());
    }

    #[test]
    fn advisories_warn_once_per_vulnerability() {
        let f = fixture("[advisories]\non_match = \"warn\"\n");
        let dir = tempfile::tempdir().unwrap();
        let adv = advisories(dir.path());
        let inv = [dep("foo", "1.0.0", &[]), dep("foo", "1.0.5", &[])];
        let verdict = check_with(&f, "hello", &[f.ci], Some(&inv), Some(&adv)).unwrap();
        let got: Vec<(&str, &str)> = verdict
            .warnings
            .iter()
            .map(|w| (w.item.as_str(), w.rule.as_str()))
            .collect();
        assert_eq!(
            got,
            [("foo@1.0.0", "advisories"), ("foo@1.0.5", "advisories")]
        );
        let file = dir.path().join("RUSTSEC-2024-0001.json");
        assert_eq!(
            verdict.warnings[1].message,
            format!(
                "dependency `foo 1.0.5` is affected by RUSTSEC-2024-0001 (Use after free in foo), advisory file {}",
                file.display()
            )
        );
        // No SBOM: a warning that nothing could be checked.
        let verdict = check_with(&f, "hello", &[f.ci], None, Some(&adv)).unwrap();
        assert_eq!(verdict.warnings.len(), 1);
        assert!(
            verdict.warnings[0]
                .message
                .contains("no SBOM, so the 2 advisories could not be checked"),
            "{:?}",
            verdict.warnings
        );
    }

    #[test]
    fn downgrades_need_the_flag() {
        let f = fixture("");
        let (new, old) = (v("1.2.0"), v("1.3.0"));
        let subject = Subject {
            name: "hello",
            version: &new,
            signers: &[f.ci],
            grants: &[],
            inventory: None,
            deployed_version: Some(&old),
            allow_downgrade: false,
        };
        let r = f.policy.check(&subject, None).unwrap_err();
        assert_eq!(
            (r.rule.as_str(), r.item.as_str()),
            ("versions.downgrade", "1.2.0")
        );
        assert_eq!(
            r.message,
            "version 1.2.0 is lower than the deployed 1.3.0: pass --allow-downgrade to deploy it anyway"
        );
        assert!(
            f.policy
                .check(
                    &Subject {
                        allow_downgrade: true,
                        ..subject
                    },
                    None
                )
                .is_ok()
        );
        assert!(
            f.policy
                .check(
                    &Subject {
                        deployed_version: Some(&new),
                        ..subject
                    },
                    None
                )
                .is_ok(),
            "same version"
        );
        assert!(
            f.policy
                .check(
                    &Subject {
                        version: &old,
                        deployed_version: Some(&new),
                        ..subject
                    },
                    None
                )
                .is_ok(),
            "upgrade"
        );
        let build = v("1.2.0+build.7");
        assert!(
            f.policy
                .check(
                    &Subject {
                        version: &build,
                        deployed_version: Some(&new),
                        ..subject
                    },
                    None
                )
                .is_ok(),
            "build metadata is not a version"
        );
        let allow = fixture("[versions]\ndowngrade = \"allow\"\n");
        let subject = Subject {
            signers: &[allow.ci],
            ..subject
        };
        assert!(allow.policy.check(&subject, None).is_ok());
    }

    #[test]
    fn rules_run_in_order() {
        // A package failing signatures and licences is refused for its signatures, the earlier rule.
        let f = fixture("[sbom]\nrequired = true\nrefuse_licenses = [\"GPL-*\"]\n");
        let inv = [dep("foo", "1.0.0", &["GPL-3.0-only"])];
        assert_eq!(
            check_with(&f, "hello", &[], Some(&inv), None)
                .unwrap_err()
                .rule,
            "functions[2].signatures"
        );
        assert_eq!(
            check_with(&f, "hello", &[f.ci], None, None)
                .unwrap_err()
                .rule,
            "sbom.required"
        );
        assert_eq!(
            check_with(&f, "hello", &[f.ci], Some(&inv), None)
                .unwrap_err()
                .rule,
            "sbom.refuse_licenses"
        );
    }
}

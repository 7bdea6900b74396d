//! Checking an author-supplied SBOM against the CycloneDX specification, and reading an SBOM's
//! inventory.
//!
//! The checks are those the specification states and a policy relies on: the format and version, a
//! type and a name on every component, unique bom-refs, dependency refs that exist, well-formed hashes,
//! package URLs and licences (SPDX ids and expressions). They are written here rather than taken from
//! the `cyclonedx-bom` crate, which (0.8) reads no CycloneDX 1.6 and reports dependency faults without
//! their position.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{Inventory, InventoryItem, MAX_SBOM_SIZE, SUPPORTED_SPEC_VERSIONS, SbomError};

/// Component types of CycloneDX 1.4; later versions add to them.
const TYPES_1_4: &[&str] = &[
    "application",
    "framework",
    "library",
    "container",
    "operating-system",
    "device",
    "firmware",
    "file",
];
const TYPES_1_5: &[&str] = &[
    "platform",
    "device-driver",
    "machine-learning-model",
    "data",
];
const TYPES_1_6: &[&str] = &["cryptographic-asset"];
/// Hash algorithms and the length of their hex digests.
const HASH_ALGS: &[(&str, &[usize])] = &[
    ("MD5", &[32]),
    ("SHA-1", &[40]),
    ("SHA-256", &[64]),
    ("SHA-384", &[96]),
    ("SHA-512", &[128]),
    ("SHA3-256", &[64]),
    ("SHA3-384", &[96]),
    ("SHA3-512", &[128]),
    ("BLAKE2b-256", &[64]),
    ("BLAKE2b-384", &[96]),
    ("BLAKE2b-512", &[128]),
    ("BLAKE3", &[64, 96, 128]),
];

pub(super) fn validate_supplied(bytes: &[u8], label: &str) -> Result<Inventory, SbomError> {
    let (doc, spec_version) = open(bytes, label)?;
    let mut check = Checker {
        label,
        spec_version: &spec_version,
        refs: BTreeMap::new(),
    };
    check.document(&doc)?;
    inventory(&doc, spec_version, label)
}

pub(super) fn read_inventory(bytes: &[u8], label: &str) -> Result<Inventory, SbomError> {
    let (doc, spec_version) = open(bytes, label)?;
    inventory(&doc, spec_version, label)
}

/// Parses the JSON and checks `bomFormat` and `specVersion`.
fn open(bytes: &[u8], label: &str) -> Result<(Map<String, Value>, String), SbomError> {
    if bytes.len() > MAX_SBOM_SIZE {
        return Err(SbomError::TooLarge {
            label: label.to_string(),
            size: bytes.len(),
        });
    }
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| SbomError::NotJson {
        label: label.to_string(),
        message: e.to_string(),
    })?;
    let Value::Object(doc) = doc else {
        return Err(invalid(label, "the document", "expected a JSON object"));
    };
    match doc.get("bomFormat") {
        Some(Value::String(s)) if s == "CycloneDX" => {}
        Some(other) => {
            return Err(SbomError::NotCycloneDx {
                label: label.to_string(),
                found: other.to_string(),
            });
        }
        None => {
            return Err(invalid(
                label,
                "bomFormat",
                "missing (a CycloneDX SBOM says \"bomFormat\": \"CycloneDX\")",
            ));
        }
    }
    let spec_version = match doc.get("specVersion") {
        Some(Value::String(s)) if SUPPORTED_SPEC_VERSIONS.contains(&s.as_str()) => s.clone(),
        Some(other) => {
            return Err(SbomError::UnsupportedSpecVersion {
                label: label.to_string(),
                found: other.to_string(),
            });
        }
        None => return Err(invalid(label, "specVersion", "missing")),
    };
    Ok((doc, spec_version))
}

fn invalid(label: &str, location: &str, message: impl Into<String>) -> SbomError {
    SbomError::Invalid {
        label: label.to_string(),
        location: location.to_string(),
        message: message.into(),
    }
}

/// The components of `doc` (nested ones flattened, in document order), lightly read.
fn inventory(
    doc: &Map<String, Value>,
    spec_version: String,
    label: &str,
) -> Result<Inventory, SbomError> {
    let mut items = Vec::new();
    collect(doc.get("components"), "components", label, &mut items)?;
    Ok(Inventory {
        spec_version,
        items,
    })
}

fn collect(
    list: Option<&Value>,
    path: &str,
    label: &str,
    items: &mut Vec<InventoryItem>,
) -> Result<(), SbomError> {
    let list = match list {
        None => return Ok(()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(invalid(label, path, "expected an array")),
    };
    for (i, c) in list.iter().enumerate() {
        let path = format!("{path}[{i}]");
        let string = |key: &str| c.get(key).and_then(Value::as_str).map(str::to_string);
        let kind = string("type")
            .ok_or_else(|| invalid(label, &format!("{path}.type"), "missing or not a string"))?;
        let name = string("name")
            .ok_or_else(|| invalid(label, &format!("{path}.name"), "missing or not a string"))?;
        let licenses = match c.get("licenses") {
            Some(Value::Array(list)) => list.iter().filter_map(license_text).collect(),
            _ => Vec::new(),
        };
        items.push(InventoryItem {
            bom_ref: string("bom-ref"),
            kind,
            name,
            version: string("version"),
            purl: string("purl"),
            licenses,
        });
        collect(
            c.get("components"),
            &format!("{path}.components"),
            label,
            items,
        )?;
    }
    Ok(())
}

/// A `licenses` entry as written: the expression, the SPDX id, or the licence name.
fn license_text(entry: &Value) -> Option<String> {
    let text = match entry.get("expression") {
        Some(e) => e.as_str(),
        None => entry
            .get("license")
            .and_then(|l| l.get("id").or_else(|| l.get("name")))
            .and_then(Value::as_str),
    };
    text.map(str::to_string)
}

/// The rule checks of a supplied SBOM; stops at the first fault.
struct Checker<'a> {
    label: &'a str,
    spec_version: &'a str,
    /// Every bom-ref, with where it was first seen.
    refs: BTreeMap<String, String>,
}

impl Checker<'_> {
    fn fail(&self, location: &str, message: impl Into<String>) -> SbomError {
        invalid(self.label, location, message)
    }

    fn document(&mut self, doc: &Map<String, Value>) -> Result<(), SbomError> {
        if let Some(serial) = doc.get("serialNumber") {
            let ok = serial.as_str().is_some_and(is_urn_uuid);
            if !ok {
                return Err(self.fail(
                    "serialNumber",
                    format!("{serial} is not a `urn:uuid:` RFC 4122 UUID"),
                ));
            }
        }
        if let Some(version) = doc.get("version")
            && !version.as_u64().is_some_and(|v| v >= 1)
        {
            return Err(self.fail(
                "version",
                format!("{version} is not an integer of 1 or more"),
            ));
        }
        if let Some(metadata) = doc.get("metadata") {
            let metadata = self.object(metadata, "metadata")?;
            if let Some(c) = metadata.get("component") {
                self.component(c, "metadata.component")?;
            }
        }
        for (i, c) in self
            .array(doc.get("components"), "components")?
            .iter()
            .enumerate()
        {
            self.component(c, &format!("components[{i}]"))?;
        }
        for (i, s) in self
            .array(doc.get("services"), "services")?
            .iter()
            .enumerate()
        {
            self.service(s, &format!("services[{i}]"))?;
        }
        for (i, v) in self
            .array(doc.get("vulnerabilities"), "vulnerabilities")?
            .iter()
            .enumerate()
        {
            let path = format!("vulnerabilities[{i}]");
            let v = self.object(v, &path)?;
            self.bom_ref(v, &path)?;
        }
        let mut described = BTreeMap::new();
        for (i, d) in self
            .array(doc.get("dependencies"), "dependencies")?
            .iter()
            .enumerate()
        {
            let path = format!("dependencies[{i}]");
            let d = self.object(d, &path)?;
            let Some(Value::String(r)) = d.get("ref") else {
                return Err(self.fail(&format!("{path}.ref"), "missing or not a string"));
            };
            if !self.refs.contains_key(r) {
                return Err(self.fail(
                    &format!("{path}.ref"),
                    format!("\"{r}\" is the bom-ref of nothing in the SBOM"),
                ));
            }
            if let Some(first) = described.insert(r.clone(), path.clone()) {
                return Err(self.fail(
                    &format!("{path}.ref"),
                    format!("\"{r}\" has its dependencies listed twice (first at {first})"),
                ));
            }
            let depends_on = self.array(d.get("dependsOn"), &format!("{path}.dependsOn"))?;
            for (j, target) in depends_on.iter().enumerate() {
                let at = format!("{path}.dependsOn[{j}]");
                let Some(target) = target.as_str() else {
                    return Err(self.fail(&at, "not a string"));
                };
                if !self.refs.contains_key(target) {
                    return Err(self.fail(
                        &at,
                        format!("\"{target}\" is the bom-ref of nothing in the SBOM"),
                    ));
                }
                if depends_on[..j].iter().any(|t| t.as_str() == Some(target)) {
                    return Err(self.fail(&at, format!("\"{target}\" is listed twice")));
                }
            }
        }
        Ok(())
    }

    fn object<'v>(&self, v: &'v Value, path: &str) -> Result<&'v Map<String, Value>, SbomError> {
        v.as_object()
            .ok_or_else(|| self.fail(path, "expected an object"))
    }

    /// The array at `path`, or an empty one when absent.
    fn array<'v>(&self, v: Option<&'v Value>, path: &str) -> Result<&'v [Value], SbomError> {
        match v {
            None => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(_) => Err(self.fail(path, "expected an array")),
        }
    }

    fn string<'v>(
        &self,
        o: &'v Map<String, Value>,
        key: &str,
        path: &str,
    ) -> Result<Option<&'v str>, SbomError> {
        match o.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.fail(&format!("{path}.{key}"), "expected a string")),
        }
    }

    fn bom_ref(&mut self, o: &Map<String, Value>, path: &str) -> Result<(), SbomError> {
        let at = format!("{path}.bom-ref");
        if let Some(r) = self.string(o, "bom-ref", path)? {
            if r.is_empty() {
                return Err(self.fail(&at, "empty"));
            }
            if let Some(first) = self.refs.get(r) {
                return Err(self.fail(&at, format!("duplicate bom-ref \"{r}\" (first at {first})")));
            }
            self.refs.insert(r.to_string(), at);
        }
        Ok(())
    }

    fn component(&mut self, c: &Value, path: &str) -> Result<(), SbomError> {
        let c = self.object(c, path)?;
        let kind = self
            .string(c, "type", path)?
            .ok_or_else(|| self.fail(&format!("{path}.type"), "missing"))?;
        let known = TYPES_1_4
            .iter()
            .chain(if self.spec_version >= "1.5" {
                TYPES_1_5
            } else {
                &[]
            })
            .chain(if self.spec_version >= "1.6" {
                TYPES_1_6
            } else {
                &[]
            });
        if !known.clone().any(|t| *t == kind) {
            return Err(self.fail(
                &format!("{path}.type"),
                format!(
                    "\"{kind}\" is not a CycloneDX {} component type",
                    self.spec_version
                ),
            ));
        }
        if self.string(c, "name", path)?.is_none() {
            return Err(self.fail(&format!("{path}.name"), "missing"));
        }
        self.string(c, "version", path)?;
        self.bom_ref(c, path)?;
        if let Some(purl) = self.string(c, "purl", path)?
            && !is_purl(purl)
        {
            return Err(self.fail(
                &format!("{path}.purl"),
                format!("\"{purl}\" is not a package URL (pkg:TYPE/NAME...)"),
            ));
        }
        self.hashes(c.get("hashes"), &format!("{path}.hashes"))?;
        self.licenses(c.get("licenses"), &format!("{path}.licenses"))?;
        for (i, r) in self
            .array(
                c.get("externalReferences"),
                &format!("{path}.externalReferences"),
            )?
            .iter()
            .enumerate()
        {
            let at = format!("{path}.externalReferences[{i}]");
            let r = self.object(r, &at)?;
            self.string(r, "url", &at)?
                .ok_or_else(|| self.fail(&format!("{at}.url"), "missing"))?;
            self.string(r, "type", &at)?
                .ok_or_else(|| self.fail(&format!("{at}.type"), "missing"))?;
        }
        self.properties(c.get("properties"), &format!("{path}.properties"))?;
        for (i, nested) in self
            .array(c.get("components"), &format!("{path}.components"))?
            .iter()
            .enumerate()
        {
            self.component(nested, &format!("{path}.components[{i}]"))?;
        }
        Ok(())
    }

    fn service(&mut self, s: &Value, path: &str) -> Result<(), SbomError> {
        let s = self.object(s, path)?;
        if self.string(s, "name", path)?.is_none() {
            return Err(self.fail(&format!("{path}.name"), "missing"));
        }
        self.bom_ref(s, path)?;
        self.licenses(s.get("licenses"), &format!("{path}.licenses"))?;
        for (i, nested) in self
            .array(s.get("services"), &format!("{path}.services"))?
            .iter()
            .enumerate()
        {
            self.service(nested, &format!("{path}.services[{i}]"))?;
        }
        Ok(())
    }

    fn hashes(&self, v: Option<&Value>, path: &str) -> Result<(), SbomError> {
        for (i, h) in self.array(v, path)?.iter().enumerate() {
            let at = format!("{path}[{i}]");
            let h = self.object(h, &at)?;
            let alg = self
                .string(h, "alg", &at)?
                .ok_or_else(|| self.fail(&format!("{at}.alg"), "missing"))?;
            let Some((_, lengths)) = HASH_ALGS.iter().find(|(a, _)| *a == alg) else {
                return Err(self.fail(
                    &format!("{at}.alg"),
                    format!("\"{alg}\" is not a CycloneDX hash algorithm"),
                ));
            };
            let content = self
                .string(h, "content", &at)?
                .ok_or_else(|| self.fail(&format!("{at}.content"), "missing"))?;
            if !lengths.contains(&content.len()) || !content.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return Err(self.fail(
                    &format!("{at}.content"),
                    format!("not a {alg} digest in hex"),
                ));
            }
        }
        Ok(())
    }

    fn licenses(&self, v: Option<&Value>, path: &str) -> Result<(), SbomError> {
        let list = self.array(v, path)?;
        for (i, l) in list.iter().enumerate() {
            let at = format!("{path}[{i}]");
            let l = self.object(l, &at)?;
            match (l.get("license"), l.get("expression")) {
                (Some(license), None) => {
                    let at = format!("{at}.license");
                    let license = self.object(license, &at)?;
                    match (
                        self.string(license, "id", &at)?,
                        self.string(license, "name", &at)?,
                    ) {
                        (Some(id), None) => {
                            if spdx::license_id(id).is_none() {
                                return Err(self.fail(&format!("{at}.id"), format!("\"{id}\" is not an SPDX licence id (use `name` for other licences)")));
                            }
                        }
                        (None, Some(_)) => {}
                        _ => return Err(self.fail(&at, "needs exactly one of `id` and `name`")),
                    }
                }
                (None, Some(expression)) => {
                    let Some(expression) = expression.as_str() else {
                        return Err(self.fail(&format!("{at}.expression"), "expected a string"));
                    };
                    if let Err(e) = spdx::Expression::parse(expression) {
                        return Err(self.fail(
                            &format!("{at}.expression"),
                            format!("not an SPDX licence expression: {e}"),
                        ));
                    }
                    if list.len() != 1 {
                        return Err(self.fail(
                            &at,
                            "a licence expression must be the only entry of `licenses`",
                        ));
                    }
                }
                _ => return Err(self.fail(&at, "needs exactly one of `license` and `expression`")),
            }
        }
        Ok(())
    }

    fn properties(&self, v: Option<&Value>, path: &str) -> Result<(), SbomError> {
        for (i, p) in self.array(v, path)?.iter().enumerate() {
            let at = format!("{path}[{i}]");
            let p = self.object(p, &at)?;
            self.string(p, "name", &at)?
                .ok_or_else(|| self.fail(&format!("{at}.name"), "missing"))?;
            self.string(p, "value", &at)?;
        }
        Ok(())
    }
}

/// `urn:uuid:` and an RFC 4122 UUID, as the CycloneDX schema's pattern asks.
pub(super) fn is_urn_uuid(s: &str) -> bool {
    let Some(uuid) = s.strip_prefix("urn:uuid:") else {
        return false;
    };
    let groups: Vec<&str> = uuid.split('-').collect();
    let hex = |g: &str| g.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && hex(g))
        && matches!(groups[2].as_bytes()[0], b'1'..=b'5')
        && matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b')
}

/// `pkg:TYPE/NAME...`: the scheme and a type of letters, digits, `.`, `+`, `-` starting with a letter.
fn is_purl(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("pkg:") else {
        return false;
    };
    let rest = rest.trim_start_matches('/');
    let Some((kind, name)) = rest.split_once('/') else {
        return false;
    };
    kind.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && kind
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-'))
        && !name.is_empty()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn base() -> Value {
        json!({
            "bomFormat": "CycloneDX",
            "specVersion": "1.5",
            "serialNumber": "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79",
            "version": 1,
            "metadata": {"component": {"type": "application", "bom-ref": "app", "name": "app", "version": "1.0.0"}},
            "components": [
                {"type": "library", "bom-ref": "pkg:cargo/serde@1.0.200", "name": "serde", "version": "1.0.200",
                 "purl": "pkg:cargo/serde@1.0.200", "licenses": [{"expression": "MIT OR Apache-2.0"}],
                 "hashes": [{"alg": "SHA-256", "content": "ddc6f9cc94d67c0e21aaf7eda3a010fd3af78ebf6e096aa6e2e13c79749cce4f"}]},
                {"type": "library", "bom-ref": "lib-b", "name": "b", "licenses": [{"license": {"id": "MIT"}}, {"license": {"name": "Custom Licence"}}],
                 "components": [{"type": "file", "name": "b/data.bin"}]}
            ],
            "dependencies": [
                {"ref": "app", "dependsOn": ["pkg:cargo/serde@1.0.200", "lib-b"]},
                {"ref": "lib-b"}
            ]
        })
    }

    fn check(doc: &Value) -> Result<Inventory, SbomError> {
        validate_supplied(doc.to_string().as_bytes(), "app/sbom.json")
    }

    fn error_of(doc: &Value) -> String {
        check(doc).expect_err("the SBOM is rejected").to_string()
    }

    #[test]
    fn a_well_formed_sbom_is_accepted_and_its_components_listed_nested_ones_included() {
        let inventory = check(&base()).unwrap();
        assert_eq!(inventory.spec_version, "1.5");
        assert_eq!(
            inventory.items,
            [
                InventoryItem {
                    bom_ref: Some("pkg:cargo/serde@1.0.200".into()),
                    kind: "library".into(),
                    name: "serde".into(),
                    version: Some("1.0.200".into()),
                    purl: Some("pkg:cargo/serde@1.0.200".into()),
                    licenses: vec!["MIT OR Apache-2.0".into()],
                },
                InventoryItem {
                    bom_ref: Some("lib-b".into()),
                    kind: "library".into(),
                    name: "b".into(),
                    version: None,
                    purl: None,
                    licenses: vec!["MIT".into(), "Custom Licence".into()],
                },
                InventoryItem {
                    bom_ref: None,
                    kind: "file".into(),
                    name: "b/data.bin".into(),
                    version: None,
                    purl: None,
                    licenses: vec![]
                },
            ]
        );
        assert_eq!(
            read_inventory(base().to_string().as_bytes(), "x").unwrap(),
            inventory
        );
    }

    #[test]
    fn versions_1_4_and_1_6_are_read_and_types_follow_the_version() {
        let mut doc = base();
        doc["specVersion"] = json!("1.6");
        doc["components"][0]["type"] = json!("cryptographic-asset");
        assert_eq!(check(&doc).unwrap().spec_version, "1.6");

        let mut doc = base();
        doc["specVersion"] = json!("1.4");
        assert_eq!(check(&doc).unwrap().spec_version, "1.4");
        doc["components"][1]["type"] = json!("machine-learning-model");
        assert_eq!(
            error_of(&doc),
            "app/sbom.json: components[1].type: \"machine-learning-model\" is not a CycloneDX 1.4 component type"
        );
    }

    #[test]
    fn not_json_is_rejected_with_the_file_and_position() {
        let err = validate_supplied(b"{\"bomFormat\": ", "app/sbom.json")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("app/sbom.json: not JSON: "), "{err}");
        assert!(err.contains("line 1"), "{err}");
        let err = validate_supplied(b"[1, 2]", "app/sbom.json")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "app/sbom.json: the document: expected a JSON object");
    }

    #[test]
    fn a_wrong_format_or_version_is_rejected() {
        let mut doc = base();
        doc["bomFormat"] = json!("SPDX");
        assert_eq!(
            error_of(&doc),
            "app/sbom.json: bomFormat: expected \"CycloneDX\", found \"SPDX\""
        );
        doc.as_object_mut().unwrap().remove("bomFormat");
        assert!(error_of(&doc).starts_with("app/sbom.json: bomFormat: missing"));

        let mut doc = base();
        doc["specVersion"] = json!("1.2");
        assert_eq!(
            error_of(&doc),
            "app/sbom.json: specVersion: \"1.2\" is not supported (supported: 1.4, 1.5, 1.6)"
        );
        doc["specVersion"] = json!(1.5);
        assert_eq!(
            error_of(&doc),
            "app/sbom.json: specVersion: 1.5 is not supported (supported: 1.4, 1.5, 1.6)"
        );
        let err = read_inventory(doc.to_string().as_bytes(), "sbom.cdx.json")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("sbom.cdx.json: specVersion: "), "{err}");
    }

    #[test]
    fn a_duplicate_bom_ref_is_rejected_naming_both_places() {
        let mut doc = base();
        doc["components"][1]["components"][0]["bom-ref"] = json!("pkg:cargo/serde@1.0.200");
        assert_eq!(
            error_of(&doc),
            "app/sbom.json: components[1].components[0].bom-ref: duplicate bom-ref \"pkg:cargo/serde@1.0.200\" (first at components[0].bom-ref)"
        );
        let mut doc = base();
        doc["components"][0]["bom-ref"] = json!("app");
        assert_eq!(
            error_of(&doc),
            "app/sbom.json: components[0].bom-ref: duplicate bom-ref \"app\" (first at metadata.component.bom-ref)"
        );
    }

    #[test]
    fn a_dangling_dependency_ref_is_rejected_with_its_position() {
        let mut doc = base();
        doc["dependencies"][0]["dependsOn"][1] = json!("lib-c");
        assert_eq!(
            error_of(&doc),
            "app/sbom.json: dependencies[0].dependsOn[1]: \"lib-c\" is the bom-ref of nothing in the SBOM"
        );
        let mut doc = base();
        doc["dependencies"][1]["ref"] = json!("nothing");
        assert_eq!(
            error_of(&doc),
            "app/sbom.json: dependencies[1].ref: \"nothing\" is the bom-ref of nothing in the SBOM"
        );
        let mut doc = base();
        doc["dependencies"][1]["ref"] = json!("app");
        assert_eq!(
            error_of(&doc),
            "app/sbom.json: dependencies[1].ref: \"app\" has its dependencies listed twice (first at dependencies[0])"
        );
    }

    #[test]
    fn components_need_a_type_and_a_name() {
        let mut doc = base();
        doc["components"][0].as_object_mut().unwrap().remove("type");
        assert_eq!(error_of(&doc), "app/sbom.json: components[0].type: missing");
        let mut doc = base();
        doc["components"][1]["components"][0]
            .as_object_mut()
            .unwrap()
            .remove("name");
        assert_eq!(
            error_of(&doc),
            "app/sbom.json: components[1].components[0].name: missing"
        );
        let err = read_inventory(doc.to_string().as_bytes(), "sbom.cdx.json")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "sbom.cdx.json: components[1].components[0].name: missing or not a string"
        );
    }

    #[test]
    fn licences_hashes_purls_and_serial_numbers_must_be_well_formed() {
        let cases: &[(&str, Value, &str)] = &[
            (
                "/components/1/licenses/0/license/id",
                json!("Not-A-Licence"),
                "components[1].licenses[0].license.id: \"Not-A-Licence\" is not an SPDX licence id (use `name` for other licences)",
            ),
            (
                "/components/0/licenses/0/expression",
                json!("MIT OR"),
                "components[0].licenses[0].expression: not an SPDX licence expression",
            ),
            (
                "/components/1/licenses/1",
                json!({"license": {"id": "MIT", "name": "MIT"}}),
                "components[1].licenses[1].license: needs exactly one of `id` and `name`",
            ),
            (
                "/components/1/licenses/1",
                json!({"expression": "MIT"}),
                "components[1].licenses[1]: a licence expression must be the only entry of `licenses`",
            ),
            (
                "/components/0/hashes/0/content",
                json!("abc"),
                "components[0].hashes[0].content: not a SHA-256 digest in hex",
            ),
            (
                "/components/0/hashes/0/alg",
                json!("SHA-257"),
                "components[0].hashes[0].alg: \"SHA-257\" is not a CycloneDX hash algorithm",
            ),
            (
                "/components/0/purl",
                json!("cargo/serde"),
                "components[0].purl: \"cargo/serde\" is not a package URL (pkg:TYPE/NAME...)",
            ),
            (
                "/serialNumber",
                json!("urn:uuid:not-a-uuid"),
                "serialNumber: \"urn:uuid:not-a-uuid\" is not a `urn:uuid:` RFC 4122 UUID",
            ),
            (
                "/version",
                json!(0),
                "version: 0 is not an integer of 1 or more",
            ),
        ];
        for (pointer, value, expected) in cases {
            let mut doc = base();
            *doc.pointer_mut(pointer).unwrap() = value.clone();
            let err = error_of(&doc);
            assert!(
                err.starts_with(&format!("app/sbom.json: {expected}")),
                "{pointer}: {err}"
            );
        }
    }

    #[test]
    fn an_oversized_sbom_is_rejected_before_parsing() {
        let big = vec![b' '; MAX_SBOM_SIZE + 1];
        let err = validate_supplied(&big, "big.json").unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "big.json: {} bytes, more than the {MAX_SBOM_SIZE} byte limit for an SBOM",
                MAX_SBOM_SIZE + 1
            )
        );
    }

    #[test]
    fn urn_uuids_follow_the_schema_pattern() {
        assert!(is_urn_uuid("urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79"));
        assert!(
            !is_urn_uuid("urn:uuid:3e671687-395b-61f5-a30f-a58921a69b79"),
            "version 6 is outside the pattern"
        );
        assert!(
            !is_urn_uuid("urn:uuid:3e671687-395b-41f5-c30f-a58921a69b79"),
            "variant c is outside the pattern"
        );
        assert!(
            !is_urn_uuid("urn:uuid:3E671687-395B-41F5-A30F-A58921A69B79"),
            "upper case is outside the pattern"
        );
        assert!(!is_urn_uuid("3e671687-395b-41f5-a30f-a58921a69b79"));
    }
}

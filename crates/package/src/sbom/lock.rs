//! Reading a `Cargo.lock` (`pack --sbom-from Cargo.lock`): its packages and the edges between them.

use std::io::Read;
use std::path::Path;

use serde::Deserialize;

use super::{MAX_CARGO_LOCK_SIZE, SbomError};

/// One `[[package]]` of a lock file, its dependencies resolved to indices into the package list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LockPackage {
    pub name: String,
    pub version: String,
    /// `source` as written (`registry+https://github.com/rust-lang/crates.io-index`, `git+...`); none for
    /// a workspace or path package.
    pub source: Option<String>,
    /// `checksum`: the SHA-256 of the `.crate` file, lower-case hex.
    pub checksum: Option<String>,
    pub dependencies: Vec<usize>,
}

#[derive(Deserialize)]
struct RawLock {
    #[serde(default)]
    package: Vec<toml::Spanned<RawPackage>>,
}

#[derive(Deserialize)]
struct RawPackage {
    name: String,
    version: String,
    source: Option<String>,
    checksum: Option<String>,
    #[serde(default)]
    dependencies: Vec<String>,
}

/// Reads and parses the lock file at `path`; returns its packages and the file's bytes (for the serial
/// number).
pub(super) fn read(path: &Path) -> Result<(Vec<LockPackage>, Vec<u8>), SbomError> {
    let io = |error| SbomError::Io {
        path: path.to_path_buf(),
        error,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(MAX_CARGO_LOCK_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_CARGO_LOCK_SIZE {
        return Err(lock_error(
            path,
            String::new(),
            format!("larger than the {MAX_CARGO_LOCK_SIZE} byte limit for a lock file"),
        ));
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| lock_error(path, String::new(), format!("not UTF-8: {e}")))?;
    let packages = parse(text, path)?;
    Ok((packages, bytes))
}

/// Parses lock-file text; `path` names the file in errors.
pub(super) fn parse(text: &str, path: &Path) -> Result<Vec<LockPackage>, SbomError> {
    let raw: RawLock = toml::from_str(text)
        .map_err(|e| lock_error(path, String::new(), e.to_string().trim_end().to_string()))?;
    let line_of = |offset: usize| {
        text[..offset.min(text.len())]
            .bytes()
            .filter(|b| *b == b'\n')
            .count()
            + 1
    };
    let locations: Vec<String> = raw
        .package
        .iter()
        .enumerate()
        .map(|(i, p)| {
            format!(
                "package[{i}] ({} {}, line {}): ",
                p.get_ref().name,
                p.get_ref().version,
                line_of(p.span().start)
            )
        })
        .collect();
    let mut packages = Vec::with_capacity(raw.package.len());
    for (i, spanned) in raw.package.iter().enumerate() {
        let p = spanned.get_ref();
        if let Some(sum) = &p.checksum
            && !is_sha256_hex(sum)
        {
            return Err(lock_error(
                path,
                locations[i].clone(),
                format!("checksum \"{sum}\" is not a SHA-256 digest in hex"),
            ));
        }
        let mut dependencies = Vec::with_capacity(p.dependencies.len());
        for (j, dep) in p.dependencies.iter().enumerate() {
            let found = resolve(&raw.package, dep).map_err(|message| {
                lock_error(
                    path,
                    locations[i].clone(),
                    format!("dependencies[{j}] \"{dep}\": {message}"),
                )
            })?;
            dependencies.push(found);
        }
        packages.push(LockPackage {
            name: p.name.clone(),
            version: p.version.clone(),
            source: p.source.clone(),
            checksum: p.checksum.as_ref().map(|s| s.to_ascii_lowercase()),
            dependencies,
        });
    }
    Ok(packages)
}

/// Finds the one package a dependency entry (`name`, `name version` or `name version (source)`) means.
fn resolve(packages: &[toml::Spanned<RawPackage>], entry: &str) -> Result<usize, String> {
    let mut parts = entry.splitn(3, ' ');
    let name = parts.next().unwrap_or_default();
    let version = parts.next();
    let source = match parts.next() {
        Some(s) => Some(
            s.strip_prefix('(')
                .and_then(|s| s.strip_suffix(')'))
                .ok_or("expected `name version (source)`")?,
        ),
        None => None,
    };
    if name.is_empty() {
        return Err("empty dependency entry".into());
    }
    let matches: Vec<usize> = packages
        .iter()
        .enumerate()
        .filter(|(_, p)| {
            let p = p.get_ref();
            p.name == name
                && version.is_none_or(|v| p.version == v)
                && source.is_none_or(|s| p.source.as_deref() == Some(s))
        })
        .map(|(i, _)| i)
        .collect();
    match matches.as_slice() {
        [one] => Ok(*one),
        [] => Err("names no package in the lock file".into()),
        _ => Err(format!(
            "matches {} packages; the entry must name a version (and a source) to tell them apart",
            matches.len()
        )),
    }
}

fn lock_error(path: &Path, location: String, message: String) -> SbomError {
    SbomError::CargoLock {
        path: path.to_path_buf(),
        location,
        message,
    }
}

/// Whether `s` is a SHA-256 digest in hex (either case).
pub(super) fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = r#"
# This file is automatically @generated by Cargo.
version = 4

[[package]]
name = "hello"
version = "0.1.0"
dependencies = [
 "serde",
 "wit-bindgen 0.40.0",
]

[[package]]
name = "serde"
version = "1.0.200"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "ddc6f9cc94d67c0e21aaf7eda3a010fd3af78ebf6e096aa6e2e13c79749cce4f"

[[package]]
name = "wit-bindgen"
version = "0.40.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
dependencies = [
 "serde 1.0.200 (registry+https://github.com/rust-lang/crates.io-index)",
]
"#;

    #[test]
    fn parses_packages_and_resolves_every_form_of_dependency() {
        let packages = parse(LOCK, Path::new("Cargo.lock")).unwrap();
        assert_eq!(packages.len(), 3);
        assert_eq!(packages[0].name, "hello");
        assert_eq!(packages[0].source, None);
        assert_eq!(packages[0].dependencies, vec![1, 2]);
        assert_eq!(
            packages[1].checksum.as_deref(),
            Some("ddc6f9cc94d67c0e21aaf7eda3a010fd3af78ebf6e096aa6e2e13c79749cce4f")
        );
        assert_eq!(packages[2].checksum, None);
        assert_eq!(packages[2].dependencies, vec![1]);
    }

    #[test]
    fn a_dependency_on_a_missing_package_names_the_file_package_and_line() {
        let lock = LOCK.replace("\"wit-bindgen 0.40.0\"", "\"wit-bindgen 9.9.9\"");
        let err = parse(&lock, Path::new("guest/Cargo.lock"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("guest/Cargo.lock: package[0] (hello 0.1.0, line 5): "),
            "{err}"
        );
        assert!(
            err.contains(
                "dependencies[1] \"wit-bindgen 9.9.9\": names no package in the lock file"
            ),
            "{err}"
        );
    }

    #[test]
    fn malformed_toml_and_missing_keys_name_the_file_and_line() {
        let err = parse(
            "[[package]]\nname = \"a\"\nversion = \n",
            Path::new("Cargo.lock"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("Cargo.lock: "), "{err}");
        assert!(err.contains("line 3"), "{err}");

        let err = parse("[[package]]\nname = \"a\"\n", Path::new("Cargo.lock"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("Cargo.lock: "), "{err}");
        assert!(err.contains("version"), "{err}");
    }

    #[test]
    fn a_bad_checksum_and_an_ambiguous_name_are_rejected() {
        let lock = LOCK.replace(
            "ddc6f9cc94d67c0e21aaf7eda3a010fd3af78ebf6e096aa6e2e13c79749cce4f",
            "not-hex",
        );
        let err = parse(&lock, Path::new("Cargo.lock"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("package[1] (serde 1.0.200, line 13): checksum \"not-hex\""),
            "{err}"
        );

        let lock = format!("{LOCK}\n[[package]]\nname = \"serde\"\nversion = \"1.0.100\"\n");
        let err = parse(&lock, Path::new("Cargo.lock"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "package[0] (hello 0.1.0, line 5): dependencies[0] \"serde\": matches 2 packages"
            ),
            "{err}"
        );
    }

    #[test]
    fn read_reports_a_missing_file_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Cargo.lock");
        let err = read(&path).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("cannot read {}: ", path.display())),
            "{err}"
        );
        std::fs::write(&path, LOCK).unwrap();
        let (packages, bytes) = read(&path).unwrap();
        assert_eq!(packages.len(), 3);
        assert_eq!(bytes, LOCK.as_bytes());
    }
}

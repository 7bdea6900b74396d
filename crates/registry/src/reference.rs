//! Registry references: `HOST[:PORT]/REPOSITORY[:TAG][@sha256:HEX]`, parsed once into their parts.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use crate::RegistryError;

/// Longest repository name with its registry host (the distribution spec's name limit).
pub const MAX_NAME_LEN: usize = 255;
/// Longest tag.
pub const MAX_TAG_LEN: usize = 128;

/// Where a package is in a registry: a host, a repository, and a tag, a digest or both.
///
/// The host must name a registry explicitly (a dot, a port or `localhost` in it), so that a
/// reference is never confused with a relative path and never silently goes to Docker Hub. The only
/// digest algorithm is SHA-256, which is what every digest here is checked with.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl Reference {
    /// The registry host, with its port if one was given (`127.0.0.1:5000`, `[::1]:5000`, `ghcr.io`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path (`team/orders`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if the reference has one.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The manifest digest (`sha256:…`), if the reference has one.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The same reference pinned to a manifest digest (`sha256:…`), keeping the tag:
    /// `host/repo:tag@sha256:…`.
    pub fn with_digest(&self, digest: &str) -> Reference {
        Reference { digest: Some(digest.to_string()), ..self.clone() }
    }

    /// Whether `text` has the shape of a registry reference rather than of a file path:
    /// `host[:port]/path[:tag][@sha256:…]` whose host part has a dot, a port or is `localhost`.
    /// A text with neither tag nor digest whose last segment ends in `.wasmzip` or `.wasm` is taken
    /// as a file. This is a shape check only: a text that looks like a reference may still fail to
    /// parse (with no tag, say), and the caller decides what an existing file of that name means.
    pub fn looks_like_reference(text: &str) -> bool {
        match split(text) {
            Ok(parts) => {
                parts.tag.is_some() || parts.digest.is_some() || !(parts.repository.ends_with(".wasmzip") || parts.repository.ends_with(".wasm"))
            }
            Err(_) => false,
        }
    }

    /// As the distribution client names it.
    pub(crate) fn to_oci(&self) -> oci_client::Reference {
        let (registry, repository) = (self.registry.clone(), self.repository.clone());
        match (&self.tag, &self.digest) {
            (Some(tag), Some(digest)) => oci_client::Reference::with_tag_and_digest(registry, repository, tag.clone(), digest.clone()),
            (None, Some(digest)) => oci_client::Reference::with_digest(registry, repository, digest.clone()),
            (Some(tag), None) => oci_client::Reference::with_tag(registry, repository, tag.clone()),
            (None, None) => unreachable!("a parsed reference has a tag or a digest"),
        }
    }
}

impl FromStr for Reference {
    type Err = RegistryError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parts = split(text).map_err(|reason| RegistryError::Reference { text: text.to_string(), reason })?;
        if parts.tag.is_none() && parts.digest.is_none() {
            let reason = "it names neither a tag nor a digest (add `:TAG` or `@sha256:…`)".to_string();
            return Err(RegistryError::Reference { text: text.to_string(), reason });
        }
        Ok(parts)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Splits and checks every part; the tag and digest may both be absent here.
fn split(text: &str) -> Result<Reference, String> {
    let (rest, digest) = match text.split_once('@') {
        Some((rest, digest)) => {
            check_digest(digest)?;
            (rest, Some(digest.to_string()))
        }
        None => (text, None),
    };
    let Some((host, path)) = rest.split_once('/') else {
        return Err("expected HOST[:PORT]/REPOSITORY:TAG or HOST[:PORT]/REPOSITORY@sha256:…".into());
    };
    check_host(host)?;
    // Repository components cannot hold a colon, so one in the path starts the tag.
    let (repository, tag) = match path.rsplit_once(':') {
        Some((repository, tag)) => {
            check_tag(tag)?;
            (repository, Some(tag.to_string()))
        }
        None => (path, None),
    };
    check_repository(repository)?;
    if host.len() + 1 + repository.len() > MAX_NAME_LEN {
        return Err(format!("the registry host and repository are longer than {MAX_NAME_LEN} characters together"));
    }
    Ok(Reference { registry: host.to_string(), repository: repository.to_string(), tag, digest })
}

/// `sha256:` and 64 lower-case hex digits: the only digests this crate computes, so the only ones it
/// can check.
pub(crate) fn check_digest(digest: &str) -> Result<(), String> {
    let hex = digest.strip_prefix("sha256:").ok_or_else(|| format!("digest `{digest}`: only sha256:… digests are supported"))?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(format!("digest `{digest}`: expected sha256: and 64 lower-case hex digits"));
    }
    Ok(())
}

fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("the registry host is empty".into());
    }
    let bad = |why: &str| Err(format!("`{host}` is not a registry host: {why}"));
    if let Some(inner) = host.strip_prefix('[') {
        let Some((address, port)) = inner.split_once(']') else { return bad("an IPv6 address needs its closing `]`") };
        if address.parse::<Ipv6Addr>().is_err() {
            return bad("not an IPv6 address in brackets");
        }
        return match port {
            "" => Ok(()),
            _ => match port.strip_prefix(':') {
                Some(port) => check_port(host, port),
                None => bad("expected `:PORT` after the `]`"),
            },
        };
    }
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => {
            check_port(host, port)?;
            (name, Some(port))
        }
        None => (host, None),
    };
    let label_ok = |l: &str| {
        !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') && !l.starts_with('-') && !l.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return bad("expected a host name or IP address");
    }
    if port.is_none() && !name.contains('.') && !name.eq_ignore_ascii_case("localhost") {
        return bad("a registry host needs a dot, a port or `localhost` (docker.io/library/… for Docker Hub)");
    }
    Ok(())
}

fn check_port(host: &str, port: &str) -> Result<(), String> {
    match port.parse::<u16>() {
        Ok(p) if p > 0 && port.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
        _ => Err(format!("`{host}`: `{port}` is not a port")),
    }
}

/// Path components of `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`, separated by `/`.
fn check_repository(repository: &str) -> Result<(), String> {
    if repository.is_empty() {
        return Err("the repository is empty".into());
    }
    for component in repository.split('/') {
        if !component_ok(component) {
            return Err(format!(
                "repository `{repository}`: `{component}` is not a path component (lower-case letters and digits, joined by `.`, `_`, `__` or `-`)"
            ));
        }
    }
    Ok(())
}

fn component_ok(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        // A separator: `.`, `_`, `__` or any run of `-`, always between alphanumerics.
        let start = i;
        match bytes[i] {
            b'.' => i += 1,
            b'_' => i += if bytes.get(i + 1) == Some(&b'_') { 2 } else { 1 },
            b'-' => {
                while bytes.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || !bytes.get(i).is_some_and(|&b| alnum(b)) {
            return false;
        }
    }
    true
}

fn check_tag(tag: &str) -> Result<(), String> {
    let first_ok = tag.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !first_ok || tag.len() > MAX_TAG_LEN || !tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-') {
        return Err(format!("tag `{tag}`: 1 to {MAX_TAG_LEN} of `A-Za-z0-9_.-`, not starting with `.` or `-`"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn parse(text: &str) -> Reference {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn reason(text: &str) -> String {
        match text.parse::<Reference>() {
            Err(RegistryError::Reference { text: named, reason }) => {
                assert_eq!(named, text);
                reason
            }
            other => panic!("{text}: expected a reference error, got {other:?}"),
        }
    }

    #[test]
    fn parses_tags_digests_and_both() {
        let r = parse("127.0.0.1:5000/team/orders:1.4.0");
        assert_eq!((r.registry(), r.repository(), r.tag(), r.digest()), ("127.0.0.1:5000", "team/orders", Some("1.4.0"), None));
        let r = parse(&format!("ghcr.io/acme/orders@{DIGEST}"));
        assert_eq!((r.registry(), r.repository(), r.tag(), r.digest()), ("ghcr.io", "acme/orders", None, Some(DIGEST)));
        let r = parse(&format!("[::1]:5000/orders:v2@{DIGEST}"));
        assert_eq!((r.registry(), r.tag(), r.digest()), ("[::1]:5000", Some("v2"), Some(DIGEST)));
        let r = parse("localhost/a/b/c:latest");
        assert_eq!((r.registry(), r.repository()), ("localhost", "a/b/c"));
        parse("registry.example.com/my_team/orders-v2__x.y:1.0.0-rc.1_build");
    }

    #[test]
    fn display_round_trips_and_with_digest_keeps_the_tag() {
        for text in ["127.0.0.1:5000/team/orders:1.4.0", "ghcr.io/a/b@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "[::1]:80/x:y"] {
            assert_eq!(parse(text).to_string(), text);
        }
        let pinned = parse("127.0.0.1:5000/team/orders:1.4.0").with_digest(DIGEST);
        assert_eq!(pinned.to_string(), format!("127.0.0.1:5000/team/orders:1.4.0@{DIGEST}"));
        assert_eq!(pinned.tag(), Some("1.4.0"));
        assert_eq!(parse(&pinned.to_string()), pinned);
    }

    #[test]
    fn refuses_with_a_reason_that_names_the_fault() {
        assert!(reason("127.0.0.1:5000/team/orders").contains("neither a tag nor a digest"));
        assert!(reason("orders:1.0").contains("HOST[:PORT]/REPOSITORY"));
        assert!(reason("team/orders:1.0").contains("needs a dot, a port or `localhost`"));
        assert!(reason("127.0.0.1:5000/Team/orders:1").contains("`Team`"));
        assert!(reason("127.0.0.1:5000/team//orders:1").contains("is not a path component"));
        assert!(reason("127.0.0.1:5000/team/orders-:1").contains("`orders-`"));
        assert!(reason("127.0.0.1:5000/team/orders:-1").contains("tag `-1`"));
        assert!(reason(&format!("127.0.0.1:5000/o:{}", "t".repeat(129))).contains("tag"));
        assert!(reason("127.0.0.1:5000/o@sha512:abcd").contains("only sha256"));
        assert!(reason("127.0.0.1:5000/o@sha256:ABCDEF").contains("64 lower-case hex"));
        assert!(reason("127.0.0.1:0/o:1").contains("is not a port"));
        assert!(reason("127.0.0.1:99999/o:1").contains("is not a port"));
        assert!(reason("[::1/o:1").contains("closing `]`"));
        assert!(reason("[zz]:5000/o:1").contains("IPv6"));
        assert!(reason("exa_mple.com/o:1").contains("host name"));
        assert!(reason(&format!("example.com/{}:1", "a".repeat(250))).contains("longer than 255"));
        assert!(reason("").contains("HOST[:PORT]"));
    }

    #[test]
    fn the_error_message_names_the_text() {
        let e = "team/orders".parse::<Reference>().unwrap_err().to_string();
        assert!(e.starts_with("`team/orders` is not a registry reference: "), "{e}");
    }

    #[test]
    fn tells_references_from_paths() {
        for text in ["127.0.0.1:5000/team/orders:1.4.0", "localhost/orders:1", "ghcr.io/acme/orders", "[::1]:5000/o@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "registry.example.com/x.wasm:1"] {
            assert!(Reference::looks_like_reference(text), "{text}");
        }
        for text in ["orders.wasmzip", "dist/orders-1.4.0.wasmzip", "./dist/orders.wasmzip", "../x/y.wasmzip", "/tmp/x.wasmzip", "out.d/orders-1.0.0.wasmzip", "build/app.wasm", "hello", "team/orders:1"] {
            assert!(!Reference::looks_like_reference(text), "{text}");
        }
    }

    #[test]
    fn separators_sit_between_alphanumerics() {
        for ok in ["a", "a.b", "a_b", "a__b", "a-b", "a---b", "a1.b2_c3__d4-e5"] {
            assert!(component_ok(ok), "{ok}");
        }
        for bad in ["", ".a", "a.", "a..b", "a___b", "a._b", "-a", "a-", "A", "a b", "a:b"] {
            assert!(!component_ok(bad), "{bad}");
        }
    }
}

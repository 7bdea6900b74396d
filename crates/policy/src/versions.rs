//! Version ranges for `sbom.refuse_dependencies`: a [`semver::VersionReq`] evaluated as intervals in
//! semver order, so that a pre-release of a version in the range is in it (Cargo's resolver instead
//! skips pre-releases unless asked for them, which would let `0.9.79-beta` slip past `<0.9.80`).

use semver::{Comparator, Op, Prerelease, Version, VersionReq};

/// Whether `v` satisfies every comparator of `req`, pre-releases compared by semver order.
pub(crate) fn req_contains(req: &VersionReq, v: &Version) -> bool {
    // Build metadata does not take part in precedence.
    let v = Version {
        build: semver::BuildMetadata::EMPTY,
        ..v.clone()
    };
    req.comparators.iter().all(|c| comparator_contains(c, &v))
}

/// The lowest version of `major.minor.patch`: its `-0` pre-release.
fn floor(major: u64, minor: u64, patch: u64) -> Version {
    Version {
        major,
        minor,
        patch,
        pre: Prerelease::new("0").expect("`0` is a pre-release"),
        build: Default::default(),
    }
}

fn exact(c: &Comparator, patch: u64) -> Version {
    Version {
        major: c.major,
        minor: c.minor.unwrap_or(0),
        patch,
        pre: c.pre.clone(),
        build: Default::default(),
    }
}

fn comparator_contains(c: &Comparator, v: &Version) -> bool {
    let (major, minor, patch) = (c.major, c.minor, c.patch);
    // The first version above everything the written major (and minor) name; used when there is no patch.
    let above = || match minor {
        Some(m) => floor(major, m + 1, 0),
        None => floor(major + 1, 0, 0),
    };
    // The first version the written parts name.
    let start = || match (minor, patch) {
        (Some(_), Some(p)) => exact(c, p),
        (Some(m), None) => floor(major, m, 0),
        (None, _) => floor(major, 0, 0),
    };
    match c.op {
        Op::Exact | Op::Wildcard => match patch {
            Some(_) => *v == start(),
            None => start() <= *v && *v < above(),
        },
        Op::Greater => match patch {
            Some(_) => *v > start(),
            None => *v >= above(),
        },
        Op::GreaterEq => *v >= start(),
        Op::Less => *v < start(),
        Op::LessEq => match patch {
            Some(_) => *v <= start(),
            None => *v < above(),
        },
        Op::Tilde => {
            let end = match minor {
                Some(m) => floor(major, m + 1, 0),
                None => floor(major + 1, 0, 0),
            };
            start() <= *v && *v < end
        }
        Op::Caret => {
            let end = match (major, minor, patch) {
                (0, Some(0), Some(p)) => floor(0, 0, p + 1),
                (0, Some(m), _) => floor(0, m + 1, 0),
                (x, _, _) => floor(x + 1, 0, 0),
            };
            start() <= *v && *v < end
        }
        // `Op` is non-exhaustive; an operator this crate does not know matches (refuses) conservatively.
        _ => true,
    }
}

/// Reads an SBOM version: semver, a leading `v` removed, and `N` or `N.N` padded with zeros.
pub(crate) fn parse_lenient(text: &str) -> Option<Version> {
    let text = text.trim();
    let text = text.strip_prefix('v').unwrap_or(text);
    if let Ok(v) = Version::parse(text) {
        return Some(v);
    }
    let parts: Vec<&str> = text.split('.').collect();
    if parts.len() > 3
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let n = |i: usize| parts.get(i).map_or(Some(0), |p| p.parse::<u64>().ok());
    Some(Version::new(n(0)?, n(1)?, n(2)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(req: &str, v: &str) -> bool {
        req_contains(
            &VersionReq::parse(req).unwrap(),
            &Version::parse(v).unwrap(),
        )
    }

    #[test]
    fn operators_on_releases_agree_with_cargo() {
        let cases = [
            ("<0.9.80", "0.9.79"),
            ("<0.9.80", "0.9.80"),
            ("<0.9.80", "1.0.0"),
            ("<=1.2", "1.2.9"),
            ("<=1.2", "1.3.0"),
            (">1.2", "1.2.9"),
            (">1.2", "1.3.0"),
            (">1", "1.9.0"),
            (">1", "2.0.0"),
            (">=1.2.3", "1.2.3"),
            (">=1.2.3", "1.2.2"),
            ("=1.2.3", "1.2.3"),
            ("=1.2.3", "1.2.4"),
            ("=1.2", "1.2.7"),
            ("1.2.*", "1.2.7"),
            ("1.*", "2.0.0"),
            ("*", "9.9.9"),
            ("~1.2.3", "1.2.9"),
            ("~1.2.3", "1.3.0"),
            ("~1", "1.9.0"),
            ("^1.2.3", "1.9.0"),
            ("^1.2.3", "2.0.0"),
            ("^1.2.3", "1.2.2"),
            ("^0.2.3", "0.2.9"),
            ("^0.2.3", "0.3.0"),
            ("^0.0.3", "0.0.3"),
            ("^0.0.3", "0.0.4"),
            ("^0", "0.9.0"),
            ("^0.0", "0.1.0"),
            (">=1.0, <2.0", "1.5.0"),
            (">=1.0, <2.0", "2.0.0"),
            ("1.2.3", "1.5.0"),
        ];
        for (req, v) in cases {
            let cargo = VersionReq::parse(req)
                .unwrap()
                .matches(&Version::parse(v).unwrap());
            assert_eq!(t(req, v), cargo, "{req} vs {v}");
        }
    }

    #[test]
    fn pre_releases_are_in_their_range() {
        assert!(t("<0.9.80", "0.9.79-beta.1"));
        assert!(t("<0.9.80", "0.9.80-rc.1"));
        assert!(!t("<0.9.80", "0.9.80"));
        assert!(t("^1.2.3", "1.4.0-alpha"));
        assert!(!t("^1.2.3", "2.0.0-alpha"));
        assert!(!t("<2", "2.0.0-alpha"));
        assert!(t("<=1.2.3", "1.2.3+build.5"));
        assert!(t("=1.2.3-rc.1", "1.2.3-rc.1"));
        assert!(!t("=1.2.3", "1.2.3-rc.1"));
        assert!(t(">=1.2.3-rc.1, <1.2.3", "1.2.3-rc.2"));
    }

    #[test]
    fn lenient_versions() {
        assert_eq!(parse_lenient("v1.2.3"), Some(Version::new(1, 2, 3)));
        assert_eq!(parse_lenient("2.0"), Some(Version::new(2, 0, 0)));
        assert_eq!(parse_lenient("7"), Some(Version::new(7, 0, 0)));
        assert_eq!(parse_lenient("1.0rc1"), None);
        assert_eq!(parse_lenient("1.2.3.4"), None);
    }
}

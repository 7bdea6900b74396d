//! `sbom.refuse_licenses`: whether a licence an SBOM names is acceptable.
//!
//! A licence is an SPDX expression where it parses as one (leniently, as crates.io writes them:
//! `MIT/Apache-2.0`, `Apache 2.0`, `GPL-3.0+`), parsed with the `spdx` crate. `A OR B` is acceptable
//! when either side is, `A AND B` only when both are, and `X WITH E` is matched as `X`. Each licence is
//! matched by its canonical SPDX id, ignoring ASCII case: `X+` for "X or later" (the GNU licences
//! have their own `-or-later` ids), and a deprecated bare GNU id such as `GPL-3.0` also as the
//! `GPL-3.0-only` it stands for. Text that is not an SPDX expression is matched whole, as a plain
//! string.

use spdx::{Expression, LicenseItem, LicenseReq, ParseMode};

use crate::glob::Glob;

/// Why a licence text is refused: the refused licences and the patterns they matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    /// `(licence, pattern)` for each refused term that made the expression unacceptable.
    pub terms: Vec<(String, String)>,
}

/// Checks one licence text against the refused patterns; `None` when it is acceptable.
pub(crate) fn check(text: &str, refused: &[Glob]) -> Option<Refused> {
    if refused.is_empty() {
        return None;
    }
    let text = text.trim();
    let Ok(expr) = Expression::parse_mode(text, ParseMode::LAX) else {
        return refused
            .iter()
            .find(|g| g.matches_ignore_ascii_case(text))
            .map(|g| Refused {
                terms: vec![(text.to_string(), g.to_string())],
            });
    };
    match expr.evaluate_with_failures(|req| matching_pattern(req, refused).is_none()) {
        Ok(()) => None,
        Err(failures) => Some(Refused {
            terms: failures
                .iter()
                .filter_map(|f| {
                    matching_pattern(&f.req, refused).map(|(name, g)| (name, g.to_string()))
                })
                .collect(),
        }),
    }
}

/// The first refused pattern matching any name of `req`, with the name it matched.
fn matching_pattern<'g>(req: &LicenseReq, refused: &'g [Glob]) -> Option<(String, &'g Glob)> {
    let names = names(&req.license);
    names.into_iter().find_map(|n| {
        refused
            .iter()
            .find(|g| g.matches_ignore_ascii_case(&n))
            .map(|g| (n, g))
    })
}

/// The names a licence is matched by (its exception, if any, is left out).
fn names(item: &LicenseItem) -> Vec<String> {
    match item {
        LicenseItem::Spdx { id, or_later: true } => vec![format!("{}+", id.name)],
        LicenseItem::Spdx {
            id,
            or_later: false,
        } => {
            let mut names = vec![id.name.to_string()];
            if id.is_gnu() && id.is_deprecated() {
                // `GPL-3.0` is the deprecated spelling of `GPL-3.0-only`.
                let only = format!("{}-only", id.name);
                if spdx::license_id(&only).is_some() {
                    names.push(only);
                }
            }
            names
        }
        LicenseItem::Other(r) => vec![r.to_string()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn globs(p: &[&str]) -> Vec<Glob> {
        p.iter().map(|p| Glob::parse(p).unwrap()).collect()
    }

    fn refused(text: &str, p: &[&str]) -> Option<Vec<(String, String)>> {
        check(text, &globs(p)).map(|r| r.terms)
    }

    #[test]
    fn single_ids_and_globs() {
        let p = ["GPL-3.0-only", "AGPL-*"];
        assert_eq!(
            refused("GPL-3.0-only", &p),
            Some(vec![("GPL-3.0-only".into(), "GPL-3.0-only".into())])
        );
        assert_eq!(
            refused("AGPL-3.0-or-later", &p),
            Some(vec![("AGPL-3.0-or-later".into(), "AGPL-*".into())])
        );
        assert_eq!(refused("MIT", &p), None);
        assert_eq!(
            refused("GPL-3.0-or-later", &p),
            None,
            "or-later may be taken as a later version"
        );
        // The deprecated bare GNU id means `-only`.
        assert!(refused("GPL-3.0", &p).is_some());
        // Case does not matter for SPDX ids.
        assert!(refused("gpl-3.0-only", &p).is_some());
        assert!(check("GPL-3.0-only", &[]).is_none());
    }

    #[test]
    fn or_needs_one_acceptable_branch() {
        let p = ["GPL-3.0-only"];
        assert_eq!(refused("MIT OR GPL-3.0-only", &p), None);
        assert_eq!(refused("GPL-3.0-only OR MIT", &p), None);
        assert_eq!(refused("MIT/GPL-3.0-only", &p), None);
        let both = refused("GPL-3.0-only OR AGPL-3.0-only", &["GPL-3.0-only", "AGPL-*"]).unwrap();
        assert_eq!(both.len(), 2, "{both:?}");
    }

    #[test]
    fn and_needs_every_branch_acceptable() {
        let p = ["GPL-3.0-only"];
        assert_eq!(
            refused("MIT AND GPL-3.0-only", &p),
            Some(vec![("GPL-3.0-only".into(), "GPL-3.0-only".into())])
        );
        assert_eq!(refused("(MIT AND BSD-3-Clause)", &p), None);
        assert!(refused("(MIT AND BSD-3-Clause)", &["BSD-*"]).is_some());
        // Nesting: (MIT OR GPL) AND Apache is fine, (GPL AND MIT) OR GPL is not.
        assert_eq!(refused("(MIT OR GPL-3.0-only) AND Apache-2.0", &p), None);
        assert!(refused("(GPL-3.0-only AND MIT) OR GPL-3.0-only", &p).is_some());
    }

    #[test]
    fn with_exception_is_matched_as_the_licence() {
        let with = "GPL-2.0-only WITH Classpath-exception-2.0";
        assert!(refused(with, &["GPL-2.0-only"]).is_some());
        assert!(refused(with, &["GPL-*"]).is_some());
        assert_eq!(refused(with, &["GPL-3.0-only"]), None);
        assert_eq!(refused(&format!("MIT OR {with}"), &["GPL-*"]), None);
    }

    #[test]
    fn or_later_and_refs() {
        assert!(refused("Apache-2.0+", &["Apache-2.0+"]).is_some());
        assert_eq!(refused("Apache-2.0+", &["Apache-2.0"]), None);
        assert!(refused("GPL-2.0+", &["GPL-2.0-or-later"]).is_some());
        assert!(refused("LicenseRef-Proprietary", &["LicenseRef-*"]).is_some());
    }

    #[test]
    fn free_names_are_plain_strings() {
        assert!(refused("Proprietary", &["Proprietary"]).is_some());
        assert!(refused("Some Commercial Licence", &["some commercial*"]).is_some());
        assert_eq!(refused("Some Commercial Licence", &["Commercial"]), None);
        // Not SPDX (a dangling OR): matched whole, so an id inside it does not match alone.
        assert_eq!(refused("GPL-3.0-only OR", &["GPL-3.0-only"]), None);
        assert!(refused("GPL-3.0-only OR", &["GPL-*"]).is_some());
    }
}

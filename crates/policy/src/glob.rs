//! Name patterns: `*` matches any run of characters (the empty run too); every other character stands
//! for itself. Patterns are checked when the policy is loaded, so a typo like `payments-?` is refused
//! there instead of silently matching nothing.

use std::fmt;

/// Longest pattern accepted, in bytes.
pub const MAX_PATTERN_LEN: usize = 256;

/// A parsed glob pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    text: String,
    /// The literal runs between the `*`s; one more than the number of `*`s.
    parts: Vec<String>,
}

impl Glob {
    /// Parses a pattern: non-empty, at most [`MAX_PATTERN_LEN`] bytes, no control characters or
    /// leading or trailing whitespace, and no `?`, `[`, `]`, `{` or `}` (which other glob dialects give a meaning).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("an empty pattern matches nothing".into());
        }
        if text.len() > MAX_PATTERN_LEN {
            return Err(format!("patterns are limited to {MAX_PATTERN_LEN} bytes"));
        }
        if let Some((i, c)) = text
            .char_indices()
            .find(|(_, c)| matches!(c, '?' | '[' | ']' | '{' | '}'))
        {
            return Err(format!(
                "`{c}` at position {} is not supported: `*` is the only wildcard",
                text[..i].chars().count() + 1
            ));
        }
        if let Some((i, _)) = text.char_indices().find(|(_, c)| c.is_control()) {
            return Err(format!(
                "a control character at position {}",
                text[..i].chars().count() + 1
            ));
        }
        if text.trim() != text {
            return Err("leading or trailing whitespace".into());
        }
        Ok(Glob {
            text: text.to_string(),
            parts: text.split('*').map(str::to_string).collect(),
        })
    }

    /// Parses a pattern for names that never hold whitespace (package and dependency names): as
    /// [`Glob::parse`], and no whitespace at all.
    pub fn parse_name(text: &str) -> Result<Self, String> {
        if let Some((i, _)) = text.char_indices().find(|(_, c)| c.is_whitespace()) {
            return Err(format!(
                "whitespace at position {}: names hold none",
                text[..i].chars().count() + 1
            ));
        }
        Self::parse(text)
    }

    /// Whether `name` matches the whole pattern, comparing characters exactly.
    pub fn matches(&self, name: &str) -> bool {
        match_parts(&self.parts, name)
    }

    /// Whether `name` matches the whole pattern, ignoring ASCII case (for SPDX identifiers, which
    /// the SPDX specification compares case-insensitively).
    pub fn matches_ignore_ascii_case(&self, name: &str) -> bool {
        let lower: Vec<String> = self.parts.iter().map(|p| p.to_ascii_lowercase()).collect();
        match_parts(&lower, &name.to_ascii_lowercase())
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

fn match_parts(parts: &[String], name: &str) -> bool {
    let (first, rest) = parts.split_first().expect("split always yields a part");
    let Some(mut tail) = name.strip_prefix(first.as_str()) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        // No `*`: the pattern is a literal.
        return tail.is_empty();
    };
    // Each middle run is taken at its first occurrence: that leaves the most room for the rest.
    for part in middle {
        match tail.find(part.as_str()) {
            Some(at) => tail = &tail[at + part.len()..],
            None => return false,
        }
    }
    tail.len() >= last.len() && tail.ends_with(last.as_str())
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        Glob::parse(p).unwrap().matches(s)
    }

    #[test]
    fn literal_prefix_suffix_and_middle() {
        assert!(m("hello", "hello"));
        assert!(!m("hello", "hello2"));
        assert!(!m("hello", "hell"));
        assert!(m("payments-*", "payments-api"));
        assert!(m("payments-*", "payments-"));
        assert!(!m("payments-*", "payment-api"));
        assert!(m("*-api", "payments-api"));
        assert!(!m("*-api", "payments-api2"));
        assert!(m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("a*b*c", "abc"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(!m("a*b*c", "axxcyyb"));
        // The suffix must not overlap the prefix.
        assert!(!m("ab*ba", "aba"));
        assert!(m("ab*ba", "abba"));
        assert!(m("a**b", "ab"));
    }

    #[test]
    fn case_insensitive_matching() {
        let g = Glob::parse("AGPL-*").unwrap();
        assert!(g.matches_ignore_ascii_case("agpl-3.0-only"));
        assert!(!g.matches("agpl-3.0-only"));
        assert!(!g.matches_ignore_ascii_case("LGPL-3.0-only"));
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert!(Glob::parse("").unwrap_err().contains("empty"));
        assert!(
            Glob::parse("pay?")
                .unwrap_err()
                .contains("`?` at position 4")
        );
        assert!(
            Glob::parse("[ab]")
                .unwrap_err()
                .contains("`*` is the only wildcard")
        );
        assert!(Glob::parse(" a").unwrap_err().contains("whitespace"));
        assert!(
            Glob::parse("a\tb")
                .unwrap_err()
                .contains("control character at position 2")
        );
        assert!(Glob::parse("Some Licence").is_ok());
        assert!(Glob::parse_name("a b").unwrap_err().contains("position 2"));
        assert!(Glob::parse(&"a".repeat(MAX_PATTERN_LEN + 1)).is_err());
    }
}

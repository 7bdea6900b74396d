//! Routing: longest route prefix on path-segment boundaries. Pure data, tested without Wasmtime.

use wasmzip_package::manifest::RoutePrefix;

/// Why a route table could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("route `{prefix}` is claimed by both `{first}` and `{second}`")]
pub struct RouteConflict {
    /// The contested prefix.
    pub prefix: String,
    /// The function that claimed it first.
    pub first: String,
    /// The function that claimed it again.
    pub second: String,
}

/// A matched route.
#[derive(Debug, PartialEq, Eq)]
pub struct RouteMatch<'a, T> {
    /// The target.
    pub target: &'a T,
    /// The prefix that matched.
    pub prefix: &'a str,
    /// The rest of the path after the prefix, always starting with `/`.
    pub remainder: String,
}

/// Route prefixes to targets. Each prefix belongs to one owner (a function name).
#[derive(Debug, Clone)]
pub struct RouteTable<T> {
    /// Sorted by prefix length, longest first, so the first match is the longest.
    routes: Vec<(RoutePrefix, String, T)>,
}

impl<T> Default for RouteTable<T> {
    fn default() -> Self {
        RouteTable { routes: Vec::new() }
    }
}

impl<T> RouteTable<T> {
    /// Adds `prefix` for `owner`; the same prefix claimed by two owners is an error.
    pub fn insert(&mut self, prefix: RoutePrefix, owner: &str, target: T) -> Result<(), RouteConflict> {
        if let Some((_, first, _)) = self.routes.iter().find(|(p, _, _)| *p == prefix) {
            return Err(RouteConflict { prefix: prefix.to_string(), first: first.clone(), second: owner.to_string() });
        }
        let at = self.routes.partition_point(|(p, _, _)| p.as_str().len() >= prefix.as_str().len());
        self.routes.insert(at, (prefix, owner.to_string(), target));
        Ok(())
    }

    /// The target whose prefix is the longest one matching `path` on segment boundaries.
    pub fn route(&self, path: &str) -> Option<RouteMatch<'_, T>> {
        self.routes.iter().find_map(|(prefix, _, target)| {
            let p = prefix.as_str();
            let rest = if p == "/" {
                Some(path)
            } else {
                path.strip_prefix(p).filter(|rest| rest.is_empty() || rest.starts_with('/'))
            }?;
            let remainder = if rest.is_empty() { "/".to_string() } else { rest.to_string() };
            Some(RouteMatch { target, prefix: p, remainder })
        })
    }

    /// Every (prefix, owner) pair, longest prefix first.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.routes.iter().map(|(p, o, _)| (p.as_str(), o.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(routes: &[(&str, &str)]) -> RouteTable<String> {
        let mut t = RouteTable::default();
        for (prefix, owner) in routes {
            t.insert(RoutePrefix::parse(prefix).unwrap(), owner, owner.to_string()).unwrap();
        }
        t
    }

    #[test]
    fn longest_prefix_on_segment_boundaries() {
        let t = table(&[("/api", "api"), ("/api/v2", "v2"), ("/", "root"), ("/hello", "hello")]);
        let m = t.route("/api/v2/users").unwrap();
        assert_eq!((m.target.as_str(), m.prefix, m.remainder.as_str()), ("v2", "/api/v2", "/users"));
        let m = t.route("/api/v3").unwrap();
        assert_eq!((m.target.as_str(), m.remainder.as_str()), ("api", "/v3"));
        let m = t.route("/api").unwrap();
        assert_eq!((m.target.as_str(), m.remainder.as_str()), ("api", "/"));
        let m = t.route("/apiary").unwrap();
        assert_eq!(m.target, "root", "no match inside a segment");
        let m = t.route("/hello/").unwrap();
        assert_eq!((m.target.as_str(), m.remainder.as_str()), ("hello", "/"));
        let m = t.route("/").unwrap();
        assert_eq!((m.target.as_str(), m.remainder.as_str()), ("root", "/"));
    }

    #[test]
    fn no_root_means_no_match() {
        let t = table(&[("/a", "a")]);
        assert!(t.route("/b").is_none());
        assert!(t.route("/ab").is_none());
    }

    #[test]
    fn conflicts_name_both_owners() {
        let mut t = table(&[("/a", "one")]);
        let err = t.insert(RoutePrefix::parse("/a/").unwrap(), "two", "two".into()).unwrap_err();
        assert_eq!(err.to_string(), "route `/a` is claimed by both `one` and `two`");
    }
}

//! Capability tokens: the grammar, parsing with the position of a fault, and coverage between a grant and
//! a request.
//!
//! A token is `DOMAIN:KIND:ARGUMENT`. Tokens are parsed once, into [`Capability`], when a manifest or a
//! command line is read; nothing later compares strings. See `docs/package-format.md` for the grammar.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Longest token accepted, in bytes.
pub const MAX_TOKEN_LEN: usize = 4096;

/// A parsed capability token.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    /// `filesystem:read:DIR`: read files and list directories below the guest directory `DIR`.
    FilesystemRead(GuestDir),
    /// `filesystem:write:DIR`: read, create, write, rename and delete below `DIR` (implies read).
    FilesystemWrite(GuestDir),
    /// `network:outbound:[HOST:]PORT`: open TCP connections and send UDP datagrams to `HOST:PORT`.
    NetworkOutbound(HostPattern, PortPattern),
    /// `network:inbound:PORT`: bind and listen on `PORT`.
    NetworkInbound(PortPattern),
    /// `env:NAME`: see the environment variable `NAME` (`PREFIX*` and `*` match several).
    Env(EnvPattern),
    /// `crypto:key:NAME:OP`: use the host-held key `NAME` (`*`: every key) for `OP`.
    CryptoKey(KeyPattern, CryptoOp),
    /// `nn:model:NAME`: load the package's model `NAME` (`*`: every model) through wasi-nn.
    NnModel(ModelPattern),
}

/// Which models an `nn:model:` token names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ModelPattern {
    /// `*`: every model of the package.
    Any,
    /// One model, named as in `[models.NAME]`.
    Name(String),
}

impl ModelPattern {
    /// Whether this pattern names every model that `other` names.
    pub fn covers(&self, other: &ModelPattern) -> bool {
        match (self, other) {
            (ModelPattern::Any, _) => true,
            (ModelPattern::Name(a), ModelPattern::Name(b)) => a == b,
            (ModelPattern::Name(_), ModelPattern::Any) => false,
        }
    }

    /// Whether this pattern names the model `name`.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            ModelPattern::Any => true,
            ModelPattern::Name(n) => n == name,
        }
    }

    fn parse(text: &str) -> Result<Self, (usize, String)> {
        if text == "*" {
            return Ok(ModelPattern::Any);
        }
        crate::manifest::Name::parse(text).map(|n| ModelPattern::Name(n.as_str().to_string())).map_err(|e| (1, e))
    }
}

impl fmt::Display for ModelPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelPattern::Any => f.write_str("*"),
            ModelPattern::Name(n) => f.write_str(n),
        }
    }
}

/// Longest key name in a `crypto:key:` token, in bytes (the keystore's limit).
pub const MAX_KEY_NAME_LEN: usize = 64;

/// Which host-held keys a `crypto:key:` token names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyPattern {
    /// `*`: every key.
    Any,
    /// One key: 1 to 64 letters, digits, `-`, `_` or `.`, starting with a letter or digit.
    Name(String),
}

/// What a `crypto:key:` token allows doing with a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CryptoOp {
    /// `sign`: sign, and export the public key.
    Sign,
    /// `verify`: verify signatures.
    Verify,
    /// `seal`: encrypt with AES-256-GCM.
    Seal,
    /// `open`: decrypt what was sealed.
    Open,
    /// `mac`: make and check HMAC tags.
    Mac,
    /// `*`: every operation.
    Any,
}

/// A normalised absolute guest directory: starts with `/`, no `.`, `..` or empty components, no trailing
/// slash (except the root itself).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GuestDir(String);

/// Which hosts a network token names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HostPattern {
    /// Any host (`network:outbound:PORT` or `*:PORT`).
    Any,
    /// `*.DOMAIN`: every name strictly below `DOMAIN` (the stored string is `DOMAIN`, lower case).
    Subdomains(String),
    /// One DNS name, lower case.
    Name(String),
    /// One IP address.
    Ip(IpAddr),
}

/// Which ports a network token names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortPattern {
    /// `*`: every port.
    Any,
    /// One port, 1 to 65535.
    Port(u16),
}

/// Which environment variables an `env:` token names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EnvPattern {
    /// `*`: every variable.
    Any,
    /// `PREFIX*`: every variable whose name starts with `PREFIX`.
    Prefix(String),
    /// Exactly one variable.
    Name(String),
}

/// A token that does not parse: the token, the 1-based character position of the fault, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid capability token `{token}` at position {position}: {reason}")]
pub struct TokenError {
    /// The token as given.
    pub token: String,
    /// 1-based character position of the fault within the token.
    pub position: usize,
    /// What is wrong there.
    pub reason: String,
}

impl GuestDir {
    /// Parses and normalises an absolute guest directory path.
    pub fn parse(path: &str) -> Result<Self, (usize, String)> {
        if !path.starts_with('/') {
            return Err((1, "a directory must be an absolute guest path starting with `/`".into()));
        }
        let mut normalised = String::with_capacity(path.len());
        let mut offset = 1;
        for part in path[1..].split('/') {
            let at = offset + 1;
            offset += part.len() + 1;
            if part.is_empty() {
                // A single trailing slash is tolerated; `//` inside is not.
                if offset > path.len() {
                    break;
                }
                return Err((at, "empty path component (`//`)".into()));
            }
            if part == "." || part == ".." {
                return Err((at, format!("`{part}` is not allowed in a capability path")));
            }
            if let Some(i) = part.find(|c: char| c == '\\' || c == '\0' || c.is_control()) {
                return Err((at + i, "backslashes and control characters are not allowed".into()));
            }
            normalised.push('/');
            normalised.push_str(part);
        }
        if normalised.is_empty() {
            normalised.push('/');
        }
        Ok(GuestDir(normalised))
    }

    /// The normalised path.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `other` is this directory or lies below it (on component boundaries).
    pub fn contains(&self, other: &GuestDir) -> bool {
        if self.0 == "/" {
            return true;
        }
        other.0 == self.0 || (other.0.starts_with(&self.0) && other.0.as_bytes()[self.0.len()] == b'/')
    }

    /// The path of `other` relative to this directory, if it lies below it (`""` when equal).
    pub fn relative<'a>(&self, other: &'a GuestDir) -> Option<&'a str> {
        if !self.contains(other) {
            return None;
        }
        if self.0 == "/" {
            return Some(other.0.trim_start_matches('/'));
        }
        Some(other.0[self.0.len()..].trim_start_matches('/'))
    }
}

impl fmt::Display for GuestDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl HostPattern {
    /// Whether this pattern names every host that `other` names.
    pub fn covers(&self, other: &HostPattern) -> bool {
        match (self, other) {
            (HostPattern::Any, _) => true,
            (_, HostPattern::Any) => false,
            (HostPattern::Subdomains(d), HostPattern::Subdomains(o)) => o == d || is_below(o, d),
            (HostPattern::Subdomains(d), HostPattern::Name(n)) => is_below(n, d),
            (HostPattern::Name(a), HostPattern::Name(b)) => a == b,
            (HostPattern::Ip(a), HostPattern::Ip(b)) => a == b,
            _ => false,
        }
    }

    /// Whether this pattern names the DNS name `name` (already lower case).
    pub fn matches_name(&self, name: &str) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Subdomains(d) => is_below(name, d),
            HostPattern::Name(n) => n == name,
            HostPattern::Ip(_) => false,
        }
    }

    fn parse(text: &str) -> Result<Self, (usize, String)> {
        if text == "*" {
            return Ok(HostPattern::Any);
        }
        if let Some(inner) = text.strip_prefix('[') {
            let Some(inner) = inner.strip_suffix(']') else {
                return Err((text.len(), "an IPv6 address must be closed with `]`".into()));
            };
            // An IPv4-mapped address is the IPv4 address: connections are checked in canonical form.
            return Ipv6Addr::from_str(inner)
                .map(|ip| HostPattern::Ip(IpAddr::V6(ip).to_canonical()))
                .map_err(|_| (2, format!("`{inner}` is not an IPv6 address")));
        }
        if text.contains(':') {
            return Err((1, "IPv6 addresses must be written in brackets, like `[::1]`".into()));
        }
        if let Some(domain) = text.strip_prefix("*.") {
            check_dns_name(domain).map_err(|(p, r)| (p + 2, r))?;
            return Ok(HostPattern::Subdomains(domain.to_ascii_lowercase()));
        }
        if text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Ipv4Addr::from_str(text)
                .map(|ip| HostPattern::Ip(IpAddr::V4(ip)))
                .map_err(|_| (1, format!("`{text}` is not an IPv4 address")));
        }
        check_dns_name(text)?;
        Ok(HostPattern::Name(text.to_ascii_lowercase()))
    }
}

fn is_below(name: &str, domain: &str) -> bool {
    name.len() > domain.len() + 1
        && name.ends_with(domain)
        && name.as_bytes()[name.len() - domain.len() - 1] == b'.'
}

fn check_dns_name(name: &str) -> Result<(), (usize, String)> {
    if name.is_empty() || name.len() > 253 {
        return Err((1, "a host name must be 1 to 253 characters".into()));
    }
    let mut offset = 0;
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err((offset + 1, "each label of a host name must be 1 to 63 characters".into()));
        }
        if let Some(i) = label.find(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
            let what = if label.as_bytes()[i] == b'*' {
                "`*` is only allowed as a whole leading label (`*.example.com`)".to_string()
            } else {
                format!("`{}` is not allowed in a host name", &label[i..].chars().next().unwrap_or('?'))
            };
            return Err((offset + i + 1, what));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err((offset + 1, "a host name label cannot start or end with `-`".into()));
        }
        offset += label.len() + 1;
    }
    Ok(())
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Any => f.write_str("*"),
            HostPattern::Subdomains(d) => write!(f, "*.{d}"),
            HostPattern::Name(n) => f.write_str(n),
            HostPattern::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            HostPattern::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
        }
    }
}

impl PortPattern {
    /// Whether this pattern names every port that `other` names.
    pub fn covers(&self, other: &PortPattern) -> bool {
        match (self, other) {
            (PortPattern::Any, _) => true,
            (PortPattern::Port(a), PortPattern::Port(b)) => a == b,
            (PortPattern::Port(_), PortPattern::Any) => false,
        }
    }

    /// Whether this pattern names `port`.
    pub fn matches(&self, port: u16) -> bool {
        match self {
            PortPattern::Any => true,
            PortPattern::Port(p) => *p == port,
        }
    }

    fn parse(text: &str) -> Result<Self, (usize, String)> {
        if text == "*" {
            return Ok(PortPattern::Any);
        }
        match text.parse::<u16>() {
            Ok(p) if p > 0 && !text.starts_with('+') => Ok(PortPattern::Port(p)),
            _ => Err((1, format!("`{text}` is not a port: use a number from 1 to 65535 or `*`"))),
        }
    }
}

impl fmt::Display for PortPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortPattern::Any => f.write_str("*"),
            PortPattern::Port(p) => write!(f, "{p}"),
        }
    }
}

impl EnvPattern {
    /// Whether this pattern names every variable that `other` names.
    pub fn covers(&self, other: &EnvPattern) -> bool {
        match (self, other) {
            (EnvPattern::Any, _) => true,
            (_, EnvPattern::Any) => false,
            (EnvPattern::Prefix(p), EnvPattern::Prefix(q)) => q.starts_with(p.as_str()),
            (EnvPattern::Prefix(p), EnvPattern::Name(n)) => n.starts_with(p.as_str()),
            (EnvPattern::Name(a), EnvPattern::Name(b)) => a == b,
            (EnvPattern::Name(_), EnvPattern::Prefix(_)) => false,
        }
    }

    /// Whether this pattern names the variable `name`.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            EnvPattern::Any => true,
            EnvPattern::Prefix(p) => name.starts_with(p.as_str()),
            EnvPattern::Name(n) => n == name,
        }
    }

    fn parse(text: &str) -> Result<Self, (usize, String)> {
        if text == "*" {
            return Ok(EnvPattern::Any);
        }
        let (name, prefix) = match text.strip_suffix('*') {
            Some(p) => (p, true),
            None => (text, false),
        };
        if name.is_empty() {
            return Err((1, "an environment variable name is required".into()));
        }
        if let Some(i) = name.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            return Err((i + 1, "environment variable names use only letters, digits and `_`".into()));
        }
        if name.as_bytes()[0].is_ascii_digit() {
            return Err((1, "an environment variable name cannot start with a digit".into()));
        }
        Ok(if prefix { EnvPattern::Prefix(name.into()) } else { EnvPattern::Name(name.into()) })
    }
}

impl fmt::Display for EnvPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvPattern::Any => f.write_str("*"),
            EnvPattern::Prefix(p) => write!(f, "{p}*"),
            EnvPattern::Name(n) => f.write_str(n),
        }
    }
}

impl KeyPattern {
    /// Whether this pattern names every key that `other` names.
    pub fn covers(&self, other: &KeyPattern) -> bool {
        match (self, other) {
            (KeyPattern::Any, _) => true,
            (KeyPattern::Name(a), KeyPattern::Name(b)) => a == b,
            (KeyPattern::Name(_), KeyPattern::Any) => false,
        }
    }

    /// Whether this pattern names the key `name`.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            KeyPattern::Any => true,
            KeyPattern::Name(n) => n == name,
        }
    }

    fn parse(text: &str) -> Result<Self, (usize, String)> {
        if text == "*" {
            return Ok(KeyPattern::Any);
        }
        if text.is_empty() || text.len() > MAX_KEY_NAME_LEN {
            return Err((1, format!("a key name must be 1 to {MAX_KEY_NAME_LEN} characters")));
        }
        if !text.as_bytes()[0].is_ascii_alphanumeric() {
            return Err((1, "a key name must start with a letter or digit (or be `*`)".into()));
        }
        if let Some(i) = text.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
            return Err((i + 1, "key names use only letters, digits, `-`, `_` and `.`".into()));
        }
        Ok(KeyPattern::Name(text.to_string()))
    }
}

impl fmt::Display for KeyPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyPattern::Any => f.write_str("*"),
            KeyPattern::Name(n) => f.write_str(n),
        }
    }
}

impl CryptoOp {
    /// Whether this operation grant includes `other`.
    pub fn covers(self, other: CryptoOp) -> bool {
        self == CryptoOp::Any || self == other
    }

    fn parse(text: &str) -> Result<Self, (usize, String)> {
        Ok(match text {
            "sign" => CryptoOp::Sign,
            "verify" => CryptoOp::Verify,
            "seal" => CryptoOp::Seal,
            "open" => CryptoOp::Open,
            "mac" => CryptoOp::Mac,
            "*" => CryptoOp::Any,
            _ => return Err((1, format!("unknown key operation `{text}`: use sign, verify, seal, open, mac or `*`"))),
        })
    }
}

impl fmt::Display for CryptoOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CryptoOp::Sign => "sign",
            CryptoOp::Verify => "verify",
            CryptoOp::Seal => "seal",
            CryptoOp::Open => "open",
            CryptoOp::Mac => "mac",
            CryptoOp::Any => "*",
        })
    }
}

impl Capability {
    /// Whether a grant of `self` covers a request for `other`: equal, or `self` is broader.
    pub fn covers(&self, other: &Capability) -> bool {
        use Capability::*;
        match (self, other) {
            (FilesystemWrite(g), FilesystemWrite(r) | FilesystemRead(r)) => g.contains(r),
            (FilesystemRead(g), FilesystemRead(r)) => g.contains(r),
            (NetworkOutbound(gh, gp), NetworkOutbound(rh, rp)) => gh.covers(rh) && gp.covers(rp),
            (NetworkInbound(g), NetworkInbound(r)) => g.covers(r),
            (Env(g), Env(r)) => g.covers(r),
            (CryptoKey(gk, go), CryptoKey(rk, ro)) => gk.covers(rk) && go.covers(*ro),
            (NnModel(g), NnModel(r)) => g.covers(r),
            _ => false,
        }
    }

    /// The domain of the token (`filesystem`, `network`, `env`, `crypto`, `nn`).
    pub fn domain(&self) -> &'static str {
        match self {
            Capability::FilesystemRead(_) | Capability::FilesystemWrite(_) => "filesystem",
            Capability::NetworkOutbound(..) | Capability::NetworkInbound(_) => "network",
            Capability::Env(_) => "env",
            Capability::CryptoKey(..) => "crypto",
            Capability::NnModel(_) => "nn",
        }
    }
}

impl FromStr for Capability {
    type Err = TokenError;

    fn from_str(token: &str) -> Result<Self, TokenError> {
        let fail = |position: usize, reason: String| TokenError {
            token: token.to_string(),
            position,
            reason,
        };
        if token.len() > MAX_TOKEN_LEN {
            return Err(fail(MAX_TOKEN_LEN + 1, format!("tokens are limited to {MAX_TOKEN_LEN} bytes")));
        }
        // Positions are reported in characters; every fixed part of the grammar is ASCII.
        let char_pos = |byte: usize| token[..byte.min(token.len())].chars().count() + 1;
        let (domain, rest) = token.split_once(':').ok_or_else(|| {
            fail(token.chars().count() + 1, "expected `DOMAIN:...` (filesystem, network, env, crypto or nn)".into())
        })?;
        let rest_at = domain.len() + 1;
        let sub = |at: usize, r: Result<Capability, (usize, String)>| {
            r.map_err(|(p, reason)| fail(char_pos(at + p - 1), reason))
        };
        match domain {
            "filesystem" => {
                let (kind, path) = rest
                    .split_once(':')
                    .ok_or_else(|| fail(char_pos(token.len()), "expected `filesystem:read:DIR` or `filesystem:write:DIR`".into()))?;
                let path_at = rest_at + kind.len() + 1;
                let make: fn(GuestDir) -> Capability = match kind {
                    "read" => Capability::FilesystemRead,
                    "write" => Capability::FilesystemWrite,
                    _ => return Err(fail(char_pos(rest_at), format!("unknown filesystem access `{kind}`: use `read` or `write`"))),
                };
                sub(path_at, GuestDir::parse(path).map(make))
            }
            "network" => {
                let (kind, target) = rest
                    .split_once(':')
                    .ok_or_else(|| fail(char_pos(token.len()), "expected `network:outbound:...` or `network:inbound:PORT`".into()))?;
                let target_at = rest_at + kind.len() + 1;
                match kind {
                    "outbound" if target.starts_with('[') => {
                        // `[IPv6]:PORT`: the address holds colons, so split at the closing bracket.
                        let Some(close) = target.find(']') else {
                            return Err(fail(char_pos(token.len()), "an IPv6 address must be closed with `]`".into()));
                        };
                        let (host, rest) = target.split_at(close + 1);
                        let Some(port) = rest.strip_prefix(':') else {
                            return Err(fail(char_pos(target_at + close + 1), "expected `:PORT` after the IPv6 address".into()));
                        };
                        let host = HostPattern::parse(host).map_err(|(p, r)| fail(char_pos(target_at + p - 1), r))?;
                        let port = PortPattern::parse(port).map_err(|(p, r)| fail(char_pos(target_at + close + 2 + p - 1), r))?;
                        Ok(Capability::NetworkOutbound(host, port))
                    }
                    "outbound" => match target.rsplit_once(':') {
                        // Only a bracketed IPv6 address may hold colons, so the last colon splits off the port.
                        Some((host, port)) if !host.is_empty() => {
                            let port_at = target_at + target.len() - port.len();
                            let host = HostPattern::parse(host).map_err(|(p, r)| fail(char_pos(target_at + p - 1), r))?;
                            let port = PortPattern::parse(port).map_err(|(p, r)| fail(char_pos(port_at + p - 1), r))?;
                            Ok(Capability::NetworkOutbound(host, port))
                        }
                        Some(_) => Err(fail(char_pos(target_at), "empty host".into())),
                        None => sub(target_at, PortPattern::parse(target).map(|p| Capability::NetworkOutbound(HostPattern::Any, p))),
                    },
                    "inbound" => sub(target_at, PortPattern::parse(target).map(Capability::NetworkInbound)),
                    _ => Err(fail(char_pos(rest_at), format!("unknown network direction `{kind}`: use `outbound` or `inbound`"))),
                }
            }
            "env" => sub(rest_at, EnvPattern::parse(rest).map(Capability::Env)),
            "crypto" => {
                let expected = "expected `crypto:key:NAME:OP`";
                let Some(target) = rest.strip_prefix("key:") else {
                    let at = if rest.starts_with("key") { rest_at + 3 } else { rest_at };
                    return Err(fail(char_pos(at), format!("{expected} (the only crypto kind is `key`)")));
                };
                let name_at = rest_at + 4;
                let Some((name, op)) = target.rsplit_once(':') else {
                    return Err(fail(char_pos(token.len()), format!("{expected}: the operation is missing")));
                };
                let key = KeyPattern::parse(name).map_err(|(p, r)| fail(char_pos(name_at + p - 1), r))?;
                let op = CryptoOp::parse(op).map_err(|(p, r)| fail(char_pos(name_at + name.len() + 1 + p - 1), r))?;
                Ok(Capability::CryptoKey(key, op))
            }
            "nn" => {
                let Some(name) = rest.strip_prefix("model:") else {
                    return Err(fail(char_pos(rest_at), "expected `nn:model:NAME` (the only nn kind is `model`)".into()));
                };
                sub(rest_at + 6, ModelPattern::parse(name).map(Capability::NnModel))
            }
            _ => Err(fail(1, format!("unknown capability domain `{domain}`: use filesystem, network, env, crypto or nn"))),
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Capability::FilesystemRead(d) => write!(f, "filesystem:read:{d}"),
            Capability::FilesystemWrite(d) => write!(f, "filesystem:write:{d}"),
            Capability::NetworkOutbound(HostPattern::Any, p) => write!(f, "network:outbound:{p}"),
            Capability::NetworkOutbound(h, p) => write!(f, "network:outbound:{h}:{p}"),
            Capability::NetworkInbound(p) => write!(f, "network:inbound:{p}"),
            Capability::Env(e) => write!(f, "env:{e}"),
            Capability::CryptoKey(k, o) => write!(f, "crypto:key:{k}:{o}"),
            Capability::NnModel(m) => write!(f, "nn:model:{m}"),
        }
    }
}

impl serde::Serialize for Capability {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Capability {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The outcome of matching requests against grants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    /// Requests covered by at least one grant: exactly what the guest gets.
    pub effective: Vec<Capability>,
    /// Requests no grant covers: the guest does not get them.
    pub uncovered: Vec<Capability>,
}

/// Matches what a package requests against what the operator grants. The guest never gets more than
/// it requested: each effective capability is a request, never a grant.
pub fn resolve(requested: &[Capability], granted: &[Capability]) -> Resolution {
    let mut out = Resolution::default();
    for request in requested {
        if granted.iter().any(|g| g.covers(request)) {
            out.effective.push(request.clone());
        } else {
            out.uncovered.push(request.clone());
        }
    }
    out
}

/// What a package's component effectively gets from `granted` (plus everything it requests when
/// `grant_requested`): the requests some grant covers, in request order.
pub fn effective_grants(requested: &[Capability], granted: &[Capability], grant_requested: bool) -> Vec<Capability> {
    if grant_requested {
        return requested.to_vec();
    }
    resolve(requested, granted).effective
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(s: &str) -> Capability {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn round_trips_canonical_tokens() {
        for t in [
            "filesystem:read:/var/data",
            "filesystem:write:/",
            "network:outbound:443",
            "network:outbound:*",
            "network:outbound:api.example.com:443",
            "network:outbound:*.example.com:*",
            "network:outbound:10.0.0.1:80",
            "network:outbound:[::1]:8080",
            "network:inbound:8080",
            "env:LOG_LEVEL",
            "env:APP_*",
            "env:*",
            "crypto:key:payments:sign",
            "crypto:key:vault.v2:*",
            "crypto:key:*:verify",
            "nn:model:orientation",
            "nn:model:*",
        ] {
            assert_eq!(cap(t).to_string(), t);
        }
    }

    #[test]
    fn normalises() {
        assert_eq!(cap("filesystem:read:/data/").to_string(), "filesystem:read:/data");
        assert_eq!(cap("network:outbound:API.Example.COM:443").to_string(), "network:outbound:api.example.com:443");
        assert_eq!(cap("network:outbound:*:22"), cap("network:outbound:22"));
        assert_eq!(cap("network:outbound:[::ffff:10.0.0.1]:80").to_string(), "network:outbound:10.0.0.1:80");
        // Paths may contain colons.
        assert_eq!(cap("filesystem:read:/a:b").to_string(), "filesystem:read:/a:b");
    }

    #[test]
    fn reports_fault_positions() {
        let cases = [
            ("disk:read:/x", 1, "unknown capability domain"),
            ("filesystem:exec:/x", 12, "unknown filesystem access"),
            ("filesystem:read:data", 17, "absolute"),
            ("filesystem:read:/a/../b", 20, "`..`"),
            ("filesystem:read:/a//b", 20, "empty path component"),
            ("network:outbound:api.example.com:http", 34, "not a port"),
            ("network:outbound:0", 18, "not a port"),
            ("network:outbound:api.exa_mple.com:443", 25, "`_`"),
            ("network:outbound:a.*.com:443", 20, "`*`"),
            ("network:outbound:::1:443", 18, "brackets"),
            ("network:outbound:[::1:443", 26, "`]`"),
            ("network:outbound:[::1]", 23, "`:PORT`"),
            ("network:sideways:1", 9, "unknown network direction"),
            ("env:1ABC", 5, "digit"),
            ("env:A-B", 6, "letters, digits"),
            ("env", 4, "DOMAIN"),
            ("crypto:secret:x:sign", 8, "crypto:key:NAME:OP"),
            ("crypto:key:pay/ments:sign", 15, "letters, digits"),
            ("crypto:key:-x:sign", 12, "start with"),
            ("crypto:key:payments:decrypt", 21, "unknown key operation"),
            ("crypto:key:payments", 20, "operation is missing"),
            ("nn:graph:x", 4, "nn:model:NAME"),
            ("nn:model:Mobile_Net", 10, "a-z"),
        ];
        for (token, position, reason) in cases {
            let err = token.parse::<Capability>().expect_err(token);
            assert_eq!(err.position, position, "{token}: {err}");
            assert!(err.reason.contains(reason), "{token}: {err}");
            assert!(err.to_string().contains(token));
        }
    }

    #[test]
    fn coverage() {
        assert!(cap("filesystem:write:/data").covers(&cap("filesystem:read:/data")));
        assert!(cap("filesystem:write:/data").covers(&cap("filesystem:write:/data/sub")));
        assert!(!cap("filesystem:read:/data").covers(&cap("filesystem:write:/data")));
        assert!(!cap("filesystem:read:/data").covers(&cap("filesystem:read:/database")));
        assert!(cap("filesystem:read:/").covers(&cap("filesystem:read:/etc")));
        assert!(cap("network:outbound:*.example.com:443").covers(&cap("network:outbound:api.example.com:443")));
        assert!(!cap("network:outbound:*.example.com:443").covers(&cap("network:outbound:example.com:443")));
        assert!(!cap("network:outbound:*.example.com:443").covers(&cap("network:outbound:api.example.com:80")));
        assert!(!cap("network:outbound:*.example.com:443").covers(&cap("network:outbound:evilexample.com:443")));
        assert!(cap("network:outbound:443").covers(&cap("network:outbound:1.2.3.4:443")));
        assert!(!cap("network:outbound:api.example.com:443").covers(&cap("network:outbound:443")));
        assert!(cap("network:outbound:*.example.com:*").covers(&cap("network:outbound:*.a.example.com:443")));
        assert!(cap("env:APP_*").covers(&cap("env:APP_MODE")));
        assert!(!cap("env:APP_MODE").covers(&cap("env:APP_*")));
        assert!(!cap("network:inbound:80").covers(&cap("network:outbound:80")));
        assert!(cap("crypto:key:*:sign").covers(&cap("crypto:key:payments:sign")));
        assert!(cap("crypto:key:payments:*").covers(&cap("crypto:key:payments:open")));
        assert!(!cap("crypto:key:payments:sign").covers(&cap("crypto:key:payments:verify")));
        assert!(!cap("crypto:key:payments:sign").covers(&cap("crypto:key:*:sign")));
        assert!(!cap("crypto:key:payments:sign").covers(&cap("crypto:key:payments2:sign")));
        assert!(cap("nn:model:*").covers(&cap("nn:model:orientation")));
        assert!(!cap("nn:model:orientation").covers(&cap("nn:model:*")));
        assert!(!cap("nn:model:a").covers(&cap("nn:model:b")));
    }

    #[test]
    fn resolution_never_exceeds_requests() {
        let requested = vec![cap("filesystem:read:/data/in"), cap("env:HOME"), cap("network:outbound:a.com:443")];
        let granted = vec![cap("filesystem:write:/data"), cap("network:outbound:*")];
        let r = resolve(&requested, &granted);
        assert_eq!(r.effective, vec![cap("filesystem:read:/data/in"), cap("network:outbound:a.com:443")]);
        assert_eq!(r.uncovered, vec![cap("env:HOME")]);
    }

    #[test]
    fn relative_paths() {
        let root = GuestDir::parse("/").unwrap();
        let data = GuestDir::parse("/data").unwrap();
        let sub = GuestDir::parse("/data/a/b").unwrap();
        assert_eq!(data.relative(&sub), Some("a/b"));
        assert_eq!(data.relative(&data), Some(""));
        assert_eq!(root.relative(&sub), Some("data/a/b"));
        assert_eq!(sub.relative(&data), None);
    }
}

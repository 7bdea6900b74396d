//! Deploy policy for `.wasmzip` packages: before a package runs (`wasmzip run --policy FILE`) or is
//! deployed (`wasmzip serve --policy FILE`), [`Policy::check`] decides whether it may, and a
//! [`Refusal`] names the policy file, the rule, the package and the offending item.
//!
//! # `policy.toml`
//!
//! ```toml
//! # Keys the policy talks about, by name (letters, digits, `-`, `_`, `.`). Paths are relative to the
//! # policy file. These keys are also the ones trusted to verify signatures.
//! [keys]
//! release = "keys/release.pub"
//! ci = "keys/ci.pub"
//!
//! # Rules per function (package name), first match wins. A package that matches no rule is refused.
//! [[functions]]
//! names = ["payments-*"]          # patterns: `*` matches any run of characters, nothing else is special
//! signers = ["release", "ci"]     # only signatures by these keys count for these functions
//! signatures = 2                  # at least this many distinct valid signatures from `signers` (default 1)
//! grant_ceiling = ["network:outbound:*.pay.example:443", "env:PAY_*"]  # the most they may ever be granted
//!
//! [[functions]]
//! names = ["dev-*"]
//! allow_unsigned = true           # needs no signature (then `signatures` is 0 and may be left out)
//!
//! [[functions]]
//! names = ["*"]                   # every other name; a rule after this one could never match
//! signers = ["ci"]
//!
//! [sbom]
//! required = true                 # a package without an SBOM is refused (default false)
//! refuse_licenses = ["GPL-3.0-only", "AGPL-*"]   # SPDX ids or free names; `*` globs; case ignored
//!
//! [[sbom.refuse_dependencies]]
//! name = "openssl-sys"            # a pattern, as in `names`
//! versions = "<0.9.80"            # a Cargo-style version requirement; left out: every version
//! purl_type = "cargo"             # left out: any ecosystem
//!
//! [advisories]
//! on_match = "refuse"             # "refuse" (default) or "warn", for advisories from `--advisories DIR`
//!
//! [versions]
//! downgrade = "refuse"            # "refuse" (default): deploying a lower version than the one that runs
//!                                 # needs `--allow-downgrade`; "allow": it does not
//! ```
//!
//! Every table and key is optional except at least one `[[functions]]` rule with `names`. Unknown
//! keys are errors, and so are: a signer that `[keys]` does not define, a key file that cannot be
//! read, a pattern with `?`, `[`, `{` or whitespace, a capability token that does not parse, a
//! version requirement that does not parse, `signatures = 0` without `allow_unsigned = true`
//! (`allow_unsigned = true` with `signatures` above 0 too), and more `signatures` than the rule has
//! distinct signer keys, and a rule after one whose `names` hold `*` alone (it could never
//! match). Every load error names the policy file, the line and column, and the key.
//!
//! # What [`Policy::check`] checks, in order
//!
//! 1. `functions`: the first rule one of whose `names` matches the package name; none: refused.
//! 2. `functions[N].signatures`: the distinct keys among the rule's `signers` whose signatures over
//!    the package verified; fewer than `signatures`: refused.
//! 3. `functions[N].grant_ceiling`: every capability every component would effectively get must be
//!    covered by one ceiling token (an empty list allows none); a rule without it sets no ceiling.
//! 4. `sbom.required`: a package without an SBOM is refused.
//! 5. `sbom.refuse_licenses`: each licence of each SBOM item (several on one item all apply) is
//!    read as an SPDX expression where it parses as one, leniently as crates.io writes them
//!    (`MIT/Apache-2.0`, `Apache 2.0`, `GPL-3.0+`): `A OR B` is acceptable when either side is,
//!    `A AND B` only when both are, and `X WITH E` is matched as `X`. A licence is matched by its
//!    canonical SPDX id, case ignored: `X+` for "X or later" (GNU licences have `-or-later` ids),
//!    and a deprecated bare GNU id such as `GPL-3.0` also as the `GPL-3.0-only` it means. Text that
//!    is not an SPDX expression is matched whole, as a plain string.
//! 6. `sbom.refuse_dependencies`: an item whose name matches, whose purl type matches (an item
//!    without a purl counts as `cargo`), and whose version is in `versions` (compared in semver
//!    order, pre-releases included; an item whose version cannot be compared is refused).
//! 7. `advisories`: OSV advisories that affect an SBOM item (see [`Advisories`]) refuse the package
//!    or become warnings in the [`Verdict`]. Without an SBOM, nothing can be checked, which is a
//!    warning.
//! 8. `versions.downgrade`: a version below the one deployed under the same name is refused unless
//!    the caller passes `allow_downgrade` (`--allow-downgrade`).
#![deny(missing_docs)]

mod advisories;
mod check;
mod config;
mod error;
mod gate;
mod glob;
mod licenses;
mod versions;

use std::path::Path;

use serde::Deserialize;
use wasmzip_package::{Capability, KeyId, PublicKey};

pub use advisories::{Advisories, Advisory, MAX_ADVISORY_DEPTH, MAX_ADVISORY_FILE_SIZE};
pub use config::MAX_POLICY_SIZE;
pub use error::{PolicyError, Refusal};
pub use gate::{Deployment, Gate};
use glob::Glob;
pub use glob::MAX_PATTERN_LEN;

/// A loaded deploy policy: every pattern, key, token and version requirement already parsed.
#[derive(Debug, Clone)]
pub struct Policy {
    label: String,
    keys: Vec<(String, PublicKey)>,
    rules: Vec<config::FunctionRule>,
    sbom_required: bool,
    refuse_licenses: Vec<Glob>,
    refuse_dependencies: Vec<config::DependencyRule>,
    on_match: OnMatch,
    downgrade: Downgrade,
}

/// What an advisory match does (`[advisories] on_match`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnMatch {
    /// The package is refused.
    #[default]
    Refuse,
    /// The package is allowed, with a warning in the [`Verdict`].
    Warn,
}

/// Whether a lower version may replace a deployed one (`[versions] downgrade`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Downgrade {
    /// Only with `--allow-downgrade`.
    #[default]
    Refuse,
    /// Always.
    Allow,
}

impl Policy {
    /// Reads a policy file; key paths are relative to its directory, and errors name it as given.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        config::load(path)
    }

    /// Parses a policy; key paths are relative to `base_dir`, and errors name the file `label`.
    pub fn from_toml(text: &str, base_dir: &Path, label: &str) -> Result<Policy, PolicyError> {
        config::parse(text, base_dir, label)
    }

    /// Keys named by the policy, to be trusted for signature verification, in name order.
    pub fn keys(&self) -> Vec<(String, PublicKey)> {
        self.keys.clone()
    }

    /// The policy file, for messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// What to do on an advisory match.
    pub fn on_match(&self) -> OnMatch {
        self.on_match
    }

    /// Decides whether `subject` may run or be deployed; `advisories` are those given with
    /// `--advisories`, if any.
    pub fn check(
        &self,
        subject: &Subject<'_>,
        advisories: Option<&Advisories>,
    ) -> Result<Verdict, Refusal> {
        check::check(self, subject, advisories)
    }
}

/// What the policy is asked about: one verified package, and where it would go.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The package name (the "function name").
    pub name: &'a str,
    /// The package version.
    pub version: &'a semver::Version,
    /// Keys whose signatures over this package verified (any order; may include keys the policy
    /// does not know, which never count).
    pub signers: &'a [KeyId],
    /// Per component: its name and the capabilities it would effectively get.
    pub grants: &'a [(String, Vec<Capability>)],
    /// What the package's SBOM lists; `None` when it has no SBOM.
    pub inventory: Option<&'a [InventoryItem]>,
    /// What runs now under this name, if anything (`serve`).
    pub deployed_version: Option<&'a semver::Version>,
    /// `--allow-downgrade` was given.
    pub allow_downgrade: bool,
}

/// One thing an SBOM lists, as the package crate's SBOM reader gives it.
pub use wasmzip_package::sbom::InventoryItem;

/// A package the policy allows, with what it noticed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Warnings: advisory matches under `on_match = "warn"`, and advisories that could not be
    /// checked for want of an SBOM.
    pub warnings: Vec<Finding>,
    /// Which `[[functions]]` rule matched, e.g. `functions[0] (payments-*)`.
    pub rule: String,
}

/// One thing a rule found that does not refuse the package.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule {rule}: {message}")]
pub struct Finding {
    /// The rule (`advisories`).
    pub rule: String,
    /// The item (`NAME@VERSION`).
    pub item: String,
    /// The explanation, naming the item.
    pub message: String,
}

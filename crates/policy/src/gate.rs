//! The gate `run` and `serve` put a package through: the policy and advisories together, applied to
//! what the package's SBOM says and what it would be granted, with every decision an audit line.

use wasmzip_package::{Capability, PackageFacts};

use crate::{Advisories, InventoryItem, Policy, Refusal, Subject, Verdict};

/// A loaded deploy policy and the advisories it checks SBOMs against.
#[derive(Debug)]
pub struct Gate {
    /// The policy.
    pub policy: Policy,
    /// OSV advisories (`--advisories DIR`), if any were given.
    pub advisories: Option<Advisories>,
}

/// What a decision sees beyond the package itself.
#[derive(Debug, Clone, Copy)]
pub struct Deployment<'a> {
    /// Per component: its name and what it would effectively be granted.
    pub grants: &'a [(String, Vec<Capability>)],
    /// The version serving now under the package's name, if any.
    pub deployed_version: Option<&'a semver::Version>,
    /// `--allow-downgrade`.
    pub allow_downgrade: bool,
}

impl Gate {
    /// Admits the package `facts` describe (verified as far as its manifest, signatures and SBOM,
    /// before any component or resource is read) as `deployment` describes it, or refuses it. A
    /// refusal, every warning (an advisory under `on_match = "warn"`) and an admission are logged as
    /// `wasmzip::audit` lines naming the package and its digest, the rule and the offending item.
    pub fn admit(&self, facts: &PackageFacts<'_>, deployment: &Deployment<'_>) -> Result<Verdict, Refusal> {
        let manifest = facts.manifest;
        let subject = format!("{}@{}", manifest.name, manifest.version);
        let result = self.decide(facts, deployment);
        match &result {
            Ok(verdict) => {
                for w in &verdict.warnings {
                    tracing::warn!(target: "wasmzip::audit", subject = %subject, digest = %facts.digest, rule = %w.rule, item = %w.item, "policy warning: {}", w.message);
                }
                tracing::info!(target: "wasmzip::audit", subject = %subject, digest = %facts.digest, rule = %verdict.rule, "admitted by policy {}", self.policy.label());
            }
            Err(refusal) => {
                tracing::warn!(target: "wasmzip::audit", subject = %subject, digest = %facts.digest, rule = %refusal.rule, item = %refusal.item, "refused: {refusal}");
            }
        }
        result
    }

    fn decide(&self, facts: &PackageFacts<'_>, deployment: &Deployment<'_>) -> Result<Verdict, Refusal> {
        let manifest = facts.manifest;
        let inventory: Option<Vec<InventoryItem>> = match facts.sbom {
            Some(bytes) => Some(
                wasmzip_package::sbom::read_inventory(bytes)
                    .map_err(|e| Refusal {
                        policy: self.policy.label().to_string(),
                        rule: "sbom".into(),
                        package: format!("{}@{}", manifest.name, manifest.version),
                        item: wasmzip_package::manifest::SBOM_MEMBER.into(),
                        message: format!("the package's SBOM cannot be read: {e}"),
                    })?
                    .items,
            ),
            None => None,
        };
        let signers = facts.valid_signers();
        let subject = Subject {
            name: manifest.name.as_str(),
            version: &manifest.version,
            signers: &signers,
            grants: deployment.grants,
            inventory: inventory.as_deref(),
            deployed_version: deployment.deployed_version,
            allow_downgrade: deployment.allow_downgrade,
        };
        self.policy.check(&subject, self.advisories.as_ref())
    }
}

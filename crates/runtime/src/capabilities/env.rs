//! `env:NAME`: the guest sees exactly the variables its effective capabilities name, with values from
//! `--env NAME=VALUE` or else the host environment. Others are absent.

use wasmtime::component::Linker;
use wasmzip_package::Capability;

use super::{CapabilityError, CapabilityUnit};
use crate::engine::EngineKind;
use crate::instance::{InstanceContext, InstanceState};
use crate::plan::{PlanContext, PlanError};

/// The environment unit: the variables are decided once, when the component is planned.
pub struct Env;

impl CapabilityUnit for Env {
    type Planned = Vec<(String, String)>;
    type Instance = ();

    fn link(_linker: &mut Linker<InstanceState>, _kind: EngineKind) -> wasmtime::Result<()> {
        Ok(())
    }

    fn plan(cx: &mut PlanContext<'_>) -> Result<Self::Planned, PlanError> {
        let host: Vec<(String, String)> = std::env::vars().collect();
        Ok(plan_env(cx.effective, &cx.host.env, &host))
    }

    fn instantiate(vars: &Self::Planned, cx: &mut InstanceContext<'_>) -> Result<(), CapabilityError> {
        cx.wasi.envs(vars);
        Ok(())
    }
}

/// Builds the guest environment, sorted by name.
pub fn plan_env(effective: &[Capability], overrides: &[(String, String)], host: &[(String, String)]) -> Vec<(String, String)> {
    let allowed = |name: &str| effective.iter().any(|c| matches!(c, Capability::Env(p) if p.matches(name)));
    let mut out: Vec<(String, String)> = Vec::new();
    for (name, value) in overrides.iter().chain(host) {
        if allowed(name) && !out.iter().any(|(n, _)| n == name) {
            out.push((name.clone(), value.clone()));
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_effective_names_with_overrides_first() {
        let caps: Vec<Capability> = vec!["env:A".parse().unwrap(), "env:APP_*".parse().unwrap()];
        let host = vec![("A".to_string(), "host".to_string()), ("APP_X".into(), "1".into()), ("SECRET".into(), "no".into())];
        let overrides = vec![("A".to_string(), "cli".to_string()), ("B".into(), "not granted".into())];
        assert_eq!(plan_env(&caps, &overrides, &host), vec![("A".into(), "cli".into()), ("APP_X".into(), "1".into())]);
    }
}

//! `nn:model:NAME` in a build without inference (no cargo feature `nn`, such as the device builds):
//! the unit links nothing, and a component granted a model, or shipping one, is refused when it is
//! planned, with an error that says why, instead of failing later at its first wasi-nn call.

use wasmtime::component::Linker;

use super::{CapabilityError, CapabilityUnit};
use crate::engine::EngineKind;
use crate::instance::{InstanceContext, InstanceState};
use crate::plan::{PlanContext, PlanError};

/// The most model bytes one component may load by default (unused without inference).
pub const DEFAULT_MAX_MODEL_BYTES: u64 = 1 << 30;

/// How models would be loaded: nothing to choose in this build.
#[derive(Debug, Clone, Default)]
pub struct NnConfig {}

/// Why a component that uses models cannot be planned here.
#[derive(Debug, thiserror::Error)]
pub enum NnError {
    /// The build has no inference back-end.
    #[error("{what} uses model `{model}`, but this wasmzip was built without wasi-nn (cargo feature `nn`)")]
    Unavailable {
        /// The component.
        what: String,
        /// The model granted or shipped.
        model: String,
    },
}

/// The wasi-nn unit of a build without inference.
pub struct Nn;

impl CapabilityUnit for Nn {
    type Planned = ();
    type Instance = ();

    fn link(_linker: &mut Linker<InstanceState>, _kind: EngineKind) -> wasmtime::Result<()> {
        Ok(())
    }

    fn plan(cx: &mut PlanContext<'_>) -> Result<(), PlanError> {
        let what = cx.component.description();
        if let Some(model) = cx.component.models().first() {
            return Err(NnError::Unavailable { what, model: model.name.to_string() }.into());
        }
        if let Some(token) = cx.effective.iter().find(|c| matches!(c, wasmzip_package::Capability::NnModel(_))) {
            return Err(NnError::Unavailable { what, model: token.to_string() }.into());
        }
        Ok(())
    }

    fn instantiate(_planned: &(), _cx: &mut InstanceContext<'_>) -> Result<(), CapabilityError> {
        Ok(())
    }
}

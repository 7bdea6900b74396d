//! Capabilities on the host side. Each is one unit ([`CapabilityUnit`]) in its own module: how it
//! links its host interfaces, what it plans once per component from the effective capability
//! tokens and the host's resources, and what each instance of the component holds. The list at
//! the end of this file is the only place that names them all; adding a capability is a module and
//! one line there.
//!
//! Always on, whatever is granted: stdio, wall and monotonic clocks, random numbers, and the package's
//! own resources read-only at `/pkg` (see [`filesystem`]).

pub mod crypto;
pub mod env;
pub mod filesystem;
pub mod http;
pub mod network;
#[cfg(feature = "nn")]
pub mod nn;
#[cfg(not(feature = "nn"))]
#[path = "nn_absent.rs"]
pub mod nn;

use std::path::PathBuf;

use wasmtime::component::Linker;

use crate::engine::EngineKind;
use crate::instance::{InstanceContext, InstanceState};
use crate::plan::{PlanContext, PlanError};

/// Why a capability could not be put in place for an instance.
#[derive(Debug, thiserror::Error)]
pub enum CapabilityError {
    /// The host directory behind a filesystem capability is missing.
    #[error("`{token}`: host directory {} does not exist or is not a directory", host.display())]
    HostDirectory {
        /// The token.
        token: String,
        /// The host directory.
        host: PathBuf,
    },
    /// Wasmtime refused a preopen.
    #[error("cannot open {} for `{guest}`: {message}", host.display())]
    Preopen {
        /// The guest directory.
        guest: String,
        /// The host directory.
        host: PathBuf,
        /// Wasmtime's reason.
        message: String,
    },
}

/// One capability: its host interfaces, its state planned once per component, and its state in
/// one instance.
pub trait CapabilityUnit {
    /// Built once per planned component and shared by all its instances.
    type Planned: Send + Sync + 'static;
    /// Held by one instance (in its [`InstanceState`]).
    type Instance: Send + 'static;

    /// Adds the unit's own host interfaces to the linker of the engine `kind` (nothing for units
    /// that only configure Wasmtime's WASI); WASI 0.3 interfaces only on the concurrent engine.
    fn link(linker: &mut Linker<InstanceState>, kind: EngineKind) -> wasmtime::Result<()>;

    /// Plans the unit for one component: typed grants from the effective tokens, resources opened
    /// or loaded once, warnings decided.
    fn plan(cx: &mut PlanContext<'_>) -> Result<Self::Planned, PlanError>;

    /// Configures one instance (its WASI context and its own state).
    fn instantiate(planned: &Self::Planned, cx: &mut InstanceContext<'_>) -> Result<Self::Instance, CapabilityError>;
}

/// Declares the capability units: one field of the planned and of the instance aggregate each,
/// linked, planned and instantiated in the order given.
macro_rules! capability_units {
    ($($(#[$doc:meta])* $field:ident: $unit:ty),* $(,)?) => {
        /// Every unit's planned state for one component.
        pub struct PlannedCapabilities {
            $($(#[$doc])* pub $field: <$unit as CapabilityUnit>::Planned,)*
        }

        /// Every unit's state in one instance.
        pub struct InstanceCapabilities {
            $($(#[$doc])* pub $field: <$unit as CapabilityUnit>::Instance,)*
        }

        /// Links every unit's host interfaces.
        pub(crate) fn link_all(linker: &mut Linker<InstanceState>, kind: EngineKind) -> wasmtime::Result<()> {
            $(<$unit as CapabilityUnit>::link(linker, kind)?;)*
            Ok(())
        }

        impl PlannedCapabilities {
            pub(crate) fn plan(cx: &mut PlanContext<'_>) -> Result<Self, PlanError> {
                Ok(PlannedCapabilities { $($field: <$unit as CapabilityUnit>::plan(cx)?,)* })
            }

            pub(crate) fn instantiate(&self, cx: &mut InstanceContext<'_>) -> Result<InstanceCapabilities, CapabilityError> {
                Ok(InstanceCapabilities { $($field: <$unit as CapabilityUnit>::instantiate(&self.$field, cx)?,)* })
            }
        }
    };
}

capability_units! {
    /// `filesystem:read:DIR`, `filesystem:write:DIR`, and `/pkg`.
    filesystem: filesystem::Filesystem,
    /// `env:NAME`.
    env: env::Env,
    /// `network:outbound:*` and `network:inbound:PORT` for sockets and name lookup.
    network: network::Network,
    /// `network:outbound:*` for outgoing `wasi:http` requests.
    http: http::OutboundHttp,
    /// `crypto:key:NAME:OP`.
    crypto: crypto::Crypto,
    /// `nn:model:NAME`.
    nn: nn::Nn,
}

//! The wasmzip runtime: one Wasmtime engine per process, the compile cache, store limits and epoch
//! deadlines, the linker, and each capability as its own module (`capabilities::*`).
//!
//! Data flows one way: a verified component ([`wasmzip_package::VerifiedComponent`]) and the
//! operator's grants and resources are [`plan`]ned once into a [`PlannedComponent`]; each instance
//! is then a store made from it. It never parses packages or command lines.
#![deny(missing_docs)]

pub mod audit;
pub mod cache;
pub mod cache_dir;
pub mod capabilities;
pub mod command;
pub mod engine;
pub mod inspect;
pub mod instance;
pub mod limits;
pub mod plan;
pub mod precompiled;
pub mod requests;

pub use capabilities::CapabilityError;
pub use command::{AbandonedRun, CommandOutcome, Finished, run_command};
pub use engine::{CacheOutcome, CodeTarget, EngineKind, PoolConfig, Program, Runtime, RuntimeConfig};
pub use precompiled::{Artefact, ArtefactError};
pub use inspect::WasiVersion;
pub use instance::{InstanceScope, InstanceState};
pub use limits::GuestLimits;
pub use requests::{RequestScope, RequestScopes};
pub use plan::{Entrypoint, HostResources, KeystoreSource, OperatorGrants, PlanError, PlanWarning, PlannedComponent, plan};

/// Why the runtime could not start a guest.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The engine could not be built.
    #[error("cannot configure the WebAssembly engine: {0}")]
    Engine(String),
    /// The bytes do not compile.
    #[error("cannot compile {what}: {message}")]
    Compile {
        /// What was compiled.
        what: String,
        /// Why it failed.
        message: String,
    },
    /// This build has no compiler, and no precompiled code was given.
    #[error("cannot compile {what}: this wasmzip has no compiler (built without cargo feature `cranelift`); give it --precompiled ARTEFACT, made by `wasmzip compile --target` on a full build")]
    NoCompiler {
        /// What was to be compiled.
        what: String,
    },
    /// The guest imports something this host does not provide, or its types do not match.
    #[error("cannot link the guest: {0}")]
    Link(String),
    /// A capability could not be put in place.
    #[error(transparent)]
    Capability(#[from] CapabilityError),
}

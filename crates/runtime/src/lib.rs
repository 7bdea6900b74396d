//! The wasmzip runtime: one Wasmtime engine per process, the compile cache, store limits and epoch
//! deadlines, the linker, and each capability as its own module (`capabilities::*`).
//!
//! It takes verified bytes and a capability plan; it never parses packages or command lines.
#![deny(missing_docs)]

pub mod audit;
pub mod cache;
pub mod capabilities;
pub mod command;
pub mod engine;
pub mod inspect;
pub mod limits;

pub use capabilities::{CapabilityError, CapabilityPlan};
pub use command::{AbandonedRun, CommandOutcome, CommandSpec, Finished, run_command};
pub use engine::{CacheOutcome, PoolConfig, Program, Runtime, RuntimeConfig};
pub use limits::GuestLimits;

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
    /// The guest imports something this host does not provide, or its types do not match.
    #[error("cannot link the guest: {0}")]
    Link(String),
    /// A capability could not be put in place.
    #[error(transparent)]
    Capability(#[from] CapabilityError),
}

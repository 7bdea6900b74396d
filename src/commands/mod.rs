//! One module per subcommand.

pub mod bare;
pub mod cache;
#[cfg(feature = "cranelift")]
pub mod compile;
#[cfg(feature = "server")]
pub mod deploy;
#[cfg(feature = "server")]
pub mod functions;
pub mod inspect;
pub mod keygen;
pub mod keys;
pub mod pack;
#[cfg(feature = "server")]
pub mod pull;
#[cfg(feature = "server")]
pub mod push;
#[cfg(feature = "server")]
pub mod remove;
#[cfg(feature = "server")]
pub mod rollback;
pub mod run;
pub mod sbom;
#[cfg(feature = "server")]
pub mod serve;
pub mod sign;
pub mod verify;

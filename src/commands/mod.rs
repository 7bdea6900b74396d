//! One module per subcommand.

pub mod bare;
pub mod cache;
pub mod deploy;
pub mod functions;
pub mod inspect;
pub mod keygen;
pub mod keys;
pub mod pack;
pub mod pull;
pub mod push;
pub mod remove;
pub mod rollback;
pub mod run;
pub mod sbom;
pub mod serve;
pub mod sign;
pub mod verify;

//! One module per subcommand.

pub mod inspect;
pub mod keygen;
pub mod pack;
pub mod run;
pub mod verify;

//! `wasmzip rollback NAME`: make a function's previous version serve again.

use anyhow::Result;
use bytes::Bytes;
use clap::Args;
use http::Method;

use crate::admin_client::{AdminClient, ServerOptions, encode};

/// Roll a function back to its previous version.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Function name.
    pub name: String,
    #[command(flatten)]
    pub server: ServerOptions,
}

/// Runs the command.
pub async fn run(args: RollbackArgs) -> Result<u8> {
    let client = AdminClient::new(&args.server)?;
    let info = client.call(Method::POST, &format!("/v1/functions/{}/rollback", encode(&args.name)), Bytes::new()).await?;
    println!("{} now serves version {} (sequence {})", args.name, info["active"]["version"].as_str().unwrap_or("?"), info["active"]["sequence"]);
    Ok(0)
}

//! `wasmzip remove NAME`: stop serving a function and forget its versions.

use anyhow::Result;
use bytes::Bytes;
use clap::Args;
use http::Method;

use crate::admin_client::{AdminClient, ServerOptions, encode};

/// Remove a deployed function.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// Function name.
    pub name: String,
    #[command(flatten)]
    pub server: ServerOptions,
}

/// Runs the command.
pub async fn run(args: RemoveArgs) -> Result<u8> {
    let client = AdminClient::new(&args.server)?;
    client.call(Method::DELETE, &format!("/v1/functions/{}", encode(&args.name)), Bytes::new()).await?;
    println!("removed {}", args.name);
    Ok(0)
}

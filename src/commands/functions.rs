//! `wasmzip functions`: list what a running server has deployed.

use anyhow::Result;
use bytes::Bytes;
use clap::Args;
use http::Method;

use crate::admin_client::{AdminClient, ServerOptions};

/// List deployed functions with their versions.
#[derive(Debug, Args)]
pub struct FunctionsArgs {
    #[command(flatten)]
    pub server: ServerOptions,
    /// Print the server's JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command.
pub async fn run(args: FunctionsArgs) -> Result<u8> {
    let client = AdminClient::new(&args.server)?;
    let value = client.call(Method::GET, "/v1/functions", Bytes::new()).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(0);
    }
    let functions = value["functions"].as_array().cloned().unwrap_or_default();
    if functions.is_empty() {
        println!("no functions deployed");
    }
    for f in functions {
        let routes: Vec<&str> = f["routes"].as_array().map(|r| r.iter().filter_map(|x| x.as_str()).collect()).unwrap_or_default();
        let active = f["active"]["sequence"].as_u64();
        println!("{}  routes {}", f["name"].as_str().unwrap_or("?"), if routes.is_empty() { "(not serving)".into() } else { routes.join(", ") });
        for v in f["versions"].as_array().cloned().unwrap_or_default() {
            let marker = if v["sequence"].as_u64() == active { "*" } else { " " };
            println!(
                "  {marker} {:<12} sequence {:<4} sha256:{}",
                v["version"].as_str().unwrap_or("?"),
                v["sequence"],
                v["digest"].as_str().unwrap_or("?")
            );
        }
    }
    Ok(0)
}

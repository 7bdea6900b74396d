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
    /// Show, for every node of the server's cluster, which version of each function it serves and
    /// whether it has converged to the desired state (nodes that stopped reporting drop out).
    #[arg(long)]
    pub nodes: bool,
}

/// Runs the command.
pub async fn run(args: FunctionsArgs) -> Result<u8> {
    let client = AdminClient::new(&args.server)?;
    if args.nodes {
        return nodes(&client, args.json).await;
    }
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

/// `--nodes`: one block per node, one line per function.
async fn nodes(client: &AdminClient, json: bool) -> Result<u8> {
    let value = client.call(Method::GET, "/v1/nodes", Bytes::new()).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(0);
    }
    let nodes = value["nodes"].as_array().cloned().unwrap_or_default();
    if nodes.is_empty() {
        println!("no node has reported");
    }
    for node in nodes {
        let state = if node["converged"].as_bool() == Some(true) { "converged" } else { "not converged" };
        let degraded = if node["synced"].as_bool() == Some(false) {
            format!(", degraded: {}", node["reason"].as_str().unwrap_or("cannot reach the desired state"))
        } else {
            String::new()
        };
        println!("{}  {}  {state}{degraded}", node["node"].as_str().unwrap_or("?"), node["public"].as_str().unwrap_or("?"));
        for f in node["functions"].as_array().cloned().unwrap_or_default() {
            let serving = match (f["version"].as_str(), f["sequence"].as_u64()) {
                (Some(v), Some(s)) => format!("{v} (sequence {s})"),
                _ => "nothing".to_string(),
            };
            let desired = match (f["desired_version"].as_str(), f["desired_sequence"].as_u64()) {
                (Some(v), Some(s)) => format!("{v} (sequence {s})"),
                _ => "not deployed".to_string(),
            };
            let mark = if f["converged"].as_bool() == Some(true) { "ok" } else { "!!" };
            let error = f["error"].as_str().map(|e| format!("  error: {e}")).unwrap_or_default();
            println!("  {mark} {:<20} serves {serving:<24} desired {desired}{error}", f["name"].as_str().unwrap_or("?"));
        }
    }
    Ok(0)
}

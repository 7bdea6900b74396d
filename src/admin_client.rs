//! The HTTP client the deploy commands use to talk to a server's admin API.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Args;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Where the admin API is and how to authenticate.
#[derive(Debug, Args)]
pub struct ServerOptions {
    /// Base URL of the server's admin listener.
    #[arg(long, env = "WASMZIP_SERVER", default_value = "http://127.0.0.1:9090", value_name = "URL")]
    pub server: String,
    /// File holding the admin bearer token.
    #[arg(long, env = "WASMZIP_TOKEN_FILE", value_name = "FILE")]
    pub token_file: PathBuf,
}

/// A client for one admin API.
pub struct AdminClient {
    base: String,
    token: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl AdminClient {
    /// Reads the token and prepares the client.
    pub fn new(options: &ServerOptions) -> Result<Self> {
        let token = std::fs::read_to_string(&options.token_file)
            .with_context(|| format!("cannot read the token file {}", options.token_file.display()))?
            .trim()
            .to_string();
        if token.is_empty() {
            bail!("the token file {} is empty", options.token_file.display());
        }
        if !options.server.starts_with("http://") {
            bail!("--server must be an http:// URL of the admin listener (got `{}`)", options.server);
        }
        Ok(AdminClient {
            base: options.server.trim_end_matches('/').to_string(),
            token,
            client: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    /// Sends a request and returns the JSON answer; an error status becomes an error naming it.
    pub async fn call(&self, method: Method, path: &str, body: Bytes) -> Result<serde_json::Value> {
        let url = format!("{}{}", self.base, path);
        let request = Request::builder()
            .method(method)
            .uri(&url)
            .header(http::header::AUTHORIZATION, format!("Bearer {}", self.token))
            .body(Full::new(body))
            .with_context(|| format!("invalid URL {url}"))?;
        let response = self.client.request(request).await.with_context(|| format!("cannot reach {}", self.base))?;
        let status = response.status();
        let bytes = response.into_body().collect().await.context("the server's answer broke off")?.to_bytes();
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        if status != StatusCode::OK && status != StatusCode::CREATED {
            let message = value.get("error").and_then(|e| e.as_str()).map(str::to_string).unwrap_or_else(|| value.to_string());
            bail!("the server answered {status}: {message}");
        }
        Ok(value)
    }
}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

//! The options every command that talks to an OCI registry takes: credentials, extra TLS roots and
//! the hosts reached over plain HTTP (docs/registry.md).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use wasmzip_registry::{Credentials, RegistryConfig};

/// How to reach and authenticate to OCI registries.
#[derive(Debug, Clone, Args)]
pub struct RegistryOptions {
    /// User name for the registry (basic authentication, or exchanged for a bearer token where the
    /// registry asks for one); needs --registry-password-file.
    #[arg(long, value_name = "USER")]
    pub registry_user: Option<String>,
    /// File holding the registry password (its first line) for --registry-user.
    #[arg(long, value_name = "FILE", env = "WASMZIP_REGISTRY_PASSWORD_FILE")]
    pub registry_password_file: Option<PathBuf>,
    /// File holding a registry bearer token (its first line), sent with every request.
    #[arg(long, value_name = "FILE", conflicts_with = "registry_user")]
    pub registry_token_file: Option<PathBuf>,
    /// A PEM file of CA certificates trusted for registry TLS besides the webpki roots; repeatable.
    #[arg(long = "registry-ca", value_name = "FILE")]
    pub registry_ca: Vec<PathBuf>,
    /// A registry host (HOST for any port, or HOST:PORT) reached over plain HTTP; repeatable.
    /// 127.0.0.1 and [::1] always are; every other host, localhost included, uses TLS.
    #[arg(long = "registry-plain-http", value_name = "HOST")]
    pub registry_plain_http: Vec<String>,
}

impl RegistryOptions {
    /// The registry client configuration these options describe (files read now).
    pub fn config(&self) -> Result<RegistryConfig> {
        let credentials = match (&self.registry_user, &self.registry_password_file, &self.registry_token_file) {
            (Some(_), _, Some(_)) => bail!("--registry-user and --registry-token-file exclude each other"),
            (None, Some(_), Some(_)) => bail!("--registry-password-file (or WASMZIP_REGISTRY_PASSWORD_FILE) and --registry-token-file exclude each other"),
            (Some(username), Some(file), None) => Credentials::Basic { username: username.clone(), password: first_line(file, "registry password")? },
            (Some(_), None, None) => bail!("--registry-user needs --registry-password-file (or WASMZIP_REGISTRY_PASSWORD_FILE)"),
            (None, Some(file), None) => bail!("--registry-password-file {} (or WASMZIP_REGISTRY_PASSWORD_FILE) needs --registry-user", file.display()),
            (None, None, Some(file)) => Credentials::Bearer(first_line(file, "registry token")?),
            (None, None, None) => Credentials::Anonymous,
        };
        let mut extra_roots_pem = Vec::new();
        for path in &self.registry_ca {
            let pem = std::fs::read(path).with_context(|| format!("cannot read --registry-ca {}", path.display()))?;
            if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                bail!("--registry-ca {}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it", path.display());
            }
            extra_roots_pem.push(pem);
        }
        Ok(RegistryConfig { credentials, plain_http_hosts: self.registry_plain_http.clone(), extra_roots_pem })
    }
}

/// A secret file's first line, without its line ending; an empty one is refused.
pub fn first_line(path: &Path, what: &str) -> Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the {what} file {}", path.display()))?;
    let line = text.lines().next().unwrap_or("").to_string();
    if line.is_empty() {
        bail!("the {what} file {} is empty", path.display());
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> RegistryOptions {
        RegistryOptions { registry_user: None, registry_password_file: None, registry_token_file: None, registry_ca: vec![], registry_plain_http: vec![] }
    }

    #[test]
    fn credentials_come_from_files_and_must_be_complete() {
        let dir = tempfile::tempdir().unwrap();
        let password = dir.path().join("password");
        std::fs::write(&password, "s3cret\r\nignored\n").unwrap();
        let basic = RegistryOptions { registry_user: Some("ci".into()), registry_password_file: Some(password.clone()), ..options() };
        assert_eq!(basic.config().unwrap().credentials, Credentials::Basic { username: "ci".into(), password: "s3cret".into() });
        let token = RegistryOptions { registry_token_file: Some(password.clone()), ..options() };
        assert_eq!(token.config().unwrap().credentials, Credentials::Bearer("s3cret".into()));
        assert_eq!(options().config().unwrap().credentials, Credentials::Anonymous);
        let user_only = RegistryOptions { registry_user: Some("ci".into()), ..options() };
        assert!(user_only.config().unwrap_err().to_string().contains("needs --registry-password-file"));
        let file_only = RegistryOptions { registry_password_file: Some(password.clone()), ..options() };
        assert!(file_only.config().unwrap_err().to_string().contains("needs --registry-user"));
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let e = RegistryOptions { registry_token_file: Some(empty), ..options() }.config().unwrap_err().to_string();
        assert!(e.contains("is empty"), "{e}");
    }

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("ca.pem");
        std::fs::write(&junk, "hello").unwrap();
        let e = RegistryOptions { registry_ca: vec![junk.clone()], ..options() }.config().unwrap_err().to_string();
        assert!(e.contains("ca.pem") && e.contains("no PEM certificate"), "{e}");
    }
}

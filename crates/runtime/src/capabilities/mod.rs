//! Capabilities on the host side: each domain in its own module turns the effective capability tokens
//! into Wasmtime configuration, once, before the guest starts.
//!
//! Always on, whatever is granted: stdio, wall and monotonic clocks, random numbers, and the package's
//! own resources read-only at `/pkg`.

pub mod crypto;
pub mod env;
pub mod filesystem;
pub mod network;
pub mod nn;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime_wasi::{FsPerms, WasiCtxBuilder};
use wasmzip_package::Capability;
use wasmzip_package::manifest::RESOURCES_GUEST_DIR;

use self::crypto::CryptoGrants;
use self::filesystem::{Mount, Preopen};
use self::network::{NetworkGuard, NetworkPolicy};
use self::nn::NnGrants;
use crate::limits::MAX_RANDOM_BYTES;

/// Why a capability could not be put in place.
#[derive(Debug, thiserror::Error)]
pub enum CapabilityError {
    /// The host directory behind a filesystem capability is missing.
    #[error("`{token}`: host directory {} does not exist or is not a directory", host.display())]
    HostDirectory {
        /// The token.
        token: String,
        /// The host directory.
        host: PathBuf,
    },
    /// Wasmtime refused a preopen.
    #[error("cannot open {} for `{guest}`: {message}", host.display())]
    Preopen {
        /// The guest directory.
        guest: String,
        /// The host directory.
        host: PathBuf,
        /// Wasmtime's reason.
        message: String,
    },
}

/// What one guest may touch, planned from its effective capabilities.
#[derive(Debug, Clone, Default)]
pub struct CapabilityPlan {
    /// Directories it sees.
    pub preopens: Vec<Preopen>,
    /// Network rules.
    pub network: NetworkPolicy,
    /// Environment variables it sees.
    pub env: Vec<(String, String)>,
    /// Host-held keys it may use, and for what.
    pub crypto: Arc<CryptoGrants>,
    /// Models it may load.
    pub nn: Arc<NnGrants>,
}

impl CapabilityPlan {
    /// Plans `effective`, mapping directories through `mounts`, taking variable values from
    /// `env_overrides` and then the host environment, and adding the package resources at `/pkg`.
    pub fn new(
        effective: &[Capability],
        mounts: &[Mount],
        env_overrides: &[(String, String)],
        resources_dir: Option<&Path>,
    ) -> Result<Self, CapabilityError> {
        let mut preopens = filesystem::plan_preopens(effective, mounts)?;
        if let Some(dir) = resources_dir {
            preopens.push(Preopen { guest: RESOURCES_GUEST_DIR.to_string(), host: dir.to_path_buf(), writable: false });
        }
        let host_env: Vec<(String, String)> = std::env::vars().collect();
        Ok(CapabilityPlan {
            preopens,
            network: NetworkPolicy::from_capabilities(effective),
            env: env::plan_env(effective, env_overrides, &host_env),
            crypto: Arc::new(CryptoGrants::from_capabilities(effective)),
            nn: Arc::new(NnGrants::from_capabilities(effective)),
        })
    }

    /// Applies the plan to a WASI context builder; `guard` is the instance's network guard.
    pub fn configure(&self, builder: &mut WasiCtxBuilder, guard: &Arc<NetworkGuard>) -> Result<(), CapabilityError> {
        for p in &self.preopens {
            let perms = if p.writable { FsPerms::ReadWrite } else { FsPerms::ReadOnly };
            builder.preopened_dir(&p.host, &p.guest, perms).map_err(|e| CapabilityError::Preopen {
                guest: p.guest.clone(),
                host: p.host.clone(),
                message: e.to_string(),
            })?;
        }
        builder.envs(&self.env);
        builder.max_random_size(MAX_RANDOM_BYTES);
        // Sockets stay available so that every attempt reaches the address check, which decides and
        // audits; name lookup is ours (see `network`).
        builder.allow_tcp(true).allow_udp(true).allow_ip_name_lookup(true);
        let guard = guard.clone();
        builder.socket_addr_check(move |addr, use_| {
            let allowed = guard.check_address(addr, use_);
            Box::pin(async move { allowed })
        });
        Ok(())
    }
}

//! `filesystem:read:DIR` and `filesystem:write:DIR`: each effective capability becomes one Wasmtime
//! preopen, read-only or read-write, at the guest directory it names; the package's resources are
//! always there read-only at `/pkg`. WASI 0.2 and 0.3 guests see the same preopens.

use std::path::PathBuf;
use std::str::FromStr;

use wasmtime::component::Linker;
use wasmtime_wasi::filesystem::WasiFilesystemCtx;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};
use wasmzip_package::Capability;
use wasmzip_package::capability::GuestDir;
use wasmzip_package::manifest::RESOURCES_GUEST_DIR;

use super::{CapabilityError, CapabilityUnit};
use crate::engine::EngineKind;
use crate::instance::{InstanceContext, InstanceState};
use crate::plan::{PlanContext, PlanError, PlanWarning};

/// The filesystem unit: the preopened directories are opened once, when the component is planned,
/// and every instance gets handles to the same open directories (never reopened by path, so a
/// directory renamed or replaced on the host later does not change what the component sees).
pub struct Filesystem;

/// What the filesystem unit plans for a component.
pub struct PlannedFilesystem {
    /// The directories, as planned.
    pub preopens: Vec<Preopen>,
    /// Them, opened.
    opened: WasiFilesystemCtx,
}

impl CapabilityUnit for Filesystem {
    type Planned = PlannedFilesystem;
    type Instance = ();

    fn link(_linker: &mut Linker<InstanceState>, _kind: EngineKind) -> wasmtime::Result<()> {
        Ok(())
    }

    fn plan(cx: &mut PlanContext<'_>) -> Result<PlannedFilesystem, PlanError> {
        for mount in unused_mounts(cx.effective, &cx.host.mounts) {
            cx.warnings.push(PlanWarning::UnusedMount(mount.clone()));
        }
        let mut preopens = plan_preopens(cx.effective, &cx.host.mounts)?;
        if let Some(dir) = cx.component.resources_dir() {
            preopens.push(Preopen { guest: RESOURCES_GUEST_DIR.to_string(), host: dir.to_path_buf(), writable: false });
        }
        let mut builder = WasiCtxBuilder::new();
        for p in &preopens {
            let perms = if p.writable { FsPerms::ReadWrite } else { FsPerms::ReadOnly };
            builder.preopened_dir(&p.host, &p.guest, perms).map_err(|e| CapabilityError::Preopen {
                guest: p.guest.clone(),
                host: p.host.clone(),
                message: e.to_string(),
            })?;
        }
        let opened = builder.build().filesystem().clone();
        Ok(PlannedFilesystem { preopens, opened })
    }

    fn instantiate(planned: &PlannedFilesystem, cx: &mut InstanceContext<'_>) -> Result<(), CapabilityError> {
        cx.filesystem = Some(planned.opened.clone());
        Ok(())
    }
}

/// `--mount GUEST=HOST`: where a guest directory lives on the host (otherwise the same path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The guest directory.
    pub guest: GuestDir,
    /// The host directory it maps to.
    pub host: PathBuf,
}

impl FromStr for Mount {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (guest, host) = text.split_once('=').ok_or_else(|| format!("`{text}`: expected GUEST=HOST"))?;
        let guest = GuestDir::parse(guest).map_err(|(pos, reason)| format!("`{text}` at position {pos}: {reason}"))?;
        if host.is_empty() {
            return Err(format!("`{text}`: the host directory is empty"));
        }
        Ok(Mount { guest, host: PathBuf::from(host) })
    }
}

/// One directory the guest will see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preopen {
    /// Path in the guest.
    pub guest: String,
    /// Directory on the host.
    pub host: PathBuf,
    /// Whether the guest may create, write, rename and delete.
    pub writable: bool,
}

/// Plans the preopens for the effective filesystem capabilities. Fails when a host directory is
/// missing, naming the token.
pub fn plan_preopens(effective: &[Capability], mounts: &[Mount]) -> Result<Vec<Preopen>, CapabilityError> {
    let mut plan: Vec<Preopen> = Vec::new();
    for cap in effective {
        let (dir, writable) = match cap {
            Capability::FilesystemRead(d) => (d, false),
            Capability::FilesystemWrite(d) => (d, true),
            _ => continue,
        };
        let host = host_path(dir, mounts);
        if !host.is_dir() {
            return Err(CapabilityError::HostDirectory { token: cap.to_string(), host });
        }
        match plan.iter_mut().find(|p| p.guest == dir.as_str()) {
            Some(existing) => existing.writable |= writable,
            None => plan.push(Preopen { guest: dir.as_str().to_string(), host, writable }),
        }
    }
    Ok(plan)
}

/// The host directory for a guest directory: through the mount with the longest matching guest
/// prefix, or the same path when no mount covers it.
fn host_path(dir: &GuestDir, mounts: &[Mount]) -> PathBuf {
    mounts
        .iter()
        .filter(|m| m.guest.contains(dir))
        .max_by_key(|m| m.guest.as_str().len())
        .map(|m| match m.guest.relative(dir) {
            Some("") | None => m.host.clone(),
            Some(rel) => m.host.join(rel),
        })
        .unwrap_or_else(|| PathBuf::from(dir.as_str()))
}

/// Mounts that no effective capability uses (worth a warning: a mount grants nothing by itself).
pub fn unused_mounts<'a>(effective: &[Capability], mounts: &'a [Mount]) -> Vec<&'a Mount> {
    mounts
        .iter()
        .filter(|m| {
            !effective.iter().any(|c| match c {
                Capability::FilesystemRead(d) | Capability::FilesystemWrite(d) => m.guest.contains(d) || d.contains(&m.guest),
                _ => false,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_map_longest_prefix_and_merge_write() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("a/sub")).unwrap();
        let caps: Vec<Capability> = ["filesystem:read:/data/sub", "filesystem:write:/data", "filesystem:read:/data"]
            .iter()
            .map(|t| t.parse().unwrap())
            .collect();
        let mounts = vec![Mount::from_str(&format!("/data={}", tmp.path().join("a").display())).unwrap()];
        let plan = plan_preopens(&caps, &mounts).unwrap();
        assert_eq!(plan.len(), 2);
        assert_eq!(plan[0], Preopen { guest: "/data/sub".into(), host: tmp.path().join("a/sub"), writable: false });
        assert_eq!(plan[1], Preopen { guest: "/data".into(), host: tmp.path().join("a"), writable: true });
    }

    #[test]
    fn missing_host_dir_names_token() {
        let caps = vec!["filesystem:read:/definitely/not/here".parse().unwrap()];
        let err = plan_preopens(&caps, &[]).unwrap_err().to_string();
        assert!(err.contains("filesystem:read:/definitely/not/here"), "{err}");
    }

    #[test]
    fn mount_syntax() {
        assert!(Mount::from_str("data=/x").is_err());
        assert!(Mount::from_str("/data").is_err());
        assert!(Mount::from_str("/data=").is_err());
    }
}

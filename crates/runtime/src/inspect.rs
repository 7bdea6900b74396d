//! What a component imports and exports, read with `wasmparser` (nothing is compiled), and how that
//! compares with the capabilities it requests.

use wasmparser::{Parser, Payload};
use wasmzip_package::Capability;

use crate::RuntimeError;

/// The top-level imports and exports of a component.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorldSummary {
    /// Imported instance and function names (`wasi:cli/environment@0.2.12`, ...).
    pub imports: Vec<String>,
    /// Exported names.
    pub exports: Vec<String>,
}

/// A generation of WASI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WasiVersion {
    /// WASI preview 1 (`wasi_snapshot_preview1`, core modules).
    Preview1,
    /// WASI 0.2 (components, `wasi:*@0.2.x`).
    P2,
    /// WASI 0.3 (components with async functions, streams and futures, `wasi:*@0.3.x`).
    P3,
}

impl std::fmt::Display for WasiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WasiVersion::Preview1 => "preview1",
            WasiVersion::P2 => "0.2",
            WasiVersion::P3 => "0.3",
        })
    }
}

impl WorldSummary {
    /// The WASI generations the component's `wasi:` imports and exports belong to, oldest first. A
    /// Rust component built for `wasm32-wasip2` with the `wasip3` crate has both: its standard
    /// library imports 0.2 while its own code uses 0.3.
    pub fn wasi_versions(&self) -> Vec<WasiVersion> {
        let mut versions: Vec<WasiVersion> = self
            .imports
            .iter()
            .chain(&self.exports)
            .filter(|name| name.starts_with("wasi:"))
            .filter_map(|name| match name.rsplit_once('@').map(|(_, v)| v) {
                Some(v) if v.starts_with("0.2.") => Some(WasiVersion::P2),
                Some(v) if v.starts_with("0.3.") => Some(WasiVersion::P3),
                _ => None,
            })
            .collect();
        versions.sort();
        versions.dedup();
        versions
    }
}

/// WASI packages this host provides (`wasi:http` to `http` components, under `wasmzip serve`).
const PROVIDED: &[&str] = &["wasi:io/", "wasi:clocks/", "wasi:random/", "wasi:cli/", "wasi:filesystem/", "wasi:sockets/", "wasi:http/", "wasi:nn/", "wasmzip:crypto/"];

/// Reads the top-level imports and exports of a component.
pub fn component_world(bytes: &[u8]) -> Result<WorldSummary, RuntimeError> {
    let bad = |message: String| RuntimeError::Compile { what: "component".into(), message };
    if !Parser::is_component(bytes) {
        return Err(bad("not a WebAssembly component".into()));
    }
    let mut summary = WorldSummary::default();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(|e| bad(e.to_string()))? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    summary.imports.push(import.map_err(|e| bad(e.to_string()))?.name.name.to_string());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    summary.exports.push(export.map_err(|e| bad(e.to_string()))?.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Ok(summary)
}

/// Warnings for imports that no requested capability covers, requests that no import uses, and imports
/// this host does not provide at all.
pub fn capability_warnings(world: &WorldSummary, requested: &[Capability]) -> Vec<String> {
    let mut warnings = Vec::new();
    let imports_any = |prefix: &str| world.imports.iter().any(|i| i.starts_with(prefix));
    for import in &world.imports {
        if !PROVIDED.iter().any(|p| import.starts_with(p)) {
            warnings.push(format!("imports `{import}`, which this host does not provide: the component will not start"));
        }
    }
    let requests = |domain: &str| requested.iter().filter(|c| c.domain() == domain).collect::<Vec<_>>();
    if let Some(import) = world.imports.iter().find(|i| i.starts_with("wasi:sockets/") && !i.starts_with("wasi:sockets/network")) {
        if requests("network").is_empty() {
            warnings.push(format!("imports `{import}` but requests no network capability: every connection and lookup will be denied"));
        }
    }
    let outbound_http = |i: &String| i.starts_with("wasi:http/outgoing-handler") || i.starts_with("wasi:http/client");
    if let Some(import) = world.imports.iter().find(|i| outbound_http(i))
        && !requests("network").iter().any(|c| matches!(c, Capability::NetworkOutbound(..)))
    {
        warnings.push(format!("imports `{import}` but requests no network:outbound capability: every outbound request will be denied"));
    }
    for cap in requests("network") {
        if !imports_any("wasi:sockets/") && !world.imports.iter().any(outbound_http) {
            warnings.push(format!("requests `{cap}` but imports neither wasi:sockets nor an outbound wasi:http interface"));
        }
    }
    for cap in requests("filesystem") {
        if !imports_any("wasi:filesystem/preopens") {
            warnings.push(format!("requests `{cap}` but imports no wasi:filesystem/preopens"));
        }
    }
    if let Some(import) = world.imports.iter().find(|i| i.starts_with("wasmzip:crypto/keys"))
        && requests("crypto").is_empty()
    {
        warnings.push(format!("imports `{import}` but requests no crypto:key capability: every key will be denied"));
    }
    if let Some(import) = world.imports.iter().find(|i| i.starts_with("wasi:nn/graph"))
        && requests("nn").is_empty()
    {
        warnings.push(format!("imports `{import}` but requests no nn:model capability: every model will be refused"));
    }
    for cap in requests("nn") {
        if !imports_any("wasi:nn/graph") {
            warnings.push(format!("requests `{cap}` but imports no wasi:nn/graph"));
        }
    }
    for cap in requests("crypto") {
        if !imports_any("wasmzip:crypto/keys") {
            warnings.push(format!("requests `{cap}` but imports no wasmzip:crypto/keys"));
        }
    }
    for cap in requests("env") {
        if !imports_any("wasi:cli/environment") {
            warnings.push(format!("requests `{cap}` but imports no wasi:cli/environment"));
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_both_ways() {
        let world = WorldSummary {
            imports: vec!["wasi:sockets/tcp@0.2.12".into(), "wasi:keyvalue/store@0.2.0".into()],
            exports: vec!["wasi:cli/run@0.2.12".into()],
        };
        let requested: Vec<Capability> = vec!["env:HOME".parse().unwrap()];
        let w = capability_warnings(&world, &requested);
        assert!(w.iter().any(|m| m.contains("wasi:keyvalue/store") && m.contains("does not provide")), "{w:?}");
        assert!(w.iter().any(|m| m.contains("wasi:sockets/tcp") && m.contains("no network capability")), "{w:?}");
        assert!(w.iter().any(|m| m.contains("env:HOME") && m.contains("wasi:cli/environment")), "{w:?}");
    }

    #[test]
    fn tells_wasi_generations_apart() {
        let world = WorldSummary {
            imports: vec!["wasi:cli/environment@0.2.12".into(), "wasi:filesystem/types@0.3.0".into(), "wasmzip:crypto/keys@0.1.0".into()],
            exports: vec!["wasi:cli/run@0.3.0".into()],
        };
        assert_eq!(world.wasi_versions(), vec![WasiVersion::P2, WasiVersion::P3]);
        assert_eq!(WorldSummary::default().wasi_versions(), vec![]);
    }

    #[test]
    fn rejects_core_modules() {
        assert!(component_world(b"\0asm\x01\0\0\0").is_err());
    }
}

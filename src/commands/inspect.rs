//! `wasmzip inspect`: show what a package holds, what it requests and what its components import.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use serde_json::json;
use wasmzip_runtime::inspect::{capability_warnings, component_world};

/// Show a package's manifest, members, signer, requested capabilities and WIT imports and exports.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The package.
    pub package: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Print the package's SBOM (CycloneDX JSON) and nothing else.
    #[arg(long, conflicts_with = "json")]
    pub sbom: bool,
}

/// Runs the command.
pub fn run(args: InspectArgs) -> Result<u8> {
    let report = wasmzip_package::inspect_package(&args.package)?;
    if args.sbom {
        let Some(sbom) = &report.sbom else {
            anyhow::bail!("{}: the package carries no SBOM (schema {} packages have none)", args.package.display(), report.manifest.schema);
        };
        use std::io::Write as _;
        std::io::stdout().lock().write_all(sbom)?;
        return Ok(0);
    }
    let m = &report.manifest;
    let mut components = Vec::new();
    for (name, entry) in &m.components {
        let bytes = report.components.get(name).expect("every component was read");
        let world = component_world(bytes)?;
        let warnings = capability_warnings(&world, &entry.capabilities);
        components.push((name, entry, world, warnings));
    }
    let signers: Vec<String> = report.claimed_signers.iter().map(|k| k.to_string()).collect();
    let mut models = Vec::new();
    for (name, entry) in &m.models {
        let pin = m.members.iter().find(|p| p.name == entry.member).expect("models are pinned");
        let bytes = report.models.get(name).expect("every model was read");
        models.push((name, entry, pin, model_tensors(name.as_str(), bytes)?));
    }

    if args.json {
        let value = json!({
            "name": m.name,
            "version": m.version.to_string(),
            "schema": m.schema,
            "description": m.description,
            "digest": format!("sha256:{}", report.digest),
            "archive_digest": format!("sha256:{}", report.archive_digest),
            "signers": signers,
            "signatures": report.signatures.iter().map(|s| json!({
                "key": s.key.to_string(),
                "checked": s.verified,
            })).collect::<Vec<_>>(),
            "sbom": report.sbom.is_some(),
            "provenance": report.provenance.as_ref().map(|p| json!({
                "builder": p.builder_id,
                "materials": p.materials.iter().map(|m| json!({"name": m.name, "digest": m.digest, "dirty": m.dirty})).collect::<Vec<_>>(),
            })),
            "members": m.members,
            "components": components.iter().map(|(name, entry, world, warnings)| json!({
                "name": name,
                "member": entry.member,
                "world": entry.world,
                "capabilities": entry.capabilities,
                "limits": entry.limits,
                "reuse": entry.reuse,
                "wasi": world.wasi_versions().iter().map(|v| v.to_string()).collect::<Vec<_>>(),
                "imports": world.imports,
                "exports": world.exports,
                "warnings": warnings,
            })).collect::<Vec<_>>(),
            "models": models.iter().map(|(name, entry, pin, info)| {
                let tensors = |list: &[Tensor]| list.iter().map(|t| json!({
                    "name": t.name, "type": t.element, "shape": t.shape,
                })).collect::<Vec<_>>();
                json!({
                    "name": name,
                    "member": entry.member,
                    "encoding": entry.encoding,
                    "target": entry.target,
                    "size": pin.size,
                    "sha256": pin.sha256,
                    "inputs": tensors(&info.inputs),
                    "outputs": tensors(&info.outputs),
                })
            }).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(0);
    }

    println!("package   {} {}", m.name, m.version);
    if let Some(d) = &m.description {
        println!("          {d}");
    }
    println!("digest    sha256:{}", report.digest);
    println!("archive   sha256:{}", report.archive_digest);
    if report.signatures.is_empty() {
        println!("signer    none (unsigned)");
    }
    for s in &report.signatures {
        let state = if s.verified { "signature holds for the key it carries; `wasmzip verify --trust` decides trust" } else { "claimed; `wasmzip verify --trust` checks it" };
        println!("signer    key {} ({state})", s.key);
    }
    match &report.sbom {
        Some(sbom) => println!("sbom      {} bytes (`wasmzip inspect --sbom` prints it)", sbom.len()),
        None => println!("sbom      none"),
    }
    if let Some(p) = &report.provenance {
        println!("provenance builder {}", p.builder_id);
        for mat in &p.materials {
            println!("  material {} {}{}", mat.name, mat.digest, if mat.dirty { " (dirty work tree)" } else { "" });
        }
    }
    println!("members");
    for pin in &m.members {
        println!("  {:<40} {:>12} bytes  sha256:{}", pin.name, pin.size, pin.sha256);
    }
    for (name, entry, pin, info) in &models {
        println!("model     {name} ({}, target {}, {}, {} bytes, sha256:{})", entry.encoding, entry.target, entry.member, pin.size, pin.sha256);
        for t in &info.inputs {
            println!("  input   {t}");
        }
        for t in &info.outputs {
            println!("  output  {t}");
        }
    }
    for (name, entry, world, warnings) in &components {
        let wasi: Vec<String> = world.wasi_versions().iter().map(|v| v.to_string()).collect();
        let wasi = if wasi.is_empty() { "no wasi imports".to_string() } else { format!("wasi {}", wasi.join(" + ")) };
        println!("component {name} (world {}, {}, {wasi})", entry.world, entry.member);
        let limits = [
            entry.limits.memory_bytes.map(|b| format!("memory {}", wasmzip_package::manifest::ByteSize(b))),
            entry.limits.timeout_ms.map(|t| format!("timeout {t}ms")),
        ];
        let limits: Vec<String> = limits.into_iter().flatten().collect();
        if !limits.is_empty() {
            println!("  limits: {}", limits.join(", "));
        }
        if let Some(reuse) = entry.reuse {
            let parts = [
                reuse.max_requests.map(|n| format!("{n} requests")),
                reuse.max_concurrent.map(|n| format!("{n} at once")),
                reuse.idle_timeout_ms.map(|ms| format!("idle {ms}ms")),
            ];
            let parts: Vec<String> = parts.into_iter().flatten().collect();
            match (reuse.enabled, parts.is_empty()) {
                (false, _) => println!("  reuse: off (a fresh instance per request)"),
                (true, true) => println!("  reuse: the host's limits"),
                (true, false) => println!("  reuse: at most {} per instance", parts.join(", ")),
            }
        }
        println!("  requests:");
        if entry.capabilities.is_empty() {
            println!("    (nothing)");
        }
        for cap in &entry.capabilities {
            println!("    {cap}");
        }
        println!("  imports:");
        for i in &world.imports {
            println!("    {i}");
        }
        println!("  exports:");
        for e in &world.exports {
            println!("    {e}");
        }
        for w in warnings {
            println!("  warning: {w}");
        }
    }
    Ok(0)
}

#[cfg(feature = "nn")]
use wasmzip_nn::TensorInfo as Tensor;

/// A model's input and output tensors, read by the inference back-end.
#[cfg(feature = "nn")]
fn model_tensors(name: &str, bytes: &[u8]) -> Result<wasmzip_nn::ModelInfo> {
    Ok(wasmzip_nn::describe_onnx(name, bytes)?)
}

/// What a build without inference says of a model's tensors: nothing (no back-end reads them).
#[cfg(not(feature = "nn"))]
#[derive(Default)]
struct Tensors {
    inputs: Vec<Tensor>,
    outputs: Vec<Tensor>,
}

/// A tensor as the full build describes it (never made in this build).
#[cfg(not(feature = "nn"))]
#[allow(dead_code)]
struct Tensor {
    name: String,
    element: String,
    shape: Vec<String>,
}

#[cfg(not(feature = "nn"))]
impl std::fmt::Display for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} [{}]", self.name, self.element, self.shape.join(", "))
    }
}

#[cfg(not(feature = "nn"))]
fn model_tensors(_name: &str, _bytes: &[u8]) -> Result<Tensors> {
    Ok(Tensors::default())
}

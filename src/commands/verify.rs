//! `wasmzip verify`: check a package's structure, digests, signatures and signers.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use wasmzip_package::{ResourceSink, Signer, VerifiedPackage};

use crate::exit;
use crate::options::TrustOptions;

/// Verify packages against trusted keys, reading every member once. With several packages, each is
/// reported on its own, and the command fails if any fails.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The packages.
    #[arg(required = true)]
    pub packages: Vec<PathBuf>,
    #[command(flatten)]
    pub trust: TrustOptions,
}

/// Runs the command.
pub fn run(args: VerifyArgs) -> Result<u8> {
    let policy = args.trust.policy()?;
    if let [one] = args.packages.as_slice() {
        let package = wasmzip_package::verify_package(one, &policy, ResourceSink::Discard)?;
        report(one, &package);
        return Ok(0);
    }
    let mut failed = 0;
    for path in &args.packages {
        match wasmzip_package::verify_package(path, &policy, ResourceSink::Discard) {
            Ok(package) => report(path, &package),
            Err(e) => {
                failed += 1;
                eprintln!("wasmzip: error: {e}");
            }
        }
    }
    if failed > 0 {
        eprintln!("wasmzip: error: {failed} of {} packages failed to verify", args.packages.len());
        return Ok(exit::REFUSED);
    }
    Ok(0)
}

fn report(path: &std::path::Path, package: &VerifiedPackage) {
    let manifest = package.manifest();
    let signer = match package.signer() {
        Signer::Key(id) => match package.signatures().len() {
            1 => format!("signed by trusted key {id}"),
            n => format!("signed by trusted key {id} and {} more", n - 1),
        },
        Signer::Unsigned => {
            eprintln!("wasmzip: warning: {} is not signed", path.display());
            "unsigned".to_string()
        }
    };
    println!("verified {} {} ({}): schema {}, {} pinned members, {signer}", manifest.name, manifest.version, path.display(), manifest.schema, manifest.members.len());
    for s in package.signatures() {
        let state = match (s.verified, s.trusted) {
            (true, true) => "valid, trusted",
            (true, false) => "valid, key not trusted",
            (false, _) => "not checked: schema 1 and the key is not trusted",
        };
        println!("signature key {} ({state})", s.key);
    }
    if let Some(p) = package.provenance() {
        println!("provenance builder {}", p.builder_id);
        for m in &p.materials {
            println!("provenance material {} {}{}", m.name, m.digest, if m.dirty { " (dirty work tree)" } else { "" });
        }
    }
    println!("sbom {}", if package.sbom().is_some() { "present" } else { "none" });
    println!("digest sha256:{}", package.digest());
    match package.archive_digest() {
        Ok(archive) => println!("archive sha256:{archive}"),
        Err(e) => eprintln!("wasmzip: warning: cannot hash {} for its archive digest: {e}", path.display()),
    }
}

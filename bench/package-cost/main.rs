//! Times `pack`, `verify` and (format 2 only) the deploy policy on one package directory with the
//! wasmzip-package crate it is built against: the current tree, or a baseline commit's (format 1, no
//! SBOM). `bench/package.sh` builds it both ways and prints the ratios.
//!
//! Usage: package-cost DIR RUNS [POLICY.toml ADVISORIES-DIR]   (DIR holds wasmzip.toml)
//! Prints `pack_us`, `verify_us` (medians), `size` (bytes); format 2 also `verify_digest_us` (verify
//! and the archive's own SHA-256, as `wasmzip verify` and a deploy do), and with a policy `admit_us`
//! and `verify_policy_us`.

use std::path::Path;
use std::time::Instant;

use wasmzip_package::{ResourceSink, SigningKey, TrustPolicy, verify_package};

fn median(mut v: Vec<u128>) -> u128 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = Path::new(&args[1]);
    let runs: usize = args[2].parse().expect("RUNS is a number");
    let scratch = std::env::temp_dir().join(format!("package-cost-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let key = SigningKey::generate().unwrap();
    let out = scratch.join("bench.wasmzip");
    let manifest = dir.join("wasmzip.toml");

    let mut packs = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        pack(&manifest, &key, &out);
        packs.push(t.elapsed().as_micros());
    }
    let trust = TrustPolicy { trusted: vec![key.public_key()], allow_unsigned: false };
    let mut verifies = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        let package = verify_package(&out, &trust, ResourceSink::Discard).unwrap();
        verifies.push(t.elapsed().as_micros());
        last = Some(package);
    }
    #[cfg(feature = "format2")]
    {
        let mut with_digest = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            let package = verify_package(&out, &trust, ResourceSink::Discard).unwrap();
            package.archive_digest().unwrap();
            with_digest.push(t.elapsed().as_micros());
        }
        println!("verify_digest_us {}", median(with_digest));
    }
    println!("pack_us {}", median(packs));
    println!("verify_us {}", median(verifies));
    println!("size {}", std::fs::metadata(&out).unwrap().len());
    if let Some(policy) = args.get(3) {
        admit(Path::new(policy), args.get(4).map(Path::new), &last.unwrap(), runs, &key, &scratch);
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

#[cfg(feature = "format2")]
fn pack(manifest: &Path, key: &SigningKey, out: &Path) {
    wasmzip_package::pack(manifest, &wasmzip_package::PackOptions { key: Some(key), output: Some(out), ..Default::default() }).unwrap();
}

#[cfg(not(feature = "format2"))]
fn pack(manifest: &Path, key: &SigningKey, out: &Path) {
    wasmzip_package::pack(manifest, Some(key), Some(out)).unwrap();
}

/// Loads the policy (its `[keys]` get this run's key as `bench`) and times verifying the package
/// with it deciding (`verify_package_admitted`, as `run --policy` and `serve --policy` do), and the
/// decision alone.
#[cfg(feature = "format2")]
fn admit(policy: &Path, advisories: Option<&Path>, package: &wasmzip_package::VerifiedPackage, runs: usize, key: &SigningKey, scratch: &Path) {
    use wasmzip_package::PackageFacts;
    let key_path = scratch.join("bench");
    key.write_pair(&key_path).unwrap();
    let text = std::fs::read_to_string(policy).unwrap().replace("@BENCH_KEY@", &format!("{}.pub", key_path.display()));
    let policy_path = scratch.join("policy.toml");
    std::fs::write(&policy_path, text).unwrap();
    let t = Instant::now();
    let gate = wasmzip_policy::Gate {
        policy: wasmzip_policy::Policy::load(&policy_path).unwrap(),
        advisories: advisories.map(|d| wasmzip_policy::Advisories::load(d).unwrap()),
    };
    let load_us = t.elapsed().as_micros();
    let decide = |facts: &PackageFacts<'_>| {
        let (name, entry) = facts.manifest.default_component(wasmzip_package::World::Http).unwrap();
        let grants = vec![(name.to_string(), entry.capabilities.clone())];
        let deployment = wasmzip_policy::Deployment { grants: &grants, deployed_version: None, allow_downgrade: false };
        gate.admit(facts, &deployment).map(drop)
    };
    let facts = PackageFacts { manifest: package.manifest(), digest: package.digest(), signatures: package.signatures(), sbom: package.sbom() };
    let mut admits = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        decide(&facts).unwrap();
        admits.push(t.elapsed().as_micros());
    }
    let trust = TrustPolicy { trusted: vec![key.public_key()], allow_unsigned: false };
    let out = scratch.join("bench.wasmzip");
    let mut verifies = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let verified = wasmzip_package::verify_package_admitted(&out, &trust, ResourceSink::Discard, decide).unwrap();
        verifies.push(t.elapsed().as_micros());
        // Dropped outside the timing, as in the other loops: freeing the verified bytes (and the
        // page faults of the next run's fresh buffers) cost some 8 ms here, which is not the policy.
        drop(verified);
    }
    println!("policy_load_us {load_us}");
    println!("admit_us {}", median(admits));
    println!("verify_policy_us {}", median(verifies));
}

#[cfg(not(feature = "format2"))]
fn admit(_: &Path, _: Option<&Path>, _: &wasmzip_package::VerifiedPackage, _: usize, _: &SigningKey, _: &Path) {
    panic!("the baseline has no deploy policy");
}

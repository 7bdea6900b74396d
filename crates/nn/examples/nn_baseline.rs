//! Native baseline for the wasi-nn benchmarks (bench/nn.sh): the same back-end code the host runs,
//! without wasm in between.
//!
//! ```text
//! nn_baseline tract|ort[=LIBPATH] MODEL IMAGE N [--target cpu|gpu|auto] [--pause-ms MS]
//! ```
//!
//! Preprocesses IMAGE exactly as the guests do (`guests/wasi-nn-guest`, `spec`: decode PNG/JPEG to
//! RGB, resize the shorter side to 256 with the Triangle filter, centre-crop 224, BGR planes with
//! ImageNet mean/std per colour, NCHW f32), loads MODEL through `wasmzip_nn::load_model` and runs N
//! inferences through the wasi-nn `Graph` / `ExecutionContext` API the host uses. Only `compute` and
//! reading the scores are timed (the guest's `inference_us` also includes copying the input out of
//! linear memory). Prints `label=L p50_us=P min_us=M n=N` (p50: the lower median, as the guest's),
//! plus `scores=...` and `load_ms=...` on a second line to stderr.
//!
//! `--pause-ms MS` sleeps MS milliseconds (untimed) before every inference, as a server that is idle
//! between requests does: bench/nn.sh passes the time an HTTP request spends outside inference.
//!
//! `ort` without `=LIBPATH` uses `$ORT_DYLIB_PATH`; it needs `--features ort`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use image::RgbImage;
use image::imageops::FilterType;
use wasmtime_wasi_nn::backend::NamedTensor;
use wasmtime_wasi_nn::wit::TensorType;
use wasmzip_nn::{BackendChoice, NnConfig, load_model};
use wasmzip_package::manifest::ModelTarget;

// The guest's `wasi_nn_guest::spec`, copied.
const INPUT_NAME: &str = "x";
const INPUT_DIMS: [u32; 4] = [1, 3, CROP, CROP];
const INPUT_LEN: usize = 3 * (CROP as usize) * (CROP as usize);
const LABELS: [&str; 4] = ["0", "90", "180", "270"];
const RESIZE_SHORTER_SIDE: u32 = 256;
const RESIZE_FILTER: FilterType = FilterType::Triangle;
const CROP: u32 = 224;
const CHANNEL_ORDER: [usize; 3] = [2, 1, 0];
const PIXEL_SCALE: f32 = 255.0;
const MEAN_RGB: [f32; 3] = [0.485, 0.456, 0.406];
const STD_RGB: [f32; 3] = [0.229, 0.224, 0.225];
const MAX_DECODE_ALLOC: u64 = 256 * 1024 * 1024;
const MAX_SIDE: u32 = 16384;

const USAGE: &str = "usage: nn_baseline tract|ort[=LIBPATH] MODEL IMAGE N [--target cpu|gpu|auto] [--pause-ms MS]";

fn decode_rgb(bytes: &[u8]) -> Result<RgbImage, String> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|e| e.to_string())?;
    match reader.format() {
        Some(image::ImageFormat::Png | image::ImageFormat::Jpeg) => {}
        other => return Err(format!("unsupported format {other:?} (expected PNG or JPEG)")),
    }
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    reader.limits(limits);
    let image = reader.decode().map_err(|e| e.to_string())?;
    if image.width() == 0 || image.height() == 0 {
        return Err("empty image".into());
    }
    Ok(image.into_rgb8())
}

fn resized_dimensions(width: u32, height: u32) -> (u32, u32) {
    let short = u64::from(RESIZE_SHORTER_SIDE);
    let scale = |long: u32, short_side: u32| -> u32 {
        let scaled = u64::from(long) * short / u64::from(short_side);
        u32::try_from(scaled).unwrap_or(u32::MAX).max(RESIZE_SHORTER_SIDE)
    };
    if width <= height { (RESIZE_SHORTER_SIDE, scale(height, width)) } else { (scale(width, height), RESIZE_SHORTER_SIDE) }
}

fn centre_offset(size: u32) -> u32 {
    (f64::from(size.saturating_sub(CROP)) / 2.0).round_ties_even() as u32
}

fn preprocess(rgb: &RgbImage) -> Vec<f32> {
    let (width, height) = rgb.dimensions();
    let (new_width, new_height) = resized_dimensions(width, height);
    let resized = image::imageops::resize(rgb, new_width, new_height, RESIZE_FILTER);
    let crop = CROP as usize;
    let left = centre_offset(new_width) as usize;
    let top = centre_offset(new_height) as usize;
    let plane = crop * crop;
    let mut out = vec![0.0f32; INPUT_LEN];
    for y in 0..crop {
        for x in 0..crop {
            let pixel = resized.get_pixel((left + x) as u32, (top + y) as u32).0;
            for (c, &src) in CHANNEL_ORDER.iter().enumerate() {
                let v = f32::from(pixel[src]) / PIXEL_SCALE;
                out[c * plane + y * crop + x] = (v - MEAN_RGB[src]) / STD_RGB[src];
            }
        }
    }
    out
}

fn run() -> Result<(), String> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut target = ModelTarget::Cpu;
    if let Some(i) = args.iter().position(|a| a == "--target") {
        let value = args.get(i + 1).ok_or(USAGE)?.clone();
        target = value.parse()?;
        args.drain(i..i + 2);
    }
    let mut pause = std::time::Duration::ZERO;
    if let Some(i) = args.iter().position(|a| a == "--pause-ms") {
        let ms: u64 = args.get(i + 1).and_then(|v| v.parse().ok()).ok_or("--pause-ms needs a whole number of milliseconds")?;
        pause = std::time::Duration::from_millis(ms);
        args.drain(i..i + 2);
    }
    let [backend, model, image, n] = <[String; 4]>::try_from(args).map_err(|_| USAGE.to_string())?;
    let backend = match backend.split_once('=') {
        None if backend == "tract" => BackendChoice::Tract,
        None if backend == "ort" => BackendChoice::OnnxRuntime(
            std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from).ok_or("`ort` needs `ort=LIBPATH` or $ORT_DYLIB_PATH")?,
        ),
        Some(("ort", lib)) => BackendChoice::OnnxRuntime(PathBuf::from(lib)),
        _ => return Err(USAGE.into()),
    };
    let n: usize = n.parse().ok().filter(|n| *n >= 1).ok_or("N must be a whole number >= 1")?;

    let bytes = std::fs::read(&image).map_err(|e| format!("{image}: {e}"))?;
    let rgb = decode_rgb(&bytes).map_err(|e| format!("{image}: {e}"))?;
    let input = preprocess(&rgb);
    let data: Vec<u8> = input.iter().flat_map(|v| v.to_le_bytes()).collect();
    let tensor = wasmtime_wasi_nn::Tensor::new(INPUT_DIMS.to_vec(), TensorType::Fp32, data);

    let start = Instant::now();
    let loaded = load_model("orientation", model.as_ref(), target, &NnConfig { backend, target: None }).map_err(|e| e.to_string())?;
    let load_ms = start.elapsed().as_secs_f64() * 1e3;
    let mut ctx = loaded.graph.init_execution_context().map_err(|e| e.to_string())?;

    let mut times = Vec::with_capacity(n);
    let mut scores = [0f32; 4];
    for _ in 0..n {
        let inputs = vec![NamedTensor { name: INPUT_NAME.into(), tensor: tensor.clone() }];
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
        let start = Instant::now();
        let outputs = ctx.compute_with_io(inputs).map_err(|e| e.to_string())?;
        let first = outputs.first().ok_or("the model returned no output")?;
        if first.tensor.ty != TensorType::Fp32 || first.tensor.data.len() != 16 {
            return Err(format!("unexpected output `{}`: {:?} with {} bytes", first.name, first.tensor.ty, first.tensor.data.len()));
        }
        for (s, c) in scores.iter_mut().zip(first.tensor.data.chunks_exact(4)) {
            *s = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        times.push(start.elapsed().as_micros() as u64);
    }
    let index = (0..4).fold(0, |best, i| if scores[i] > scores[best] { i } else { best });
    let mut sorted = times.clone();
    sorted.sort_unstable();
    println!("label={} p50_us={} min_us={} n={n}", LABELS[index], sorted[(n - 1) / 2], sorted[0]);
    eprintln!(
        "backend={} device={} load_ms={load_ms:.1} first_us={} scores={}",
        loaded.backend,
        loaded.device,
        times[0],
        LABELS.iter().zip(scores).map(|(l, s)| format!("{l}:{s:.4}")).collect::<Vec<_>>().join(",")
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nn_baseline: {e}");
            ExitCode::from(2)
        }
    }
}

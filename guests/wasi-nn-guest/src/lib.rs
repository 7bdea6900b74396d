//! wasi-nn inference for wasmzip guests, plus the image preprocessing of the `orientation` model.
//!
//! The host links `wasi:nn@0.2.0-rc-2024-10-28` (from the `wasmtime-wasi-nn` crate). Models ship
//! inside the signed package and guests load them by name ([`Model::load`], wasi-nn
//! `load-by-name`); loading guest-supplied bytes ([`load_bytes`], wasi-nn `load`) is refused by
//! the host. The bindings are generated at build time by `build.rs` from the WIT inside the host's
//! `wasmtime-wasi-nn` crate (found with `cargo metadata`); no WIT file is kept in this repository.
//! [`raw`] exposes them for anything the wrapper does not cover.
//!
//! The `orientation` model takes one `[1, 3, 224, 224]` `fp32` tensor named `x` (see [`spec`]) and
//! returns a `[1, 4]` `fp32` softmax over the rotations 0, 90, 180 and 270 degrees.
//!
//! ```no_run
//! fn demo(png: &[u8]) -> Result<(), wasi_nn_guest::Error> {
//!     let input = wasi_nn_guest::preprocess(png)?;
//!     let result = wasi_nn_guest::classify("orientation", &input)?;
//!     println!("{} {:?} {} us", result.label, result.scores, result.inference_us);
//!     Ok(())
//! }
//! ```
//!
//! Nothing here panics: every failure is an [`Error`].
#![warn(missing_docs)]

use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use image::RgbImage;

mod resize;

#[allow(missing_docs)]
mod bindings {
    // Written by build.rs (wit-bindgen-rust 0.62 over wasmtime-wasi-nn's wit/wasi-nn.wit).
    include!(concat!(env!("OUT_DIR"), "/wasi_nn.rs"));
}

/// The generated `wasi:nn@0.2.0-rc-2024-10-28` bindings, for anything the wrapper does not cover.
pub mod raw {
    pub use crate::bindings::wasi::nn::{errors, graph, inference, tensor};
}

use bindings::wasi::nn::{errors, graph, tensor};

pub use bindings::wasi::nn::errors::ErrorCode;
pub use bindings::wasi::nn::graph::GraphEncoding;
pub use bindings::wasi::nn::tensor::TensorType;

/// Every constant of the model's input (and output) contract, in one place.
///
/// The preprocessing rule, applied by [`preprocess`](crate::preprocess):
///
/// 1. decode PNG or JPEG (no EXIF rotation is applied: the model judges the pixels as stored) and
///    convert to 8-bit RGB (alpha dropped, grey replicated);
/// 2. resize so the shorter side is [`RESIZE_SHORTER_SIDE`], the longer side
///    `floor(long * RESIZE_SHORTER_SIDE / short)` (as torchvision's `Resize(int)`), with
///    [`RESIZE_FILTER`];
/// 3. centre-crop [`CROP`] x [`CROP`], offsets `round_half_even((size - CROP) / 2)` (as
///    torchvision's `CenterCrop`);
/// 4. per output channel `c` take RGB channel [`CHANNEL_ORDER`]`[c]` and compute
///    `(v / PIXEL_SCALE - MEAN_RGB[rgb]) / STD_RGB[rgb]` (mean / std follow the colour, so the B
///    plane uses `MEAN_RGB[2]` / `STD_RGB[2]`);
/// 5. lay out as NCHW [`INPUT_DIMS`]; on the wire each value is an `f32` little-endian.
pub mod spec {
    use image::imageops::FilterType;

    /// Model name used when the caller names none.
    pub const DEFAULT_MODEL: &str = "orientation";
    /// Name of the model's only input.
    pub const INPUT_NAME: &str = "x";
    /// Shape of the input tensor, NCHW.
    pub const INPUT_DIMS: [u32; 4] = [1, 3, CROP, CROP];
    /// Number of `f32` values in the input tensor.
    pub const INPUT_LEN: usize = 3 * (CROP as usize) * (CROP as usize);
    /// Labels of the model's outputs, by index (degrees of rotation).
    pub const LABELS: [&str; 4] = ["0", "90", "180", "270"];

    /// The shorter image side after resizing.
    pub const RESIZE_SHORTER_SIDE: u32 = 256;
    /// Resampling filter for the resize (`Triangle` = bilinear, antialiased when shrinking).
    pub const RESIZE_FILTER: FilterType = FilterType::Triangle;
    /// Side of the square centre crop.
    pub const CROP: u32 = 224;
    /// For each output channel (B, G, R), the RGB channel it comes from.
    pub const CHANNEL_ORDER: [usize; 3] = [2, 1, 0];
    /// 8-bit values are divided by this before normalising.
    pub const PIXEL_SCALE: f32 = 255.0;
    /// ImageNet mean, indexed by RGB channel.
    pub const MEAN_RGB: [f32; 3] = [0.485, 0.456, 0.406];
    /// ImageNet standard deviation, indexed by RGB channel.
    pub const STD_RGB: [f32; 3] = [0.229, 0.224, 0.225];

    /// Largest allocation the decoder may make (bytes); bigger images are refused, not a trap.
    pub const MAX_DECODE_ALLOC: u64 = 256 * 1024 * 1024;
    /// Largest accepted image width or height.
    pub const MAX_SIDE: u32 = 16384;
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The bytes are not a decodable PNG or JPEG (or the image is too large).
    Image(String),
    /// A wasi-nn call failed: the host's error code and its data message.
    Nn {
        /// The wasi-nn `error-code`.
        code: ErrorCode,
        /// The error's `data` (backend-specific message; may be empty).
        message: String,
    },
    /// The caller's arguments are wrong before any wasi-nn call (e.g. the input length).
    Input(String),
    /// The model answered with something this crate cannot read (no output, wrong type or size).
    Output(String),
}

impl Error {
    /// The wasi-nn error code, for [`Error::Nn`].
    pub fn nn_code(&self) -> Option<ErrorCode> {
        match self {
            Error::Nn { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether this is a wasi-nn error (as opposed to a bad image, argument or output).
    pub fn is_nn(&self) -> bool {
        matches!(self, Error::Nn { .. })
    }

    /// Whether wasi-nn said `not-found` (an unknown model name).
    pub fn is_not_found(&self) -> bool {
        self.nn_code() == Some(ErrorCode::NotFound)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Image(message) => write!(f, "cannot decode image: {message}"),
            Error::Nn { code, message } if message.is_empty() => write!(f, "wasi-nn {code}"),
            Error::Nn { code, message } => write!(f, "wasi-nn {code}: {message}"),
            Error::Input(message) => write!(f, "invalid input: {message}"),
            Error::Output(message) => write!(f, "unexpected model output: {message}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<errors::Error> for Error {
    fn from(error: errors::Error) -> Error {
        Error::Nn { code: error.code(), message: error.data() }
    }
}

impl ErrorCode {
    /// The WIT name: `invalid-argument`, `not-found`, `runtime-error`, ...
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "invalid-argument",
            ErrorCode::InvalidEncoding => "invalid-encoding",
            ErrorCode::Timeout => "timeout",
            ErrorCode::RuntimeError => "runtime-error",
            ErrorCode::UnsupportedOperation => "unsupported-operation",
            ErrorCode::TooLarge => "too-large",
            ErrorCode::NotFound => "not-found",
            ErrorCode::Security => "security",
            ErrorCode::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl TensorType {
    /// All tensor types, in WIT order.
    pub const ALL: [TensorType; 7] = [
        TensorType::Fp16,
        TensorType::Fp32,
        TensorType::Fp64,
        TensorType::Bf16,
        TensorType::U8,
        TensorType::I32,
        TensorType::I64,
    ];

    /// Lower-case name: `fp16`, `fp32`, `fp64`, `bf16`, `u8`, `i32`, `i64`.
    pub fn name(self) -> &'static str {
        match self {
            TensorType::Fp16 => "fp16",
            TensorType::Fp32 => "fp32",
            TensorType::Fp64 => "fp64",
            TensorType::Bf16 => "bf16",
            TensorType::U8 => "u8",
            TensorType::I32 => "i32",
            TensorType::I64 => "i64",
        }
    }

    /// Bytes per element.
    pub fn element_size(self) -> usize {
        match self {
            TensorType::U8 => 1,
            TensorType::Fp16 | TensorType::Bf16 => 2,
            TensorType::Fp32 | TensorType::I32 => 4,
            TensorType::Fp64 | TensorType::I64 => 8,
        }
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TensorType {
    type Err = String;

    /// Parses a [`TensorType::name`] (case-insensitive).
    fn from_str(s: &str) -> Result<TensorType, String> {
        TensorType::ALL
            .into_iter()
            .find(|ty| ty.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown tensor type `{s}` (expected fp16, fp32, fp64, bf16, u8, i32 or i64)"))
    }
}

/// The model's answer for one input.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    /// The most likely label ([`spec::LABELS`]: `"0"`, `"90"`, `"180"`, `"270"`).
    pub label: &'static str,
    /// Index of `label` in [`spec::LABELS`] and `scores`.
    pub index: usize,
    /// The model's score for each label, in [`spec::LABELS`] order.
    pub scores: [f32; 4],
    /// Microseconds spent passing the input, computing and reading the output.
    pub inference_us: u64,
}

/// One tensor the model returned.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// The output's name, as the host reports it.
    pub name: String,
    /// Its dimensions.
    pub dims: Vec<u32>,
    /// Its element type.
    pub ty: TensorType,
    /// Its bytes (little-endian elements, row-major).
    pub data: Vec<u8>,
}

impl Tensor {
    /// The data as `f32`s when the type is `fp32` and the length is whole.
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        if self.ty != TensorType::Fp32 || !self.data.len().is_multiple_of(4) {
            return None;
        }
        Some(self.data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    }
}

/// A model loaded by name with an execution context, ready for repeated inference.
pub struct Model {
    // Field order = drop order: the context goes before its graph.
    context: raw::inference::GraphExecutionContext,
    _graph: graph::Graph,
    name: String,
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Model {
    /// wasi-nn `load-by-name(name)`, then `init-execution-context`.
    pub fn load(name: &str) -> Result<Model, Error> {
        let graph = graph::load_by_name(name)?;
        let context = graph.init_execution_context()?;
        Ok(Model { context, _graph: graph, name: name.to_string() })
    }

    /// The name the model was loaded by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs the model on a preprocessed input ([`preprocess`]'s output: [`spec::INPUT_LEN`]
    /// values, NCHW) and reads the four scores.
    pub fn classify(&self, input: &[f32]) -> Result<Classification, Error> {
        if input.len() != spec::INPUT_LEN {
            return Err(Error::Input(format!(
                "expected {} values ({:?}), got {}",
                spec::INPUT_LEN,
                spec::INPUT_DIMS,
                input.len()
            )));
        }
        let bytes = f32_to_le_bytes(input);

        let start = Instant::now();
        let outputs = self.compute(&spec::INPUT_DIMS, TensorType::Fp32, &bytes)?;
        let inference_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);

        let output = first_output(&outputs)?;
        let values = output.to_f32().ok_or_else(|| {
            Error::Output(format!(
                "output `{}` is {} with {} bytes, expected fp32",
                output.name,
                output.ty,
                output.data.len()
            ))
        })?;
        let scores: [f32; 4] = values.as_slice().try_into().map_err(|_| {
            Error::Output(format!(
                "output `{}` has {} values (dims {:?}), expected {}",
                output.name,
                values.len(),
                output.dims,
                spec::LABELS.len()
            ))
        })?;
        let index = argmax(&scores);
        Ok(Classification { label: spec::LABELS[index], index, scores, inference_us })
    }

    /// Sends one tensor of any shape and type as the input named [`spec::INPUT_NAME`] and returns
    /// every output (for tests that deliberately send a wrong shape or type).
    pub fn run_raw(&self, dims: &[u32], ty: TensorType, bytes: &[u8]) -> Result<Vec<Tensor>, Error> {
        self.compute(dims, ty, bytes)
    }

    /// set-input + compute + get-output, in this WIT version one `compute` call.
    fn compute(&self, dims: &[u32], ty: TensorType, bytes: &[u8]) -> Result<Vec<Tensor>, Error> {
        let input = tensor::Tensor::new(dims, ty, bytes);
        let outputs = self.context.compute(vec![(spec::INPUT_NAME.to_string(), input)])?;
        Ok(outputs
            .into_iter()
            .map(|(name, tensor)| Tensor { name, dims: tensor.dimensions(), ty: tensor.ty(), data: tensor.data() })
            .collect())
    }
}

/// The output to read: the one named `"0"` if the host names outputs by index, else the first.
fn first_output(outputs: &[Tensor]) -> Result<&Tensor, Error> {
    outputs
        .iter()
        .find(|t| t.name == "0")
        .or_else(|| outputs.first())
        .ok_or_else(|| Error::Output("the model returned no outputs".into()))
}

/// Index of the largest score (the first on ties; NaN never wins).
fn argmax(scores: &[f32; 4]) -> usize {
    let mut best = 0;
    for (i, &score) in scores.iter().enumerate().skip(1) {
        if score > scores[best] || scores[best].is_nan() {
            best = i;
        }
    }
    best
}

/// Loads `model` by name and classifies one preprocessed input (see [`Model::classify`]).
pub fn classify(model: &str, input: &[f32]) -> Result<Classification, Error> {
    Model::load(model)?.classify(input)
}

/// Loads `model` by name and sends one tensor of any shape and type (see [`Model::run_raw`]).
pub fn run_raw(model: &str, dims: &[u32], ty: TensorType, bytes: &[u8]) -> Result<Vec<Tensor>, Error> {
    Model::load(model)?.run_raw(dims, ty, bytes)
}

/// wasi-nn `graph.load` with guest-supplied bytes (one builder, CPU target). wasmzip hosts refuse
/// this: models must come from the signed package. `Ok` means the host accepted the bytes.
pub fn load_bytes(encoding: GraphEncoding, bytes: &[u8]) -> Result<(), Error> {
    let builders = [bytes.to_vec()];
    graph::load(&builders, encoding, graph::ExecutionTarget::Cpu)?;
    Ok(())
}

/// `f32`s as little-endian bytes (the wire form of an `fp32` tensor).
pub fn f32_to_le_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Decodes a PNG or JPEG into the model's input: [`spec::INPUT_LEN`] `f32`s, NCHW, BGR,
/// normalised (the exact rule is documented on [`spec`]).
pub fn preprocess(image_bytes: &[u8]) -> Result<Vec<f32>, Error> {
    let rgb = decode_rgb(image_bytes)?;
    preprocess_rgb(&rgb)
}

/// Decodes PNG or JPEG bytes to 8-bit RGB, within [`spec::MAX_DECODE_ALLOC`] / [`spec::MAX_SIDE`].
pub fn decode_rgb(image_bytes: &[u8]) -> Result<RgbImage, Error> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(image_bytes))
        .with_guessed_format()
        .map_err(|e| Error::Image(e.to_string()))?;
    match reader.format() {
        Some(image::ImageFormat::Png | image::ImageFormat::Jpeg) => {}
        Some(other) => return Err(Error::Image(format!("unsupported format {other:?} (expected PNG or JPEG)"))),
        None => return Err(Error::Image("not a PNG or JPEG image".into())),
    }
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(spec::MAX_DECODE_ALLOC);
    limits.max_image_width = Some(spec::MAX_SIDE);
    limits.max_image_height = Some(spec::MAX_SIDE);
    reader.limits(limits);
    let image = reader.decode().map_err(|e| Error::Image(e.to_string()))?;
    if image.width() == 0 || image.height() == 0 {
        return Err(Error::Image(format!("empty image ({}x{})", image.width(), image.height())));
    }
    Ok(image.into_rgb8())
}

/// [`preprocess`] from already decoded RGB pixels.
pub fn preprocess_rgb(rgb: &RgbImage) -> Result<Vec<f32>, Error> {
    let (width, height) = rgb.dimensions();
    if width == 0 || height == 0 {
        return Err(Error::Image(format!("empty image ({width}x{height})")));
    }
    let (new_width, new_height) = resized_dimensions(width, height);
    let offsets = (centre_offset(new_width), centre_offset(new_height));
    Ok(resize::resize_crop_normalise(rgb.as_raw(), (width, height), (new_width, new_height), offsets))
}

/// Size after resizing the shorter side to [`spec::RESIZE_SHORTER_SIDE`] (longer side truncated).
fn resized_dimensions(width: u32, height: u32) -> (u32, u32) {
    let short = u64::from(spec::RESIZE_SHORTER_SIDE);
    let scale = |long: u32, short_side: u32| -> u32 {
        let scaled = u64::from(long) * short / u64::from(short_side);
        u32::try_from(scaled).unwrap_or(u32::MAX).max(spec::RESIZE_SHORTER_SIDE)
    };
    if width <= height {
        (spec::RESIZE_SHORTER_SIDE, scale(height, width))
    } else {
        (scale(width, height), spec::RESIZE_SHORTER_SIDE)
    }
}

/// Left / top offset of the centre crop in a side of `size` (≥ [`spec::CROP`]).
fn centre_offset(size: u32) -> u32 {
    (f64::from(size.saturating_sub(spec::CROP)) / 2.0).round_ties_even() as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageFormat, Rgb};

    fn encode(image: &RgbImage, format: ImageFormat) -> Vec<u8> {
        let mut bytes = std::io::Cursor::new(Vec::new());
        image.write_to(&mut bytes, format).unwrap();
        bytes.into_inner()
    }

    fn normalised(rgb_channel: usize, value: u8) -> f32 {
        (f32::from(value) / 255.0 - spec::MEAN_RGB[rgb_channel]) / spec::STD_RGB[rgb_channel]
    }

    /// Value at (channel, y, x) of an NCHW [1, 3, 224, 224] buffer.
    fn at(values: &[f32], c: usize, y: usize, x: usize) -> f32 {
        values[c * 224 * 224 + y * 224 + x]
    }

    #[test]
    fn shape_and_range() {
        let image = RgbImage::from_fn(40, 30, |x, y| Rgb([(x * 6) as u8, (y * 8) as u8, ((x + y) * 3) as u8]));
        let values = preprocess(&encode(&image, ImageFormat::Png)).unwrap();
        assert_eq!(values.len(), 3 * 224 * 224);
        assert_eq!(values.len(), spec::INPUT_LEN);
        for (i, v) in values.iter().enumerate() {
            let src = spec::CHANNEL_ORDER[i / (224 * 224)];
            assert!(v.is_finite());
            assert!(*v >= normalised(src, 0) - 1e-5 && *v <= normalised(src, 255) + 1e-5, "{v} at {i}");
        }
    }

    #[test]
    fn channel_order_is_bgr_with_per_colour_mean_and_std() {
        let red = RgbImage::from_pixel(300, 300, Rgb([255, 0, 0]));
        let values = preprocess(&encode(&red, ImageFormat::Png)).unwrap();
        // Channel 0 is blue (0), channel 2 is red (255); each with its own colour's mean / std.
        for (c, expected) in [(0, normalised(2, 0)), (1, normalised(1, 0)), (2, normalised(0, 255))] {
            for &(y, x) in &[(0, 0), (111, 57), (223, 223)] {
                assert!((at(&values, c, y, x) - expected).abs() < 1e-5, "channel {c}: {}", at(&values, c, y, x));
            }
        }
        assert!((normalised(2, 0) - (-0.406 / 0.225)).abs() < 1e-6);

        let mixed = RgbImage::from_pixel(224, 224, Rgb([10, 128, 240]));
        let values = preprocess(&encode(&mixed, ImageFormat::Png)).unwrap();
        assert!((at(&values, 0, 5, 5) - normalised(2, 240)).abs() < 1e-5);
        assert!((at(&values, 1, 5, 5) - normalised(1, 128)).abs() < 1e-5);
        assert!((at(&values, 2, 5, 5) - normalised(0, 10)).abs() < 1e-5);
    }

    #[test]
    fn resize_shorter_side_then_centre_crop_keeps_orientation() {
        // 512x256, left half red, right half blue: no scaling (the short side is already 256),
        // the crop takes x in 144..368, so the colour boundary (x = 256) lands at crop column 112.
        let wide = RgbImage::from_fn(512, 256, |x, _| if x < 256 { Rgb([255, 0, 0]) } else { Rgb([0, 0, 255]) });
        let values = preprocess(&encode(&wide, ImageFormat::Png)).unwrap();
        let red = normalised(0, 255);
        assert!((at(&values, 2, 100, 0) - red).abs() < 1e-5);
        assert!((at(&values, 2, 100, 111) - red).abs() < 1e-5);
        assert!((at(&values, 2, 100, 112) - normalised(0, 0)).abs() < 1e-5);
        assert!((at(&values, 0, 100, 223) - normalised(2, 255)).abs() < 1e-5);

        // Portrait 100x400 → 256x1024, top quarter green (rows 0..256 after resizing): the crop
        // takes rows 400..624, so none of it is green.
        let tall = RgbImage::from_fn(100, 400, |_, y| if y < 100 { Rgb([0, 255, 0]) } else { Rgb([0, 0, 0]) });
        let values = preprocess(&encode(&tall, ImageFormat::Png)).unwrap();
        assert!((at(&values, 1, 0, 0) - normalised(1, 0)).abs() < 1e-5);

        assert_eq!(resized_dimensions(512, 256), (512, 256));
        assert_eq!(resized_dimensions(100, 400), (256, 1024));
        assert_eq!(resized_dimensions(640, 480), (341, 256));
        assert_eq!(resized_dimensions(1, 1), (256, 256));
        assert_eq!(centre_offset(341), 58); // 58.5 rounds half to even, as Python's round()
        assert_eq!(centre_offset(256), 16);
        assert_eq!(centre_offset(224), 0);
    }

    #[test]
    fn jpeg_and_alpha_and_grey_decode() {
        let grey = RgbImage::from_pixel(64, 48, Rgb([128, 128, 128]));
        let values = preprocess(&encode(&grey, ImageFormat::Jpeg)).unwrap();
        assert_eq!(values.len(), spec::INPUT_LEN);
        assert!((at(&values, 1, 112, 112) - normalised(1, 128)).abs() < 0.05);

        let rgba = image::RgbaImage::from_pixel(10, 10, image::Rgba([0, 0, 255, 0]));
        let mut bytes = std::io::Cursor::new(Vec::new());
        rgba.write_to(&mut bytes, ImageFormat::Png).unwrap();
        let values = preprocess(&bytes.into_inner()).unwrap();
        assert!((at(&values, 0, 0, 0) - normalised(2, 255)).abs() < 1e-5);

        let luma = image::GrayImage::from_pixel(10, 10, image::Luma([255]));
        let mut bytes = std::io::Cursor::new(Vec::new());
        luma.write_to(&mut bytes, ImageFormat::Png).unwrap();
        let values = preprocess(&bytes.into_inner()).unwrap();
        assert!((at(&values, 2, 3, 3) - normalised(0, 255)).abs() < 1e-5);
    }

    #[test]
    fn bad_images_are_errors() {
        for bytes in [&b""[..], b"not an image", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", b"GIF89a\x01\0\x01\0"] {
            let error = preprocess(bytes).unwrap_err();
            assert!(matches!(error, Error::Image(_)), "{error:?}");
            assert!(error.to_string().starts_with("cannot decode image: "), "{error}");
        }
        let png = encode(&RgbImage::from_pixel(8, 8, Rgb([1, 2, 3])), ImageFormat::Png);
        assert!(matches!(preprocess(&png[..png.len() / 2]), Err(Error::Image(_))));
    }

    #[test]
    fn error_display_and_names() {
        let error = Error::Nn { code: ErrorCode::NotFound, message: "no model `x`".into() };
        assert_eq!(error.to_string(), "wasi-nn not-found: no model `x`");
        assert!(error.is_not_found() && error.is_nn());
        assert_eq!(
            Error::Nn { code: ErrorCode::RuntimeError, message: String::new() }.to_string(),
            "wasi-nn runtime-error"
        );
        assert_eq!(ErrorCode::InvalidArgument.name(), "invalid-argument");
        assert_eq!("FP16".parse::<TensorType>(), Ok(TensorType::Fp16));
        assert_eq!("u8".parse::<TensorType>().map(TensorType::element_size), Ok(1));
        assert!("f32".parse::<TensorType>().is_err());
        assert_eq!(argmax(&[0.1, 0.7, 0.1, 0.1]), 1);
        assert_eq!(argmax(&[f32::NAN, 0.2, 0.2, 0.1]), 1);
        assert_eq!(f32_to_le_bytes(&[1.0]), vec![0, 0, 0x80, 0x3f]);
    }
}

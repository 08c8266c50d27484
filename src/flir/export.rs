//! What `spectrald thermal info|export` make of one FLIR frame: a summary of what the file
//! says, its temperatures in °C, a float32 TIFF of them (the format thermographers load into
//! their tools), and a false-colour rendering.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::fff::{PictureInPicture, RawType};
use super::{FileKind, FlirImage};
use crate::thermal::palette::Palette;
use crate::thermal::radiometry::{ObjectOverrides, Radiometry};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(
        "{0}: the frame has no camera info record (Planck constants), so °C cannot be computed; \
         FLIR Tools or ExifTool show whether the camera wrote one"
    )]
    NoRadiometry(String),
    #[error("{0}: the radiometry is unusable ({1})")]
    BadRadiometry(String, String),
    #[error("writing {path}: {message}")]
    Write { path: PathBuf, message: String },
}

/// A frame's temperatures, row-major, °C.
#[derive(Debug, Clone)]
pub struct CelsiusImage {
    pub width: u32,
    pub height: u32,
    pub celsius: Vec<f32>,
}

/// The frame's radiometry with the operator's object overrides applied.
pub fn radiometry_of(
    image: &FlirImage,
    overrides: &ObjectOverrides,
) -> Result<Radiometry, ExportError> {
    let radiometry = image
        .frame
        .radiometry
        .ok_or_else(|| ExportError::NoRadiometry(image.origin.clone()))?
        .with_overrides(overrides);
    radiometry
        .validate()
        .map_err(|e| ExportError::BadRadiometry(image.origin.clone(), e.to_string()))?;
    Ok(radiometry)
}

/// Every pixel of the frame in °C (its camera's Planck chain, with `overrides`).
pub fn celsius_image(
    image: &FlirImage,
    overrides: &ObjectOverrides,
) -> Result<CelsiusImage, ExportError> {
    let converter = radiometry_of(image, overrides)?.converter();
    Ok(CelsiusImage {
        width: image.frame.width,
        height: image.frame.height,
        celsius: image
            .frame
            .counts
            .iter()
            .map(|&raw| converter.celsius(raw) as f32)
            .collect(),
    })
}

/// Minimum, mean and maximum of the finite temperatures; `None` when there are none.
pub fn span(celsius: &[f32]) -> Option<TemperatureSpan> {
    let finite = celsius.iter().filter(|c| c.is_finite());
    let (mut min, mut max, mut sum, mut n) = (f32::INFINITY, f32::NEG_INFINITY, 0.0f64, 0usize);
    for &c in finite {
        min = min.min(c);
        max = max.max(c);
        sum += c as f64;
        n += 1;
    }
    (n > 0).then(|| TemperatureSpan {
        min_c: min,
        mean_c: (sum / n as f64) as f32,
        max_c: max,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TemperatureSpan {
    pub min_c: f32,
    pub mean_c: f32,
    pub max_c: f32,
}

/// Writes °C as a single-channel float32 TIFF.
pub fn write_celsius_tiff(path: &Path, image: &CelsiusImage) -> Result<(), ExportError> {
    let fail = |message: String| ExportError::Write {
        path: path.to_owned(),
        message,
    };
    let file = std::fs::File::create(path).map_err(|e| fail(e.to_string()))?;
    let mut encoder = tiff::encoder::TiffEncoder::new(std::io::BufWriter::new(file))
        .map_err(|e| fail(e.to_string()))?;
    encoder
        .write_image::<tiff::encoder::colortype::Gray32Float>(
            image.width,
            image.height,
            &image.celsius,
        )
        .map_err(|e| fail(e.to_string()))
}

/// The temperatures in `palette`, stretched from the coldest to the hottest pixel.
pub fn render(image: &CelsiusImage, palette: Palette) -> image::RgbImage {
    let (lo, hi) = span(&image.celsius).map_or((0.0, 1.0), |s| (s.min_c, s.max_c));
    let range = (hi - lo).max(f32::EPSILON);
    let levels: Vec<f32> = image.celsius.iter().map(|c| (c - lo) / range).collect();
    let rgb = palette.colorize(&levels);
    // The buffer is exactly width × height × 3, so this cannot fail.
    image::RgbImage::from_raw(image.width, image.height, rgb).unwrap_or_default()
}

/// What `spectrald thermal info` prints about one frame.
#[derive(Debug, Clone, Serialize)]
pub struct FrameInfo {
    pub file: String,
    pub kind: FileKind,
    /// Frames in the file (1 for an R-JPEG or `.fff`).
    pub frames: usize,
    pub frame: usize,
    pub camera: String,
    /// Capture time from the camera clock, RFC 3339 UTC.
    pub captured: Option<String>,
    pub frame_rate: Option<u16>,
    pub thermal: ThermalInfo,
    pub visible: Option<VisibleInfo>,
    /// Planck, atmosphere and object parameters as the file has them.
    pub radiometry: Option<Radiometry>,
    pub picture_in_picture: Option<PictureInPicture>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ThermalInfo {
    pub width: u32,
    pub height: u32,
    pub raw_type: RawType,
    pub raw_min: u16,
    pub raw_max: u16,
    /// `None` without camera info.
    pub temperature: Option<TemperatureSpan>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VisibleInfo {
    pub width: u32,
    pub height: u32,
    /// `embedded` (the FFF's photo record) or `jpeg` (the R-JPEG's own image).
    pub source: &'static str,
}

impl FrameInfo {
    pub fn of(image: &FlirImage, path: &Path, kind: FileKind, frames: usize, frame: usize) -> Self {
        let f = &image.frame;
        let temperature = celsius_image(image, &ObjectOverrides::default())
            .ok()
            .and_then(|c| span(&c.celsius));
        let visible = match (&f.embedded, &image.visible) {
            (Some(e), _) if !e.bytes.is_empty() => Some(VisibleInfo {
                width: e.width,
                height: e.height,
                source: "embedded",
            }),
            (_, Some(bytes)) => jpeg_size(bytes).map(|(width, height)| VisibleInfo {
                width,
                height,
                source: "jpeg",
            }),
            _ => None,
        };
        FrameInfo {
            file: path.display().to_string(),
            kind,
            frames,
            frame,
            camera: f.camera_model.clone(),
            captured: f.captured_us.map(rfc3339),
            frame_rate: f.frame_rate,
            thermal: ThermalInfo {
                width: f.width,
                height: f.height,
                raw_type: f.raw_type,
                raw_min: f.counts.iter().copied().min().unwrap_or(0),
                raw_max: f.counts.iter().copied().max().unwrap_or(0),
                temperature,
            },
            visible,
            radiometry: f.radiometry,
            picture_in_picture: f.pip,
        }
    }
}

fn jpeg_size(bytes: &[u8]) -> Option<(u32, u32)> {
    image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .ok()?
        .into_dimensions()
        .ok()
}

/// Unix microseconds as RFC 3339 UTC with milliseconds.
fn rfc3339(unix_us: i64) -> String {
    let time = if unix_us >= 0 {
        std::time::UNIX_EPOCH + std::time::Duration::from_micros(unix_us as u64)
    } else {
        std::time::UNIX_EPOCH - std::time::Duration::from_micros(unix_us.unsigned_abs())
    };
    humantime::format_rfc3339_millis(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_skips_what_is_not_a_temperature() {
        let s = span(&[f32::NAN, 20.0, 30.0, f32::INFINITY, 40.0]).expect("some");
        assert_eq!((s.min_c, s.mean_c, s.max_c), (20.0, 30.0, 40.0));
        assert!(span(&[f32::NAN]).is_none());
    }

    #[test]
    fn capture_times_print_as_utc() {
        assert_eq!(rfc3339(1_600_000_000_123_000), "2020-09-13T12:26:40.123Z");
    }
}

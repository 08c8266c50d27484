//! Reading stored imagery into band planes scaled to [0, 1]: PNG/JPEG through `image`,
//! TIFF/GeoTIFF through `tiff` directly (any number of bands, 8 or 16 bit, and the
//! georeference tags, which `image` does not expose).

use std::path::{Path, PathBuf};

use image::DynamicImage;
use tiff::decoder::{Decoder, DecodingResult};

use super::geotiff::GeoRef;

#[derive(Debug, thiserror::Error)]
pub enum RasterError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a readable image ({message}); is the file complete?")]
    Decode { path: PathBuf, message: String },
    #[error(
        "{path}: {bits}-bit {kind} samples are not supported; convert to 8- or 16-bit unsigned integers (e.g. gdal_translate -ot UInt16)"
    )]
    BitDepth {
        path: PathBuf,
        bits: u8,
        kind: &'static str,
    },
    #[error("{path}: --bands names {named} bands, the image has {have}")]
    BandNames {
        path: PathBuf,
        named: usize,
        have: usize,
    },
    #[error(
        "{path}: the model needs band \"{band}\", the image has [{have}]; name the image's bands with --bands (e.g. red,green,blue,nir)"
    )]
    MissingBand {
        path: PathBuf,
        band: String,
        have: String,
    },
}

/// How 16-bit samples become [0, 1]. 8-bit images are always divided by 255.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale16 {
    /// A fixed range (reflectance products: e.g. 0..10000), clamped.
    Range(f32, f32),
    /// Per-image 2-98 % stretch over all bands together (what GIS viewers show by default;
    /// one stretch for all bands keeps the colour balance).
    Percentile,
}

/// An image as planes of f32 in [0, 1], one per band, row-major.
#[derive(Debug, Clone)]
pub struct Raster {
    pub width: usize,
    pub height: usize,
    pub band_names: Vec<String>,
    pub planes: Vec<Vec<f32>>,
    pub bit_depth: u8,
    pub georef: Option<GeoRef>,
    pub is_tiff: bool,
}

impl Raster {
    /// The planes of `wanted` bands, in that order, picked by name.
    pub fn select(&self, wanted: &[String], path: &Path) -> Result<Vec<&[f32]>, RasterError> {
        wanted
            .iter()
            .map(|band| {
                self.band_names
                    .iter()
                    .position(|b| b == band)
                    .map(|i| self.planes[i].as_slice())
                    .ok_or_else(|| RasterError::MissingBand {
                        path: path.to_owned(),
                        band: band.clone(),
                        have: self.band_names.join(", "),
                    })
            })
            .collect()
    }

    pub fn megapixels(&self) -> f64 {
        (self.width * self.height) as f64 / 1e6
    }
}

/// Default band names by count: 1 gray; 2 gray+alpha; 3 RGB; 4 RGB + NIR for TIFF (the
/// SAT-4/6 and NAIP order) but RGB + alpha for PNG; more: band1..bandN.
fn default_band_names(count: usize, tiff: bool) -> Vec<String> {
    let names: &[&str] = match (count, tiff) {
        (1, _) => &["gray"],
        (2, _) => &["gray", "alpha"],
        (3, _) => &["red", "green", "blue"],
        (4, true) => &["red", "green", "blue", "nir"],
        (4, false) => &["red", "green", "blue", "alpha"],
        _ => &[],
    };
    if names.is_empty() {
        (1..=count).map(|i| format!("band{i}")).collect()
    } else {
        names.iter().map(|s| s.to_string()).collect()
    }
}

pub fn is_tiff(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("tif") || e.eq_ignore_ascii_case("tiff"))
}

/// Reads an image file; `bands` names its bands in order (None: defaults by count).
pub fn read(
    path: &Path,
    bands: Option<&[String]>,
    scale16: Scale16,
) -> Result<Raster, RasterError> {
    let bytes = std::fs::read(path).map_err(|source| RasterError::Io {
        path: path.to_owned(),
        source,
    })?;
    read_bytes(&bytes, path, is_tiff(path), bands, scale16)
}

/// Same as [`read`] for bytes already in memory (HTTP uploads); `path` names it in errors.
pub fn read_bytes(
    bytes: &[u8],
    path: &Path,
    tiff_hint: bool,
    bands: Option<&[String]>,
    scale16: Scale16,
) -> Result<Raster, RasterError> {
    let tiff = tiff_hint || bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*");
    let (width, height, count, bits, samples, georef) = if tiff {
        decode_tiff(bytes, path)?
    } else {
        decode_other(bytes, path)?
    };
    let names = match bands {
        Some(names) if names.len() != count => {
            return Err(RasterError::BandNames {
                path: path.to_owned(),
                named: names.len(),
                have: count,
            });
        }
        Some(names) => names.to_vec(),
        None => default_band_names(count, tiff),
    };
    let planes = deinterleave(&samples, count, width * height, bits, scale16);
    Ok(Raster {
        width,
        height,
        band_names: names,
        planes,
        bit_depth: bits,
        georef,
        is_tiff: tiff,
    })
}

enum Samples {
    U8(Vec<u8>),
    U16(Vec<u16>),
}

type Decoded = (usize, usize, usize, u8, Samples, Option<GeoRef>);

fn decode_tiff(bytes: &[u8], path: &Path) -> Result<Decoded, RasterError> {
    let decode_err = |e: tiff::TiffError| RasterError::Decode {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let mut decoder = Decoder::new(std::io::Cursor::new(bytes)).map_err(decode_err)?;
    let (w, h) = decoder.dimensions().map_err(decode_err)?;
    let color = decoder.colortype().map_err(decode_err)?;
    let count = match color {
        tiff::ColorType::Gray(_) => 1,
        tiff::ColorType::GrayA(_) => 2,
        tiff::ColorType::RGB(_) => 3,
        tiff::ColorType::RGBA(_) => 4,
        tiff::ColorType::Multiband { num_samples, .. } => num_samples as usize,
        other => {
            return Err(RasterError::Decode {
                path: path.to_owned(),
                message: format!(
                    "colour type {other:?} (palette, CMYK, YCbCr or Lab) is not a band image"
                ),
            });
        }
    };
    let georef = GeoRef::read(&mut decoder);
    let samples = match decoder.read_image().map_err(decode_err)? {
        DecodingResult::U8(v) => Samples::U8(v),
        DecodingResult::U16(v) => Samples::U16(v),
        DecodingResult::F32(_) | DecodingResult::F64(_) | DecodingResult::F16(_) => {
            return Err(RasterError::BitDepth {
                path: path.to_owned(),
                bits: color.bit_depth(),
                kind: "floating-point",
            });
        }
        DecodingResult::I8(_)
        | DecodingResult::I16(_)
        | DecodingResult::I32(_)
        | DecodingResult::I64(_) => {
            return Err(RasterError::BitDepth {
                path: path.to_owned(),
                bits: color.bit_depth(),
                kind: "signed integer",
            });
        }
        DecodingResult::U32(_) | DecodingResult::U64(_) => {
            return Err(RasterError::BitDepth {
                path: path.to_owned(),
                bits: color.bit_depth(),
                kind: "unsigned integer",
            });
        }
    };
    let bits = if matches!(samples, Samples::U8(_)) {
        8
    } else {
        16
    };
    let (w, h) = (w as usize, h as usize);
    let len = match &samples {
        Samples::U8(v) => v.len(),
        Samples::U16(v) => v.len(),
    };
    if len != w * h * count {
        return Err(RasterError::Decode {
            path: path.to_owned(),
            message: format!(
                "{len} samples for {w}x{h}x{count}; planar (band-sequential) TIFFs are not supported, rewrite as pixel-interleaved (gdal_translate -co INTERLEAVE=PIXEL)"
            ),
        });
    }
    Ok((w, h, count, bits, samples, georef))
}

fn decode_other(bytes: &[u8], path: &Path) -> Result<Decoded, RasterError> {
    let image = image::load_from_memory(bytes).map_err(|e| RasterError::Decode {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let (w, h) = (image.width() as usize, image.height() as usize);
    let count = image.color().channel_count() as usize;
    let samples = match image {
        DynamicImage::ImageLuma8(i) => Samples::U8(i.into_raw()),
        DynamicImage::ImageLumaA8(i) => Samples::U8(i.into_raw()),
        DynamicImage::ImageRgb8(i) => Samples::U8(i.into_raw()),
        DynamicImage::ImageRgba8(i) => Samples::U8(i.into_raw()),
        DynamicImage::ImageLuma16(i) => Samples::U16(i.into_raw()),
        DynamicImage::ImageLumaA16(i) => Samples::U16(i.into_raw()),
        DynamicImage::ImageRgb16(i) => Samples::U16(i.into_raw()),
        DynamicImage::ImageRgba16(i) => Samples::U16(i.into_raw()),
        other => {
            return Err(RasterError::BitDepth {
                path: path.to_owned(),
                bits: other.color().bits_per_pixel() as u8 / other.color().channel_count(),
                kind: "floating-point",
            });
        }
    };
    let bits = if matches!(samples, Samples::U8(_)) {
        8
    } else {
        16
    };
    Ok((w, h, count, bits, samples, None))
}

fn deinterleave(
    samples: &Samples,
    count: usize,
    pixels: usize,
    bits: u8,
    scale16: Scale16,
) -> Vec<Vec<f32>> {
    let mut planes = vec![Vec::with_capacity(pixels); count];
    match samples {
        Samples::U8(v) => {
            for (i, s) in v.iter().enumerate() {
                planes[i % count].push(f32::from(*s) / 255.0);
            }
        }
        Samples::U16(v) => {
            let (lo, hi) = match scale16 {
                Scale16::Range(lo, hi) => (lo, hi),
                Scale16::Percentile => percentile_range(v),
            };
            let span = (hi - lo).max(1.0);
            for (i, s) in v.iter().enumerate() {
                planes[i % count].push(((f32::from(*s) - lo) / span).clamp(0.0, 1.0));
            }
        }
    }
    debug_assert!(bits == 8 || bits == 16);
    planes
}

/// The 2nd and 98th percentiles of all samples (a histogram: 16-bit values, one pass).
fn percentile_range(values: &[u16]) -> (f32, f32) {
    let mut histogram = vec![0u64; 65536];
    for v in values {
        histogram[*v as usize] += 1;
    }
    let total = values.len() as u64;
    let at = |share: f64| {
        let target = (total as f64 * share) as u64;
        let mut seen = 0;
        for (value, n) in histogram.iter().enumerate() {
            seen += n;
            if seen > target {
                return value as f32;
            }
        }
        65535.0
    };
    (at(0.02), at(0.98))
}

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
    let (width, height, count, samples, georef) = if tiff {
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
    let bits = samples.bits();
    let planes = deinterleave(&samples, count, width * height, scale16);
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

impl Samples {
    fn bits(&self) -> u8 {
        match self {
            Samples::U8(_) => 8,
            Samples::U16(_) => 16,
        }
    }
}

type Decoded = (usize, usize, usize, Samples, Option<GeoRef>);

fn decode_tiff(bytes: &[u8], path: &Path) -> Result<Decoded, RasterError> {
    let decode_err = |e: tiff::TiffError| RasterError::Decode {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let mut decoder = Decoder::new(std::io::Cursor::new(bytes)).map_err(decode_err)?;
    let color = decoder.colortype().map_err(decode_err)?;
    let samples_per_pixel = decoder
        .find_tag_unsigned::<u16>(tiff::tags::Tag::SamplesPerPixel)
        .ok()
        .flatten()
        .unwrap_or(1);
    // `tiff` decodes RGB images with extra samples as 3 or 4 channels and drops the rest
    // (a 4-band RGB+NIR scene would lose NIR). Marked as grey-with-extra-bands instead,
    // every sample is decoded; band names come from --bands or the defaults.
    // Chunks are assembled as pixel-interleaved below; band-sequential files would come
    // out scrambled, so they are refused by their PlanarConfiguration tag.
    if decoder
        .find_tag_unsigned::<u16>(tiff::tags::Tag::PlanarConfiguration)
        .ok()
        .flatten()
        == Some(2)
    {
        return Err(RasterError::Decode {
            path: path.to_owned(),
            message: "planar (band-sequential) TIFFs are not supported, rewrite as pixel-interleaved (gdal_translate -co INTERLEAVE=PIXEL)".into(),
        });
    }
    let mut patches = Vec::new();
    if matches!(color, tiff::ColorType::RGB(_) | tiff::ColorType::RGBA(_)) && samples_per_pixel >= 4
    {
        patches.push((262, 1)); // PhotometricInterpretation = BlackIsZero
    }
    // `tiff` fails on multi-band tiles cut by the right edge ("no lzw end code"): a width
    // and height padded to whole tiles read every tile whole; the padding is cut below.
    let (w, h) = decoder.dimensions().map_err(decode_err)?;
    let (mut padded_w, mut padded_h) = (w, h);
    if decoder.get_chunk_type() == tiff::decoder::ChunkType::Tile {
        let (tw, th) = decoder.chunk_dimensions();
        (padded_w, padded_h) = (w.div_ceil(tw.max(1)) * tw, h.div_ceil(th.max(1)) * th);
        if (padded_w, padded_h) != (w, h) {
            patches.push((256, u64::from(padded_w)));
            patches.push((257, u64::from(padded_h)));
        }
    }
    let georef = GeoRef::read(&mut decoder);
    let patched;
    if !patches.is_empty() {
        patched = patch_tags(bytes, &patches).ok_or_else(|| RasterError::Decode {
            path: path.to_owned(),
            message: "cannot read the TIFF directory".into(),
        })?;
        decoder = Decoder::new(std::io::Cursor::new(patched.as_slice())).map_err(decode_err)?;
    }
    let color = decoder.colortype().map_err(decode_err)?;
    if matches!(
        color,
        tiff::ColorType::Palette(_)
            | tiff::ColorType::CMYK(_)
            | tiff::ColorType::CMYKA(_)
            | tiff::ColorType::YCbCr(_)
            | tiff::ColorType::Lab(_)
    ) {
        return Err(RasterError::Decode {
            path: path.to_owned(),
            message: format!(
                "colour type {color:?} (palette, CMYK, YCbCr or Lab) is not a band image"
            ),
        });
    }
    let count = usize::from(samples_per_pixel);
    let (w, h) = (w as usize, h as usize);
    let padded = read_chunks(&mut decoder, padded_w as usize, padded_h as usize, count);
    let samples = padded
        .map(|s| crop(s, padded_w as usize, w, h, count))
        .map_err(|e| match e {
            ChunkError::Tiff(e) => decode_err(e),
            ChunkError::Kind(kind) => RasterError::BitDepth {
                path: path.to_owned(),
                bits: color.bit_depth(),
                kind,
            },
        })?;
    Ok((w, h, count, samples, georef))
}

/// The top-left width×height of an image `stride` pixels wide.
fn crop(samples: Samples, stride: usize, width: usize, height: usize, count: usize) -> Samples {
    if stride == width {
        return samples;
    }
    fn rows<T: Copy>(v: &[T], stride: usize, width: usize, height: usize, count: usize) -> Vec<T> {
        v.chunks_exact(stride * count)
            .take(height)
            .flat_map(|row| row[..width * count].iter().copied())
            .collect()
    }
    match samples {
        Samples::U8(v) => Samples::U8(rows(&v, stride, width, height, count)),
        Samples::U16(v) => Samples::U16(rows(&v, stride, width, height, count)),
    }
}

enum ChunkError {
    Tiff(tiff::TiffError),
    Kind(&'static str),
}

/// The whole image, assembled chunk by chunk (tiles or strips). `Decoder::read_image`
/// fails on tiled multi-band images whose edge tiles are cropped; `read_chunk` does not.
fn read_chunks<R: std::io::Read + std::io::Seek>(
    decoder: &mut Decoder<R>,
    width: usize,
    height: usize,
    count: usize,
) -> Result<Samples, ChunkError> {
    let (chunk_w, chunk_h) = decoder.chunk_dimensions();
    let (chunk_w, chunk_h) = (chunk_w as usize, chunk_h as usize);
    let across = width.div_ceil(chunk_w.max(1));
    let chunks = match decoder.get_chunk_type() {
        tiff::decoder::ChunkType::Tile => decoder.tile_count(),
        tiff::decoder::ChunkType::Strip => decoder.strip_count(),
    }
    .map_err(ChunkError::Tiff)?;
    let mut out: Option<Samples> = None;
    for index in 0..chunks {
        let (data_w, data_h) = decoder.chunk_data_dimensions(index);
        let (data_w, data_h) = (data_w as usize, data_h as usize);
        let (x0, y0) = (
            (index as usize % across) * chunk_w,
            (index as usize / across) * chunk_h,
        );
        let chunk = decoder.read_chunk(index).map_err(ChunkError::Tiff)?;
        macro_rules! place {
            ($variant:ident, $data:expr) => {{
                let target =
                    out.get_or_insert_with(|| Samples::$variant(vec![0; width * height * count]));
                let Samples::$variant(target) = target else {
                    return Err(ChunkError::Kind("mixed-depth"));
                };
                let row = data_w * count;
                for (r, source) in $data.chunks_exact(row).take(data_h).enumerate() {
                    let y = y0 + r;
                    if y >= height || x0 >= width {
                        break;
                    }
                    let start = (y * width + x0) * count;
                    let len = row.min((width - x0) * count);
                    target[start..start + len].copy_from_slice(&source[..len]);
                }
            }};
        }
        match chunk {
            DecodingResult::U8(v) => place!(U8, v),
            DecodingResult::U16(v) => place!(U16, v),
            DecodingResult::F32(_) | DecodingResult::F64(_) | DecodingResult::F16(_) => {
                return Err(ChunkError::Kind("floating-point"));
            }
            DecodingResult::I8(_)
            | DecodingResult::I16(_)
            | DecodingResult::I32(_)
            | DecodingResult::I64(_) => return Err(ChunkError::Kind("signed integer")),
            DecodingResult::U32(_) | DecodingResult::U64(_) => {
                return Err(ChunkError::Kind("32/64-bit unsigned integer"));
            }
        }
    }
    out.ok_or(ChunkError::Kind("empty"))
}

/// A copy of a TIFF with some tags of its first image directory set to new values
/// (SHORT/LONG/LONG8 values stored in the entry itself). Classic and BigTIFF, either byte
/// order; None if the header, the directory or a tag is not where it should be.
fn patch_tags(bytes: &[u8], patches: &[(u16, u64)]) -> Option<Vec<u8>> {
    let little = bytes.get(..2)? == b"II";
    let read = |at: usize, len: usize| -> Option<u64> {
        let b = bytes.get(at..at + len)?;
        let fold = |acc: u64, x: &u8| (acc << 8) | u64::from(*x);
        Some(if little {
            b.iter().rev().fold(0, fold)
        } else {
            b.iter().fold(0, fold)
        })
    };
    let big = read(2, 2)? == 43;
    let (count, entries, entry_size, value_offset) = if big {
        let ifd = usize::try_from(read(8, 8)?).ok()?;
        (usize::try_from(read(ifd, 8)?).ok()?, ifd + 8, 20, 12)
    } else {
        let ifd = usize::try_from(read(4, 4)?).ok()?;
        (usize::try_from(read(ifd, 2)?).ok()?, ifd + 2, 12, 8)
    };
    let mut out = bytes.to_vec();
    for (tag, value) in patches {
        let entry = (0..count)
            .map(|i| entries + i * entry_size)
            .find(|e| read(*e, 2) == Some(u64::from(*tag)))?;
        let width = match read(entry + 2, 2)? {
            3 => 2,  // SHORT
            4 => 4,  // LONG
            16 => 8, // LONG8
            _ => return None,
        };
        let at = entry + value_offset;
        let mut encoded: Vec<u8> = (0..width).map(|k| (value >> (8 * k)) as u8).collect();
        if !little {
            encoded.reverse();
        }
        out.get_mut(at..at + width)?.copy_from_slice(&encoded);
    }
    Some(out)
}

fn decode_other(bytes: &[u8], path: &Path) -> Result<Decoded, RasterError> {
    // The JPEG decoder fills a truncated file's missing rows with grey and says nothing;
    // a JPEG without its end-of-image marker is refused instead of analysed.
    if bytes.starts_with(&[0xFF, 0xD8])
        && !bytes.windows(2).rev().take(4096).any(|w| w == [0xFF, 0xD9])
    {
        return Err(RasterError::Decode {
            path: path.to_owned(),
            message: "JPEG without its end-of-image marker (truncated)".into(),
        });
    }
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
    Ok((w, h, count, samples, None))
}

fn deinterleave(samples: &Samples, count: usize, pixels: usize, scale16: Scale16) -> Vec<Vec<f32>> {
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

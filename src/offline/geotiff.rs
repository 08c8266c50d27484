//! GeoTIFF georeference: read the tags of a scene, write them (rescaled to the tile grid)
//! on the class map. Only the tags are handled here; the pixels go through `tiff`.
//!
//! Written by hand because no maintained pure-Rust crate reads and writes GeoTIFF tags
//! without GDAL (the `geotiff` crate reads only). The tags are copied as they are; only
//! the pixel-to-model mapping changes with the tile grid, so no projection maths is needed.

use std::io::{Read, Seek};
use std::path::Path;

use tiff::decoder::Decoder;
use tiff::encoder::{TiffEncoder, colortype};
use tiff::tags::Tag;

/// The georeferencing tags of one image (GeoTIFF 1.1 §7).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GeoRef {
    /// ModelPixelScale: (sx, sy, sz) model units per pixel.
    pub pixel_scale: Option<Vec<f64>>,
    /// ModelTiepoint: (i, j, k, x, y, z) per tie point.
    pub tiepoints: Option<Vec<f64>>,
    /// ModelTransformation: 4x4 row-major raster → model.
    pub transformation: Option<Vec<f64>>,
    pub geo_keys: Option<Vec<u16>>,
    pub geo_doubles: Option<Vec<f64>>,
    pub geo_ascii: Option<String>,
}

impl GeoRef {
    /// The georeference of the decoder's current image, or None if it has no mapping from
    /// pixels to model space (a plain TIFF).
    pub fn read<R: Read + Seek>(decoder: &mut Decoder<R>) -> Option<GeoRef> {
        let mut doubles = |tag| {
            decoder
                .find_tag(Tag::Unknown(tag))
                .ok()
                .flatten()
                .and_then(|v| v.into_f64_vec().ok())
        };
        let pixel_scale = doubles(33550);
        let tiepoints = doubles(33922);
        let transformation = doubles(34264);
        let geo_doubles = doubles(34736);
        let geo_keys = decoder
            .find_tag_unsigned_vec::<u16>(Tag::Unknown(34735))
            .ok()
            .flatten();
        let geo_ascii = decoder
            .find_tag(Tag::Unknown(34737))
            .ok()
            .flatten()
            .and_then(|v| v.into_string().ok());
        let georef = GeoRef {
            pixel_scale,
            tiepoints,
            transformation,
            geo_keys,
            geo_doubles,
            geo_ascii,
        };
        georef.has_mapping().then_some(georef)
    }

    fn has_mapping(&self) -> bool {
        let scale_and_tie = self.pixel_scale.as_ref().is_some_and(|s| s.len() >= 2)
            && self.tiepoints.as_ref().is_some_and(|t| t.len() >= 6);
        let transform = self.transformation.as_ref().is_some_and(|t| t.len() == 16);
        scale_and_tie || transform
    }

    /// The same place for a grid whose cell (c, r) starts at pixel (c·step, r·step): the
    /// scale (or the transformation's linear part) grows by `step`, tie points move to
    /// the grid's coordinates.
    pub fn for_grid(&self, step: usize) -> GeoRef {
        let s = step as f64;
        let mut out = self.clone();
        if let Some(scale) = &mut out.pixel_scale {
            for v in scale.iter_mut().take(2) {
                *v *= s;
            }
        }
        if let Some(ties) = &mut out.tiepoints {
            for tie in ties.chunks_mut(6) {
                tie[0] /= s;
                tie[1] /= s;
            }
        }
        if let Some(t) = &mut out.transformation {
            for row in 0..2 {
                t[row * 4] *= s;
                t[row * 4 + 1] *= s;
            }
        }
        out
    }

    /// The pixel width in metres, when the scene is in a projected CRS measured in metres
    /// (GTModelTypeGeoKey 1 and ProjLinearUnitsGeoKey absent or 9001).
    pub fn pixel_size_m(&self) -> Option<f64> {
        let keys = self.geo_keys.as_ref()?;
        // Header (4 shorts), then (key, location, count, value) per key.
        let key = |id: u16| {
            keys.get(4..)?
                .chunks_exact(4)
                .find(|k| k[0] == id && k[1] == 0)
                .map(|k| k[3])
        };
        if key(1024) != Some(1) || key(3076).is_some_and(|unit| unit != 9001) {
            return None;
        }
        match (&self.pixel_scale, &self.transformation) {
            (Some(scale), _) => scale.first().copied(),
            (None, Some(t)) if t.len() == 16 => Some(t[0].hypot(t[4])),
            _ => None,
        }
    }

    /// Model coordinates of a pixel corner (for the summary line).
    pub fn model_xy(&self, col: f64, row: f64) -> Option<(f64, f64)> {
        if let Some(t) = self.transformation.as_ref().filter(|t| t.len() == 16) {
            return Some((
                t[0] * col + t[1] * row + t[3],
                t[4] * col + t[5] * row + t[7],
            ));
        }
        let (scale, tie) = (self.pixel_scale.as_ref()?, self.tiepoints.as_ref()?);
        Some((
            tie[3] + (col - tie[0]) * scale[0],
            tie[4] - (row - tie[1]) * scale[1],
        ))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: cannot write GeoTIFF: {message}")]
pub struct WriteError {
    pub path: std::path::PathBuf,
    pub message: String,
}

/// Writes an 8-bit single-band class map, with `georef`'s tags if given.
pub fn write_class_map(
    path: &Path,
    width: usize,
    height: usize,
    classes: &[u8],
    georef: Option<&GeoRef>,
) -> Result<(), WriteError> {
    write_image::<colortype::Gray8>(path, width, height, classes, georef)
}

/// One image of colour type `C` with `georef`'s tags if given.
fn write_image<C>(
    path: &Path,
    width: usize,
    height: usize,
    data: &[C::Inner],
    georef: Option<&GeoRef>,
) -> Result<(), WriteError>
where
    C: colortype::ColorType,
    [C::Inner]: tiff::encoder::TiffValue,
{
    let err = |message: String| WriteError {
        path: path.to_owned(),
        message,
    };
    let file = std::fs::File::create(path).map_err(|e| err(e.to_string()))?;
    let mut encoder =
        TiffEncoder::new(std::io::BufWriter::new(file)).map_err(|e| err(e.to_string()))?;
    let mut image = encoder
        .new_image::<C>(width as u32, height as u32)
        .map_err(|e| err(e.to_string()))?;
    if let Some(g) = georef {
        write_tags(image.encoder(), g).map_err(|e| err(e.to_string()))?;
    }
    image.write_data(data).map_err(|e| err(e.to_string()))
}

fn write_tags<W: std::io::Write + Seek, K: tiff::encoder::TiffKind>(
    dir: &mut tiff::encoder::DirectoryEncoder<'_, W, K>,
    g: &GeoRef,
) -> tiff::TiffResult<()> {
    if let Some(v) = &g.pixel_scale {
        dir.write_tag(Tag::Unknown(33550), v.as_slice())?;
    }
    if let Some(v) = &g.tiepoints {
        dir.write_tag(Tag::Unknown(33922), v.as_slice())?;
    }
    if let Some(v) = &g.transformation {
        dir.write_tag(Tag::Unknown(34264), v.as_slice())?;
    }
    if let Some(v) = &g.geo_keys {
        dir.write_tag(Tag::Unknown(34735), v.as_slice())?;
    }
    if let Some(v) = &g.geo_doubles {
        dir.write_tag(Tag::Unknown(34736), v.as_slice())?;
    }
    if let Some(v) = &g.geo_ascii {
        dir.write_tag(Tag::Unknown(34737), v.as_str())?;
    }
    Ok(())
}

/// Writes a 1-, 3- or 4-band 16-bit (Geo)TIFF (tests build scenes with it; operators
/// bring real ones).
pub fn write_bands_u16(
    path: &Path,
    width: usize,
    height: usize,
    bands: usize,
    interleaved: &[u16],
    georef: Option<&GeoRef>,
) -> Result<(), WriteError> {
    match bands {
        1 => write_image::<colortype::Gray16>(path, width, height, interleaved, georef),
        3 => write_image::<colortype::RGB16>(path, width, height, interleaved, georef),
        4 => write_image::<colortype::RGBA16>(path, width, height, interleaved, georef),
        n => Err(WriteError {
            path: path.to_owned(),
            message: format!("{n} bands: only 1, 3 or 4 can be written"),
        }),
    }
}

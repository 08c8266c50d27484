//! Dermoscopic lesion segmentation, the paper's two classical pipelines (Balducci &
//! Grana, ICIAP 2017): optional DullRazor hair removal, the black-frame mask M0, then
//!
//! - **Otsu**: Otsu's threshold over the grey pixels outside M0; darker is lesion.
//! - **Colour clustering**: the Otsu image closed and eroded into a tolerance image whose
//!   dark regions at the border (the frame, grown) form M1, which replaces M0, and whose
//!   largest other region M2 is the tolerance area around the lesion; K-means (K = 10) over
//!   the RGB pixels outside M1; a cluster with more than 10 % of its pixels outside M2 is
//!   skin, the rest is lesion (see [`cluster`] for how this differs from the paper).
//!
//! | module      | what it owns                                                 |
//! |-------------|--------------------------------------------------------------|
//! | [`params`]  | `[offline.lesion]`: every size and threshold, paper defaults  |
//! | [`hair`]    | DullRazor: directional closings, long-thin check, replacement |
//! | [`frame`]   | M0, the black frame                                           |
//! | [`cluster`] | tolerance image, M1/M2, K-means and the 10 % rule            |
//! | [`regions`] | connected regions with area and bounding box                 |
//! | [`score`]   | pixel TP/FP/FN/TN, precision/recall/F1/accuracy              |
//! | [`dataset`] | scoring a folder of images + ground-truth masks              |

pub mod cluster;
pub mod dataset;
pub mod frame;
pub mod hair;
pub mod params;
pub mod regions;
pub mod score;

use std::path::Path;

use image::{GrayImage, Luma, RgbImage};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::raster::{self, RasterError, Scale16};
use super::store::{Store, StoreError};
pub use params::LesionParams;

#[derive(Debug, thiserror::Error)]
pub enum LesionError {
    #[error(transparent)]
    Raster(#[from] RasterError),
    #[error(
        "{path}: {width}x{height} is smaller than the {need}-pixel hair structuring element; lesion segmentation needs a dermoscopic image at least {need}x{need} (typically 500 px or more)"
    )]
    TooSmall {
        path: String,
        width: usize,
        height: usize,
        need: usize,
    },
    #[error("{path}: K-means failed: {message}")]
    Clustering { path: String, message: String },
}

/// Which of the paper's two pipelines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Otsu,
    Cluster,
}

impl Method {
    pub fn parse(text: &str) -> Option<Method> {
        match text {
            "otsu" => Some(Method::Otsu),
            "cluster" => Some(Method::Cluster),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Otsu => "otsu",
            Method::Cluster => "cluster",
        }
    }
}

/// An input image as 8-bit RGB, with what was done to get there.
pub struct LesionInput {
    pub rgb: RgbImage,
    pub bit_depth: u8,
    pub warnings: Vec<String>,
}

/// Reads PNG/JPEG/TIFF bytes: 16-bit samples are scaled linearly to 8 bits, grey images
/// are used as three equal channels (with a warning: colour clustering then sees
/// intensity only).
pub fn read_input(bytes: &[u8], path: &Path, tiff: bool) -> Result<LesionInput, LesionError> {
    let raster = raster::read_bytes(bytes, path, tiff, None, Scale16::Range(0.0, 65535.0))?;
    let mut warnings = Vec::new();
    let planes: [&[f32]; 3] = match raster.planes.len() {
        1 | 2 => {
            warnings.push(
                "grey image: hair removal and colour clustering see intensity only".to_owned(),
            );
            let p = raster.planes[0].as_slice();
            [p, p, p]
        }
        _ => [&raster.planes[0], &raster.planes[1], &raster.planes[2]],
    };
    let rgb = RgbImage::from_fn(raster.width as u32, raster.height as u32, |x, y| {
        let i = y as usize * raster.width + x as usize;
        image::Rgb(planes.map(|p| (p[i] * 255.0).round().clamp(0.0, 255.0) as u8))
    });
    Ok(LesionInput {
        rgb,
        bit_depth: raster.bit_depth,
        warnings,
    })
}

/// Every intermediate picture of one run, for `--debug-dir` (masks are 0/255).
#[derive(Default)]
pub struct Steps {
    pub hair_candidates: Option<GrayImage>,
    pub hair_replaced: Option<GrayImage>,
    pub hair_removed: Option<RgbImage>,
    pub frame_m0: Option<GrayImage>,
    pub otsu: Option<GrayImage>,
    pub tolerance: Option<GrayImage>,
    pub m1: Option<GrayImage>,
    pub m2: Option<GrayImage>,
    /// One colour per K-means cluster: lesion clusters bright, skin clusters dimmed.
    pub clusters: Option<RgbImage>,
}

impl Steps {
    /// (file suffix, picture) for each step that ran, in pipeline order.
    pub fn pictures(&self) -> Vec<(&'static str, image::DynamicImage)> {
        let mut out = Vec::new();
        let mut gray = |name, img: &Option<GrayImage>| {
            if let Some(img) = img {
                out.push((name, image::DynamicImage::ImageLuma8(img.clone())));
            }
        };
        gray("1-hair-candidates", &self.hair_candidates);
        gray("2-hair-replaced", &self.hair_replaced);
        gray("4-frame-m0", &self.frame_m0);
        gray("5-otsu", &self.otsu);
        gray("6-tolerance", &self.tolerance);
        gray("7-m1", &self.m1);
        gray("8-m2", &self.m2);
        if let Some(img) = &self.hair_removed {
            out.push((
                "3-hair-removed",
                image::DynamicImage::ImageRgb8(img.clone()),
            ));
        }
        if let Some(img) = &self.clusters {
            out.push(("9-clusters", image::DynamicImage::ImageRgb8(img.clone())));
        }
        out.sort_by_key(|(name, _)| *name);
        out
    }
}

/// What one image gave.
pub struct Segmentation {
    /// The lesion mask, 0/255, image size.
    pub mask: GrayImage,
    pub otsu_level: Option<u8>,
    /// Per K-means cluster: (pixels, fraction outside M2, labelled lesion).
    pub clusters: Vec<cluster::ClusterStat>,
    pub hair_pixels: usize,
    pub frame_pixels: usize,
    pub warnings: Vec<String>,
    pub steps: Steps,
}

impl Segmentation {
    pub fn lesion_pixels(&self) -> usize {
        count(&self.mask)
    }
}

pub fn count(mask: &GrayImage) -> usize {
    mask.as_raw().iter().filter(|&&v| v > 0).count()
}

/// Refuses images the hair elements do not fit in.
pub fn check_size(input: &RgbImage, name: &str, params: &LesionParams) -> Result<(), LesionError> {
    let (w, h) = (input.width() as usize, input.height() as usize);
    let need = params.min_side();
    if w < need || h < need {
        return Err(LesionError::TooSmall {
            path: name.to_owned(),
            width: w,
            height: h,
            need,
        });
    }
    Ok(())
}

/// Runs one pipeline over one image, with hair removal when the parameters ask for it.
/// `keep_steps`: keep the intermediate pictures.
pub fn segment(
    input: &RgbImage,
    name: &str,
    method: Method,
    params: &LesionParams,
    keep_steps: bool,
) -> Result<Segmentation, LesionError> {
    check_size(input, name, params)?;
    let removal = params
        .hair_removal
        .then(|| hair::remove_hair(input, params));
    segment_after_hair(input, removal.as_ref(), name, method, params, keep_steps)
}

/// The pipeline after hair removal (`removal`: its result, or None to segment `input` as
/// it is); evaluation shares one hair removal between both methods.
pub fn segment_after_hair(
    input: &RgbImage,
    removal: Option<&hair::HairRemoval>,
    name: &str,
    method: Method,
    params: &LesionParams,
    keep_steps: bool,
) -> Result<Segmentation, LesionError> {
    let (w, h) = (input.width() as usize, input.height() as usize);
    let mut steps = Steps::default();
    let mut warnings = Vec::new();
    let mut hair_pixels = 0;
    let image = match removal {
        Some(removal) => {
            hair_pixels = count(&removal.replaced);
            if keep_steps {
                steps.hair_candidates = Some(removal.candidates.clone());
                steps.hair_replaced = Some(removal.replaced.clone());
                steps.hair_removed = Some(removal.image.clone());
            }
            &removal.image
        }
        None => input,
    };
    // DynamicImage::to_luma8's colour-space-aware conversion (not public on ImageBuffer;
    // imageops::grayscale rounds differently and moves the measured PH2 scores).
    let gray = image::DynamicImage::ImageRgb8(image.clone()).to_luma8();
    let m0 = frame::frame_mask(&gray, params);
    let frame_pixels = count(&m0);

    // Otsu over the pixels outside M0: imageproc's otsu_level on a one-row image of them.
    let outside: Vec<u8> = gray
        .as_raw()
        .iter()
        .zip(m0.as_raw())
        .filter(|(_, f)| **f == 0)
        .map(|(g, _)| *g)
        .collect();
    let (otsu_mask, level) = if outside.is_empty() {
        warnings.push("no skin outside the black frame: the image is (nearly) all dark".into());
        (GrayImage::new(w as u32, h as u32), None)
    } else {
        let row = GrayImage::from_raw(outside.len() as u32, 1, outside).unwrap_or_default();
        let level = imageproc::contrast::otsu_level(&row);
        let mask = GrayImage::from_fn(w as u32, h as u32, |x, y| {
            let dark = gray.get_pixel(x, y)[0] <= level && m0.get_pixel(x, y)[0] == 0;
            Luma([if dark { 255 } else { 0 }])
        });
        (mask, Some(level))
    };

    let (mask, clusters) = match method {
        Method::Otsu => (otsu_mask.clone(), Vec::new()),
        Method::Cluster if level.is_none() => (otsu_mask.clone(), Vec::new()),
        Method::Cluster => {
            let result = cluster::cluster_lesion(image, &otsu_mask, &m0, params, name)?;
            warnings.extend(result.warnings);
            if keep_steps {
                steps.tolerance = Some(result.tolerance);
                steps.m1 = Some(result.m1);
                steps.m2 = Some(result.m2);
                steps.clusters = Some(result.picture);
            }
            (result.mask, result.stats)
        }
    };
    if keep_steps {
        steps.frame_m0 = Some(m0);
        steps.otsu = Some(otsu_mask);
    }
    Ok(Segmentation {
        mask,
        otsu_level: level,
        clusters,
        hair_pixels,
        frame_pixels,
        warnings,
        steps,
    })
}

/// The result line of one image (schema `spectrald.offline/v1`, task `lesion`); the
/// caller adds `outputs` and `ms`.
pub fn result_line(
    input_name: &str,
    input_sha256: &str,
    input: &LesionInput,
    seg: &Segmentation,
    method: Method,
    params: &LesionParams,
) -> Value {
    let (w, h) = input.rgb.dimensions();
    let lesion = seg.lesion_pixels();
    let mut warnings = input.warnings.clone();
    warnings.extend(seg.warnings.iter().cloned());
    json!({
        "schema": super::run::SCHEMA,
        "task": "lesion",
        "method": method.as_str(),
        "hair_removal": params.hair_removal,
        "input": input_name,
        "input_sha256": input_sha256,
        "width": w,
        "height": h,
        "bit_depth": input.bit_depth,
        "lesion_pixels": lesion,
        "lesion_fraction": ((lesion as f64 / f64::from(w * h)) * 1e4).round() / 1e4,
        "otsu_level": seg.otsu_level,
        "hair_pixels": seg.hair_pixels,
        "frame_pixels": seg.frame_pixels,
        "clusters": seg.clusters,
        "warnings": warnings,
    })
}

/// A lesion pipeline as the result store knows it: `lesion-METHOD@` + the first 12 hex
/// digits of its parameters' JSON sha256, so other parameters make other results (as
/// another model version does for the model-based tasks). The CLI and the HTTP service
/// store lesion results through it.
pub struct StoredPipeline {
    /// The store's model id, also named in each stored line (`"pipeline"`).
    pub id: String,
    method: Method,
    params_sha256: String,
    params: Value,
}

/// Where a stored line came from: files and uploads are keyed apart (the store's
/// `options`), so one never replaces the other's record of the same image.
#[derive(Clone, Copy)]
pub enum Source {
    File,
    Upload,
}

impl Source {
    pub fn options(self) -> &'static str {
        match self {
            Source::File => "{}",
            Source::Upload => r#"{"upload":true}"#,
        }
    }
}

impl StoredPipeline {
    pub fn new(method: Method, params: &LesionParams) -> StoredPipeline {
        let json = serde_json::to_string(params).unwrap_or_default();
        let params_sha256 = crate::infer::sha256_hex(json.as_bytes());
        StoredPipeline {
            id: format!("lesion-{}@{}", method.as_str(), &params_sha256[..12]),
            method,
            params_sha256,
            params: json!({ "params": params }),
        }
    }

    /// Registers the pipeline in the store's `models` table (once is enough; repeating
    /// it changes nothing).
    pub fn register(&self, store: &Store) -> Result<(), StoreError> {
        store.register_pipeline(
            &self.id,
            &format!("lesion-{}", self.method.as_str()),
            "lesion",
            &self.params_sha256,
            &self.params,
        )
    }

    /// Names the pipeline in `line` and keeps the line (a registered pipeline's).
    pub fn insert(
        &self,
        store: &Store,
        line: &mut Value,
        source: Source,
    ) -> Result<(), StoreError> {
        line["pipeline"] = json!(self.id);
        let field = |key: &str| line[key].as_str().unwrap_or_default().to_owned();
        let (input, sha) = (field("input"), field("input_sha256"));
        store.insert(
            &self.id,
            "lesion",
            &input,
            &sha,
            source.options(),
            &line.to_string(),
        )
    }
}

/// The image with lesion pixels tinted red (as the paper's figures) and the ground truth,
/// when given, outlined in green.
pub fn overlay(image: &RgbImage, mask: &GrayImage, truth: Option<&GrayImage>) -> RgbImage {
    let mut out = image.clone();
    for (x, y, p) in out.enumerate_pixels_mut() {
        if mask.get_pixel(x, y)[0] > 0 {
            p.0 = [((u16::from(p[0]) + 255) / 2) as u8, (p[1] / 2), (p[2] / 2)];
        }
    }
    if let Some(truth) = truth {
        let edge =
            imageproc::morphology::dilate(truth, imageproc::distance_transform::Norm::LInf, 1);
        for (x, y, p) in out.enumerate_pixels_mut() {
            if edge.get_pixel(x, y)[0] > 0 && truth.get_pixel(x, y)[0] == 0 {
                p.0 = [0, 255, 0];
            }
        }
    }
    out
}

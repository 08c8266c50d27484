//! Scoring the lesion pipelines on a folder of dermoscopic images with ground-truth masks,
//! the paper's experiment (§4): each pipeline (Otsu, colour clustering) on the original
//! images and on the hair-removed images, TP/FP/FN/TN per image and summed over the set.
//!
//! Layout: `DATASET/images/NAME.{jpg,png,bmp,tif}` and `DATASET/masks/NAME.png`,
//! `NAME_lesion.png` (PH2) or `NAME_segmentation.png` (ISIC); non-zero mask pixels are
//! lesion.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use image::GrayImage;
use serde::Serialize;

use super::score::{PixelCounts, Scores};
use super::{LesionError, LesionParams, Method, hair, read_input, segment_after_hair};

const IMAGE_EXTENSIONS: [&str; 6] = ["jpg", "jpeg", "png", "bmp", "tif", "tiff"];
const MASK_SUFFIXES: [&str; 4] = ["", "_lesion", "_segmentation", "_mask"];

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("dataset {path}: {message}")]
    Layout { path: PathBuf, message: String },
}

/// (image, one-line error) per image that could not be scored.
pub type Failures = Vec<(String, String)>;

/// Called with each image, its truth and what every variant made of it (`--debug-dir`).
pub type OnMasks<'a> =
    dyn Fn(&Item, &image::RgbImage, &GrayImage, &[(Variant, super::Segmentation)]) + Sync + 'a;

/// How to run an evaluation.
pub struct Settings<'a> {
    pub variants: &'a [Variant],
    pub params: &'a LesionParams,
    /// Images scored at once.
    pub threads: usize,
    /// Keep the intermediate pictures for `on_masks`.
    pub keep_steps: bool,
    pub on_masks: &'a OnMasks<'a>,
    /// Ticks once per image.
    pub progress: &'a (dyn Fn() + Sync),
}

/// One image and its ground-truth mask.
#[derive(Debug, Clone)]
pub struct Item {
    pub name: String,
    pub image: PathBuf,
    pub mask: PathBuf,
}

/// The four runs of the paper's experiment, or a subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Variant {
    pub method: Method,
    pub hair_removal: bool,
}

impl Variant {
    /// Which images the pipeline ran on: "original" or "hair-removed".
    pub fn images(&self) -> &'static str {
        if self.hair_removal {
            "hair-removed"
        } else {
            "original"
        }
    }

    pub fn label(&self) -> String {
        format!("{} {}", self.method.as_str(), self.images())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ImageScore {
    pub image: String,
    pub counts: PixelCounts,
    pub scores: Scores,
}

#[derive(Debug, Clone, Serialize)]
pub struct VariantReport {
    pub variant: Variant,
    pub images: Vec<ImageScore>,
    /// Counts summed over all images and the scores from those sums (the paper's "TOT").
    pub global_counts: PixelCounts,
    pub global: Scores,
    /// The mean of the per-image scores.
    pub per_image_mean: Scores,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub dataset: String,
    pub params: LesionParams,
    pub variants: Vec<VariantReport>,
    /// (image, one-line error) per image that could not be scored.
    pub failed: Vec<(String, String)>,
}

/// Pairs every image in `DATASET/images` with its mask in `DATASET/masks`; an image
/// without a mask is a failure of that image, not of the run.
pub fn load_items(dataset: &Path) -> Result<(Vec<Item>, Failures), DatasetError> {
    let layout = |message: String| DatasetError::Layout {
        path: dataset.to_owned(),
        message,
    };
    let images = dataset.join("images");
    let masks = dataset.join("masks");
    if !images.is_dir() || !masks.is_dir() {
        return Err(layout(
            "expected images/ and masks/ folders (masks/NAME.png, NAME_lesion.png or NAME_segmentation.png)".into(),
        ));
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&images)
        .map_err(|e| layout(format!("images/: {e}")))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(layout("images/ holds no images".into()));
    }
    let mut items = Vec::new();
    let mut missing = Vec::new();
    for image in files {
        let name = image
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mask = MASK_SUFFIXES
            .iter()
            .map(|suffix| masks.join(format!("{name}{suffix}.png")))
            .find(|p| p.is_file());
        match mask {
            Some(mask) => items.push(Item { name, image, mask }),
            None => missing.push((
                name.clone(),
                format!("no mask masks/{name}.png (or {name}_lesion.png, {name}_segmentation.png)"),
            )),
        }
    }
    Ok((items, missing))
}

/// A ground-truth mask as 0/255, checked against the image size.
pub fn read_mask(path: &Path, width: u32, height: u32) -> Result<GrayImage, String> {
    let mask = image::open(path)
        .map_err(|e| format!("{}: not a readable mask ({e})", path.display()))?
        .to_luma8();
    if mask.dimensions() != (width, height) {
        return Err(format!(
            "{}: mask is {}x{}, the image {}x{}; masks must have the image's size",
            path.display(),
            mask.width(),
            mask.height(),
            width,
            height
        ));
    }
    Ok(GrayImage::from_fn(width, height, |x, y| {
        image::Luma([if mask.get_pixel(x, y)[0] > 0 { 255 } else { 0 }])
    }))
}

/// The counts of one image in every variant.
type ItemResult = Result<Vec<PixelCounts>, String>;

fn score_item(item: &Item, run: &Settings) -> ItemResult {
    let (variants, params, keep_steps) = (run.variants, run.params, run.keep_steps);
    let bytes = std::fs::read(&item.image).map_err(|e| format!("{}: {e}", item.image.display()))?;
    let input = read_input(&bytes, &item.image, super::raster::is_tiff(&item.image))
        .map_err(|e| e.to_string())?;
    let (w, h) = input.rgb.dimensions();
    let truth = read_mask(&item.mask, w, h)?;
    super::check_size(&input.rgb, &item.name, params).map_err(|e| e.to_string())?;
    let removal = variants
        .iter()
        .any(|v| v.hair_removal)
        .then(|| hair::remove_hair(&input.rgb, params));
    let mut results = Vec::new();
    for variant in variants {
        let removal = if variant.hair_removal {
            removal.as_ref()
        } else {
            None
        };
        let seg = segment_after_hair(
            &input.rgb,
            removal,
            &item.name,
            variant.method,
            params,
            keep_steps,
        )
        .map_err(|e: LesionError| e.to_string())?;
        results.push((*variant, seg));
    }
    (run.on_masks)(item, &input.rgb, &truth, &results);
    Ok(results
        .iter()
        .map(|(_, seg)| PixelCounts::compare(&seg.mask, &truth))
        .collect())
}

/// Scores every item in every variant on `threads` threads; `progress` ticks per image.
pub fn evaluate(dataset: &Path, items: &[Item], mut failed: Failures, run: &Settings) -> Report {
    let (variants, params) = (run.variants, run.params);
    let results: Vec<Mutex<Option<ItemResult>>> = items.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..run.threads.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let result = score_item(item, run);
                    if let Ok(mut slot) = results[i].lock() {
                        *slot = Some(result);
                    }
                    (run.progress)();
                }
            });
        }
    });
    let mut reports: Vec<VariantReport> = variants
        .iter()
        .map(|v| VariantReport {
            variant: *v,
            images: Vec::new(),
            global_counts: PixelCounts::default(),
            global: PixelCounts::default().scores(),
            per_image_mean: PixelCounts::default().scores(),
        })
        .collect();
    for (item, slot) in items.iter().zip(results) {
        match slot.into_inner().ok().flatten() {
            Some(Ok(counts)) => {
                for (report, c) in reports.iter_mut().zip(counts) {
                    report.global_counts.add(&c);
                    report.images.push(ImageScore {
                        image: item.name.clone(),
                        counts: c,
                        scores: c.scores(),
                    });
                }
            }
            Some(Err(e)) => failed.push((item.name.clone(), e)),
            None => failed.push((item.name.clone(), "not scored (worker stopped)".into())),
        }
    }
    for report in &mut reports {
        report.global = report.global_counts.scores();
        let per_image: Vec<Scores> = report.images.iter().map(|i| i.scores).collect();
        report.per_image_mean = Scores::mean(&per_image);
    }
    failed.sort();
    Report {
        dataset: dataset.display().to_string(),
        params: params.clone(),
        variants: reports,
        failed,
    }
}

/// The summary table: one row per variant, global (summed counts) and per-image means.
pub fn summary_table(report: &Report) -> String {
    let mut out = format!(
        "{:<24} {:>6} | {:>9} {:>6} {:>6} {:>8} | {:>9} {:>6} {:>6} {:>8}\n",
        "pipeline", "images", "global P", "R", "F1", "accuracy", "mean P", "R", "F1", "accuracy"
    );
    for v in &report.variants {
        let g = v.global;
        let m = v.per_image_mean;
        out += &format!(
            "{:<24} {:>6} | {:>9.3} {:>6.3} {:>6.3} {:>8.3} | {:>9.3} {:>6.3} {:>6.3} {:>8.3}\n",
            v.variant.label(),
            v.images.len(),
            g.precision,
            g.recall,
            g.f1,
            g.accuracy,
            m.precision,
            m.recall,
            m.f1,
            m.accuracy
        );
    }
    out
}

/// A paper-style table for one variant: TP FP FN TN per image, the TOT row and its scores.
pub fn paper_table(v: &VariantReport) -> String {
    let mut out = format!(
        "{}\n{:<14} {:>10} {:>10} {:>10} {:>12}\n",
        v.variant.label(),
        "image",
        "TP",
        "FP",
        "FN",
        "TN"
    );
    for i in &v.images {
        let c = i.counts;
        out += &format!(
            "{:<14} {:>10} {:>10} {:>10} {:>12}\n",
            i.image, c.tp, c.fp, c.fn_, c.tn
        );
    }
    let c = v.global_counts;
    out += &format!(
        "{:<14} {:>10} {:>10} {:>10} {:>12}\n",
        "TOT", c.tp, c.fp, c.fn_, c.tn
    );
    let g = v.global;
    out += &format!(
        "precision {:.2}  recall {:.2}  f1 {:.2}  accuracy {:.2}\n",
        g.precision, g.recall, g.f1, g.accuracy
    );
    out
}

/// Per-image rows of every variant as CSV.
pub fn per_image_csv(report: &Report) -> String {
    let mut out =
        String::from("image,method,hair_removal,tp,fp,fn,tn,precision,recall,f1,accuracy\n");
    for v in &report.variants {
        for i in &v.images {
            let (c, s) = (i.counts, i.scores);
            out += &format!(
                "{},{},{},{},{},{},{},{:.6},{:.6},{:.6},{:.6}\n",
                csv_field(&i.image),
                v.variant.method.as_str(),
                v.variant.hair_removal,
                c.tp,
                c.fp,
                c.fn_,
                c.tn,
                s.precision,
                s.recall,
                s.f1,
                s.accuracy
            );
        }
    }
    out
}

/// One row per variant and aggregation (global, per_image_mean) as CSV.
pub fn summary_csv(report: &Report) -> String {
    let mut out = String::from(
        "method,hair_removal,aggregate,images,tp,fp,fn,tn,precision,recall,f1,accuracy\n",
    );
    for v in &report.variants {
        let c = v.global_counts;
        for (aggregate, s, counts) in [
            (
                "global",
                v.global,
                format!("{},{},{},{}", c.tp, c.fp, c.fn_, c.tn),
            ),
            ("per_image_mean", v.per_image_mean, ",,,".to_owned()),
        ] {
            out += &format!(
                "{},{},{aggregate},{},{counts},{:.6},{:.6},{:.6},{:.6}\n",
                v.variant.method.as_str(),
                v.variant.hair_removal,
                v.images.len(),
                s.precision,
                s.recall,
                s.f1,
                s.accuracy
            );
        }
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

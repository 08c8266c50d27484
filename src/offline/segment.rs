//! Semantic segmentation: the whole image resized to the model input (and, with
//! test-time scales above 1, tiled at larger sizes: `multiscale`), class probabilities
//! resized back to the image (bilinear), optionally refined with the
//! contextual-regularization energy, then argmax per pixel.

use std::path::Path;

use image::{Rgb, RgbImage};
use serde::Serialize;

use super::OfflineError;
use super::model::OfflineModel;
use super::multiscale;
use super::raster::Raster;
use super::refine::{self, RefineParams};

#[derive(Debug, Clone)]
pub struct Segmentation {
    pub width: usize,
    pub height: usize,
    /// Class index per pixel, row-major.
    pub labels: Vec<u8>,
    pub summary: SegmentSummary,
}

#[derive(Debug, Clone, Serialize)]
pub struct SegmentSummary {
    /// Share of the image's pixels per class, in class order.
    pub class_fractions: Vec<f32>,
    pub refined: bool,
    /// The test-time scales used (1: the whole image at the model input).
    pub scales: Vec<f64>,
    pub flip: bool,
}

pub fn segment(
    model: &mut OfflineModel,
    raster: &Raster,
    path: &Path,
    refine_with: Option<&RefineParams>,
) -> Result<Segmentation, OfflineError> {
    let mut probs = probabilities(model, raster, path)?;
    let classes = model.classes().len();
    if let Some(params) = refine_with {
        refine_probabilities(&mut probs, classes, model, raster, path, params)?;
    }
    let labels = argmax_labels(&probs, classes, raster.width * raster.height);
    let mut counts = vec![0usize; classes];
    for l in &labels {
        counts[*l as usize] += 1;
    }
    let n = labels.len().max(1);
    Ok(Segmentation {
        width: raster.width,
        height: raster.height,
        labels,
        summary: SegmentSummary {
            class_fractions: counts.iter().map(|c| *c as f32 / n as f32).collect(),
            refined: refine_with.is_some(),
            scales: model.test_time.scales.clone(),
            flip: model.test_time.flip,
        },
    })
}

/// The network's class probabilities at the image's size, class-major, averaged over the
/// model's test-time scales and flip.
pub fn probabilities(
    model: &mut OfflineModel,
    raster: &Raster,
    path: &Path,
) -> Result<Vec<f32>, OfflineError> {
    let (w, h) = (raster.width, raster.height);
    // Below a quarter of the model's side the resize invents most of the input.
    if w * 4 < model.width || h * 4 < model.height {
        return Err(OfflineError::TooSmall {
            path: path.to_owned(),
            width: w,
            height: h,
            need_w: model.width / 4,
            need_h: model.height / 4,
        });
    }
    let bands = model.manifest().bands.clone();
    let planes = raster.select(&bands, path)?;
    let plan = model.test_time.clone();
    multiscale::probabilities(model, &planes, (w, h), &plan)
}

/// Contextual-regularization refinement guided by the image's own colours.
pub fn refine_probabilities(
    probs: &mut [f32],
    classes: usize,
    model: &OfflineModel,
    raster: &Raster,
    path: &Path,
    params: &RefineParams,
) -> Result<(), OfflineError> {
    let planes = raster.select(&model.manifest().bands, path)?;
    let weights = refine::affinities(&planes, raster.width, raster.height, params.sigma);
    refine::refine(
        probs,
        classes,
        raster.width,
        raster.height,
        &weights,
        params,
    );
    Ok(())
}

/// The most probable class per pixel.
pub fn argmax_labels(probs: &[f32], classes: usize, pixels: usize) -> Vec<u8> {
    (0..pixels)
        .map(|i| {
            let mut best = (0, f32::NEG_INFINITY);
            for c in 0..classes {
                let p = probs[c * pixels + i];
                if p > best.1 {
                    best = (c, p);
                }
            }
            best.0 as u8
        })
        .collect()
}

/// The class colours, or a fixed palette when the manifest has none.
pub fn palette(colors: &[[u8; 3]], classes: usize) -> Vec<[u8; 3]> {
    (0..classes)
        .map(|c| {
            colors.get(c).copied().unwrap_or({
                // Evenly spread hues at full saturation (readable on any image).
                let hue = c as f32 / classes.max(1) as f32 * 6.0;
                let x = (1.0 - (hue % 2.0 - 1.0).abs()) * 255.0;
                let v = match hue as u32 {
                    0 => [255.0, x, 0.0],
                    1 => [x, 255.0, 0.0],
                    2 => [0.0, 255.0, x],
                    3 => [0.0, x, 255.0],
                    4 => [x, 0.0, 255.0],
                    _ => [255.0, 0.0, x],
                };
                [v[0] as u8, v[1] as u8, v[2] as u8]
            })
        })
        .collect()
}

/// Labels drawn in their class colours.
pub fn colour_labels(labels: &[u8], width: usize, height: usize, palette: &[[u8; 3]]) -> RgbImage {
    RgbImage::from_fn(width as u32, height as u32, |x, y| {
        let c = labels[y as usize * width + x as usize] as usize;
        Rgb(palette.get(c).copied().unwrap_or([0, 0, 0]))
    })
}

/// The image with the class colours blended over it (half and half).
pub fn overlay(raster: &Raster, labels: &[u8], palette: &[[u8; 3]]) -> RgbImage {
    let grey: Vec<f32>;
    let (r, g, b) = match (
        raster.select(
            &["red".into(), "green".into(), "blue".into()],
            Path::new(""),
        ),
        raster.planes.first(),
    ) {
        (Ok(p), _) => (p[0], p[1], p[2]),
        (Err(_), Some(first)) => {
            grey = first.clone();
            (grey.as_slice(), grey.as_slice(), grey.as_slice())
        }
        (Err(_), None) => return colour_labels(labels, raster.width, raster.height, palette),
    };
    let w = raster.width;
    RgbImage::from_fn(w as u32, raster.height as u32, |x, y| {
        let i = y as usize * w + x as usize;
        let colour = palette
            .get(labels[i] as usize)
            .copied()
            .unwrap_or([0, 0, 0]);
        let mix = |v: f32, c: u8| ((v * 255.0 + f32::from(c)) / 2.0) as u8;
        Rgb([
            mix(r[i], colour[0]),
            mix(g[i], colour[1]),
            mix(b[i], colour[2]),
        ])
    })
}

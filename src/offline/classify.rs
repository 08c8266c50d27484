//! Scene classification: an image the model's size is one patch; a larger scene is cut
//! into model-sized tiles on a regular grid (`stride` pixels apart) and every tile gets a
//! class, so the result is a class map with one cell per tile.

use std::path::Path;

use serde::Serialize;

use super::OfflineError;
use super::model::OfflineModel;
use super::raster::Raster;

/// Where the tiles lie: cell (c, r) covers pixels [c·stride, c·stride + patch).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TileGrid {
    pub cols: usize,
    pub rows: usize,
    pub patch: usize,
    pub stride: usize,
    /// Pixels at the right/bottom edge that no tile covers (less than one stride).
    pub uncovered_right: usize,
    pub uncovered_bottom: usize,
}

impl TileGrid {
    pub fn new(width: usize, height: usize, patch: usize, stride: usize) -> Option<TileGrid> {
        if width < patch || height < patch || stride == 0 {
            return None;
        }
        let cols = (width - patch) / stride + 1;
        let rows = (height - patch) / stride + 1;
        Some(TileGrid {
            cols,
            rows,
            patch,
            stride,
            uncovered_right: width - ((cols - 1) * stride + patch),
            uncovered_bottom: height - ((rows - 1) * stride + patch),
        })
    }

    pub fn len(&self) -> usize {
        self.cols * self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One image's result: a class per tile (one tile for a patch-sized image).
#[derive(Debug, Clone, Serialize)]
pub struct Classification {
    pub grid: TileGrid,
    /// Class index per tile, row-major.
    pub tiles: Vec<u8>,
    /// Probability of the chosen class per tile.
    pub confidence: Vec<f32>,
    /// Mean probability per class over all tiles (the whole image's class likelihoods).
    pub mean_probabilities: Vec<f32>,
}

impl Classification {
    /// The class of the whole image: highest mean probability.
    pub fn top_class(&self) -> usize {
        argmax(&self.mean_probabilities)
    }

    /// Tiles per class, in class order.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.mean_probabilities.len()];
        for t in &self.tiles {
            counts[*t as usize] += 1;
        }
        counts
    }
}

pub fn argmax(values: &[f32]) -> usize {
    values
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, v)| {
            if *v > best.1 { (i, *v) } else { best }
        })
        .0
}

/// Classifies every tile of `raster`, `batch` tiles per inference call.
pub fn classify(
    model: &mut OfflineModel,
    raster: &Raster,
    path: &Path,
    stride: Option<usize>,
    batch: usize,
) -> Result<Classification, OfflineError> {
    let patch = model.width;
    if model.height != model.width {
        return Err(OfflineError::Unsupported(format!(
            "{}: tiling needs a square model input, this one is {}x{}",
            model.manifest().name,
            model.width,
            model.height
        )));
    }
    let grid = TileGrid::new(raster.width, raster.height, patch, stride.unwrap_or(patch))
        .ok_or_else(|| OfflineError::TooSmall {
            path: path.to_owned(),
            width: raster.width,
            height: raster.height,
            need_w: patch,
            need_h: patch,
        })?;
    let planes = raster.select(&model.manifest().bands, path)?;
    let classes = model.classes().len();
    let batch = batch.max(1);
    let item = model.channels * patch * patch;
    let mut tiles = Vec::with_capacity(grid.len());
    let mut confidence = Vec::with_capacity(grid.len());
    let mut sums = vec![0f64; classes];
    let mut input = Vec::with_capacity(item * batch);
    let all: Vec<(usize, usize)> = (0..grid.rows)
        .flat_map(|r| (0..grid.cols).map(move |c| (c, r)))
        .collect();
    for chunk in all.chunks(batch) {
        input.clear();
        for (c, r) in chunk {
            let (x0, y0) = (c * grid.stride, r * grid.stride);
            for plane in &planes {
                for y in y0..y0 + patch {
                    let row = y * raster.width;
                    input.extend_from_slice(&plane[row + x0..row + x0 + patch]);
                }
            }
        }
        let probs = model.run(&input, chunk.len())?;
        for p in probs.chunks_exact(classes) {
            let k = argmax(p);
            tiles.push(k as u8);
            confidence.push(p[k]);
            for (s, v) in sums.iter_mut().zip(p) {
                *s += f64::from(*v);
            }
        }
    }
    let n = grid.len() as f64;
    Ok(Classification {
        grid,
        tiles,
        confidence,
        mean_probabilities: sums.iter().map(|s| (s / n) as f32).collect(),
    })
}

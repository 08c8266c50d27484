//! The colour-clustering pipeline's own steps (paper §3.2, Figs. 9–11):
//!
//! 1. **Tolerance image**: the Otsu picture (skin white, lesion and frame dark) closed and
//!    then eroded, so scattered dark specks vanish and the dark regions grow a safety
//!    margin.
//! 2. **M1, M2**: its dark connected regions. M1 is M0 plus the regions at the border that
//!    do not reach the centre (the frame grown) and replaces M0; the largest other region
//!    is M2, the tolerance area around the lesion. (The paper takes the largest region as
//!    M1 and the second as M2: its images all have a frame; see [`split_m1_m2`].)
//! 3. **K-means** (linfa) over the RGB pixels outside M1, K = 10.
//! 4. **The 10 % rule**: a cluster with more than 10 % of its pixels outside M2 is skin;
//!    the other clusters' pixels are the lesion.

use image::{GrayImage, Luma, RgbImage};
use imageproc::distance_transform::Norm;
use imageproc::morphology::{close, erode};
use linfa::DatasetBase;
use linfa::traits::{Fit, Predict};
use linfa_clustering::KMeans;
use ndarray::Array2;
use rand_xoshiro::Xoshiro256Plus;
use rand_xoshiro::rand_core::SeedableRng;
use serde::Serialize;

use super::LesionError;
use super::params::LesionParams;
use super::regions::Regions;

/// One K-means cluster as the 10 % rule saw it.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStat {
    /// Mean colour (RGB 0–255).
    pub rgb: [u8; 3],
    pub pixels: usize,
    /// Fraction of its pixels outside the tolerance area M2.
    pub outside_m2: f64,
    pub lesion: bool,
}

pub struct ClusterResult {
    pub mask: GrayImage,
    pub tolerance: GrayImage,
    pub m1: GrayImage,
    pub m2: GrayImage,
    pub picture: RgbImage,
    pub stats: Vec<ClusterStat>,
    pub warnings: Vec<String>,
}

/// Tolerance image: skin (255) closed, then eroded; dark regions come out enlarged.
pub fn tolerance_image(otsu: &GrayImage, m0: &GrayImage, params: &LesionParams) -> GrayImage {
    let width = otsu.width() as usize;
    let skin = GrayImage::from_fn(otsu.width(), otsu.height(), |x, y| {
        let dark = otsu.get_pixel(x, y)[0] > 0 || m0.get_pixel(x, y)[0] > 0;
        Luma([if dark { 0 } else { 255 }])
    });
    let rc = params.scaled_radius(params.tolerance_closing, width);
    let re = params.scaled_radius(params.tolerance_erosion, width);
    let closed = if rc > 0 {
        close(&skin, Norm::LInf, rc)
    } else {
        skin
    };
    if re > 0 {
        erode(&closed, Norm::LInf, re)
    } else {
        closed
    }
}

/// M1 and M2 from the dark components of the tolerance image.
///
/// M1 is the frame grown: M0 plus every dark component that touches the image border
/// without reaching the image's central third (frame, vignette corners, the halo between
/// skin and frame). M2 is the largest remaining component, the central lesion. On the
/// paper's images (a black frame around a centred lesion) this is its rule — largest
/// component M1, second M2 — and it also holds where the frame is only dark corners
/// (split into several components) or missing, and where a large lesion touches the
/// border (it reaches the centre, so it stays a lesion).
pub fn split_m1_m2(tolerance: &GrayImage, m0: &GrayImage) -> (GrayImage, GrayImage) {
    let (w, h) = tolerance.dimensions();
    let dark = GrayImage::from_fn(w, h, |x, y| {
        Luma([if tolerance.get_pixel(x, y)[0] == 0 {
            255
        } else {
            0
        }])
    });
    let regions = Regions::of(&dark);
    let n = regions.regions.len();
    let mut in_centre = vec![false; n];
    let centre_x = w / 3..(2 * w).div_ceil(3);
    let centre_y = h / 3..(2 * h).div_ceil(3);
    for (x, y, l) in regions.labels.enumerate_pixels() {
        in_centre[l[0] as usize] |= centre_x.contains(&x) && centre_y.contains(&y);
    }
    let frame = |l: usize| regions.regions[l].touches_border(w, h) && !in_centre[l];
    let m2_label = (1..n)
        .filter(|&l| !frame(l))
        .max_by_key(|&l| (regions.regions[l].area, std::cmp::Reverse(l)));
    let grown_frame = regions.mask_where(frame);
    let m1 = GrayImage::from_fn(w, h, |x, y| {
        Luma([m0.get_pixel(x, y)[0].max(grown_frame.get_pixel(x, y)[0])])
    });
    let m2 = regions.mask_where(|l| Some(l) == m2_label);
    (m1, m2)
}

/// A fixed, readable palette for the cluster picture (one colour per cluster).
const PALETTE: [[u8; 3]; 10] = [
    [230, 25, 75],
    [60, 180, 75],
    [255, 225, 25],
    [0, 130, 200],
    [245, 130, 48],
    [145, 30, 180],
    [70, 240, 240],
    [240, 50, 230],
    [210, 245, 60],
    [250, 190, 212],
];

/// The clustering pipeline over an image, its Otsu picture and M0.
pub fn cluster_lesion(
    image: &RgbImage,
    otsu: &GrayImage,
    m0: &GrayImage,
    params: &LesionParams,
    name: &str,
) -> Result<ClusterResult, LesionError> {
    let (w, h) = image.dimensions();
    let tolerance = tolerance_image(otsu, m0, params);
    let (m1, m2) = split_m1_m2(&tolerance, m0);
    let mut warnings = Vec::new();
    // M1 holds M0 (split_m1_m2 starts from it): the pixels outside M1 are clustered.
    let pixels: Vec<usize> = (0..m1.as_raw().len())
        .filter(|&i| m1.as_raw()[i] == 0)
        .collect();
    let empty = |warnings: Vec<String>| ClusterResult {
        mask: GrayImage::new(w, h),
        tolerance: tolerance.clone(),
        m1: m1.clone(),
        m2: m2.clone(),
        picture: RgbImage::new(w, h),
        stats: Vec::new(),
        warnings,
    };
    if super::count(&m2) == 0 {
        warnings.push("no tolerance area M2 (no dark region besides the frame): no lesion".into());
        return Ok(empty(warnings));
    }
    if pixels.is_empty() {
        warnings.push("no pixels left outside M1 to cluster".into());
        return Ok(empty(warnings));
    }
    let raw = image.as_raw();
    let colour = |i: usize| [raw[3 * i], raw[3 * i + 1], raw[3 * i + 2]];
    // Fit on evenly spaced pixels (all of them up to `kmeans_sample`), assign all.
    let stride = pixels.len().div_ceil(params.kmeans_sample).max(1);
    let sample: Vec<usize> = pixels.iter().copied().step_by(stride).collect();
    let distinct: std::collections::HashSet<[u8; 3]> =
        sample.iter().map(|&i| colour(i)).take(100_000).collect();
    let k = params.clusters.min(distinct.len()).max(1);
    let to_array = |idx: &[usize]| {
        Array2::from_shape_fn((idx.len(), 3), |(r, c)| f64::from(raw[3 * idx[r] + c]))
    };
    let model = KMeans::params_with_rng(k, Xoshiro256Plus::seed_from_u64(params.kmeans_seed))
        .n_runs(params.kmeans_runs)
        .max_n_iterations(params.kmeans_max_iterations)
        .tolerance(params.kmeans_tolerance)
        .fit(&DatasetBase::from(to_array(&sample)))
        .map_err(|e| LesionError::Clustering {
            path: name.to_owned(),
            message: e.to_string(),
        })?;
    let memberships = model.predict(&to_array(&pixels));
    let mut stats = vec![(0usize, 0usize); k];
    for (&i, &c) in pixels.iter().zip(memberships.iter()) {
        stats[c].0 += 1;
        if m2.as_raw()[i] == 0 {
            stats[c].1 += 1;
        }
    }
    let centroids = model.centroids();
    let stats: Vec<ClusterStat> = stats
        .iter()
        .enumerate()
        .map(|(c, &(n, out))| {
            let outside = if n == 0 { 1.0 } else { out as f64 / n as f64 };
            ClusterStat {
                rgb: std::array::from_fn(|j| centroids[[c, j]].round().clamp(0.0, 255.0) as u8),
                pixels: n,
                outside_m2: (outside * 1e4).round() / 1e4,
                lesion: n > 0 && outside <= params.skin_outside_fraction,
            }
        })
        .collect();
    let mut mask = GrayImage::new(w, h);
    let mut picture = RgbImage::new(w, h);
    for (&i, &c) in pixels.iter().zip(memberships.iter()) {
        let (x, y) = ((i % w as usize) as u32, (i / w as usize) as u32);
        let [r, g, b] = PALETTE[c % PALETTE.len()];
        if stats[c].lesion {
            mask.put_pixel(x, y, Luma([255]));
            picture.put_pixel(x, y, image::Rgb([r, g, b]));
        } else {
            // Skin clusters drawn at half brightness, so lesion clusters stand out.
            picture.put_pixel(x, y, image::Rgb([r / 2, g / 2, b / 2]));
        }
    }
    if !stats.iter().any(|s| s.lesion) {
        warnings.push(format!(
            "every cluster has more than {:.0} % of its pixels outside the tolerance area: no lesion",
            params.skin_outside_fraction * 100.0
        ));
    }
    Ok(ClusterResult {
        mask,
        tolerance,
        m1,
        m2,
        picture,
        stats,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_is_m1_and_the_lesion_m2() {
        let count = super::super::count;
        // 100×80: a dark frame 5 px wide on the left and top, a dark 20×20 lesion in the
        // middle, a small dark speck, and a dark corner at the bottom right.
        let (w, h) = (100u32, 80u32);
        let m0 = GrayImage::from_fn(w, h, |x, y| Luma([if x < 5 || y < 5 { 255 } else { 0 }]));
        let lesion = |x: u32, y: u32| (40..60).contains(&x) && (30..50).contains(&y);
        let corner = |x: u32, y: u32| x >= 95 && y >= 75;
        let tolerance = GrayImage::from_fn(w, h, |x, y| {
            let dark = x < 5 || y < 5 || lesion(x, y) || corner(x, y) || (x, y) == (80, 60);
            Luma([if dark { 0 } else { 255 }])
        });
        let (m1, m2) = split_m1_m2(&tolerance, &m0);
        assert_eq!(count(&m1), 100 * 5 + 75 * 5 + 25);
        assert_eq!(count(&m2), 400);
        // No frame at all: the largest dark region is the lesion.
        let none = GrayImage::new(w, h);
        let tolerance = GrayImage::from_fn(w, h, |x, y| Luma([if lesion(x, y) { 0 } else { 255 }]));
        let (m1, m2) = split_m1_m2(&tolerance, &none);
        assert_eq!(count(&m1), 0);
        assert_eq!(count(&m2), 400);
        // A large lesion that reaches the border and the centre stays the lesion.
        let tolerance =
            GrayImage::from_fn(w, h, |x, y| Luma([if y < 50 && x > 30 { 0 } else { 255 }]));
        let (m1, m2) = split_m1_m2(&tolerance, &none);
        assert_eq!(count(&m1), 0);
        assert_eq!(count(&m2), 50 * 69);
    }
}

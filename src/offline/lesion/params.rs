//! The lesion pipelines' parameters: `[offline.lesion]` in the config file, every field
//! defaulted to the paper's value where the paper gives one (Balducci & Grana, ICIAP 2017,
//! `../shared/papers/dermoscopy-lesion-pixel-classification.txt`) and to a stated choice
//! where it does not.

use serde::{Deserialize, Serialize};

use crate::invalid::Invalid;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LesionParams {
    /// DullRazor hair removal before segmenting.
    pub hair_removal: bool,
    /// Lengths in pixels of the four directional structuring elements of the generalized
    /// closing: 0°, 90°, 45°, 135° (paper: 11, 11, 9, 9; a 9-pixel diagonal spans about
    /// the same distance as an 11-pixel straight line).
    pub hair_kernel_lengths: [u8; 4],
    /// A pixel is hair in a channel when closing − value exceeds this (0–255). The paper
    /// gives no value; 24 is chosen on the synthetic set and ph2-dev.
    pub hair_threshold: u8,
    /// A hair pixel is kept only on a structure at least this long (DullRazor's "thin and
    /// long" check; its value, 50 px, is for ~768-pixel-wide images like PH2's).
    pub hair_min_length: u32,
    /// …and on average at most this thick (DullRazor: 10 px).
    pub hair_max_width: u32,
    /// …and enclosing at most this many holes: hairs are curves (crossing hairs close a
    /// few), dark pigment network is a mesh of them, which DullRazor's thin-and-long test
    /// takes for hair. Not in the paper; chosen by cross-validation on ph2-dev
    /// (docs/lesion.md). A large value turns the test off.
    pub hair_max_holes: u32,
    /// Also find hairs lighter than the skin around them (grey or white hairs): the same
    /// test on the directional openings (DullRazor looks for dark hair only).
    pub hair_light: bool,
    /// The two interpolation pixels sit this far beyond the hair border, perpendicular to
    /// the hair (the paper's "fixed distance"; not given, 3 px chosen).
    pub hair_interpolation_distance: u32,
    /// Hair mask dilation in pixels before replacement, so the anti-aliased hair edge is
    /// replaced too (not in the paper; 1 px chosen).
    pub hair_mask_dilation: u8,
    /// Median smoothing radius over the replaced pixels (DullRazor's final smoothing);
    /// 0 disables it.
    pub hair_smoothing_radius: u32,

    /// Gaussian σ of the blur before the black-frame erosion (not given; 2 px chosen).
    pub frame_blur_sigma: f32,
    /// Side of the square erosion of the blurred image that grows the black frame (paper:
    /// 201 on 4000-pixel-wide images; scaled by `size_reference_width`).
    pub frame_erosion: u32,
    /// Blurred grey value (0–255) below which a pixel is black frame (not given; 60 chosen on
    /// ph2-dev, whose vignetted corners are 30–66 where 40 left most of them as lesion).
    pub frame_threshold: u8,
    /// Only dark regions connected to the image border count as frame, so a very dark
    /// lesion in the middle is never masked out (our safeguard; the paper's images all
    /// have a frame around a bright disc).
    pub frame_must_touch_border: bool,

    /// Clusters of the colour clustering (paper: K = 10).
    pub clusters: usize,
    /// Side of the closing that builds the tolerance area from the Otsu image (the paper
    /// uses "two different kernels" without sizes: 31 and 301 at 4000 px chosen on ph2-dev;
    /// 61 or 201 for the erosion left lesion-border clusters over the 10 % line).
    pub tolerance_closing: u32,
    /// Side of the erosion that enlarges the dark (lesion) regions into the tolerance area.
    pub tolerance_erosion: u32,
    /// A cluster with more than this fraction of its pixels outside the tolerance area M2
    /// is skin (paper: 10 %).
    pub skin_outside_fraction: f64,
    /// K-means restarts (best inertia kept), iterations and centroid tolerance (0–255 RGB).
    pub kmeans_runs: usize,
    pub kmeans_max_iterations: u64,
    pub kmeans_tolerance: f64,
    /// K-means is fitted on at most this many pixels (evenly spaced), then every pixel is
    /// assigned; keeps 12-megapixel images to seconds.
    pub kmeans_sample: usize,
    /// Seed of the K-means initialisation (results are reproducible run to run).
    pub kmeans_seed: u64,

    /// The frame and tolerance sizes above are for images this wide and are scaled to each
    /// image's width (paper: 4000 × 2664/3000 images). 0: use them as given.
    pub size_reference_width: u32,
}

impl Default for LesionParams {
    fn default() -> Self {
        LesionParams {
            hair_removal: true,
            hair_kernel_lengths: [11, 11, 9, 9],
            hair_threshold: 24,
            hair_min_length: 50,
            hair_max_width: 10,
            hair_max_holes: u32::MAX,
            hair_light: false,
            hair_interpolation_distance: 3,
            hair_mask_dilation: 1,
            hair_smoothing_radius: 2,
            frame_blur_sigma: 2.0,
            frame_erosion: 201,
            frame_threshold: 60,
            frame_must_touch_border: true,
            clusters: 10,
            tolerance_closing: 31,
            tolerance_erosion: 301,
            skin_outside_fraction: 0.10,
            kmeans_runs: 3,
            kmeans_max_iterations: 50,
            kmeans_tolerance: 0.5,
            kmeans_sample: 50_000,
            kmeans_seed: 42,
            size_reference_width: 4000,
        }
    }
}

impl LesionParams {
    /// Checks `[offline.lesion]`; field names relative to it.
    pub fn validate(&self) -> Result<(), Invalid> {
        let invalid = |field: &str, message: &str| Err(Invalid::new(field, message));
        if self.hair_kernel_lengths.iter().any(|&l| l < 3) {
            return invalid("hair_kernel_lengths", "each length must be at least 3");
        }
        if !(1..=64).contains(&self.clusters) {
            return invalid("clusters", "must be between 1 and 64");
        }
        if !(0.0..=1.0).contains(&self.skin_outside_fraction) {
            return invalid("skin_outside_fraction", "must be between 0 and 1");
        }
        if !(self.frame_blur_sigma >= 0.0 && self.frame_blur_sigma <= 50.0) {
            return invalid("frame_blur_sigma", "must be between 0 and 50");
        }
        if self.frame_erosion == 0 || self.tolerance_closing == 0 || self.tolerance_erosion == 0 {
            return invalid(
                "frame_erosion/tolerance_closing/tolerance_erosion",
                "sizes must be at least 1 (1 = no-op)",
            );
        }
        if self.kmeans_runs == 0 || self.kmeans_max_iterations == 0 || self.kmeans_sample < 100 {
            return invalid(
                "kmeans_runs/kmeans_max_iterations/kmeans_sample",
                "need at least 1 run, 1 iteration and a sample of 100 pixels",
            );
        }
        Ok(())
    }

    /// A size given for `size_reference_width`-wide images, for an image `width` wide, as
    /// a radius (side = 2·radius + 1), capped where imageproc's morphology stops (255).
    pub fn scaled_radius(&self, side: u32, width: usize) -> u8 {
        let side = if self.size_reference_width == 0 {
            f64::from(side)
        } else {
            f64::from(side) * width as f64 / f64::from(self.size_reference_width)
        };
        ((side - 1.0) / 2.0).round().clamp(0.0, 255.0) as u8
    }

    /// The smallest image side the hair kernels fit in.
    pub fn min_side(&self) -> usize {
        self.hair_kernel_lengths.iter().copied().max().unwrap_or(11) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_sizes_scale_with_the_image_width() {
        let p = LesionParams::default();
        assert_eq!(p.scaled_radius(201, 4000), 100);
        // PH2's 768-pixel images: 201 × 768 / 4000 ≈ 38.6 → side 39, radius 19.
        assert_eq!(p.scaled_radius(201, 768), 19);
        let fixed = LesionParams {
            size_reference_width: 0,
            ..p
        };
        assert_eq!(fixed.scaled_radius(201, 768), 100);
    }
}

//! Contextual regularization at inference: the paper's energy on the class-probability
//! maps, minimised after the network instead of (or as well as) during training.
//!
//! E(f) = Σ_i ‖f_i − p_i‖² + λ Σ_i Σ_{j∈N8(i)} W_ij ‖f_i − f_j‖₁,
//! W_ij = exp(−‖I_i − I_j‖² / 2σ²)
//!
//! p is the network's softmax, I the RGB image in [0, 1]. The L1 term is minimised by
//! iteratively reweighted least squares: with a_ij = W_ij / max(|f_i − f_j|, ε) from the
//! previous iterate, each Jacobi step sets f_i = (p_i + λ Σ_j a_ij f_j) / (1 + λ Σ_j a_ij)
//! per class, then the maps are renormalised to sum to one per pixel.

use serde::{Deserialize, Serialize};

const OFFSETS: [(isize, isize); 8] = [
    (-1, -1),
    (-1, 0),
    (-1, 1),
    (0, -1),
    (0, 1),
    (1, -1),
    (1, 0),
    (1, 1),
];

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RefineParams {
    /// λ: weight of the contextual term against staying near the network's output.
    pub lambda: f32,
    /// σ of the colour affinity (RGB in [0, 1]); the paper's 0.25.
    pub sigma: f32,
    pub iterations: usize,
    /// ε of the reweighting (keeps a_ij finite where neighbours agree).
    pub epsilon: f32,
}

impl Default for RefineParams {
    fn default() -> Self {
        RefineParams {
            lambda: 1.0,
            sigma: 0.25,
            iterations: 10,
            epsilon: 0.05,
        }
    }
}

/// The 8 neighbour affinities per pixel (0 outside the image), from RGB planes.
pub fn affinities(rgb: &[&[f32]], width: usize, height: usize, sigma: f32) -> Vec<[f32; 8]> {
    let scale = 1.0 / (2.0 * sigma * sigma);
    let mut out = vec![[0f32; 8]; width * height];
    for y in 0..height {
        for x in 0..width {
            let i = y * width + x;
            for (k, (dy, dx)) in OFFSETS.iter().enumerate() {
                let (ny, nx) = (y as isize + dy, x as isize + dx);
                if ny < 0 || nx < 0 || ny >= height as isize || nx >= width as isize {
                    continue;
                }
                let j = ny as usize * width + nx as usize;
                let d2: f32 = rgb.iter().map(|c| (c[i] - c[j]).powi(2)).sum();
                out[i][k] = (-d2 * scale).exp();
            }
        }
    }
    out
}

/// Refines class-major probability maps (`classes` planes of width×height) in place.
pub fn refine(
    probs: &mut [f32],
    classes: usize,
    width: usize,
    height: usize,
    weights: &[[f32; 8]],
    params: &RefineParams,
) {
    let n = width * height;
    let prior = probs.to_vec();
    let mut next = vec![0f32; probs.len()];
    // Neighbour k of pixel i is i + delta[k]; affinities are 0 where it would leave the
    // image, so those terms are skipped without bounds arithmetic per pixel.
    let delta: Vec<isize> = OFFSETS
        .iter()
        .map(|(dy, dx)| dy * width as isize + dx)
        .collect();
    for _ in 0..params.iterations {
        for c in 0..classes {
            let plane = &probs[c * n..(c + 1) * n];
            let prior = &prior[c * n..(c + 1) * n];
            let out = &mut next[c * n..(c + 1) * n];
            for i in 0..n {
                let (mut num, mut den) = (prior[i], 1.0f32);
                let fi = plane[i];
                for (w, d) in weights[i].iter().zip(&delta) {
                    if *w > 0.0 {
                        let fj = plane[(i as isize + d) as usize];
                        let a = params.lambda * w / (fi - fj).abs().max(params.epsilon);
                        num += a * fj;
                        den += a;
                    }
                }
                out[i] = num / den;
            }
        }
        for i in 0..n {
            let sum: f32 = (0..classes).map(|c| next[c * n + i].max(0.0)).sum();
            let scale = 1.0 / sum.max(f32::MIN_POSITIVE);
            for c in 0..classes {
                probs[c * n + i] = next[c * n + i].max(0.0) * scale;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_noisy_pixel_inside_a_uniform_region_takes_the_region_class() {
        // 5x5 flat grey image; class 0 everywhere except a confident-ish class 1 at the
        // centre: the contextual term pulls the centre to class 0.
        let (w, h) = (5, 5);
        let grey = vec![0.5f32; w * h];
        let weights = affinities(&[&grey, &grey, &grey], w, h, 0.25);
        let mut probs = vec![0f32; 2 * w * h];
        for i in 0..w * h {
            probs[i] = 0.9;
            probs[w * h + i] = 0.1;
        }
        probs[12] = 0.4;
        probs[w * h + 12] = 0.6;
        refine(&mut probs, 2, w, h, &weights, &RefineParams::default());
        assert!(
            probs[12] > probs[w * h + 12],
            "centre {:?}",
            (probs[12], probs[w * h + 12])
        );
    }

    #[test]
    fn an_edge_in_the_image_keeps_the_two_sides_apart() {
        // Left half black, right half white: affinity across the edge is ~0, so a class
        // boundary on the colour edge survives refinement.
        let (w, h) = (6, 3);
        let image: Vec<f32> = (0..w * h)
            .map(|i| if i % w < 3 { 0.0 } else { 1.0 })
            .collect();
        let weights = affinities(&[&image, &image, &image], w, h, 0.25);
        let mut probs = vec![0f32; 2 * w * h];
        for i in 0..w * h {
            let left = i % w < 3;
            probs[i] = if left { 0.8 } else { 0.2 };
            probs[w * h + i] = 1.0 - probs[i];
        }
        refine(
            &mut probs,
            2,
            w,
            h,
            &weights,
            &RefineParams {
                lambda: 10.0,
                ..Default::default()
            },
        );
        for i in 0..w * h {
            let left = i % w < 3;
            assert_eq!(probs[i] > probs[w * h + i], left, "pixel {i}");
        }
    }
}

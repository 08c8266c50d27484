//! Landmark helpers: Algorithm 1's glow mask (the landmark U-Net's training target, used
//! here to draw and to check parity with training) and the paper's NME (eq. 3).

use super::CANVAS;

pub const LANDMARK_COUNT: usize = 68;

/// Algorithm 1 of the paper, scaled to [0, 1]: each point adds 0.5^chebyshev_distance to
/// every pixel still below 1, in point order; distances from pixel centres, in canvas pixels.
pub fn landmark_mask(points: &[[f32; 2]]) -> Vec<f32> {
    let mut mask = vec![0.0f32; CANVAS * CANVAS];
    for p in points {
        let (px, py) = (p[0] * CANVAS as f32, p[1] * CANVAS as f32);
        for (row, pixels) in mask.chunks_exact_mut(CANVAS).enumerate() {
            let dy = (row as f32 + 0.5 - py).abs();
            for (col, m) in pixels.iter_mut().enumerate() {
                if *m < 1.0 {
                    let d = (col as f32 + 0.5 - px).abs().max(dy);
                    *m += 0.5f32.powf(d);
                }
            }
        }
    }
    for m in &mut mask {
        *m = m.min(1.0);
    }
    mask
}

/// Normalised mean error of one face (paper eq. 3): the mean point distance divided by the
/// outer-eye-corner distance (points 37 and 46, 1-based iBUG order). `None` for degenerate
/// ground truth (both eye corners on one spot).
pub fn nme(predicted: &[[f32; 2]], truth: &[[f32; 2]]) -> Option<f64> {
    if predicted.len() != LANDMARK_COUNT || truth.len() != LANDMARK_COUNT {
        return None;
    }
    let dist = |a: [f32; 2], b: [f32; 2]| {
        (((a[0] - b[0]) as f64).powi(2) + ((a[1] - b[1]) as f64).powi(2)).sqrt()
    };
    let interocular = dist(truth[36], truth[45]);
    if interocular <= f64::EPSILON {
        return None;
    }
    let total: f64 = predicted.iter().zip(truth).map(|(p, t)| dist(*p, *t)).sum();
    Some(total / LANDMARK_COUNT as f64 / interocular)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nme_is_error_over_interocular_distance() {
        let mut truth = vec![[0.0f32, 0.0]; LANDMARK_COUNT];
        truth[45] = [10.0, 0.0];
        let predicted: Vec<[f32; 2]> = truth.iter().map(|p| [p[0] + 1.0, p[1]]).collect();
        assert!((nme(&predicted, &truth).unwrap() - 0.1).abs() < 1e-12);
        assert!(nme(&predicted, &vec![[0.0, 0.0]; LANDMARK_COUNT]).is_none());
    }

    #[test]
    fn landmark_mask_glows_around_points() {
        let mask = landmark_mask(&[[0.5 + 0.5 / 128.0, 0.5 + 0.5 / 128.0]]);
        assert_eq!(mask[64 * CANVAS + 64], 1.0);
        assert!((mask[64 * CANVAS + 66] - 0.25).abs() < 1e-6);
    }
}

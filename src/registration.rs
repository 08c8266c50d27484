//! Thermal ↔ visible registration with a per-rig 3×3 homography.
//!
//! The two sensors of a rig see the scene from slightly different places through
//! different lenses; for faces at kiosk distance a plane-to-plane homography is the
//! standard model. `spectrald calibrate` fits it from ≥ 4 point pairs (normalised DLT,
//! Hartley & Zisserman, *Multiple View Geometry*, alg. 4.2) and reports the reprojection
//! error; the config stores it as `homography = [[…], […], […]]` (thermal → visible).

use std::path::Path;

use nalgebra::{DMatrix, Matrix3, Vector3};

use crate::geometry::BoundingBox;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RegistrationError {
    #[error("the homography is not invertible (determinant {0:e})")]
    Singular(f64),
    #[error("need at least 4 point pairs, got {0}")]
    TooFewPoints(usize),
    #[error(
        "the points are degenerate (three or more on one line, or repeated); spread them over the face area"
    )]
    Degenerate,
    #[error("{path} line {line}: {message}")]
    File {
        path: String,
        line: usize,
        message: String,
    },
}

/// Maps thermal pixels to visible pixels (and back with [`Homography::inverse`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Homography {
    m: Matrix3<f64>,
}

impl Homography {
    pub fn new(rows: [[f64; 3]; 3]) -> Result<Homography, RegistrationError> {
        let m = Matrix3::from_fn(|r, c| rows[r][c]);
        let det = m.determinant();
        if !det.is_finite() || det.abs() < 1e-12 {
            return Err(RegistrationError::Singular(det));
        }
        Ok(Homography { m })
    }

    pub fn identity() -> Homography {
        Homography {
            m: Matrix3::identity(),
        }
    }

    pub fn rows(&self) -> [[f64; 3]; 3] {
        std::array::from_fn(|r| std::array::from_fn(|c| self.m[(r, c)]))
    }

    pub fn inverse(&self) -> Homography {
        Homography {
            // new() rejected singular matrices, so the inverse exists.
            m: self.m.try_inverse().unwrap_or_else(Matrix3::identity),
        }
    }

    pub fn apply(&self, p: [f64; 2]) -> [f64; 2] {
        let v = self.m * Vector3::new(p[0], p[1], 1.0);
        [v.x / v.z, v.y / v.z]
    }

    /// The axis-aligned box around the mapped corners of `b`.
    pub fn map_box(&self, b: BoundingBox) -> BoundingBox {
        let corners = [
            [b.x, b.y],
            [b.x + b.w, b.y],
            [b.x, b.y + b.h],
            [b.x + b.w, b.y + b.h],
        ]
        .map(|[x, y]| self.apply([x as f64, y as f64]));
        let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
        for [x, y] in corners {
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
        }
        BoundingBox {
            x: x0 as f32,
            y: y0 as f32,
            w: (x1 - x0) as f32,
            h: (y1 - y0) as f32,
        }
    }

    pub fn map_points(&self, points: &[[f32; 2]]) -> Vec<[f32; 2]> {
        points
            .iter()
            .map(|p| {
                let [x, y] = self.apply([p[0] as f64, p[1] as f64]);
                [x as f32, y as f32]
            })
            .collect()
    }
}

/// A correspondence: the same scene point in the thermal and the visible image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointPair {
    pub thermal: [f64; 2],
    pub visible: [f64; 2],
}

/// Translation + isotropic scale taking points to centroid 0, mean distance √2.
fn normalizer(points: impl Iterator<Item = [f64; 2]> + Clone) -> Matrix3<f64> {
    let n = points.clone().count() as f64;
    let (cx, cy) = points
        .clone()
        .fold((0.0, 0.0), |(x, y), p| (x + p[0] / n, y + p[1] / n));
    let mean = points.map(|p| (p[0] - cx).hypot(p[1] - cy)).sum::<f64>() / n;
    let s = if mean > 0.0 {
        std::f64::consts::SQRT_2 / mean
    } else {
        1.0
    };
    Matrix3::new(s, 0.0, -s * cx, 0.0, s, -s * cy, 0.0, 0.0, 1.0)
}

/// The fitted homography and each pair's reprojection error (visible pixels).
#[derive(Debug, Clone)]
pub struct Fit {
    pub homography: Homography,
    pub errors: Vec<f64>,
}

impl Fit {
    pub fn rms(&self) -> f64 {
        (self.errors.iter().map(|e| e * e).sum::<f64>() / self.errors.len().max(1) as f64).sqrt()
    }
    pub fn max(&self) -> f64 {
        self.errors.iter().copied().fold(0.0, f64::max)
    }
}

/// Least-squares homography (thermal → visible) from ≥ 4 pairs.
pub fn fit(pairs: &[PointPair]) -> Result<Fit, RegistrationError> {
    if pairs.len() < 4 {
        return Err(RegistrationError::TooFewPoints(pairs.len()));
    }
    let t_norm = normalizer(pairs.iter().map(|p| p.thermal));
    let v_norm = normalizer(pairs.iter().map(|p| p.visible));
    let mut a = DMatrix::<f64>::zeros(2 * pairs.len().max(5), 9);
    for (i, p) in pairs.iter().enumerate() {
        let t = t_norm * Vector3::new(p.thermal[0], p.thermal[1], 1.0);
        let v = v_norm * Vector3::new(p.visible[0], p.visible[1], 1.0);
        let (x, y, u, w) = (t.x, t.y, v.x, v.y);
        let rows = [
            [-x, -y, -1.0, 0.0, 0.0, 0.0, u * x, u * y, u],
            [0.0, 0.0, 0.0, -x, -y, -1.0, w * x, w * y, w],
        ];
        for (k, row) in rows.iter().enumerate() {
            for (c, value) in row.iter().enumerate() {
                a[(2 * i + k, c)] = *value;
            }
        }
    }
    // (With exactly 4 pairs a zero row pads A to 9+ rows so the SVD yields the null space.)
    let svd = a.svd(false, true);
    let v_t = svd.v_t.ok_or(RegistrationError::Degenerate)?;
    let mut order: Vec<usize> = (0..svd.singular_values.len()).collect();
    order.sort_by(|a, b| svd.singular_values[*a].total_cmp(&svd.singular_values[*b]));
    let (smallest, runner_up, largest) = match order.as_slice() {
        [first, second, .., last] => (*first, *second, *last),
        _ => return Err(RegistrationError::Degenerate),
    };
    // A second (near) null direction means the points do not pin the homography down.
    if svd.singular_values[runner_up] < 1e-8 * svd.singular_values[largest] {
        return Err(RegistrationError::Degenerate);
    }
    let h = v_t.row(smallest);
    let h_norm = Matrix3::new(h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8]);
    let v_inverse = v_norm.try_inverse().ok_or(RegistrationError::Degenerate)?;
    let mut m = v_inverse * h_norm * t_norm;
    if m[(2, 2)].abs() < 1e-12 {
        return Err(RegistrationError::Degenerate);
    }
    m /= m[(2, 2)];
    let homography = Homography::new(std::array::from_fn(|r| std::array::from_fn(|c| m[(r, c)])))
        .map_err(|_| RegistrationError::Degenerate)?;
    let errors = pairs
        .iter()
        .map(|p| {
            let q = homography.apply(p.thermal);
            (q[0] - p.visible[0]).hypot(q[1] - p.visible[1])
        })
        .collect();
    Ok(Fit { homography, errors })
}

/// Reads `thermal_x,thermal_y,visible_x,visible_y` rows (header line, `#` comments allowed).
pub fn read_pairs(path: &Path) -> Result<Vec<PointPair>, RegistrationError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| RegistrationError::File {
        path: shown.clone(),
        line: 0,
        message: e.to_string(),
    })?;
    let mut pairs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with("thermal_x") {
            continue;
        }
        let values: Result<Vec<f64>, _> =
            line.split(',').map(|v| v.trim().parse::<f64>()).collect();
        match values {
            Ok(v) if v.len() == 4 && v.iter().all(|x| x.is_finite()) => pairs.push(PointPair {
                thermal: [v[0], v[1]],
                visible: [v[2], v[3]],
            }),
            _ => {
                return Err(RegistrationError::File {
                    path: shown,
                    line: i + 1,
                    message: format!(
                        "{line:?}: expected four numbers thermal_x,thermal_y,visible_x,visible_y"
                    ),
                });
            }
        }
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn truth() -> Homography {
        Homography::new([[2.1, 0.05, 12.0], [-0.03, 1.95, -8.0], [1e-4, -5e-5, 1.0]])
            .expect("invertible")
    }

    #[test]
    fn fit_recovers_a_known_homography() {
        let h = truth();
        let pairs: Vec<PointPair> = [
            [10.0, 10.0],
            [150.0, 12.0],
            [12.0, 110.0],
            [148.0, 115.0],
            [80.0, 60.0],
            [40.0, 90.0],
        ]
        .iter()
        .map(|&t| PointPair {
            thermal: t,
            visible: h.apply(t),
        })
        .collect();
        let fit = fit(&pairs).expect("fit");
        assert!(fit.max() < 1e-6, "{:?}", fit.errors);
        let p = fit.homography.apply([70.0, 30.0]);
        let q = h.apply([70.0, 30.0]);
        assert!((p[0] - q[0]).abs() < 1e-6 && (p[1] - q[1]).abs() < 1e-6);
        // Exactly four pairs also determine it.
        assert!(super::fit(&pairs[..4]).expect("4 pairs").max() < 1e-6);
    }

    #[test]
    fn noisy_points_report_their_error_and_bad_input_is_refused() {
        let h = truth();
        let pairs: Vec<PointPair> = [
            [10.0, 10.0],
            [150.0, 12.0],
            [12.0, 110.0],
            [148.0, 115.0],
            [80.0, 60.0],
        ]
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let v = h.apply(t);
            PointPair {
                thermal: t,
                visible: [v[0] + if i == 4 { 3.0 } else { 0.0 }, v[1]],
            }
        })
        .collect();
        let fit = fit(&pairs).expect("fit");
        assert!(fit.rms() > 0.1 && fit.max() < 3.0, "{:?}", fit.errors);
        assert_eq!(
            super::fit(&pairs[..3]).err(),
            Some(RegistrationError::TooFewPoints(3))
        );
        let line: Vec<PointPair> = (0..5)
            .map(|i| PointPair {
                thermal: [i as f64, i as f64],
                visible: [i as f64, 2.0 * i as f64],
            })
            .collect();
        assert!(super::fit(&line).is_err());
    }

    #[test]
    fn boxes_map_both_ways() {
        let h = truth();
        let b = BoundingBox {
            x: 20.0,
            y: 30.0,
            w: 40.0,
            h: 50.0,
        };
        let back = h.inverse().map_box(h.map_box(b));
        assert!(back.x <= b.x + 0.5 && back.w >= b.w - 0.5, "{back:?}");
        assert!(Homography::new([[0.0; 3]; 3]).is_err());
    }
}

//! The face crop: one detected face → the 128x128 canvas the DMSL models read, and the way
//! back to source pixels. Defined once for the daemon and the training scripts
//! (`models/train/dmsl_preprocess.py`, `face_crop`); `tests/it/crop_parity.rs` proves they
//! agree, so the models are trained on exactly what the daemon feeds them.
//!
//! A square of side `CROP_SCALE · √(w·h)` of the detector box, centred `CENTRE_SHIFT · h`
//! below the box centre (along the face's own "down" when the crop is upright), rotated by
//! the eye keypoints' angle when `upright`. Both constants were measured on the training
//! faces of 300-W (1,837 faces, every one detected; `models/train/measure_detector.py`): the
//! landmarks' box sits 0.126 · h below the detector box centre (sd 0.028) and is
//! 0.91 · √(w·h) wide (sd 0.05), so this crop holds the landmarks' box at half the canvas,
//! as the letterboxed 300-W training images did.
//!
//! Sampling: each canvas pixel averages n × n bilinear samples of the grey image (n =
//! ⌈side / 128⌉, at most 4), so a large face is smoothed before it is shrunk instead of
//! aliasing; outside the image is black, as the letterbox's padding is.

use super::CANVAS;
use crate::geometry::BoundingBox;

/// Crop side over √(detector box area).
pub const CROP_SCALE: f64 = 1.82;
/// Crop centre below the detector box centre, as a fraction of the box height.
pub const CENTRE_SHIFT: f64 = 0.125;
/// Most sub-samples per canvas pixel and axis.
pub const MAX_SUBSAMPLES: usize = 4;

/// Where one face's canvas sits in the source image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaceCrop {
    /// Centre, continuous source coordinates.
    pub cx: f64,
    pub cy: f64,
    /// Side of the square, source pixels.
    pub side: f64,
    /// Rotation of the square (radians, image coordinates: positive turns x towards y).
    pub angle: f64,
}

impl FaceCrop {
    /// The crop of a detection: `keypoints[0]` and `[1]` are the eyes (image left, image
    /// right); without them, or with `upright` off, the crop is not rotated.
    pub fn of_detection(
        face: BoundingBox,
        eyes: Option<([f32; 2], [f32; 2])>,
        upright: bool,
    ) -> FaceCrop {
        let (w, h) = (face.w as f64, face.h as f64);
        let angle = match eyes {
            Some((a, b)) if upright => ((b[1] - a[1]) as f64).atan2((b[0] - a[0]) as f64),
            _ => 0.0,
        };
        let (sin, cos) = angle.sin_cos();
        let shift = CENTRE_SHIFT * h;
        FaceCrop {
            cx: face.x as f64 + w / 2.0 - sin * shift,
            cy: face.y as f64 + h / 2.0 + cos * shift,
            side: CROP_SCALE * (w * h).max(0.0).sqrt(),
            angle,
        }
    }

    /// Normalised canvas point (u, v in [0, 1]) → continuous source coordinates.
    pub fn to_source(&self, u: f64, v: f64) -> [f64; 2] {
        let (sin, cos) = self.angle.sin_cos();
        let (dx, dy) = ((u - 0.5) * self.side, (v - 0.5) * self.side);
        [self.cx + cos * dx - sin * dy, self.cy + sin * dx + cos * dy]
    }

    /// Normalised canvas point → 0-based pixel-centre source coordinates (what records carry).
    pub fn to_source_pixel(&self, u: f32, v: f32) -> [f32; 2] {
        let [x, y] = self.to_source(u as f64, v as f64);
        [(x - 0.5) as f32, (y - 0.5) as f32]
    }

    /// Sub-samples per canvas pixel and axis for this crop.
    pub fn subsamples(&self) -> usize {
        ((self.side / CANVAS as f64).ceil() as usize).clamp(1, MAX_SUBSAMPLES)
    }

    /// The 128x128 canvas from a grey image (`width × height`, row-major, [0, 1]).
    pub fn sample(&self, gray: &[f32], width: usize, height: usize) -> Vec<f32> {
        let n = self.subsamples();
        let weight = 1.0 / (n * n) as f32;
        let mut canvas = vec![0.0f32; CANVAS * CANVAS];
        for (row, line) in canvas.chunks_exact_mut(CANVAS).enumerate() {
            for (col, out) in line.iter_mut().enumerate() {
                let mut sum = 0.0f32;
                for sy in 0..n {
                    let v = (row as f64 + (sy as f64 + 0.5) / n as f64) / CANVAS as f64;
                    for sx in 0..n {
                        let u = (col as f64 + (sx as f64 + 0.5) / n as f64) / CANVAS as f64;
                        let [x, y] = self.to_source(u, v);
                        sum += bilinear(gray, width, height, x - 0.5, y - 0.5);
                    }
                }
                *out = sum * weight;
            }
        }
        canvas
    }
}

/// The grey value at pixel-index coordinates (x, y) (pixel i's centre is i), bilinear
/// between the four neighbours; neighbours outside the image count as black.
fn bilinear(gray: &[f32], width: usize, height: usize, x: f64, y: f64) -> f32 {
    if !(x.is_finite() && y.is_finite()) {
        return 0.0;
    }
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = ((x - x0) as f32, (y - y0) as f32);
    let at = |xi: f64, yi: f64| -> f32 {
        if xi < 0.0 || yi < 0.0 || xi >= width as f64 || yi >= height as f64 {
            0.0
        } else {
            gray.get(yi as usize * width + xi as usize)
                .copied()
                .unwrap_or(0.0)
        }
    };
    let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1.0, y0) * fx;
    let bottom = at(x0, y0 + 1.0) * (1.0 - fx) + at(x0 + 1.0, y0 + 1.0) * fx;
    top * (1.0 - fy) + bottom * fy
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(x: f32, y: f32, side: f32) -> BoundingBox {
        BoundingBox {
            x,
            y,
            w: side,
            h: side,
        }
    }

    #[test]
    fn the_crop_centres_below_the_box_and_maps_back() {
        let crop = FaceCrop::of_detection(square(100.0, 50.0, 100.0), None, true);
        assert!((crop.cx - 150.0).abs() < 1e-9 && (crop.cy - 112.5).abs() < 1e-9);
        assert!((crop.side - 182.0).abs() < 1e-9);
        let centre = crop.to_source(0.5, 0.5);
        assert!((centre[0] - 150.0).abs() < 1e-9 && (centre[1] - 112.5).abs() < 1e-9);
        let corner = crop.to_source(0.0, 0.0);
        assert!((corner[0] - 59.0).abs() < 1e-9 && (corner[1] - 21.5).abs() < 1e-9);
    }

    #[test]
    fn upright_turns_with_the_eyes_and_round_trips() {
        // Eyes on a 45° line: the crop turns by 45°, the shift goes along the face's down.
        let eyes = ([0.0, 0.0], [10.0, 10.0]);
        let crop = FaceCrop::of_detection(square(0.0, 0.0, 100.0), Some(eyes), true);
        assert!((crop.angle - std::f64::consts::FRAC_PI_4).abs() < 1e-9);
        assert!(crop.cx < 50.0 && crop.cy > 50.0);
        let flat = FaceCrop::of_detection(square(0.0, 0.0, 100.0), Some(eyes), false);
        assert_eq!(flat.angle, 0.0);
        // The canvas's right-hand direction follows the eye line.
        let a = crop.to_source(0.5, 0.5);
        let b = crop.to_source(0.6, 0.5);
        assert!(((b[1] - a[1]) - (b[0] - a[0])).abs() < 1e-9);
    }

    #[test]
    fn sampling_reads_the_image_and_pads_outside_black() {
        // A 64x64 white image; a crop centred on its corner is white in one quadrant only.
        let gray = vec![1.0f32; 64 * 64];
        let crop = FaceCrop {
            cx: 0.0,
            cy: 0.0,
            side: 128.0,
            angle: 0.0,
        };
        let canvas = crop.sample(&gray, 64, 64);
        assert_eq!(canvas[0], 0.0, "outside, top-left");
        assert_eq!(canvas[100 * CANVAS + 100], 1.0, "inside");
        // A large crop sub-samples: 4 per axis at most.
        let big = FaceCrop {
            side: 1000.0,
            ..crop
        };
        assert_eq!(big.subsamples(), MAX_SUBSAMPLES);
        assert_eq!(crop.subsamples(), 1);
    }

    #[test]
    fn a_face_outside_the_image_gives_a_black_canvas_not_a_panic() {
        let gray = vec![0.5f32; 32 * 24];
        let away = FaceCrop::of_detection(square(-500.0, 900.0, 60.0), None, true);
        let canvas = away.sample(&gray, 32, 24);
        assert_eq!(canvas.len(), CANVAS * CANVAS);
        assert!(canvas.iter().all(|v| *v == 0.0));
        // Degenerate boxes (empty, NaN) do not panic either, and read nothing.
        for b in [square(0.0, 0.0, 0.0), square(f32::NAN, 0.0, 10.0)] {
            let crop = FaceCrop::of_detection(b, Some(([f32::NAN; 2], [1.0, 1.0])), true);
            let canvas = crop.sample(&gray, 32, 24);
            assert_eq!(canvas.len(), CANVAS * CANVAS);
            assert!(canvas.iter().all(|v| v.is_finite()));
        }
    }
}

//! Image → 128x128 model input, the black-out step, and the way back to source pixels.
//!
//! Coordinates are continuous: pixel i covers [i, i+1), its centre is i + 0.5. Model inputs
//! and outputs are normalised by the canvas size, so they live in [0, 1].

use fast_image_resize::images::{TypedImage, TypedImageRef};
use fast_image_resize::pixels::F32;
use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};

use crate::geometry::BoundingBox;
use crate::thermal::ThermalNormalization;
use crate::thermal::{self, Converter, agc::AgcError};

/// Side of the square model input.
pub const CANVAS: usize = 128;
/// The black-out keeps the boundary box grown by this fraction of its size on each side,
/// so a slightly short box does not cut off the jaw line (training uses the same margin).
pub const BLACKOUT_MARGIN: f32 = 0.10;

/// ITU-R BT.601 luma: the same weights as the training script.
const LUMA: [f32; 3] = [0.299, 0.587, 0.114];

/// 8-bit RGB → grey in [0, 1].
pub fn gray_from_rgb8(rgb: &[u8]) -> Vec<F32> {
    rgb.chunks_exact(3)
        .map(|p| {
            F32::new(
                (LUMA[0] * p[0] as f32 + LUMA[1] * p[1] as f32 + LUMA[2] * p[2] as f32) / 255.0,
            )
        })
        .collect()
}

/// Raw thermal values → [0, 1] with the configured normalization (`converter`: the frame's
/// radiometry, needed for fixed °C ranges).
pub fn gray_from_thermal(
    values: &[u16],
    normalization: ThermalNormalization,
    converter: Option<&Converter>,
) -> Result<Vec<F32>, AgcError> {
    Ok(thermal::agc::normalize(values, normalization, converter)?
        .into_iter()
        .map(F32::new)
        .collect())
}

/// How a source image sits on the canvas: scaled so its longer side is 128, centred.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    pub src_w: u32,
    pub src_h: u32,
    pub new_w: u32,
    pub new_h: u32,
    pub pad_x: u32,
    pub pad_y: u32,
}

impl Letterbox {
    pub fn for_size(w: u32, h: u32) -> Letterbox {
        let scale = CANVAS as f64 / w.max(h) as f64;
        let side = |v: u32| ((v as f64 * scale).round() as u32).clamp(1, CANVAS as u32);
        let (new_w, new_h) = (side(w), side(h));
        Letterbox {
            src_w: w,
            src_h: h,
            new_w,
            new_h,
            pad_x: (CANVAS as u32 - new_w) / 2,
            pad_y: (CANVAS as u32 - new_h) / 2,
        }
    }

    /// Normalised canvas point → 0-based pixel-centre source coordinates.
    pub fn to_source_pixel(&self, u: f32, v: f32) -> [f32; 2] {
        let x = (u * CANVAS as f32 - self.pad_x as f32) * self.src_w as f32 / self.new_w as f32;
        let y = (v * CANVAS as f32 - self.pad_y as f32) * self.src_h as f32 / self.new_h as f32;
        [x - 0.5, y - 0.5]
    }

    /// Normalised canvas box → source-pixel box (x, y of the top-left corner, w, h).
    pub fn to_source_box(&self, b: BoundingBox) -> BoundingBox {
        let sx = self.src_w as f32 / self.new_w as f32;
        let sy = self.src_h as f32 / self.new_h as f32;
        BoundingBox {
            x: (b.x * CANVAS as f32 - self.pad_x as f32) * sx,
            y: (b.y * CANVAS as f32 - self.pad_y as f32) * sy,
            w: b.w * CANVAS as f32 * sx,
            h: b.h * CANVAS as f32 * sy,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot resize a {width}x{height} image to the model input: {message}")]
pub struct ResizeFailed {
    width: u32,
    height: u32,
    message: String,
}

/// Grey image → 128x128 canvas (bilinear convolution, as Pillow's BILINEAR) and its letterbox.
pub fn letterbox(
    gray: &[F32],
    width: u32,
    height: u32,
    resizer: &mut Resizer,
) -> Result<(Vec<f32>, Letterbox), ResizeFailed> {
    let fail = |message: String| ResizeFailed {
        width,
        height,
        message,
    };
    let lb = Letterbox::for_size(width, height);
    let src = TypedImageRef::new(width, height, gray).map_err(|e| fail(e.to_string()))?;
    let mut dst = TypedImage::<F32>::new(lb.new_w, lb.new_h);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    resizer
        .resize_typed(&src, &mut dst, &options)
        .map_err(|e| fail(e.to_string()))?;
    let mut canvas = vec![0.0f32; CANVAS * CANVAS];
    for (row, pixels) in dst.pixels().chunks_exact(lb.new_w as usize).enumerate() {
        let start = (row + lb.pad_y as usize) * CANVAS + lb.pad_x as usize;
        for (out, p) in canvas[start..start + pixels.len()].iter_mut().zip(pixels) {
            *out = p.0;
        }
    }
    Ok((canvas, lb))
}

/// Inclusive [first, last] range of canvas pixel indices whose centres lie in [lo, hi].
fn kept_range(lo: f32, hi: f32) -> impl Fn(usize) -> bool {
    move |i| {
        let centre = (i as f32 + 0.5) / CANVAS as f32;
        centre >= lo && centre <= hi
    }
}

/// The paper's black-out: zero every pixel whose centre is outside `b` grown by `margin`.
pub fn blackout(canvas: &mut [f32], b: BoundingBox, margin: f32) {
    let keep_x = kept_range(b.x - margin * b.w, b.x + b.w + margin * b.w);
    let keep_y = kept_range(b.y - margin * b.h, b.y + b.h + margin * b.h);
    for (row, pixels) in canvas.chunks_exact_mut(CANVAS).enumerate() {
        let row_kept = keep_y(row);
        for (col, p) in pixels.iter_mut().enumerate() {
            if !(row_kept && keep_x(col)) {
                *p = 0.0;
            }
        }
    }
}

/// Mean of a 128x128 probability mask over the pixels inside `b`: the boundary model's own
/// agreement that the box holds a face. 0 when the box is empty.
pub fn box_score(mask: &[f32], b: BoundingBox) -> f32 {
    let keep_x = kept_range(b.x, b.x + b.w);
    let keep_y = kept_range(b.y, b.y + b.h);
    let (mut sum, mut n) = (0.0f64, 0usize);
    for (row, pixels) in mask.chunks_exact(CANVAS).enumerate() {
        if !keep_y(row) {
            continue;
        }
        for (col, p) in pixels.iter().enumerate() {
            if keep_x(col) {
                sum += *p as f64;
                n += 1;
            }
        }
    }
    if n == 0 { 0.0 } else { (sum / n as f64) as f32 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letterbox_maps_canvas_back_to_source_pixels() {
        let lb = Letterbox::for_size(640, 480);
        assert_eq!((lb.new_w, lb.new_h, lb.pad_x, lb.pad_y), (128, 96, 0, 16));
        // The canvas centre is the source centre (continuous 320, 240 → pixel 319.5, 239.5).
        assert_eq!(lb.to_source_pixel(0.5, 0.5), [319.5, 239.5]);
        let b = lb.to_source_box(BoundingBox {
            x: 0.25,
            y: 52.0 / 128.0,
            w: 0.5,
            h: 0.375,
        });
        assert!(
            (b.x - 160.0).abs() < 1e-3 && (b.y - 180.0).abs() < 1e-3,
            "{b:?}"
        );
        assert!(
            (b.w - 320.0).abs() < 1e-3 && (b.h - 240.0).abs() < 1e-3,
            "{b:?}"
        );
    }

    #[test]
    fn blackout_keeps_only_the_grown_box() {
        let mut canvas = vec![1.0f32; CANVAS * CANVAS];
        blackout(
            &mut canvas,
            BoundingBox {
                x: 0.25,
                y: 0.25,
                w: 0.5,
                h: 0.5,
            },
            0.0,
        );
        let kept: f32 = canvas.iter().sum();
        assert_eq!(kept, 64.0 * 64.0);
        assert_eq!(canvas[0], 0.0);
        assert_eq!(canvas[64 * CANVAS + 64], 1.0);
    }

    #[test]
    fn box_score_is_mean_inside_box() {
        let mut mask = vec![0.0f32; CANVAS * CANVAS];
        blackout(
            &mut mask,
            BoundingBox {
                x: 0.0,
                y: 0.0,
                w: 1.0,
                h: 1.0,
            },
            0.0,
        );
        for row in 32..96 {
            for col in 32..96 {
                mask[row * CANVAS + col] = 0.8;
            }
        }
        let s = box_score(
            &mask,
            BoundingBox {
                x: 0.25,
                y: 0.25,
                w: 0.5,
                h: 0.5,
            },
        );
        assert!((s - 0.8).abs() < 1e-6);
    }
}

//! Face temperature statistics on a radiometric thermal frame.
//!
//! Screening practice (ISO/TR 13154, IEC 80601-2-59) reads the inner canthus, the warmest
//! and most stable spot of the face; the box maximum and mean are given as well because
//! they exist even when landmarks do not.

use serde::Serialize;

use crate::geometry::BoundingBox;
use crate::thermal::Converter;

/// Temperatures in °C, rounded to 0.01.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FaceTemperature {
    pub unit: &'static str,
    pub box_max: f64,
    pub box_mean: f64,
    /// Maximum over small squares at both inner eye corners (landmarks 40 and 43).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canthus_max: Option<f64>,
}

/// 0-based indices of the inner eye corners in the 68-point layout (points 40 and 43).
pub const INNER_CANTHI: [usize; 2] = [39, 42];

/// The thermal frame's values and meaning.
pub struct ThermalImage<'a> {
    pub values: &'a [u16],
    pub width: u32,
    pub height: u32,
    pub converter: &'a Converter,
}

impl ThermalImage<'_> {
    /// Pixels of `b` (source pixels) clipped to the image: (x0, y0, x1, y1) exclusive ends.
    fn clip(&self, b: BoundingBox) -> Option<(usize, usize, usize, usize)> {
        let (w, h) = (self.width as f32, self.height as f32);
        if !(b.x.is_finite() && b.y.is_finite() && b.w.is_finite() && b.h.is_finite()) {
            return None;
        }
        let x0 = b.x.round().clamp(0.0, w) as usize;
        let y0 = b.y.round().clamp(0.0, h) as usize;
        let x1 = (b.x + b.w).round().clamp(0.0, w) as usize;
        let y1 = (b.y + b.h).round().clamp(0.0, h) as usize;
        (x1 > x0 && y1 > y0).then_some((x0, y0, x1, y1))
    }

    /// (max, mean) of the raw values in `b`, as °C.
    fn stats(&self, b: BoundingBox) -> Option<(f64, f64)> {
        let (x0, y0, x1, y1) = self.clip(b)?;
        let width = self.width as usize;
        let (mut max, mut sum, mut n) = (0u16, 0f64, 0usize);
        for y in y0..y1 {
            for &v in self.values.get(y * width + x0..y * width + x1)? {
                max = max.max(v);
                // The mean is of temperatures, not of raw counts (Planck is not linear).
                sum += self.converter.celsius(v);
                n += 1;
            }
        }
        Some((self.converter.celsius(max), sum / n as f64))
    }

    pub fn face_temperature(
        &self,
        face_box: BoundingBox,
        landmarks: Option<&[[f32; 2]]>,
    ) -> Option<FaceTemperature> {
        let (box_max, box_mean) = self.stats(face_box)?;
        let canthus_max = landmarks.and_then(|pts| {
            let corners: Vec<[f32; 2]> = INNER_CANTHI
                .iter()
                .filter_map(|&i| pts.get(i).copied())
                .collect();
            let [a, b] = corners.as_slice() else {
                return None;
            };
            // Squares half the distance between the corners wide (at least 3 px): landmark
            // error of a few pixels still lands on the canthus (tests/it/landmarks_map_back_to_source_pixels.rs).
            let half = ((a[0] - b[0]).hypot(a[1] - b[1]) * 0.25).max(1.5);
            corners
                .iter()
                .filter_map(|p| {
                    self.stats(BoundingBox {
                        x: p[0] - half,
                        y: p[1] - half,
                        w: 2.0 * half + 1.0,
                        h: 2.0 * half + 1.0,
                    })
                })
                .map(|(max, _)| max)
                .reduce(f64::max)
        });
        let round = |v: f64| (v * 100.0).round() / 100.0;
        Some(FaceTemperature {
            unit: "celsius",
            box_max: round(box_max),
            box_mean: round(box_mean),
            canthus_max: canthus_max.map(round),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::thermal::Radiometry;

    #[test]
    fn statistics_cover_the_box_and_the_canthi() {
        // 10x10 frame at 20 °C with a 36.5 °C spot at (6, 3) and a 30 °C face box.
        let c = Radiometry::Centikelvin.converter();
        let mut values = vec![29315u16; 100];
        for y in 2..8 {
            for x in 2..8 {
                values[y * 10 + x] = 30315;
            }
        }
        values[3 * 10 + 6] = 30965;
        let image = ThermalImage {
            values: &values,
            width: 10,
            height: 10,
            converter: &c,
        };
        let face = BoundingBox {
            x: 2.0,
            y: 2.0,
            w: 6.0,
            h: 6.0,
        };
        let mut landmarks = vec![[0.0f32, 0.0]; 68];
        landmarks[39] = [3.0, 3.0];
        landmarks[42] = [6.0, 3.0];
        let t = image
            .face_temperature(face, Some(&landmarks))
            .expect("inside");
        assert_eq!(t.box_max, 36.5);
        assert!(
            (t.box_mean - (30.0 * 35.0 + 36.5) / 36.0).abs() < 0.01,
            "{t:?}"
        );
        assert_eq!(t.canthus_max, Some(36.5));
        let outside = BoundingBox {
            x: 20.0,
            y: 20.0,
            w: 5.0,
            h: 5.0,
        };
        assert!(image.face_temperature(outside, None).is_none());
    }
}

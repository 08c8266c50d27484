//! Evaluation metrics over a confusion matrix, as the papers define them.
//!
//! Segmentation (FCN, Long et al., the definitions the CR paper quotes; its mean-IU line
//! lost a minus sign in print): with n_ij the pixels of class i predicted as j and
//! t_i = Σ_j n_ij,
//! pixel accuracy Σ_i n_ii / Σ_i t_i; mean accuracy (1/n_cl) Σ_i n_ii / t_i;
//! mean IU (1/n_cl) Σ_i n_ii / (t_i + Σ_j n_ji − n_ii);
//! frequency-weighted IU (Σ_k t_k)⁻¹ Σ_i t_i n_ii / (t_i + Σ_j n_ji − n_ii).
//! Classes absent from the ground truth (t_i = 0) are left out of the means (n_cl counts
//! the present ones), as FCN's evaluation code does.

use std::io::Write;
use std::path::Path;

use image::{Rgb, RgbImage};
use serde::Serialize;

/// Rows: ground truth; columns: prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Confusion {
    pub classes: usize,
    pub counts: Vec<u64>,
}

impl Confusion {
    pub fn new(classes: usize) -> Confusion {
        Confusion {
            classes,
            counts: vec![0; classes * classes],
        }
    }

    /// Counts one (truth, prediction) pair; truths outside the classes (void) are ignored.
    pub fn add(&mut self, truth: usize, predicted: usize) {
        if truth < self.classes && predicted < self.classes {
            self.counts[truth * self.classes + predicted] += 1;
        }
    }

    pub fn at(&self, truth: usize, predicted: usize) -> u64 {
        self.counts[truth * self.classes + predicted]
    }

    pub fn merge(&mut self, other: &Confusion) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }

    fn truth_total(&self, i: usize) -> u64 {
        (0..self.classes).map(|j| self.at(i, j)).sum()
    }

    fn predicted_total(&self, j: usize) -> u64 {
        (0..self.classes).map(|i| self.at(i, j)).sum()
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn segmentation_scores(&self) -> SegmentationScores {
        let mut per_class_iu = Vec::with_capacity(self.classes);
        let (mut acc_sum, mut iu_sum, mut fw_sum, mut present) = (0.0, 0.0, 0.0, 0usize);
        let total = self.total() as f64;
        let mut correct = 0.0;
        for i in 0..self.classes {
            let n_ii = self.at(i, i) as f64;
            let t_i = self.truth_total(i) as f64;
            let union = t_i + self.predicted_total(i) as f64 - n_ii;
            let iu = if union > 0.0 { n_ii / union } else { 0.0 };
            correct += n_ii;
            if t_i > 0.0 {
                present += 1;
                acc_sum += n_ii / t_i;
                iu_sum += iu;
                fw_sum += t_i * iu;
                per_class_iu.push(Some(iu));
            } else {
                per_class_iu.push(None);
            }
        }
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        SegmentationScores {
            pixel_accuracy: ratio(correct, total),
            mean_accuracy: ratio(acc_sum, present as f64),
            mean_iu: ratio(iu_sum, present as f64),
            frequency_weighted_iu: ratio(fw_sum, total),
            per_class_iu,
            pixels: self.total(),
        }
    }

    pub fn classification_scores(&self) -> ClassificationScores {
        let total = self.total();
        let correct: u64 = (0..self.classes).map(|i| self.at(i, i)).sum();
        let ratio = |a: u64, b: u64| {
            if b > 0 {
                Some(a as f64 / b as f64)
            } else {
                None
            }
        };
        ClassificationScores {
            accuracy: ratio(correct, total).unwrap_or(0.0),
            precision: (0..self.classes)
                .map(|j| ratio(self.at(j, j), self.predicted_total(j)))
                .collect(),
            recall: (0..self.classes)
                .map(|i| ratio(self.at(i, i), self.truth_total(i)))
                .collect(),
            items: total,
        }
    }

    /// CSV with a header row of predicted class names and one row per true class.
    pub fn write_csv(&self, path: &Path, names: &[String]) -> std::io::Result<()> {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        write!(out, "truth\\predicted")?;
        for n in names {
            write!(out, ",{}", csv_field(n))?;
        }
        writeln!(out)?;
        for (i, n) in names.iter().enumerate().take(self.classes) {
            write!(out, "{}", csv_field(n))?;
            for j in 0..self.classes {
                write!(out, ",{}", self.at(i, j))?;
            }
            writeln!(out)?;
        }
        out.flush()
    }

    /// Heat map of the row-normalised matrix (white 0 → dark blue 1), 24 px per cell,
    /// with a one-cell strip of class colours on the left and top to tell rows apart.
    pub fn render_png(&self, palette: &[[u8; 3]]) -> RgbImage {
        const CELL: u32 = 24;
        let n = self.classes as u32;
        let mut img = RgbImage::from_pixel((n + 1) * CELL, (n + 1) * CELL, Rgb([255, 255, 255]));
        for i in 0..self.classes {
            let t = self.truth_total(i).max(1) as f32;
            let colour = palette.get(i).copied().unwrap_or([128, 128, 128]);
            for j in 0..self.classes {
                let v = self.at(i, j) as f32 / t;
                let shade = [
                    (255.0 * (1.0 - v * 0.9)) as u8,
                    (255.0 * (1.0 - v * 0.75)) as u8,
                    (255.0 * (1.0 - v * 0.45)) as u8,
                ];
                fill(
                    &mut img,
                    (j as u32 + 1) * CELL,
                    (i as u32 + 1) * CELL,
                    CELL,
                    shade,
                );
            }
            fill(&mut img, 0, (i as u32 + 1) * CELL, CELL, colour);
            fill(&mut img, (i as u32 + 1) * CELL, 0, CELL, colour);
        }
        img
    }
}

fn fill(img: &mut RgbImage, x0: u32, y0: u32, size: u32, colour: [u8; 3]) {
    for y in y0..y0 + size - 1 {
        for x in x0..x0 + size - 1 {
            img.put_pixel(x, y, Rgb(colour));
        }
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SegmentationScores {
    pub pixel_accuracy: f64,
    pub mean_accuracy: f64,
    pub mean_iu: f64,
    pub frequency_weighted_iu: f64,
    /// None where the class does not occur in the ground truth.
    pub per_class_iu: Vec<Option<f64>>,
    pub pixels: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClassificationScores {
    pub accuracy: f64,
    /// None where nothing was predicted as (precision) or labelled as (recall) the class.
    pub precision: Vec<Option<f64>>,
    pub recall: Vec<Option<f64>>,
    pub items: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example: 3 classes, counts chosen so every formula has a hand value.
    fn example() -> Confusion {
        // truth 0: 8 right, 2 as class 1; truth 1: 1 as 0, 4 right; truth 2: 5 as 1.
        let mut c = Confusion::new(3);
        for (t, p, n) in [(0, 0, 8), (0, 1, 2), (1, 0, 1), (1, 1, 4), (2, 1, 5)] {
            for _ in 0..n {
                c.add(t, p);
            }
        }
        c
    }

    #[test]
    fn segmentation_scores_match_hand_computed_values() {
        let s = example().segmentation_scores();
        // t = [10, 5, 5], n_ii = [8, 4, 0], predicted totals = [9, 11, 0].
        assert!((s.pixel_accuracy - 12.0 / 20.0).abs() < 1e-12);
        assert!((s.mean_accuracy - (0.8 + 0.8 + 0.0) / 3.0).abs() < 1e-12);
        let iu = [8.0 / (10.0 + 9.0 - 8.0), 4.0 / (5.0 + 11.0 - 4.0), 0.0];
        assert!((s.mean_iu - iu.iter().sum::<f64>() / 3.0).abs() < 1e-12);
        let fw = (10.0 * iu[0] + 5.0 * iu[1] + 5.0 * iu[2]) / 20.0;
        assert!((s.frequency_weighted_iu - fw).abs() < 1e-12);
    }

    #[test]
    fn classification_scores_match_hand_computed_values() {
        let s = example().classification_scores();
        assert!((s.accuracy - 0.6).abs() < 1e-12);
        assert_eq!(s.precision, vec![Some(8.0 / 9.0), Some(4.0 / 11.0), None]);
        assert_eq!(s.recall, vec![Some(0.8), Some(0.8), Some(0.0)]);
    }

    #[test]
    fn void_truth_is_ignored_and_absent_classes_leave_the_means() {
        let mut c = Confusion::new(2);
        c.add(0, 0);
        c.add(7, 1); // void label: not counted
        let s = c.segmentation_scores();
        assert_eq!(s.pixels, 1);
        assert_eq!(s.mean_accuracy, 1.0);
        assert_eq!(s.per_class_iu, vec![Some(1.0), None]);
        let empty = Confusion::new(3).segmentation_scores();
        assert_eq!(empty.pixel_accuracy, 0.0);
        assert!(empty.mean_iu.is_finite());
    }
}

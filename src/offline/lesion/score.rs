//! Pixel-level agreement between a predicted lesion mask and a ground-truth mask (paper
//! §4): TP, FP, FN, TN, and precision, recall, F1 and accuracy from them.
//!
//! A ratio whose denominator is zero (an empty prediction, an empty truth) is defined, so
//! no NaN ever reaches the output: 1 when prediction and truth agree that there is nothing
//! (both empty), else 0. Accuracy always has a denominator (every pixel counts).

use image::GrayImage;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PixelCounts {
    pub tp: u64,
    pub fp: u64,
    pub fn_: u64,
    pub tn: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Scores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub accuracy: f64,
}

impl PixelCounts {
    /// Counts over two masks of the same size (non-zero = lesion).
    pub fn compare(predicted: &GrayImage, truth: &GrayImage) -> PixelCounts {
        let mut c = PixelCounts::default();
        for (p, t) in predicted.as_raw().iter().zip(truth.as_raw()) {
            match (*p > 0, *t > 0) {
                (true, true) => c.tp += 1,
                (true, false) => c.fp += 1,
                (false, true) => c.fn_ += 1,
                (false, false) => c.tn += 1,
            }
        }
        c
    }

    pub fn add(&mut self, other: &PixelCounts) {
        self.tp += other.tp;
        self.fp += other.fp;
        self.fn_ += other.fn_;
        self.tn += other.tn;
    }

    pub fn total(&self) -> u64 {
        self.tp + self.fp + self.fn_ + self.tn
    }

    pub fn scores(&self) -> Scores {
        let (tp, fp, fn_) = (self.tp as f64, self.fp as f64, self.fn_ as f64);
        let truth_empty = self.tp + self.fn_ == 0;
        let predicted_empty = self.tp + self.fp == 0;
        let both_empty = f64::from(u8::from(truth_empty && predicted_empty));
        let ratio = |num: f64, den: f64| if den > 0.0 { num / den } else { both_empty };
        Scores {
            precision: ratio(tp, tp + fp),
            recall: ratio(tp, tp + fn_),
            f1: ratio(2.0 * tp, 2.0 * tp + fp + fn_),
            accuracy: if self.total() == 0 {
                1.0
            } else {
                (self.tp + self.tn) as f64 / self.total() as f64
            },
        }
    }
}

impl Scores {
    /// The mean of per-image scores (the "per-image mean" row; the paper reports only the
    /// global, summed counts).
    pub fn mean(all: &[Scores]) -> Scores {
        let n = all.len().max(1) as f64;
        let sum = |f: fn(&Scores) -> f64| all.iter().map(f).sum::<f64>() / n;
        Scores {
            precision: sum(|s| s.precision),
            recall: sum(|s| s.recall),
            f1: sum(|s| s.f1),
            accuracy: sum(|s| s.accuracy),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Luma;

    fn mask(w: u32, h: u32, on: &[(u32, u32)]) -> GrayImage {
        let mut m = GrayImage::new(w, h);
        for &(x, y) in on {
            m.put_pixel(x, y, Luma([255]));
        }
        m
    }

    #[test]
    fn counts_and_scores_match_a_hand_count() {
        // 4×3 image. Prediction: (0,0) (1,0) (2,0) (0,1). Truth: (1,0) (2,0) (1,1) (2,1) (3,2).
        let p = mask(4, 3, &[(0, 0), (1, 0), (2, 0), (0, 1)]);
        let t = mask(4, 3, &[(1, 0), (2, 0), (1, 1), (2, 1), (3, 2)]);
        let c = PixelCounts::compare(&p, &t);
        // TP: (1,0) (2,0) = 2. FP: (0,0) (0,1) = 2. FN: (1,1) (2,1) (3,2) = 3. TN: 12-7 = 5.
        assert_eq!(
            c,
            PixelCounts {
                tp: 2,
                fp: 2,
                fn_: 3,
                tn: 5
            }
        );
        let s = c.scores();
        assert_eq!(s.precision, 0.5);
        assert_eq!(s.recall, 0.4);
        assert!((s.f1 - 4.0 / 9.0).abs() < 1e-12);
        assert!((s.accuracy - 7.0 / 12.0).abs() < 1e-12);
    }

    #[test]
    fn empty_masks_give_defined_scores() {
        let empty = GrayImage::new(3, 3);
        let one = mask(3, 3, &[(1, 1)]);
        let both = PixelCounts::compare(&empty, &empty).scores();
        assert_eq!(
            (both.precision, both.recall, both.f1, both.accuracy),
            (1.0, 1.0, 1.0, 1.0)
        );
        // Nothing predicted, one lesion pixel missed.
        let missed = PixelCounts::compare(&empty, &one).scores();
        assert_eq!(
            (missed.precision, missed.recall, missed.f1),
            (0.0, 0.0, 0.0)
        );
        // A false alarm on a lesion-free image.
        let alarm = PixelCounts::compare(&one, &empty).scores();
        assert_eq!((alarm.precision, alarm.recall, alarm.f1), (0.0, 0.0, 0.0));
        assert!((alarm.accuracy - 8.0 / 9.0).abs() < 1e-12);
    }

    #[test]
    fn the_papers_table_1_totals_give_its_scores() {
        // Table 1 (Otsu, original images), TOT row: P 0.67, R 0.86, F1 0.75, Acc 0.99.
        let c = PixelCounts {
            tp: 3_446_819,
            fp: 1_672_884,
            fn_: 570_141,
            tn: 188_902_156,
        };
        let s = c.scores();
        assert_eq!(
            [s.precision, s.recall, s.f1, s.accuracy].map(|v| (v * 100.0).round() / 100.0),
            [0.67, 0.86, 0.75, 0.99]
        );
    }
}

//! YuNet's outputs → face detections, as OpenCV's `FaceDetectorYN` decodes them.
//!
//! Per stride s in (8, 16, 32) the model has one row per anchor (grid cell row r, column c)
//! in four heads: `cls` and `obj` (score = √(cls · obj)), `bbox` (centre offset and log size
//! in stride units) and `kps` (five keypoints in stride units: right eye, left eye, nose tip,
//! right and left mouth corner, the subject's). Detections above the score threshold go
//! through greedy non-maximum suppression, best first.

use serde::Serialize;

use super::DetectorConfig;
use crate::geometry::BoundingBox;

pub const STRIDES: [u32; 3] = [8, 16, 32];
const HEADS: [&str; 4] = ["cls", "obj", "bbox", "kps"];

/// One face: box and keypoints in source pixels (continuous coordinates: pixel i covers
/// [i, i+1)), score in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Detection {
    #[serde(rename = "box")]
    pub face_box: BoundingBox,
    pub score: f32,
    pub keypoints: [[f32; 2]; 5],
}

/// Where each stride's four heads sit among the model's outputs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Heads {
    /// `[stride][head]` → output index, heads in `cls, obj, bbox, kps` order.
    index: [[usize; 4]; 3],
}

impl Heads {
    /// Finds `cls_8` … `kps_32` among `names`; the first missing name is the error.
    pub fn find(names: &[&str]) -> Result<Heads, String> {
        let mut index = [[0; 4]; 3];
        for (s, stride) in STRIDES.iter().enumerate() {
            for (h, head) in HEADS.iter().enumerate() {
                let name = format!("{head}_{stride}");
                index[s][h] = names
                    .iter()
                    .position(|n| *n == name)
                    .ok_or_else(|| name.clone())?;
            }
        }
        Ok(Heads { index })
    }

    pub fn output(&self, stride: usize, head: usize) -> usize {
        self.index[stride][head]
    }
}

/// Intersection over union of two boxes; 0 when either is empty.
pub fn iou(a: BoundingBox, b: BoundingBox) -> f32 {
    let w = ((a.x + a.w).min(b.x + b.w) - a.x.max(b.x)).max(0.0);
    let h = ((a.y + a.h).min(b.y + b.h) - a.y.max(b.y)).max(0.0);
    let inter = w * h;
    let union = a.w * a.h + b.w * b.h - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// Greedy non-maximum suppression: best score first (ties: the earlier one), dropping every
/// later detection that overlaps a kept one by more than `threshold`. Returns kept indices.
pub fn nms(detections: &[Detection], threshold: f32) -> Vec<usize> {
    let mut order: Vec<usize> = (0..detections.len()).collect();
    order.sort_by(|&a, &b| detections[b].score.total_cmp(&detections[a].score));
    let mut kept: Vec<usize> = Vec::new();
    for i in order {
        let overlaps = kept
            .iter()
            .any(|&k| iou(detections[i].face_box, detections[k].face_box) > threshold);
        if !overlaps {
            kept.push(i);
        }
    }
    kept
}

/// Decodes one image's outputs (`outputs[k]`: this image's values of model output k) for
/// an input of `input_w × input_h` into which the source was scaled by `scale`. Returns the
/// faces (best first, at most `config.max_faces`) and how many more there were.
pub fn decode(
    outputs: &[&[f32]],
    heads: &Heads,
    input_w: u32,
    input_h: u32,
    scale: f32,
    config: &DetectorConfig,
) -> (Vec<Detection>, usize) {
    let mut found = Vec::new();
    for (s, &stride) in STRIDES.iter().enumerate() {
        let cols = (input_w / stride) as usize;
        let rows = (input_h / stride) as usize;
        let head = |h: usize| outputs[heads.output(s, h)];
        let (cls, obj, bbox, kps) = (head(0), head(1), head(2), head(3));
        let anchors = (rows * cols)
            .min(cls.len())
            .min(obj.len())
            .min(bbox.len() / 4)
            .min(kps.len() / 10);
        let st = stride as f32;
        for i in 0..anchors {
            let score = (cls[i].clamp(0.0, 1.0) * obj[i].clamp(0.0, 1.0)).sqrt();
            if score < config.score_threshold {
                continue;
            }
            let (r, c) = ((i / cols) as f32, (i % cols) as f32);
            let b = &bbox[i * 4..i * 4 + 4];
            let (cx, cy) = ((c + b[0]) * st, (r + b[1]) * st);
            let (w, h) = (b[2].exp() * st, b[3].exp() * st);
            // A log size far out of range overflows to infinity: not a face.
            if !(w.is_finite() && h.is_finite()) {
                continue;
            }
            let k = &kps[i * 10..i * 10 + 10];
            let keypoints = std::array::from_fn(|n| {
                [(c + k[2 * n]) * st / scale, (r + k[2 * n + 1]) * st / scale]
            });
            found.push(Detection {
                face_box: BoundingBox {
                    x: (cx - w / 2.0) / scale,
                    y: (cy - h / 2.0) / scale,
                    w: w / scale,
                    h: h / scale,
                },
                score,
                keypoints,
            });
        }
    }
    let mut faces: Vec<Detection> = nms(&found, config.nms_iou)
        .into_iter()
        .map(|i| found[i])
        .filter(|d| d.face_box.w.max(d.face_box.h) >= config.min_face_px)
        .collect();
    let over = faces.len().saturating_sub(config.max_faces);
    faces.truncate(config.max_faces);
    (faces, over)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x: f32, score: f32) -> Detection {
        Detection {
            face_box: BoundingBox {
                x,
                y: 0.0,
                w: 10.0,
                h: 10.0,
            },
            score,
            keypoints: [[0.0; 2]; 5],
        }
    }

    #[test]
    fn iou_of_shifted_boxes() {
        let a = det(0.0, 1.0).face_box;
        assert_eq!(iou(a, a), 1.0);
        assert!((iou(a, det(5.0, 1.0).face_box) - 50.0 / 150.0).abs() < 1e-6);
        assert_eq!(iou(a, det(20.0, 1.0).face_box), 0.0);
    }

    #[test]
    fn nms_keeps_the_best_of_each_overlapping_group() {
        let d = [det(0.0, 0.7), det(1.0, 0.9), det(30.0, 0.8), det(31.0, 0.8)];
        assert_eq!(nms(&d, 0.3), vec![1, 2]);
    }

    /// All-zero outputs of a 32x32 input, in `cls, obj, bbox, kps` × stride order, and
    /// where the heads are among them.
    fn zero_outputs() -> (Vec<Vec<f32>>, Heads) {
        let names = [
            "cls_8", "cls_16", "cls_32", "obj_8", "obj_16", "obj_32", "bbox_8", "bbox_16",
            "bbox_32", "kps_8", "kps_16", "kps_32",
        ];
        let anchors = |s: usize| (32 / s) * (32 / s);
        let mut outputs: Vec<Vec<f32>> = Vec::new();
        for width in [1usize, 1, 4, 10] {
            for s in [8, 16, 32] {
                outputs.push(vec![0.0; anchors(s) * width]);
            }
        }
        (outputs, Heads::find(&names).expect("heads"))
    }

    /// One 32x32 input: a single anchor of stride 8 fires; its box and keypoints come back
    /// in source pixels through the scale, every other anchor stays below the threshold.
    #[test]
    fn one_anchor_decodes_to_its_box_and_keypoints() {
        let (mut outputs, heads) = zero_outputs();
        // Anchor row 1, column 2 of stride 8 (index 6): cls 0.81, obj 1 → score 0.9.
        outputs[0][6] = 0.81;
        outputs[3][6] = 1.0;
        outputs[6][24..28].copy_from_slice(&[0.5, 0.5, 0.0, (2.0f32).ln()]);
        outputs[9][60..70].copy_from_slice(&[0.0, 0.0, 1.0, 0.0, 0.5, 0.5, 0.0, 1.0, 1.0, 1.0]);
        let views: Vec<&[f32]> = outputs.iter().map(Vec::as_slice).collect();
        let (faces, over) = decode(&views, &heads, 32, 32, 0.5, &DetectorConfig::default());
        assert_eq!((faces.len(), over), (1, 0));
        let f = faces[0];
        assert!((f.score - 0.9).abs() < 1e-6);
        // Centre (2.5, 1.5) × 8 = (20, 12), size 8 × 16, all / 0.5.
        assert_eq!(
            f.face_box,
            BoundingBox {
                x: 32.0,
                y: 8.0,
                w: 16.0,
                h: 32.0
            }
        );
        assert_eq!(f.keypoints[0], [32.0, 16.0]);
        assert_eq!(f.keypoints[2], [40.0, 24.0]);
        assert_eq!(f.keypoints[4], [48.0, 32.0]);
        let strict = DetectorConfig {
            score_threshold: 0.95,
            ..Default::default()
        };
        assert!(decode(&views, &heads, 32, 32, 0.5, &strict).0.is_empty());
        let tiny = DetectorConfig {
            min_face_px: 40.0,
            ..Default::default()
        };
        assert!(decode(&views, &heads, 32, 32, 0.5, &tiny).0.is_empty());
    }

    #[test]
    fn extra_faces_are_cut_at_the_limit_and_counted() {
        // 16 anchors of stride 8 on a 32x32 input, each a separate face (no overlap).
        let (mut outputs, heads) = zero_outputs();
        outputs[0].iter_mut().for_each(|v| *v = 0.9);
        outputs[3].iter_mut().for_each(|v| *v = 0.9);
        for a in 0..16 {
            outputs[6][a * 4 + 2] = (0.5f32).ln();
            outputs[6][a * 4 + 3] = (0.5f32).ln();
        }
        let views: Vec<&[f32]> = outputs.iter().map(Vec::as_slice).collect();
        let config = DetectorConfig {
            max_faces: 5,
            min_face_px: 0.0,
            ..Default::default()
        };
        let (faces, over) = decode(&views, &heads, 32, 32, 1.0, &config);
        assert_eq!((faces.len(), over), (5, 11));
    }

    #[test]
    fn a_model_without_a_head_is_named() {
        assert_eq!(Heads::find(&["cls_8"]).unwrap_err(), "obj_8");
    }
}

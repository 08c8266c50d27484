//! `[detector]`: how faces are found. Owned by the detector; `config` only collects it.

use serde::{Deserialize, Serialize};

use crate::invalid::Invalid;

/// How the detector looks at thermal frames that have no registration to map the visible
/// faces through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ThermalDetection {
    /// The AGC'd image inverted (hot = dark): YuNet was trained on visible faces, and on the
    /// real thermal faces we measured it finds more of them this way (docs/detection.md).
    #[default]
    Inverted,
    /// The AGC'd image as it is (hot = bright).
    AsIs,
    /// No detector on thermal: only faces mapped from the visible frame (or the fallback).
    Off,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorConfig {
    /// The detector's input size; each frame is scaled to fit (aspect kept), and the input is
    /// padded to multiples of 32 (the model's coarsest stride), as OpenCV does. Larger finds
    /// smaller faces and costs more (ORT, 2 cores: 640x480 ~5 ms, 320x240 ~1.5 ms).
    pub input_width: u32,
    pub input_height: u32,
    /// A detection below this score (0-1) is not a face.
    pub score_threshold: f32,
    /// Of two boxes overlapping more than this (IoU), the lower-scored one is dropped.
    pub nms_iou: f32,
    /// Faces narrower than this many source pixels are ignored (too small for landmarks).
    pub min_face_px: f32,
    /// At most this many faces per image, the highest scores first; the rest are counted
    /// (`faces_over_limit`) so memory and work stay bounded whatever the frame shows.
    pub max_faces: usize,
    /// Thermal frames without a homography: run the detector on the inverted or as-is image,
    /// or not at all.
    pub thermal: ThermalDetection,
    /// When the detector finds no face on a thermal frame that has no homography, run the
    /// DMSL boundary model on the whole frame (one face at most, as before v2) and keep the
    /// result if its mask score reaches `whole_frame_min_score`. The record says so
    /// (`"detector": "whole_frame"`).
    pub thermal_whole_frame_fallback: bool,
    pub whole_frame_min_score: f32,
    /// Rotate each face crop upright by the eye keypoints before the DMSL models.
    pub upright: bool,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            input_width: 640,
            input_height: 480,
            score_threshold: 0.6,
            nms_iou: 0.3,
            min_face_px: 16.0,
            max_faces: 32,
            thermal: ThermalDetection::Inverted,
            thermal_whole_frame_fallback: true,
            whole_frame_min_score: 0.5,
            upright: true,
        }
    }
}

/// Above this the detector input alone would be 3 × 4096 × 4096 floats (200 MB).
const MAX_INPUT_SIDE: u32 = 4096;
/// Enough for a crowd; beyond it the per-face work (four model runs each) is what is bounded.
const MAX_FACES: usize = 1024;

impl DetectorConfig {
    /// The model's input: the configured size padded up to multiples of 32.
    pub fn model_size(&self) -> (u32, u32) {
        let pad = |v: u32| v.div_ceil(32) * 32;
        (pad(self.input_width), pad(self.input_height))
    }

    pub fn validate(&self) -> Result<(), Invalid> {
        for (field, side) in [
            ("input_width", self.input_width),
            ("input_height", self.input_height),
        ] {
            if !(32..=MAX_INPUT_SIDE).contains(&side) {
                return Err(Invalid::new(
                    field,
                    format!("{side}: use 32 to {MAX_INPUT_SIDE} pixels (e.g. 640 or 320)"),
                ));
            }
        }
        for (field, value) in [
            ("score_threshold", self.score_threshold),
            ("nms_iou", self.nms_iou),
            ("whole_frame_min_score", self.whole_frame_min_score),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(Invalid::new(
                    field,
                    format!("{value}: must be between 0 and 1"),
                ));
            }
        }
        if !(self.min_face_px >= 0.0 && self.min_face_px.is_finite()) {
            return Err(Invalid::new(
                "min_face_px",
                format!("{}: must be >= 0", self.min_face_px),
            ));
        }
        if !(1..=MAX_FACES).contains(&self.max_faces) {
            return Err(Invalid::new(
                "max_faces",
                format!("{}: must be 1 to {MAX_FACES}", self.max_faces),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_multiples_of_32_and_thresholds_fractions() {
        assert_eq!(DetectorConfig::default().validate(), Ok(()));
        let field = |c: DetectorConfig| c.validate().unwrap_err().field;
        assert_eq!(
            field(DetectorConfig {
                input_width: 16,
                ..Default::default()
            }),
            "input_width"
        );
        let odd = DetectorConfig {
            input_width: 320,
            input_height: 240,
            ..Default::default()
        };
        assert_eq!(odd.validate(), Ok(()));
        assert_eq!(odd.model_size(), (320, 256));
        assert_eq!(
            field(DetectorConfig {
                input_height: 0,
                ..Default::default()
            }),
            "input_height"
        );
        assert_eq!(
            field(DetectorConfig {
                score_threshold: 1.5,
                ..Default::default()
            }),
            "score_threshold"
        );
        assert_eq!(
            field(DetectorConfig {
                max_faces: 0,
                ..Default::default()
            }),
            "max_faces"
        );
        assert_eq!(
            field(DetectorConfig {
                min_face_px: f32::NAN,
                ..Default::default()
            }),
            "min_face_px"
        );
    }
}

//! The versioned output record, `spectrald.landmarks/v1`, one per processed pair.
//!
//! The JSON Schema in `schema/landmarks-v1.json` describes it; tests validate every line
//! the daemon emits against it. Coordinates are source pixels of each spectrum's own image,
//! 0-based pixel centres; landmarks follow the iBUG 300-W 68-point order.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::frame::{Frame, Spectrum};
use crate::geometry::BoundingBox;
use crate::infer::ModelId;
use crate::thermal::face::FaceTemperature;

pub const SCHEMA: &str = "spectrald.landmarks/v1";

#[derive(Debug, Serialize)]
pub struct SpectrumRecord {
    pub width: u32,
    pub height: u32,
    /// Capture time of this image, microseconds.
    pub captured_us: i64,
    #[serde(rename = "box", skip_serializing_if = "Option::is_none")]
    pub face_box: Option<BoundingBox>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub landmarks: Option<Vec<[f32; 2]>>,
    /// Mean boundary-mask probability inside the box, in [0, 1].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    /// Face temperature (thermal, radiometric frames only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<FaceTemperature>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct LandmarkRecord<'a> {
    pub schema: &'static str,
    pub camera: &'a str,
    pub sequence: u64,
    /// |visible - thermal| capture time difference, when both are present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pair_skew_ms: Option<f64>,
    pub spectra: BTreeMap<&'static str, SpectrumRecord>,
    pub models: BTreeMap<&'static str, &'a ModelId>,
    pub latency_ms: BTreeMap<&'static str, f64>,
    /// Frames of this camera dropped since its previous record, by reason.
    pub drops_since_last: BTreeMap<String, u64>,
}

fn round2(v: f32) -> f32 {
    (v * 100.0).round() / 100.0
}

fn round_box(b: BoundingBox) -> BoundingBox {
    BoundingBox {
        x: round2(b.x),
        y: round2(b.y),
        w: round2(b.w),
        h: round2(b.h),
    }
}

impl<'a> LandmarkRecord<'a> {
    pub fn from_frame(
        frame: &'a Frame,
        boundary: &'a ModelId,
        landmark: &'a ModelId,
        drops_since_last: BTreeMap<String, u64>,
    ) -> Self {
        let mut spectra = BTreeMap::new();
        for spectrum in Spectrum::ALL {
            let (Some(image), Some(result)) = (frame.image(spectrum), frame.result(spectrum))
            else {
                continue;
            };
            spectra.insert(
                spectrum.as_str(),
                SpectrumRecord {
                    width: image.width,
                    height: image.height,
                    captured_us: image.captured_us,
                    face_box: result.source_box.map(round_box),
                    landmarks: result
                        .source_landmarks
                        .as_ref()
                        .map(|pts| pts.iter().map(|p| [round2(p[0]), round2(p[1])]).collect()),
                    score: result.score.map(|s| (s * 1000.0).round() / 1000.0),
                    temperature: result.temperature,
                    error: result.error.clone(),
                },
            );
        }
        let pair_skew_ms = match (&frame.visible, &frame.thermal) {
            (Some(v), Some(t)) => Some((v.captured_us - t.captured_us).abs() as f64 / 1000.0),
            _ => None,
        };
        let mut latency_ms: BTreeMap<&'static str, f64> = BTreeMap::new();
        let mut total = 0.0;
        for (stage, ms) in frame.stage_latencies_ms() {
            latency_ms.insert(stage.as_str(), (ms * 1000.0).round() / 1000.0);
            total += ms;
        }
        latency_ms.insert("total", (total * 1000.0).round() / 1000.0);
        LandmarkRecord {
            schema: SCHEMA,
            camera: &frame.camera,
            sequence: frame.sequence,
            pair_skew_ms,
            spectra,
            models: BTreeMap::from([("boundary", boundary), ("landmark", landmark)]),
            latency_ms,
            drops_since_last,
        }
    }
}

/// The landmarks of one spectrum of a parsed record, if it has them (for consumers and
/// evaluation: the inverse of what [`LandmarkRecord`] writes).
pub fn landmarks_of(record: &serde_json::Value, spectrum: &str) -> Option<Vec<[f32; 2]>> {
    let points = record["spectra"][spectrum]["landmarks"].as_array()?;
    points
        .iter()
        .map(|p| Some([p.get(0)?.as_f64()? as f32, p.get(1)?.as_f64()? as f32]))
        .collect()
}

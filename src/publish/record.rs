//! The versioned output record, `spectrald.landmarks/v2`, one per processed pair.
//!
//! The JSON Schema in `schema/landmarks-v2.json` describes it; tests validate every line
//! the daemon emits against it. Per spectrum it lists every face found (`faces: []` when
//! there is none: never landmarks on nothing), each with its track id, detector score, box,
//! five keypoints, 68 landmarks and, on thermal, its temperature. Coordinates are source
//! pixels of each spectrum's own image, 0-based pixel centres for points; landmarks follow
//! the iBUG 300-W 68-point order. What changed from v1: docs/output.md.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::frame::{FaceResult, FaceSource, Frame, Spectrum};
use crate::geometry::BoundingBox;
use crate::infer::ModelId;
use crate::thermal::face::FaceTemperature;

pub const SCHEMA: &str = "spectrald.landmarks/v2";

/// The model versions a frame went through.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RecordModels<'a> {
    pub detector: &'a ModelId,
    pub boundary: &'a ModelId,
    pub landmark: &'a ModelId,
}

#[derive(Debug, Serialize)]
pub struct FaceRecord {
    /// Same id while the face stays in view of this camera.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub track_id: Option<u64>,
    /// Detector score in [0, 1] (the boundary model's score for a whole-frame face).
    pub score: f32,
    /// The face box, source pixels (x, y of the top-left corner, w, h).
    #[serde(rename = "box")]
    pub face_box: BoundingBox,
    /// Right eye, left eye, nose tip, right and left mouth corner (the subject's), 0-based
    /// pixel centres; absent for a whole-frame face.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keypoints: Option<Vec<[f32; 2]>>,
    /// 68 points, iBUG 300-W order, 0-based pixel centres.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub landmarks: Option<Vec<[f32; 2]>>,
    /// Mean boundary-mask probability inside the DMSL boundary box, in [0, 1].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boundary_score: Option<f32>,
    /// Face temperature (thermal faces on radiometric frames).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<FaceTemperature>,
}

#[derive(Debug, Serialize)]
pub struct SpectrumRecord {
    pub width: u32,
    pub height: u32,
    /// Capture time of this image, microseconds.
    pub captured_us: i64,
    /// How the faces were found: detector, registered_visible or whole_frame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detector: Option<FaceSource>,
    pub faces: Vec<FaceRecord>,
    /// Faces found beyond `detector.max_faces` and left out.
    #[serde(skip_serializing_if = "is_zero")]
    pub faces_over_limit: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
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
    pub models: RecordModels<'a>,
    pub latency_ms: BTreeMap<&'static str, f64>,
    /// Frames of this camera dropped since its previous record, by reason.
    pub drops_since_last: BTreeMap<String, u64>,
}

fn round2(v: f32) -> f32 {
    (v * 100.0).round() / 100.0
}

fn round_points(points: &[[f32; 2]]) -> Vec<[f32; 2]> {
    points
        .iter()
        .map(|p| [round2(p[0]), round2(p[1])])
        .collect()
}

fn round_box(b: BoundingBox) -> BoundingBox {
    BoundingBox {
        x: round2(b.x),
        y: round2(b.y),
        w: round2(b.w),
        h: round2(b.h),
    }
}

fn face_record(face: &FaceResult, source: Option<FaceSource>) -> FaceRecord {
    let d = &face.detection;
    FaceRecord {
        track_id: face.track_id,
        score: (d.score * 1000.0).round() / 1000.0,
        face_box: round_box(d.face_box),
        // Keypoints: the pixel-centre convention of the landmarks.
        keypoints: (source != Some(FaceSource::WholeFrame)).then(|| {
            let centres: Vec<[f32; 2]> = d
                .keypoints
                .iter()
                .map(|p| [p[0] - 0.5, p[1] - 0.5])
                .collect();
            round_points(&centres)
        }),
        landmarks: face.landmarks.as_deref().map(round_points),
        boundary_score: face.boundary_score.map(|s| (s * 1000.0).round() / 1000.0),
        temperature: face.temperature,
    }
}

impl<'a> LandmarkRecord<'a> {
    pub fn from_frame(
        frame: &'a Frame,
        models: RecordModels<'a>,
        drops_since_last: BTreeMap<String, u64>,
    ) -> Self {
        let mut spectra = BTreeMap::new();
        for spectrum in Spectrum::ALL {
            let (Some(image), Some(result)) = (frame.image(spectrum), frame.result(spectrum))
            else {
                continue;
            };
            let failed = result.error.is_some();
            spectra.insert(
                spectrum.as_str(),
                SpectrumRecord {
                    width: image.width,
                    height: image.height,
                    captured_us: image.captured_us,
                    detector: result.face_source.filter(|_| !failed),
                    faces: match failed {
                        true => Vec::new(),
                        false => result
                            .faces
                            .iter()
                            .map(|f| face_record(f, result.face_source))
                            .collect(),
                    },
                    faces_over_limit: result.faces_over_limit,
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
            models,
            latency_ms,
            drops_since_last,
        }
    }
}

/// One face of a parsed record (for consumers and evaluation: the inverse of what
/// [`LandmarkRecord`] writes).
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedFace {
    pub track_id: Option<u64>,
    pub score: f32,
    pub face_box: BoundingBox,
    pub landmarks: Option<Vec<[f32; 2]>>,
}

/// The faces of one spectrum of a parsed record (none when the spectrum is absent).
pub fn faces_of(record: &serde_json::Value, spectrum: &str) -> Vec<ParsedFace> {
    let number = |v: &serde_json::Value| v.as_f64().map(|x| x as f32);
    let points = |v: &serde_json::Value| -> Option<Vec<[f32; 2]>> {
        v.as_array()?
            .iter()
            .map(|p| Some([number(p.get(0)?)?, number(p.get(1)?)?]))
            .collect()
    };
    let Some(faces) = record["spectra"][spectrum]["faces"].as_array() else {
        return Vec::new();
    };
    faces
        .iter()
        .filter_map(|f| {
            let b = &f["box"];
            Some(ParsedFace {
                track_id: f["track_id"].as_u64(),
                score: number(&f["score"]).unwrap_or(0.0),
                face_box: BoundingBox {
                    x: number(&b["x"])?,
                    y: number(&b["y"])?,
                    w: number(&b["w"])?,
                    h: number(&b["h"])?,
                },
                landmarks: points(&f["landmarks"]),
            })
        })
        .collect()
}

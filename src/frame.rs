//! The data that flows through the pipeline.
//!
//! A source produces [`SpectrumFrame`]s (one image of one spectrum with its capture time);
//! the pair stage joins them into a [`Frame`], which then travels through every later stage
//! and accumulates its results and per-stage timings, so latency is measured per frame.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::detect::Detection;
use crate::dmsl::{FaceCrop, Letterbox};
use crate::geometry::BoundingBox;
use crate::infer::ModelId;
use crate::registration::Homography;
use crate::stage::Stage;
use crate::thermal::Radiometry;
use crate::thermal::face::FaceTemperature;

/// Which sensor an image comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Spectrum {
    Visible,
    Thermal,
}

impl Spectrum {
    pub const ALL: [Spectrum; 2] = [Spectrum::Visible, Spectrum::Thermal];

    pub fn as_str(self) -> &'static str {
        match self {
            Spectrum::Visible => "visible",
            Spectrum::Thermal => "thermal",
        }
    }
}

impl std::fmt::Display for Spectrum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Decoded pixels as the sensor delivered them.
#[derive(Debug, Clone)]
pub enum Pixels {
    /// 8-bit RGB, row-major, `width * height * 3` bytes.
    Rgb8(Vec<u8>),
    /// Raw 16-bit thermal values (radiometric counts or centi-kelvin), row-major.
    Gray16(Vec<u16>),
}

/// One image of one spectrum, as captured.
#[derive(Debug, Clone)]
pub struct SpectrumFrame {
    pub camera: Arc<str>,
    pub spectrum: Spectrum,
    /// Capture time in microseconds (Unix epoch for live sources; as recorded for replays).
    pub captured_us: i64,
    pub width: u32,
    pub height: u32,
    pub pixels: Arc<Pixels>,
    /// Where the frame came from (file path, URI), for error messages.
    pub origin: Arc<str>,
    /// When the source handed the decoded frame on: the start of its latency budget.
    pub received: Instant,
    /// What thermal values mean (°C conversion); `None` for visible or uncalibrated frames.
    pub radiometry: Option<Arc<Radiometry>>,
    /// Thermal pixel → visible pixel, when the source knows it (a radiometric JPEG's
    /// picture-in-picture record); the camera's configured homography takes precedence.
    pub registration: Option<Arc<Homography>>,
}

/// How the faces of one image were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaceSource {
    /// The face detector ran on this image.
    Detector,
    /// The visible image's faces, mapped through the camera's homography.
    RegisteredVisible,
    /// No face was detected on a thermal image without a homography: the DMSL boundary
    /// model ran on the whole image (one face at most, kept when its score is high enough).
    WholeFrame,
}

/// Where a face's 128x128 canvas sits in the source image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CanvasMap {
    /// A detected face's crop (the shared crop definition).
    Crop(FaceCrop),
    /// The whole image letterboxed (the whole-frame fallback).
    Letterbox(Letterbox),
}

impl CanvasMap {
    /// Normalised canvas point → 0-based pixel-centre source coordinates.
    pub fn to_source_pixel(&self, u: f32, v: f32) -> [f32; 2] {
        match self {
            CanvasMap::Crop(c) => c.to_source_pixel(u, v),
            CanvasMap::Letterbox(l) => l.to_source_pixel(u, v),
        }
    }
}

/// One face of one image, filled in stage by stage.
#[derive(Debug, Clone)]
pub struct FaceResult {
    /// Box, score and keypoints in source pixels (detector, registration or fallback).
    pub detection: Detection,
    pub map: CanvasMap,
    /// 128x128 model input (crop; blacked out after the black-out stage; freed after).
    pub canvas: Vec<f32>,
    /// Boundary model output, normalised to the canvas.
    pub canvas_box: Option<BoundingBox>,
    /// Mean boundary-mask probability inside that box: how face-like the crop is.
    pub boundary_score: Option<f32>,
    /// Landmark model output, normalised to the canvas, 68 (x, y) pairs.
    pub canvas_landmarks: Option<Vec<[f32; 2]>>,
    /// The 68 landmarks in source pixels (0-based pixel centres).
    pub landmarks: Option<Vec<[f32; 2]>>,
    /// Face temperature (thermal faces on radiometric frames).
    pub temperature: Option<FaceTemperature>,
    /// Same id while the face stays in view (per camera).
    pub track_id: Option<u64>,
}

impl FaceResult {
    pub fn new(detection: Detection, map: CanvasMap) -> FaceResult {
        FaceResult {
            detection,
            map,
            canvas: Vec::new(),
            canvas_box: None,
            boundary_score: None,
            canvas_landmarks: None,
            landmarks: None,
            temperature: None,
            track_id: None,
        }
    }
}

/// Per-spectrum work and results, filled in stage by stage.
#[derive(Debug, Clone, Default)]
pub struct SpectrumResult {
    /// The image as grey [0, 1] at source size (visible luma, thermal AGC): what the face
    /// crops are cut from. Set by preprocess, freed once the faces are cropped.
    pub gray: Vec<f32>,
    /// What the detector found (detect stage); the crop stage turns them into `faces`.
    pub detections: Vec<Detection>,
    /// How the faces were found; `None` until the detect and crop stages ran.
    pub face_source: Option<FaceSource>,
    /// Every face found, best detector score first.
    pub faces: Vec<FaceResult>,
    /// Faces beyond `detector.max_faces` that were found and left out.
    pub faces_over_limit: usize,
    /// Set when a step failed for this spectrum; later stages skip it, the sink reports it.
    pub error: Option<String>,
}

/// A visible/thermal pair (either side may be absent when unmatched frames are kept).
#[derive(Debug, Clone)]
pub struct Frame {
    pub camera: Arc<str>,
    /// Per-camera sequence number, assigned by the pair stage, gap-free.
    pub sequence: u64,
    pub visible: Option<SpectrumFrame>,
    pub thermal: Option<SpectrumFrame>,
    pub results: [Option<SpectrumResult>; 2],
    /// When the earliest of its images was received, and when each stage finished it.
    pub started: Instant,
    pub stage_done: [Option<Instant>; Stage::TIMED.len()],
    /// Thermal pixel → visible pixel for this camera's rig, when configured (set by the
    /// pair stage, so a camera restarted by a reload brings its new registration along).
    pub registration: Option<Arc<Homography>>,
    /// The model versions that actually ran on this frame (a hot-swap can happen between
    /// any two frames), set by the inference stages.
    pub models: FrameModels,
}

/// Which detector, boundary and landmark model versions a frame went through.
#[derive(Debug, Clone, Default)]
pub struct FrameModels {
    pub detector: Option<Arc<ModelId>>,
    pub boundary: Option<Arc<ModelId>>,
    pub landmark: Option<Arc<ModelId>>,
}

impl Frame {
    pub fn new(
        camera: Arc<str>,
        sequence: u64,
        visible: Option<SpectrumFrame>,
        thermal: Option<SpectrumFrame>,
    ) -> Self {
        let results = [
            visible.as_ref().map(|_| SpectrumResult::default()),
            thermal.as_ref().map(|_| SpectrumResult::default()),
        ];
        let started = [visible.as_ref(), thermal.as_ref()]
            .into_iter()
            .flatten()
            .map(|f| f.received)
            .min()
            .unwrap_or_else(Instant::now);
        Frame {
            camera,
            sequence,
            visible,
            thermal,
            results,
            started,
            stage_done: [None; Stage::TIMED.len()],
            registration: None,
            models: FrameModels::default(),
        }
    }

    pub fn image(&self, spectrum: Spectrum) -> Option<&SpectrumFrame> {
        match spectrum {
            Spectrum::Visible => self.visible.as_ref(),
            Spectrum::Thermal => self.thermal.as_ref(),
        }
    }

    pub fn result(&self, spectrum: Spectrum) -> Option<&SpectrumResult> {
        self.results[spectrum as usize].as_ref()
    }

    pub fn result_mut(&mut self, spectrum: Spectrum) -> Option<&mut SpectrumResult> {
        self.results[spectrum as usize].as_mut()
    }

    /// Spectra present in this frame whose results are still free of errors.
    pub fn healthy_spectra(&self) -> Vec<Spectrum> {
        Spectrum::ALL
            .into_iter()
            .filter(|s| self.result(*s).is_some_and(|r| r.error.is_none()))
            .collect()
    }

    pub fn mark_stage_done(&mut self, stage: Stage) {
        if let Some(slot) = self.stage_done.get_mut(stage.index()) {
            *slot = Some(Instant::now());
        }
    }

    /// Milliseconds each stage took (from the previous stage's finish), in
    /// [`Stage::TIMED`] order.
    pub fn stage_latencies_ms(&self) -> Vec<(Stage, f64)> {
        let mut previous = self.started;
        let mut out = Vec::with_capacity(Stage::TIMED.len());
        for (&stage, done) in Stage::TIMED.iter().zip(self.stage_done.iter()) {
            if let Some(t) = done {
                out.push((
                    stage,
                    t.saturating_duration_since(previous).as_secs_f64() * 1000.0,
                ));
                previous = *t;
            }
        }
        out
    }

    /// The camera-level drop accounting uses this to name the frame in events.
    pub fn camera(&self) -> &str {
        &self.camera
    }
}

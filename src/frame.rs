//! The data that flows through the pipeline.
//!
//! A source produces [`SpectrumFrame`]s (one image of one spectrum with its capture time);
//! the pair stage joins them into a [`Frame`], which then travels through every later stage
//! and accumulates its results and per-stage timings, so latency is measured per frame.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::dmsl::Letterbox;
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
}

/// Per-spectrum work and results, filled in stage by stage.
#[derive(Debug, Clone, Default)]
pub struct SpectrumResult {
    /// 128x128 model input (after preprocess; blacked out after the black-out stage).
    pub canvas: Vec<f32>,
    pub letterbox: Option<Letterbox>,
    /// Boundary model output, normalised to the canvas.
    pub canvas_box: Option<BoundingBox>,
    /// Mean boundary-mask probability inside the box: how face-like the region is.
    pub score: Option<f32>,
    /// Landmark model output, normalised to the canvas, 68 (x, y) pairs.
    pub canvas_landmarks: Option<Vec<[f32; 2]>>,
    /// Final results in source pixels (0-based pixel centres).
    pub source_box: Option<BoundingBox>,
    pub source_landmarks: Option<Vec<[f32; 2]>>,
    /// Face temperature (thermal only, when the frame is radiometric and a face was found).
    pub temperature: Option<FaceTemperature>,
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

/// Which boundary and landmark model versions a frame went through.
#[derive(Debug, Clone, Default)]
pub struct FrameModels {
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
        for (stage, done) in Stage::TIMED.into_iter().zip(self.stage_done.iter()) {
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

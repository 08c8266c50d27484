//! The stage loops. Each takes frames from its input queue, does one thing, and passes
//! them on; it ends when its input closes (the upstream stage ended) and so closes its own
//! output in turn. A per-frame failure marks that spectrum with an error and the frame
//! still goes on, so every pair that entered is published exactly once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use fast_image_resize::Resizer;

use fast_image_resize::pixels::F32;

use super::batch::{BatchOutput, Batching, Inputs, Item, infer_frames, next_batch};
use super::models::{BoundaryModel, DetectorModel, LandmarkModel};
use crate::detect::{self, Detection, ThermalDetection};
use crate::dmsl::{self, BLACKOUT_MARGIN, FaceCrop};
use crate::frame::{
    CanvasMap, FaceResult, FaceSource, Frame, Pixels, Spectrum, SpectrumFrame, SpectrumResult,
};
use crate::geometry::BoundingBox;
use crate::infer::Model;
use crate::infer::ModelId;
use crate::pair::{Paired, Pairer};
use crate::pair::{PairingConfig, Unmatched};
use crate::publish::record::RecordModels;
use crate::publish::{LandmarkRecord, Outgoing, Sink, SinkError};
use crate::queue::QueueSender;
use crate::registration::Homography;
use crate::stage::Stage;
use crate::telemetry::{DropReason, Events};
use crate::thermal::face::ThermalImage;
use crate::thermal::{RadiometryConfig, ThermalNormalization};
use crate::track::{TrackingConfig, Tracks};

/// What the pair stage of one camera needs besides its queues.
pub struct PairSetup {
    pub camera: Arc<str>,
    pub pairing: PairingConfig,
    pub radiometry: RadiometryConfig,
    pub registration: Option<Arc<Homography>>,
    /// The camera's next sequence number; shared across restarts of the camera (reload), so
    /// sequence numbers never repeat within one daemon run.
    pub sequence: Arc<AtomicU64>,
}

/// Joins one camera's visible and thermal frames; assigns gap-free sequence numbers.
pub fn pair(
    setup: PairSetup,
    rx: Receiver<SpectrumFrame>,
    tx: QueueSender<Frame>,
    events: Arc<Events>,
) {
    let PairSetup {
        camera,
        pairing: config,
        radiometry,
        registration,
        sequence,
    } = setup;
    let max_wait = Duration::from_millis(config.max_wait_ms);
    let mut pairer = Pairer::new(config.tolerance_ms, config.thermal_offset_ms, max_wait);
    let tick = max_wait.clamp(Duration::from_millis(1), Duration::from_millis(50));
    let mut order = StreamOrder::default();
    loop {
        let (decided, ended) = match rx.recv_timeout(tick) {
            Ok(mut frame) => {
                if let Err(reason) = order.check(&frame) {
                    events.frame_dropped(
                        &camera,
                        reason,
                        1,
                        &format!(
                            "{} frame {} captured at {} us, not after the previous one",
                            frame.spectrum, frame.origin, frame.captured_us
                        ),
                    );
                    continue;
                }
                // The one place a camera's radiometry config applies (not in the sources).
                if frame.spectrum == Spectrum::Thermal && !radiometry.is_passthrough() {
                    frame.radiometry = radiometry
                        .resolve(frame.radiometry.as_deref())
                        .map(Arc::new);
                }
                (pairer.push(frame), false)
            }
            Err(RecvTimeoutError::Timeout) => (pairer.expire(Instant::now()), false),
            Err(RecvTimeoutError::Disconnected) => (pairer.finish(), true),
        };
        for paired in decided {
            let (visible, thermal) = match paired {
                Paired::Pair { visible, thermal } => (Some(visible), Some(thermal)),
                Paired::Alone(single) => {
                    events.pair_unmatched(&camera, single.spectrum.as_str());
                    if config.unmatched == Unmatched::Drop {
                        events.frame_dropped(
                            &camera,
                            DropReason::Unmatched,
                            1,
                            &format!(
                                "{} frame {} found no partner within {} ms",
                                single.spectrum, single.origin, config.tolerance_ms
                            ),
                        );
                        continue;
                    }
                    match single.spectrum {
                        Spectrum::Visible => (Some(single), None),
                        Spectrum::Thermal => (None, Some(single)),
                    }
                }
            };
            let number = sequence.fetch_add(1, Ordering::Relaxed);
            // The camera's configured homography, else what the thermal frame's file says
            // (a radiometric JPEG's picture-in-picture record).
            let from_file = thermal.as_ref().and_then(|t| t.registration.clone());
            let mut frame = Frame::new(camera.clone(), number, visible, thermal);
            frame.registration = registration.clone().or(from_file);
            frame.mark_stage_done(Stage::Pair);
            if tx.send(frame).is_err() {
                return;
            }
        }
        if ended {
            return;
        }
    }
}

/// Per spectrum, capture times must increase: a repeated time is a duplicated frame
/// (some cameras resend the last frame when starved), an earlier one arrived out of order.
#[derive(Default)]
struct StreamOrder {
    last: [Option<i64>; 2],
}

impl StreamOrder {
    fn check(&mut self, frame: &SpectrumFrame) -> Result<(), DropReason> {
        let last = &mut self.last[frame.spectrum as usize];
        match *last {
            Some(t) if frame.captured_us == t => Err(DropReason::Duplicate),
            Some(t) if frame.captured_us < t => Err(DropReason::OutOfOrder),
            _ => {
                *last = Some(frame.captured_us);
                Ok(())
            }
        }
    }
}

/// Each image → grey [0, 1] at its own size (visible luma, thermal AGC), what the detector
/// (thermal) and the face crops read.
pub fn preprocess(
    rx: Receiver<Frame>,
    tx: QueueSender<Frame>,
    thermal: ThermalNormalization,
    events: Arc<Events>,
) {
    for mut frame in rx {
        let busy = events.heartbeat().busy(Stage::Preprocess);
        for spectrum in Spectrum::ALL {
            let Some(image) = frame.image(spectrum) else {
                continue;
            };
            let gray = match &*image.pixels {
                Pixels::Rgb8(rgb) => Ok(dmsl::gray_from_rgb8(rgb)),
                Pixels::Gray16(values) => {
                    let converter = image.radiometry.as_ref().map(|r| r.converter());
                    dmsl::gray_from_thermal(values, thermal, converter.as_ref())
                        .map_err(|e| e.to_string())
                }
            };
            if let Some(result) = frame.result_mut(spectrum) {
                match gray {
                    Ok(gray) => result.gray = gray.into_iter().map(|p| p.0).collect(),
                    Err(e) => result.error = Some(e),
                }
            }
        }
        frame.mark_stage_done(Stage::Preprocess);
        drop(busy);
        if tx.send(frame).is_err() {
            break;
        }
    }
}

/// Takes the newest model handed over by a hot-swap, between two frames: the frame
/// before ran wholly on the old model, the next runs wholly on the new one, and the old
/// one is dropped here once its last frame is done.
fn take_swap<M>(current: &mut M, swaps: &Receiver<M>, role: &str, id: impl Fn(&M) -> String) {
    while let Ok(next) = swaps.try_recv() {
        tracing::info!(role, from = %id(current), to = %id(&next), "model swapped in");
        *current = next;
    }
}

/// Sends each frame of a finished batch on; false when the next stage has gone.
fn send_batch(stage: Stage, batch: &mut Vec<Frame>, tx: &QueueSender<Frame>) -> bool {
    for mut frame in batch.drain(..) {
        frame.mark_stage_done(stage);
        if tx.send(frame).is_err() {
            return false;
        }
    }
    true
}

/// What the three inference stages share: a model that can be hot-swapped between batches,
/// its batching policy, its inputs per frame, and where one input's outputs land.
pub trait InferenceModel: Inputs + Send {
    /// The stage (heartbeat, faults, latency).
    const STAGE: Stage;
    fn model(&self) -> &Model;
    fn batching(&self) -> Batching;
    /// Names this model in the frame's record.
    fn tag(&self, frame: &mut Frame);
    /// Stores input `i` of `out` (which is `item` of `frame`).
    fn store(&self, out: &BatchOutput, i: usize, item: Item, frame: &mut Frame);
}

/// The canvases of every face of every healthy spectrum: the DMSL models' inputs.
fn face_inputs(frame: &Frame, input: &mut Vec<f32>) -> Vec<Item> {
    let mut items = Vec::new();
    for spectrum in frame.healthy_spectra() {
        let Some(result) = frame.result(spectrum) else {
            continue;
        };
        for (face, f) in result.faces.iter().enumerate() {
            if f.canvas.len() == dmsl::CANVAS * dmsl::CANVAS {
                input.extend_from_slice(&f.canvas);
                items.push(Item {
                    spectrum,
                    face: Some(face),
                    scale: 1.0,
                });
            }
        }
    }
    items
}

fn face_of(frame: &mut Frame, item: Item) -> Option<&mut FaceResult> {
    frame.result_mut(item.spectrum)?.faces.get_mut(item.face?)
}

/// The detector's inputs: the visible image, and the thermal one when it has no homography
/// to take the visible faces through (and `[detector] thermal` is not off).
impl Inputs for DetectorModel {
    fn fill(&mut self, frame: &mut Frame, input: &mut Vec<f32>) -> Vec<Item> {
        let fit = (self.config.input_width, self.config.input_height);
        let size = self.config.model_size();
        let mut items = Vec::new();
        for spectrum in frame.healthy_spectra() {
            let Some(image) = frame.image(spectrum) else {
                continue;
            };
            let (w, h) = (image.width, image.height);
            let made = match (&*image.pixels, spectrum) {
                (Pixels::Rgb8(rgb), _) => {
                    Some(detect::rgb_input(rgb, w, h, fit, size, &mut self.resizer))
                }
                // With a homography the visible faces are mapped instead (crop stage), unless
                // this thermal image came without its visible partner.
                (Pixels::Gray16(_), Spectrum::Thermal)
                    if (frame.registration.is_none() || frame.visible.is_none())
                        && self.config.thermal != ThermalDetection::Off =>
                {
                    let gray = frame.result(spectrum).map_or(&[][..], |r| &r.gray);
                    let inverted = self.config.thermal == ThermalDetection::Inverted;
                    Some(detect::gray_input(
                        gray,
                        w,
                        h,
                        fit,
                        size,
                        inverted,
                        &mut self.resizer,
                    ))
                }
                _ => None,
            };
            match made {
                Some(Ok((canvas, scale))) => {
                    input.extend_from_slice(&canvas);
                    items.push(Item {
                        spectrum,
                        face: None,
                        scale,
                    });
                }
                Some(Err(e)) => {
                    if let Some(r) = frame.result_mut(spectrum) {
                        r.error = Some(format!("detector input: {e}"));
                    }
                }
                None => {}
            }
        }
        items
    }

    fn model_mut(&mut self) -> &mut Model {
        &mut self.model
    }
}

/// The face detector: each image → its faces (box, score, five keypoints).
impl InferenceModel for DetectorModel {
    const STAGE: Stage = Stage::Detect;

    fn model(&self) -> &Model {
        &self.model
    }

    fn batching(&self) -> Batching {
        self.batching
    }

    fn tag(&self, frame: &mut Frame) {
        frame.models.detector = Some(self.id.clone());
    }

    fn store(&self, out: &BatchOutput, i: usize, item: Item, frame: &mut Frame) {
        let outputs: Vec<&[f32]> = (0..out.outputs.len()).map(|k| out.item(k, i)).collect();
        let (w, h) = self.config.model_size();
        let (faces, over) = detect::decode(&outputs, &self.heads, w, h, item.scale, &self.config);
        if let Some(r) = frame.result_mut(item.spectrum) {
            r.detections = faces;
            r.faces_over_limit = over;
            r.face_source = Some(FaceSource::Detector);
        }
    }
}

impl Inputs for BoundaryModel {
    fn fill(&mut self, frame: &mut Frame, input: &mut Vec<f32>) -> Vec<Item> {
        face_inputs(frame, input)
    }

    fn model_mut(&mut self) -> &mut Model {
        &mut self.model
    }
}

/// DMSL boundary model: a face's canvas → its boundary box (normalised) and a face score.
impl InferenceModel for BoundaryModel {
    const STAGE: Stage = Stage::Boundary;

    fn model(&self) -> &Model {
        &self.model
    }

    fn batching(&self) -> Batching {
        self.batching
    }

    fn tag(&self, frame: &mut Frame) {
        frame.models.boundary = Some(self.id.clone());
    }

    fn store(&self, out: &BatchOutput, i: usize, item: Item, frame: &mut Frame) {
        let b = out.item(self.boxes, i);
        let face_box = BoundingBox {
            x: b[0],
            y: b[1],
            w: b[2],
            h: b[3],
        };
        let score = self.mask.map(|m| dmsl::box_score(out.item(m, i), face_box));
        if let Some(face) = face_of(frame, item) {
            face.canvas_box = Some(face_box);
            face.boundary_score = score;
        }
    }
}

impl Inputs for LandmarkModel {
    fn fill(&mut self, frame: &mut Frame, input: &mut Vec<f32>) -> Vec<Item> {
        face_inputs(frame, input)
    }

    fn model_mut(&mut self) -> &mut Model {
        &mut self.model
    }
}

/// DMSL landmark model: a face's blacked-out canvas → 68 normalised points.
impl InferenceModel for LandmarkModel {
    const STAGE: Stage = Stage::Landmark;

    fn model(&self) -> &Model {
        &self.model
    }

    fn batching(&self) -> Batching {
        self.batching
    }

    fn tag(&self, frame: &mut Frame) {
        frame.models.landmark = Some(self.id.clone());
    }

    fn store(&self, out: &BatchOutput, i: usize, item: Item, frame: &mut Frame) {
        let values = out.item(self.landmarks, i);
        if let Some(face) = face_of(frame, item) {
            face.canvas_landmarks = Some(values.chunks_exact(2).map(|p| [p[0], p[1]]).collect());
        }
    }
}

/// An inference stage: batches of frames (see `batch.rs`) through the stage's model.
/// Swaps are taken between batches, so a batch runs wholly on one model.
pub fn inference<M: InferenceModel>(
    rx: Receiver<Frame>,
    tx: QueueSender<Frame>,
    mut model: M,
    swaps: Receiver<M>,
    events: Arc<Events>,
) {
    let mut batch = Vec::new();
    let mut input = Vec::new();
    while next_batch(&rx, model.batching(), &mut batch) {
        take_swap(&mut model, &swaps, M::STAGE.as_str(), |m| {
            m.model().manifest.id()
        });
        let busy = events.heartbeat().busy(M::STAGE);
        for frame in batch.iter_mut() {
            super::faults::stall(M::STAGE, frame.sequence);
            model.tag(frame);
        }
        for out in infer_frames(M::STAGE, &mut batch, &mut model, &mut input, &events) {
            for (i, &(index, item)) in out.items.iter().enumerate() {
                model.store(&out, i, item, &mut batch[index]);
            }
        }
        drop(busy);
        if !send_batch(M::STAGE, &mut batch, &tx) {
            break;
        }
    }
}

/// What the crop stage needs from `[detector]`.
#[derive(Debug, Clone, Copy)]
pub struct CropSetup {
    pub upright: bool,
    pub whole_frame_fallback: bool,
}

/// Each image's faces → their 128x128 canvases (the shared crop definition). A thermal image
/// with a homography takes the visible faces through it; one without, where the detector
/// found nothing, may fall back to the whole image (one face at most).
pub fn crop(rx: Receiver<Frame>, tx: QueueSender<Frame>, setup: CropSetup, events: Arc<Events>) {
    let mut resizer = Resizer::new();
    for mut frame in rx {
        let busy = events.heartbeat().busy(Stage::Crop);
        register_thermal_faces(&mut frame);
        for spectrum in frame.healthy_spectra() {
            let Some(image) = frame.image(spectrum) else {
                continue;
            };
            let (w, h) = (image.width, image.height);
            let Some(r) = frame.result_mut(spectrum) else {
                continue;
            };
            let gray = std::mem::take(&mut r.gray);
            for d in std::mem::take(&mut r.detections) {
                let eyes = Some((d.keypoints[0], d.keypoints[1]));
                let crop = FaceCrop::of_detection(d.face_box, eyes, setup.upright);
                let mut face = FaceResult::new(d, CanvasMap::Crop(crop));
                face.canvas = crop.sample(&gray, w as usize, h as usize);
                r.faces.push(face);
            }
            let fallback = spectrum == Spectrum::Thermal
                && setup.whole_frame_fallback
                && r.faces.is_empty()
                && r.face_source != Some(FaceSource::RegisteredVisible);
            if fallback {
                whole_frame_face(r, &gray, w, h, &mut resizer);
            }
        }
        frame.mark_stage_done(Stage::Crop);
        drop(busy);
        if tx.send(frame).is_err() {
            break;
        }
    }
}

/// With a homography, the thermal image's faces are the visible ones taken through it.
fn register_thermal_faces(frame: &mut Frame) {
    let Some(to_visible) = frame.registration.clone() else {
        return;
    };
    let Some(visible) = frame
        .result(Spectrum::Visible)
        .filter(|r| r.error.is_none())
        .map(|r| r.detections.clone())
    else {
        return;
    };
    let to_thermal = to_visible.inverse();
    let Some(thermal) = frame
        .result_mut(Spectrum::Thermal)
        .filter(|r| r.error.is_none())
    else {
        return;
    };
    thermal.detections = visible
        .iter()
        .map(|d| {
            let points = to_thermal.map_points(&d.keypoints);
            Detection {
                face_box: to_thermal.map_box(d.face_box),
                score: d.score,
                keypoints: std::array::from_fn(|i| points[i]),
            }
        })
        .collect();
    thermal.face_source = Some(FaceSource::RegisteredVisible);
}

/// The whole image letterboxed as one candidate face; postprocess keeps it only if the
/// boundary model's mask agrees it is a face.
fn whole_frame_face(r: &mut SpectrumResult, gray: &[f32], w: u32, h: u32, resizer: &mut Resizer) {
    let pixels: Vec<F32> = gray.iter().map(|&v| F32::new(v)).collect();
    match dmsl::letterbox(&pixels, w, h, resizer) {
        Ok((canvas, letterbox)) => {
            let whole = Detection {
                face_box: BoundingBox {
                    x: 0.0,
                    y: 0.0,
                    w: w as f32,
                    h: h as f32,
                },
                score: 0.0,
                keypoints: [[0.0; 2]; 5],
            };
            let mut face = FaceResult::new(whole, CanvasMap::Letterbox(letterbox));
            face.canvas = canvas;
            r.faces.push(face);
            r.face_source = Some(FaceSource::WholeFrame);
        }
        Err(e) => r.error = Some(e.to_string()),
    }
}

/// The paper's masking step: everything outside each face's (grown) boundary box becomes
/// black.
pub fn blackout(rx: Receiver<Frame>, tx: QueueSender<Frame>, events: Arc<Events>) {
    for mut frame in rx {
        let busy = events.heartbeat().busy(Stage::Blackout);
        for s in frame.healthy_spectra() {
            if let Some(r) = frame.result_mut(s) {
                for face in &mut r.faces {
                    if let Some(b) = face.canvas_box {
                        dmsl::blackout(&mut face.canvas, b, BLACKOUT_MARGIN);
                    }
                }
            }
        }
        frame.mark_stage_done(Stage::Blackout);
        drop(busy);
        if tx.send(frame).is_err() {
            break;
        }
    }
}

/// What postprocess needs from `[detector]` and `[tracking]`.
#[derive(Debug, Clone, Copy)]
pub struct PostprocessSetup {
    pub whole_frame_min_score: f32,
    pub tracking: TrackingConfig,
}

/// Maps each face's canvas results back to its image's source pixels, decides the
/// whole-frame fallback, measures face temperatures on radiometric thermal frames, and
/// gives each face its track id.
pub fn postprocess(
    rx: Receiver<Frame>,
    tx: QueueSender<Frame>,
    setup: PostprocessSetup,
    events: Arc<Events>,
) {
    let mut tracks = Tracks::default();
    for mut frame in rx {
        let busy = events.heartbeat().busy(Stage::Postprocess);
        for s in frame.healthy_spectra() {
            if let Some(r) = frame.result_mut(s) {
                map_faces_back(r, setup.whole_frame_min_score);
            }
        }
        for r in frame.results.iter_mut().flatten() {
            // The canvases have served their purpose; the sink and the live view (which
            // keeps each camera's newest frame) need only the source images and results.
            r.faces.iter_mut().for_each(|f| f.canvas = Vec::new());
        }
        face_temperatures(&mut frame);
        assign_tracks(&mut frame, &mut tracks, &setup.tracking);
        for s in Spectrum::ALL {
            if let Some(r) = frame.result(s).filter(|r| r.error.is_none()) {
                events.observe_faces(&frame.camera, s.as_str(), r.faces.len(), r.faces_over_limit);
            }
        }
        frame.mark_stage_done(Stage::Postprocess);
        drop(busy);
        if tx.send(frame).is_err() {
            break;
        }
    }
}

fn map_faces_back(r: &mut SpectrumResult, whole_frame_min_score: f32) {
    for face in &mut r.faces {
        face.landmarks = face.canvas_landmarks.as_ref().map(|pts| {
            pts.iter()
                .map(|p| face.map.to_source_pixel(p[0], p[1]))
                .collect()
        });
        if let (CanvasMap::Letterbox(lb), Some(b)) = (face.map, face.canvas_box) {
            face.detection.face_box = lb.to_source_box(b);
            face.detection.score = face.boundary_score.unwrap_or(0.0);
        }
    }
    if r.face_source == Some(FaceSource::WholeFrame) {
        r.faces
            .retain(|f| f.boundary_score.unwrap_or(0.0) >= whole_frame_min_score);
    }
}

/// Each thermal face's temperature on the raw values: box statistics from its own box; the
/// inner canthi where the visible face's landmarks fall through the homography when the face
/// was registered from the visible one, else at its own landmarks. The visible landmarks are
/// the more accurate (held-out NME 0.0382 against 0.0437 on thermal-like faces,
/// models/dmsl-lite.md), and a thermal sensor of a quarter of the visible resolution shows
/// little of the eye to place them by.
fn face_temperatures(frame: &mut Frame) {
    let Some(image) = frame.thermal.as_ref() else {
        return;
    };
    let Some(converter) = image.radiometry.as_ref().map(|r| r.converter()) else {
        return;
    };
    let Pixels::Gray16(values) = &*image.pixels else {
        return;
    };
    let thermal = ThermalImage {
        values,
        width: image.width,
        height: image.height,
        converter: &converter,
    };
    // Only frames with temperatures to read pay for mapping the visible landmarks.
    let registered_landmarks = registered_visible_landmarks(frame);
    let Some(r) = frame.results[Spectrum::Thermal as usize]
        .as_mut()
        .filter(|r| r.error.is_none())
    else {
        return;
    };
    let registered = registered_landmarks.filter(|l| l.len() == r.faces.len());
    for (i, face) in r.faces.iter_mut().enumerate() {
        let canthi_from = registered
            .as_ref()
            .and_then(|l| l.get(i)?.as_deref())
            .or(face.landmarks.as_deref());
        face.temperature = thermal.face_temperature(face.detection.face_box, canthi_from);
    }
}

/// The visible faces' landmarks in thermal pixels, face by face, when the thermal faces were
/// registered from the visible ones (same order, as `register_thermal_faces` made them).
fn registered_visible_landmarks(frame: &Frame) -> Option<Vec<Option<Vec<[f32; 2]>>>> {
    let to_thermal = frame.registration.as_ref()?.inverse();
    let thermal = frame.result(Spectrum::Thermal)?;
    if thermal.face_source != Some(FaceSource::RegisteredVisible) {
        return None;
    }
    let visible = frame
        .result(Spectrum::Visible)
        .filter(|r| r.error.is_none())?;
    Some(
        visible
            .faces
            .iter()
            .map(|f| f.landmarks.as_deref().map(|p| to_thermal.map_points(p)))
            .collect(),
    )
}

/// Track ids: visible faces by the camera's visible tracker; thermal faces registered from
/// the visible ones share their ids; thermal faces found on their own have their own tracker.
fn assign_tracks(frame: &mut Frame, tracks: &mut Tracks, config: &TrackingConfig) {
    let camera = frame.camera.clone();
    let mut visible_ids = Vec::new();
    for s in Spectrum::ALL {
        let Some(captured) = frame.image(s).map(|i| i.captured_us) else {
            continue;
        };
        let Some(r) = frame.result_mut(s).filter(|r| r.error.is_none()) else {
            continue;
        };
        let ids = if r.face_source == Some(FaceSource::RegisteredVisible) {
            visible_ids.clone()
        } else {
            let boxes: Vec<BoundingBox> = r.faces.iter().map(|f| f.detection.face_box).collect();
            tracks.update(&camera, s as usize, &boxes, captured, config)
        };
        for (face, id) in r.faces.iter_mut().zip(&ids) {
            face.track_id = Some(*id);
        }
        if s == Spectrum::Visible {
            visible_ids = ids;
        }
    }
}

/// Per-stage latency samples, for the exit summary and the benchmark.
#[derive(Debug, Default, Clone)]
pub struct LatencyLog {
    pub per_stage: BTreeMap<&'static str, Vec<f64>>,
}

impl LatencyLog {
    fn record(&mut self, latencies: &[(Stage, f64)]) {
        let mut total = 0.0;
        for &(stage, ms) in latencies {
            self.per_stage.entry(stage.as_str()).or_default().push(ms);
            total += ms;
        }
        self.per_stage.entry("total").or_default().push(total);
    }

    /// (p50, p99) in milliseconds for one stage.
    pub fn percentiles(&self, stage: &str) -> Option<(f64, f64)> {
        let mut v = self.per_stage.get(stage)?.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let at = |p: f64| v[((p * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)];
        Some((at(0.50), at(0.99)))
    }
}

/// A sink with the key it was configured under (unchanged keys survive a reload).
pub type KeyedSink = (String, Box<dyn Sink>);

/// Changes to the set of sinks, applied between two frames.
pub struct SinkChange {
    /// Keys of the current sinks to keep; the others are flushed and closed.
    pub keep: Vec<String>,
    pub add: Vec<KeyedSink>,
}

fn apply_sink_change(sinks: &mut Vec<KeyedSink>, change: SinkChange) {
    for (key, sink) in sinks.iter_mut() {
        if !change.keep.contains(key)
            && let Err(e) = sink.flush()
        {
            tracing::error!(sink = sink.name(), "flush before closing failed: {e}");
        }
    }
    sinks.retain(|(key, _)| change.keep.contains(key));
    for (key, sink) in change.add {
        tracing::info!(sink = sink.name(), "sink started");
        sinks.push((key, sink));
    }
}

/// Serializes each frame once and hands it to every sink.
pub fn sink(
    rx: Receiver<Frame>,
    mut sinks: Vec<KeyedSink>,
    changes: Receiver<SinkChange>,
    events: Arc<Events>,
    stop: Arc<AtomicBool>,
) -> LatencyLog {
    let mut log = LatencyLog::default();
    let mut drops_seen: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let unknown = ModelId {
        name: "unknown".into(),
        sha256: String::new(),
    };
    loop {
        let frame = crossbeam_channel::select! {
            recv(rx) -> frame => match frame {
                Ok(frame) => frame,
                Err(_) => break,
            },
            recv(changes) -> change => {
                if let Ok(change) = change {
                    apply_sink_change(&mut sinks, change);
                }
                continue;
            }
        };
        // A change sent before this frame applies to it (reload ordering).
        while let Ok(change) = changes.try_recv() {
            apply_sink_change(&mut sinks, change);
        }
        let busy = events.heartbeat().busy(Stage::Sink);
        let now_drops = events.drops_by_reason(&frame.camera);
        let previous = drops_seen.entry(frame.camera.to_string()).or_default();
        let delta: BTreeMap<String, u64> = now_drops
            .iter()
            .map(|(k, v)| (k.clone(), v - previous.get(k).copied().unwrap_or(0)))
            .filter(|(_, v)| *v > 0)
            .collect();
        *previous = now_drops;
        let models = RecordModels {
            detector: frame.models.detector.as_deref().unwrap_or(&unknown),
            boundary: frame.models.boundary.as_deref().unwrap_or(&unknown),
            landmark: frame.models.landmark.as_deref().unwrap_or(&unknown),
        };
        let record = LandmarkRecord::from_frame(&frame, models, delta);
        let line = match serde_json::to_string(&record) {
            Ok(line) => line,
            Err(e) => {
                tracing::error!(camera = %frame.camera, sequence = frame.sequence, "cannot serialize record: {e}");
                continue;
            }
        };
        drop(busy);
        let message = Outgoing {
            frame: &frame,
            line: &line,
        };
        for (_, sink) in &mut sinks {
            match sink.publish(&message) {
                Ok(()) => {}
                Err(SinkError::Closed(what)) => {
                    // Nobody reads the only output any more (`| head`): stop the sources
                    // and let the rest drain, instead of computing into the void.
                    if !stop.swap(true, Ordering::Relaxed) {
                        tracing::info!("{what} closed by its reader; stopping");
                    }
                    events.sink_failed(&frame.camera, &sink.name(), "closed");
                }
                Err(e) => events.sink_failed(&frame.camera, &sink.name(), &e.to_string()),
            }
        }
        events.pair_published(&frame.camera);
        let latencies = frame.stage_latencies_ms();
        events.observe_latency(&latencies);
        log.record(&latencies);
    }
    for (_, sink) in &mut sinks {
        if let Err(e) = sink.flush() {
            tracing::error!(sink = sink.name(), "flush at shutdown failed: {e}");
        }
    }
    log
}

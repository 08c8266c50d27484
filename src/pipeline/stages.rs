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

use super::batch::{BatchOutput, Batching, infer_frames, next_batch};
use super::models::{BoundaryModel, LandmarkModel};
use crate::dmsl::{self, BLACKOUT_MARGIN};
use crate::frame::{Frame, Pixels, Spectrum, SpectrumFrame, SpectrumResult};
use crate::geometry::BoundingBox;
use crate::infer::Model;
use crate::infer::ModelId;
use crate::pair::{Paired, Pairer};
use crate::pair::{PairingConfig, Unmatched};
use crate::publish::{LandmarkRecord, Outgoing, Sink, SinkError};
use crate::queue::QueueSender;
use crate::registration::Homography;
use crate::stage::Stage;
use crate::telemetry::{DropReason, Events};
use crate::thermal::face::{BoxSource, ThermalImage};
use crate::thermal::{RadiometryConfig, ThermalNormalization};

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
            let mut frame = Frame::new(camera.clone(), number, visible, thermal);
            frame.registration = registration.clone();
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

/// Decode-independent preprocessing: grey [0, 1] image → 128x128 letterboxed canvas.
pub fn preprocess(
    rx: Receiver<Frame>,
    tx: QueueSender<Frame>,
    thermal: ThermalNormalization,
    events: Arc<Events>,
) {
    let mut resizer = Resizer::new();
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
            let outcome = gray.and_then(|gray| {
                dmsl::letterbox(&gray, image.width, image.height, &mut resizer)
                    .map_err(|e| e.to_string())
            });
            if let Some(result) = frame.result_mut(spectrum) {
                match outcome {
                    Ok((canvas, letterbox)) => {
                        result.canvas = canvas;
                        result.letterbox = Some(letterbox);
                    }
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

/// What the two inference stages share: a model that can be hot-swapped between batches,
/// its batching policy, and where one image's outputs land in its spectrum's result.
pub trait InferenceModel: Send {
    /// The stage (heartbeat, faults, latency).
    const STAGE: Stage;
    fn model(&self) -> &Model;
    fn model_mut(&mut self) -> &mut Model;
    fn batching(&self) -> Batching;
    /// Names this model in the frame's record.
    fn tag(&self, frame: &mut Frame);
    /// Stores image `i` of `out` in its spectrum's result.
    fn store(&self, out: &BatchOutput, i: usize, result: &mut SpectrumResult);
}

/// DMSL boundary model: canvas → face box (normalised x, y, w, h) and a face score.
impl InferenceModel for BoundaryModel {
    const STAGE: Stage = Stage::Boundary;

    fn model(&self) -> &Model {
        &self.model
    }

    fn model_mut(&mut self) -> &mut Model {
        &mut self.model
    }

    fn batching(&self) -> Batching {
        self.batching
    }

    fn tag(&self, frame: &mut Frame) {
        frame.models.boundary = Some(self.id.clone());
    }

    fn store(&self, out: &BatchOutput, i: usize, result: &mut SpectrumResult) {
        let b = out.item(self.boxes, i);
        let face_box = BoundingBox {
            x: b[0],
            y: b[1],
            w: b[2],
            h: b[3],
        };
        result.canvas_box = Some(face_box);
        result.score = self.mask.map(|m| dmsl::box_score(out.item(m, i), face_box));
    }
}

/// DMSL landmark model: blacked-out canvas → 68 normalised points.
impl InferenceModel for LandmarkModel {
    const STAGE: Stage = Stage::Landmark;

    fn model(&self) -> &Model {
        &self.model
    }

    fn model_mut(&mut self) -> &mut Model {
        &mut self.model
    }

    fn batching(&self) -> Batching {
        self.batching
    }

    fn tag(&self, frame: &mut Frame) {
        frame.models.landmark = Some(self.id.clone());
    }

    fn store(&self, out: &BatchOutput, i: usize, result: &mut SpectrumResult) {
        let values = out.item(self.landmarks, i);
        result.canvas_landmarks = Some(values.chunks_exact(2).map(|p| [p[0], p[1]]).collect());
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
        for out in infer_frames(M::STAGE, &mut batch, model.model_mut(), &mut input, &events) {
            for (i, &(index, spectrum)) in out.items.iter().enumerate() {
                if let Some(result) = batch[index].result_mut(spectrum) {
                    model.store(&out, i, result);
                }
            }
        }
        drop(busy);
        if !send_batch(M::STAGE, &mut batch, &tx) {
            break;
        }
    }
}

/// The paper's masking step: everything outside the (grown) face box becomes black.
pub fn blackout(rx: Receiver<Frame>, tx: QueueSender<Frame>, events: Arc<Events>) {
    for mut frame in rx {
        let busy = events.heartbeat().busy(Stage::Blackout);
        for s in frame.healthy_spectra() {
            if let Some(r) = frame.result_mut(s)
                && let Some(b) = r.canvas_box
            {
                dmsl::blackout(&mut r.canvas, b, BLACKOUT_MARGIN);
            }
        }
        frame.mark_stage_done(Stage::Blackout);
        drop(busy);
        if tx.send(frame).is_err() {
            break;
        }
    }
}

/// Maps canvas results back to each spectrum's source pixels, then measures the face
/// temperature on radiometric thermal frames.
pub fn postprocess(rx: Receiver<Frame>, tx: QueueSender<Frame>, events: Arc<Events>) {
    for mut frame in rx {
        let busy = events.heartbeat().busy(Stage::Postprocess);
        // The model canvases have served their purpose; the sink and the live view (which
        // keeps each camera's newest frame) need only the source images and results.
        for r in frame.results.iter_mut().flatten() {
            r.canvas = Vec::new();
        }
        for s in frame.healthy_spectra() {
            let Some(r) = frame.result_mut(s) else {
                continue;
            };
            let Some(lb) = r.letterbox else { continue };
            r.source_box = r.canvas_box.map(|b| lb.to_source_box(b));
            r.source_landmarks = r
                .canvas_landmarks
                .as_ref()
                .map(|pts| pts.iter().map(|p| lb.to_source_pixel(p[0], p[1])).collect());
        }
        let temperature = face_temperature(&frame, frame.registration.as_deref());
        if let Some(r) = frame.result_mut(Spectrum::Thermal) {
            r.temperature = temperature;
        }
        frame.mark_stage_done(Stage::Postprocess);
        drop(busy);
        if tx.send(frame).is_err() {
            break;
        }
    }
}

/// The face box (and landmarks) on the thermal image: the visible detection mapped through
/// the rig's homography when there is one, else the thermal image's own detection.
fn face_temperature(
    frame: &Frame,
    thermal_to_visible: Option<&Homography>,
) -> Option<crate::thermal::face::FaceTemperature> {
    let image = frame.thermal.as_ref()?;
    let converter = image.radiometry.as_ref()?.converter();
    let Pixels::Gray16(values) = &*image.pixels else {
        return None;
    };
    let visible = frame
        .result(Spectrum::Visible)
        .filter(|r| r.error.is_none());
    let registered = thermal_to_visible
        .zip(visible.and_then(|r| r.source_box))
        .map(|(h, b)| {
            let to_thermal = h.inverse();
            let landmarks = visible
                .and_then(|r| r.source_landmarks.as_ref())
                .map(|pts| to_thermal.map_points(pts));
            (
                to_thermal.map_box(b),
                BoxSource::RegisteredVisible,
                landmarks,
            )
        });
    let thermal = frame
        .result(Spectrum::Thermal)
        .filter(|r| r.error.is_none());
    let (face_box, source, landmarks) = registered.or_else(|| {
        let r = thermal?;
        Some((
            r.source_box?,
            BoxSource::Thermal,
            r.source_landmarks.clone(),
        ))
    })?;
    ThermalImage {
        values,
        width: image.width,
        height: image.height,
        converter: &converter,
    }
    .face_temperature(face_box, source, landmarks.as_deref())
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
        let boundary = frame.models.boundary.as_deref().unwrap_or(&unknown);
        let landmark = frame.models.landmark.as_deref().unwrap_or(&unknown);
        let record = LandmarkRecord::from_frame(&frame, boundary, landmark, delta);
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

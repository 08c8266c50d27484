//! Builds and runs the pipeline: one thread per stage, bounded queues between them.
//!
//! ```text
//! source(s) ─► pair (per camera) ─► preprocess ─► detect ─► crop ─► boundary ─► blackout
//!           ─► landmark ─► postprocess (map back, temperature, tracks) ─► sink
//! ```
//! Shutdown flows with the data: the stop flag ends the sources, each stage ends when its
//! input closes, the sink flushes last. [`Pipeline::wait`] joins every thread in order and
//! returns the summary. Nothing in the hot path polls a flag except the sources.

mod batch;
mod cameras;
pub mod faults;
mod models;
mod stages;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use models::{BoundaryModel, DetectorModel, LandmarkModel, StageModelError};
pub use stages::{KeyedSink, LatencyLog, SinkChange};

use std::collections::BTreeMap;

use crossbeam_channel::{Receiver, Sender};

use crate::config::Config;
use crate::frame::Frame;
use crate::pair::PairingConfig;
use crate::queue::{QueueSender, queue};
use crate::registration::RegistrationError;
use crate::source::CameraConfig;
use crate::source::SourceError;
use crate::stage::Stage;
use crate::telemetry::Events;
use cameras::Cameras;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Model(#[from] StageModelError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Faults(#[from] faults::FaultsError),
    #[error("camera homography: {0}")]
    Registration(#[from] RegistrationError),
    #[error("cannot start thread {name}: {source}")]
    Spawn {
        name: String,
        source: std::io::Error,
    },
    #[error(
        "the pipeline has ended (every camera's input ended); restart spectrald to add cameras"
    )]
    Ended,
}

/// What a run did, for the exit summary line and tests.
#[derive(Debug, Clone)]
pub struct Summary {
    pub frames_in: u64,
    pub published: u64,
    pub dropped: std::collections::BTreeMap<String, u64>,
    pub unmatched: u64,
    pub inference_failed: u64,
    /// Records a sink could not take (an output closed or failing at shutdown), summed
    /// over sinks.
    pub not_written: u64,
    pub seconds: f64,
    pub latency: LatencyLog,
    /// Live streams' last state and why, "camera/spectrum" → "state: reason".
    pub streams: BTreeMap<String, String>,
}

impl Summary {
    pub fn pairs_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.published as f64 / self.seconds
        } else {
            0.0
        }
    }

    pub fn line(&self) -> String {
        let dropped: Vec<String> = self
            .dropped
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let latency = self
            .latency
            .percentiles("total")
            .map(|(p50, p99)| format!(", latency p50 {p50:.1} ms p99 {p99:.1} ms"))
            .unwrap_or_default();
        let streams: Vec<String> = self
            .streams
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let streams = if streams.is_empty() {
            String::new()
        } else {
            format!("; streams: {}", streams.join("; "))
        };
        format!(
            "summary: frames in {}, published {}, dropped {} [{}], unmatched {}, inference failed {}, not written {}, {:.1} pairs/s over {:.2} s{}{}",
            self.frames_in,
            self.published,
            self.dropped.values().sum::<u64>(),
            dropped.join(" "),
            self.unmatched,
            self.inference_failed,
            self.not_written,
            self.pairs_per_second(),
            self.seconds,
            latency,
            streams
        )
    }
}

pub struct Pipeline {
    supervisor: JoinHandle<()>,
    stages: Vec<JoinHandle<()>>,
    sink: JoinHandle<LatencyLog>,
    stop: Arc<AtomicBool>,
    events: Arc<Events>,
    control: PipelineControl,
    started: Instant,
    pub detector_backend: &'static str,
    pub boundary_backend: &'static str,
    pub landmark_backend: &'static str,
}

/// Changes a running pipeline (reload, hot-swap); cheap to clone, safe from any thread.
#[derive(Clone)]
pub struct PipelineControl {
    cameras: Arc<Mutex<Cameras>>,
    detector: Sender<DetectorModel>,
    boundary: Sender<BoundaryModel>,
    landmark: Sender<LandmarkModel>,
    sinks: Sender<SinkChange>,
    events: Arc<Events>,
}

impl PipelineControl {
    /// See [`Cameras::apply`]: failures name the camera that could not start.
    pub fn apply_cameras(
        &self,
        cameras: &[CameraConfig],
        pairing: &PairingConfig,
    ) -> Vec<(String, PipelineError)> {
        self.cameras
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .apply(cameras, pairing)
    }

    pub fn camera_ids(&self) -> Vec<String> {
        self.cameras.lock().unwrap_or_else(|p| p.into_inner()).ids()
    }

    /// Hands a loaded, warmed-up detector to its stage; it takes over at the next frame.
    pub fn swap_detector(&self, model: DetectorModel) -> Result<(), PipelineError> {
        self.events.set_model("detector", (*model.id).clone());
        self.detector.send(model).map_err(|_| PipelineError::Ended)
    }

    /// Hands a loaded, warmed-up boundary model to its stage; it takes over at the next frame.
    pub fn swap_boundary(&self, model: BoundaryModel) -> Result<(), PipelineError> {
        self.events.set_model("boundary", (*model.id).clone());
        self.boundary.send(model).map_err(|_| PipelineError::Ended)
    }

    pub fn swap_landmark(&self, model: LandmarkModel) -> Result<(), PipelineError> {
        self.events.set_model("landmark", (*model.id).clone());
        self.landmark.send(model).map_err(|_| PipelineError::Ended)
    }

    pub fn change_sinks(&self, change: SinkChange) -> Result<(), PipelineError> {
        self.sinks.send(change).map_err(|_| PipelineError::Ended)
    }
}

/// Stops the cameras when asked to, and closes the shared queue once every camera ended.
fn supervise(cameras: Arc<Mutex<Cameras>>, stop: Arc<AtomicBool>) {
    loop {
        let mut cameras = cameras.lock().unwrap_or_else(|p| p.into_inner());
        let stopping = stop.load(Ordering::Relaxed);
        if stopping {
            cameras.stop_all();
        }
        if cameras.close_if_all_ended(stopping) {
            cameras.join_all();
            return;
        }
        drop(cameras);
        std::thread::sleep(SUPERVISE_EVERY);
    }
}

pub(crate) fn spawn<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>, PipelineError> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(f)
        .map_err(|source| PipelineError::Spawn {
            name: name.to_owned(),
            source,
        })
}

/// How often the supervisor looks at the stop flag and at the cameras.
const SUPERVISE_EVERY: Duration = Duration::from_millis(20);

/// The three models as loaded at start, and which backend each runs on.
struct LoadedModels {
    detector: DetectorModel,
    boundary: BoundaryModel,
    landmark: LandmarkModel,
    detector_backend: &'static str,
    boundary_backend: &'static str,
    landmark_backend: &'static str,
}

fn load_models(config: &Config, events: &Events) -> Result<LoadedModels, PipelineError> {
    let models = &config.models;
    let detector = DetectorModel::load(&models.detector, models, &config.detector)?;
    let boundary = BoundaryModel::load(&models.boundary, models)?;
    let landmark = LandmarkModel::load(&models.landmark, models)?;
    tracing::info!(
        detector = %detector.model.manifest.id(),
        boundary = %boundary.model.manifest.id(),
        landmark = %landmark.model.manifest.id(),
        backend = boundary.model.backend_name(),
        cameras = config.cameras.len(),
        "models loaded, starting pipeline"
    );
    events.set_model("detector", (*detector.id).clone());
    events.set_model("boundary", (*boundary.id).clone());
    events.set_model("landmark", (*landmark.id).clone());
    Ok(LoadedModels {
        detector_backend: detector.model.backend_name(),
        boundary_backend: boundary.model.backend_name(),
        landmark_backend: landmark.model.backend_name(),
        detector,
        boundary,
        landmark,
    })
}

/// The queue in front of every stage after pair: `to_X` feeds stage X, `X` is its input.
struct StageQueues {
    to_preprocess: QueueSender<Frame>,
    preprocess: Receiver<Frame>,
    to_detect: QueueSender<Frame>,
    detect: Receiver<Frame>,
    to_crop: QueueSender<Frame>,
    crop: Receiver<Frame>,
    to_boundary: QueueSender<Frame>,
    boundary: Receiver<Frame>,
    to_blackout: QueueSender<Frame>,
    blackout: Receiver<Frame>,
    to_landmark: QueueSender<Frame>,
    landmark: Receiver<Frame>,
    to_postprocess: QueueSender<Frame>,
    postprocess: Receiver<Frame>,
    to_sink: QueueSender<Frame>,
    sink: Receiver<Frame>,
}

impl StageQueues {
    /// Each queue sized and with the policy of `[queues]`, its depth reported to `events`.
    fn new(config: &Config, events: &Arc<Events>) -> StageQueues {
        let make = |stage: Stage| {
            let (tx, rx) = queue(&config.queues.for_stage(stage), events.clone());
            // Depth probes hold receivers: a probe holding a sender would keep a queue open.
            let probe = rx.clone();
            events.register_queue(stage.as_str().to_owned(), Box::new(move || probe.len()));
            (tx, rx)
        };
        let (to_preprocess, preprocess) = make(Stage::Preprocess);
        let (to_detect, detect) = make(Stage::Detect);
        let (to_crop, crop) = make(Stage::Crop);
        let (to_boundary, boundary) = make(Stage::Boundary);
        let (to_blackout, blackout) = make(Stage::Blackout);
        let (to_landmark, landmark) = make(Stage::Landmark);
        let (to_postprocess, postprocess) = make(Stage::Postprocess);
        let (to_sink, sink) = make(Stage::Sink);
        StageQueues {
            to_preprocess,
            preprocess,
            to_detect,
            detect,
            to_crop,
            crop,
            to_boundary,
            boundary,
            to_blackout,
            blackout,
            to_landmark,
            landmark,
            to_postprocess,
            postprocess,
            to_sink,
            sink,
        }
    }
}

impl Pipeline {
    /// Loads the models, opens the sources and starts every thread. Everything that can be
    /// wrong with the setup fails here, before the first frame.
    pub fn start(
        config: &Config,
        sinks: Vec<KeyedSink>,
        events: Arc<Events>,
        stop: Arc<AtomicBool>,
    ) -> Result<Pipeline, PipelineError> {
        faults::Faults::from_env()?;
        let models = load_models(config, &events)?;
        let queues = StageQueues::new(config, &events);
        let mut cameras = Cameras::new(queues.to_preprocess, config.queues.clone(), events.clone());
        for camera in &config.cameras {
            cameras.start(camera, &config.pairing)?;
        }
        let cameras = Arc::new(Mutex::new(cameras));

        let mut stages = Vec::new();
        let thermal = config.thermal.normalization;
        let ev = events.clone();
        let (rx, tx) = (queues.preprocess, queues.to_detect);
        stages.push(spawn("preprocess", move || {
            stages::preprocess(rx, tx, thermal, ev)
        })?);
        let (detector_swaps, detector_swapped) = crossbeam_channel::unbounded();
        let ev = events.clone();
        let (rx, tx, model) = (queues.detect, queues.to_crop, models.detector);
        stages.push(spawn("detect", move || {
            stages::inference(rx, tx, model, detector_swapped, ev)
        })?);
        let crop = stages::CropSetup {
            upright: config.detector.upright,
            whole_frame_fallback: config.detector.thermal_whole_frame_fallback,
        };
        let ev = events.clone();
        let (rx, tx) = (queues.crop, queues.to_boundary);
        stages.push(spawn("crop", move || stages::crop(rx, tx, crop, ev))?);
        let (boundary_swaps, boundary_swapped) = crossbeam_channel::unbounded();
        let ev = events.clone();
        let (rx, tx, model) = (queues.boundary, queues.to_blackout, models.boundary);
        stages.push(spawn("boundary", move || {
            stages::inference(rx, tx, model, boundary_swapped, ev)
        })?);
        let ev = events.clone();
        let (rx, tx) = (queues.blackout, queues.to_landmark);
        stages.push(spawn("blackout", move || stages::blackout(rx, tx, ev))?);
        let (landmark_swaps, landmark_swapped) = crossbeam_channel::unbounded();
        let ev = events.clone();
        let (rx, tx, model) = (queues.landmark, queues.to_postprocess, models.landmark);
        stages.push(spawn("landmark", move || {
            stages::inference(rx, tx, model, landmark_swapped, ev)
        })?);
        let post = stages::PostprocessSetup {
            whole_frame_min_score: config.detector.whole_frame_min_score,
            tracking: config.tracking,
        };
        let ev = events.clone();
        let (rx, tx) = (queues.postprocess, queues.to_sink);
        stages.push(spawn("postprocess", move || {
            stages::postprocess(rx, tx, post, ev)
        })?);
        let (sink_changes, sink_changed) = crossbeam_channel::unbounded();
        let (ev, st, rx) = (events.clone(), stop.clone(), queues.sink);
        let sink = spawn("sink", move || {
            stages::sink(rx, sinks, sink_changed, ev, st)
        })?;
        let (watched, st) = (cameras.clone(), stop.clone());
        let supervisor = spawn("supervisor", move || supervise(watched, st))?;
        Ok(Pipeline {
            supervisor,
            stages,
            sink,
            stop,
            control: PipelineControl {
                cameras,
                detector: detector_swaps,
                boundary: boundary_swaps,
                landmark: landmark_swaps,
                sinks: sink_changes,
                events: events.clone(),
            },
            events,
            started: Instant::now(),
            detector_backend: models.detector_backend,
            boundary_backend: models.boundary_backend,
            landmark_backend: models.landmark_backend,
        })
    }

    pub fn control(&self) -> PipelineControl {
        self.control.clone()
    }

    /// True once the sink has published its last frame.
    pub fn is_finished(&self) -> bool {
        self.sink.is_finished()
    }

    /// Asks the sources to stop; the rest drains and ends on its own.
    pub fn request_stop(&self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn events(&self) -> &Arc<Events> {
        &self.events
    }

    /// Waits for every thread (sources first, sink last) and summarises the run.
    pub fn wait(self) -> Summary {
        for handle in std::iter::once(self.supervisor).chain(self.stages) {
            if handle.join().is_err() {
                tracing::error!("a pipeline thread panicked; see the log above");
            }
        }
        let latency = self.sink.join().unwrap_or_else(|_| {
            tracing::error!("the sink thread panicked; see the log above");
            LatencyLog::default()
        });
        let events = &self.events;
        let mut dropped = std::collections::BTreeMap::new();
        for ((name, _, reason), v) in events.snapshot() {
            if name == "frame_dropped" {
                *dropped.entry(reason).or_insert(0) += v;
            }
        }
        Summary {
            frames_in: events.total("frame_received", None),
            published: events.total("pair_published", None),
            dropped,
            unmatched: events.total("pair_unmatched", None),
            inference_failed: events.total("inference_failed", None),
            not_written: events.total("sink_failed", None),
            seconds: self.started.elapsed().as_secs_f64(),
            latency,
            streams: events
                .stream_states()
                .into_iter()
                .map(|((camera, spectrum), status)| {
                    (
                        format!("{camera}/{spectrum}"),
                        format!("{}: {}", status.state.as_str(), status.reason),
                    )
                })
                .collect(),
        }
    }
}

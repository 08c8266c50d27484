//! Builds and runs the pipeline: one thread per stage, bounded queues between them.
//!
//! ```text
//! source(s) ─► pair (per camera) ─► preprocess ─► boundary ─► blackout ─► landmark ─► postprocess ─► sink
//! ```
//! Shutdown flows with the data: the stop flag ends the sources, each stage ends when its
//! input closes, the sink flushes last. [`Pipeline::wait`] joins every thread in order and
//! returns the summary. Nothing in the hot path polls a flag except the sources.

mod queue;
mod stages;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;
use std::time::Instant;

pub use queue::{Closed, QueueSender, Tracked, queue};
pub use stages::LatencyLog;

use std::collections::BTreeMap;

use crate::config::{CameraConfig, Config, QueueConfig};
use crate::infer::{Model, ModelError};
use crate::publish::Sink;
use crate::publish::record::ModelId;
use crate::registration::{Homography, RegistrationError};
use crate::source::{NamedSource, SourceError};
use crate::telemetry::Events;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("camera homography: {0}")]
    Registration(#[from] RegistrationError),
    #[error("model {model} ({path}) is not a DMSL {task} model: it needs an output named {output}")]
    WrongTask {
        model: String,
        path: String,
        task: &'static str,
        output: &'static str,
    },
    #[error("cannot start thread {name}: {source}")]
    Spawn {
        name: String,
        source: std::io::Error,
    },
}

/// What a run did, for the exit summary line and tests.
#[derive(Debug, Clone)]
pub struct Summary {
    pub frames_in: u64,
    pub published: u64,
    pub dropped: std::collections::BTreeMap<String, u64>,
    pub unmatched: u64,
    pub inference_failed: u64,
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
            "summary: frames in {}, published {}, dropped {} [{}], unmatched {}, inference failed {}, {:.1} pairs/s over {:.2} s{}{}",
            self.frames_in,
            self.published,
            self.dropped.values().sum::<u64>(),
            dropped.join(" "),
            self.unmatched,
            self.inference_failed,
            self.pairs_per_second(),
            self.seconds,
            latency,
            streams
        )
    }
}

pub struct Pipeline {
    sources: Vec<JoinHandle<()>>,
    stages: Vec<JoinHandle<()>>,
    sink: JoinHandle<LatencyLog>,
    stop: Arc<AtomicBool>,
    events: Arc<Events>,
    started: Instant,
    pub boundary_backend: &'static str,
    pub landmark_backend: &'static str,
}

fn spawn<T: Send + 'static>(
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

fn model_id(model: &Model) -> ModelId {
    ModelId {
        name: model.manifest.name.clone(),
        sha256: model.manifest.sha256.clone(),
    }
}

fn output_index(
    model: &Model,
    task: &'static str,
    output: &'static str,
) -> Result<usize, PipelineError> {
    model
        .manifest
        .outputs
        .iter()
        .position(|o| o.name == output)
        .ok_or_else(|| PipelineError::WrongTask {
            model: model.manifest.name.clone(),
            path: model.manifest.path.display().to_string(),
            task,
            output,
        })
}

impl Pipeline {
    /// Loads the models, opens the sources and starts every thread. Everything that can be
    /// wrong with the setup fails here, before the first frame.
    pub fn start(
        config: &Config,
        sinks: Vec<Box<dyn Sink>>,
        events: Arc<Events>,
        stop: Arc<AtomicBool>,
    ) -> Result<Pipeline, PipelineError> {
        let boundary_model =
            Model::load(&config.models.dir, &config.models.boundary, &config.models)?;
        let landmark_model =
            Model::load(&config.models.dir, &config.models.landmark, &config.models)?;
        let boundary_outputs = stages::BoundaryOutputs {
            boxes: output_index(&boundary_model, "boundary", "box")?,
            mask: output_index(&boundary_model, "boundary", "mask").ok(),
        };
        let landmark_output = output_index(&landmark_model, "landmark", "landmarks")?;
        let mut opened: Vec<(&CameraConfig, Vec<NamedSource>)> = Vec::new();
        let mut registration = BTreeMap::new();
        for camera in &config.cameras {
            opened.push((camera, crate::source::open_camera(camera)?));
            if let Some(rows) = camera.homography {
                registration.insert(camera.id.clone(), Homography::new(rows)?);
            }
        }
        tracing::info!(
            boundary = %boundary_model.manifest.id(),
            landmark = %landmark_model.manifest.id(),
            backend = boundary_model.backend_name(),
            cameras = opened.len(),
            "models loaded, starting pipeline"
        );
        let boundary_backend = boundary_model.backend_name();
        let landmark_backend = landmark_model.backend_name();
        let models = (model_id(&boundary_model), model_id(&landmark_model));

        let q = |stage: &str| config.queues.for_stage(stage);
        let (to_pre, pre_rx) = queue(&q("preprocess"), events.clone());
        let (to_boundary, boundary_rx) = queue(&q("boundary"), events.clone());
        let (to_blackout, blackout_rx) = queue(&q("blackout"), events.clone());
        let (to_landmark, landmark_rx) = queue(&q("landmark"), events.clone());
        let (to_post, post_rx) = queue(&q("postprocess"), events.clone());
        let (to_sink, sink_rx) = queue(&q("sink"), events.clone());

        let mut sources = Vec::new();
        let mut stages = Vec::new();
        for (camera, camera_sources) in opened {
            let pair_queue = QueueConfig {
                when_full: camera.source_queue_policy(q("pair").when_full),
                ..q("pair")
            };
            let (to_pair, pair_rx) = queue(&pair_queue, events.clone());
            for (name, source) in camera_sources {
                let (ev, st, tx) = (events.clone(), stop.clone(), to_pair.clone());
                let shown = name.clone();
                sources.push(spawn(&format!("source-{name}"), move || {
                    if let Err(e) = source.run(tx, st, ev) {
                        tracing::error!(source = %shown, "source stopped: {e}");
                    }
                })?);
            }
            drop(to_pair);
            let (tx, ev, pairing) = (to_pre.clone(), events.clone(), config.pairing.clone());
            let radiometry = camera.radiometry.clone();
            let cam: Arc<str> = camera.id.as_str().into();
            stages.push(spawn(&format!("pair-{}", camera.id), move || {
                stages::pair(cam, pair_rx, tx, pairing, radiometry, ev)
            })?);
        }
        drop(to_pre);
        let thermal = config.thermal.normalization;
        stages.push(spawn("preprocess", move || {
            stages::preprocess(pre_rx, to_boundary, thermal)
        })?);
        let ev = events.clone();
        stages.push(spawn("boundary", move || {
            stages::boundary(
                boundary_rx,
                to_blackout,
                boundary_model,
                boundary_outputs,
                ev,
            )
        })?);
        stages.push(spawn("blackout", move || {
            stages::blackout(blackout_rx, to_landmark)
        })?);
        let ev = events.clone();
        stages.push(spawn("landmark", move || {
            stages::landmark(landmark_rx, to_post, landmark_model, landmark_output, ev)
        })?);
        stages.push(spawn("postprocess", move || {
            stages::postprocess(post_rx, to_sink, registration)
        })?);
        let (ev, st) = (events.clone(), stop.clone());
        let sink = spawn("sink", move || stages::sink(sink_rx, sinks, models, ev, st))?;
        Ok(Pipeline {
            sources,
            stages,
            sink,
            stop,
            events,
            started: Instant::now(),
            boundary_backend,
            landmark_backend,
        })
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
        for handle in self.sources.into_iter().chain(self.stages) {
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

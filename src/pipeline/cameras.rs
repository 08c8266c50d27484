//! The per-camera part of the pipeline: a camera's sources and its pair stage, started and
//! stopped as a unit, so a reload can restart one camera while the others keep streaming.
//! All cameras feed the one shared preprocess queue.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use super::stages::{self, PairSetup};
use super::{PipelineError, spawn};
use crate::frame::Frame;
use crate::pair::PairingConfig;
use crate::queue::{QueueConfig, QueuesConfig};
use crate::queue::{QueueSender, queue};
use crate::registration::Homography;
use crate::source::CameraConfig;
use crate::stage::Stage;
use crate::telemetry::Events;

struct CameraRun {
    config: CameraConfig,
    pairing: PairingConfig,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl CameraRun {
    fn finished(&self) -> bool {
        self.threads.iter().all(|t| t.is_finished())
    }
}

pub struct Cameras {
    /// `None` once every camera has ended and the pipeline drains.
    to_preprocess: Option<QueueSender<Frame>>,
    runs: BTreeMap<String, CameraRun>,
    sequences: BTreeMap<String, Arc<AtomicU64>>,
    queues: QueuesConfig,
    events: Arc<Events>,
}

impl Cameras {
    pub fn new(
        to_preprocess: QueueSender<Frame>,
        queues: QueuesConfig,
        events: Arc<Events>,
    ) -> Self {
        Cameras {
            to_preprocess: Some(to_preprocess),
            runs: BTreeMap::new(),
            sequences: BTreeMap::new(),
            queues,
            events,
        }
    }

    /// Opens the camera's sources and starts them and its pair stage.
    pub fn start(
        &mut self,
        camera: &CameraConfig,
        pairing: &PairingConfig,
    ) -> Result<(), PipelineError> {
        let Some(to_preprocess) = self.to_preprocess.clone() else {
            return Err(PipelineError::Ended);
        };
        let sources = crate::source::open_camera(camera)?;
        let registration = camera
            .homography
            .map(Homography::new)
            .transpose()?
            .map(Arc::new);
        let pair_queue = QueueConfig {
            when_full: camera.source_queue_policy(self.queues.for_stage(Stage::Pair).when_full),
            ..self.queues.for_stage(Stage::Pair)
        };
        let (to_pair, pair_rx) = queue(&pair_queue, self.events.clone());
        // The probe holds a receiver: a sender would keep the queue open forever.
        let depth = pair_rx.clone();
        self.events
            .register_queue(format!("pair:{}", camera.id), Box::new(move || depth.len()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (name, source) in sources {
            let (events, stop, tx) = (self.events.clone(), stop.clone(), to_pair.clone());
            let shown = name.clone();
            threads.push(spawn(&format!("source-{name}"), move || {
                if let Err(e) = source.run(tx, stop, events) {
                    tracing::error!(source = %shown, "source stopped: {e}");
                }
            })?);
        }
        drop(to_pair);
        let setup = PairSetup {
            camera: camera.id.as_str().into(),
            pairing: pairing.clone(),
            radiometry: camera.radiometry.clone(),
            registration,
            sequence: self.sequences.entry(camera.id.clone()).or_default().clone(),
        };
        let events = self.events.clone();
        threads.push(spawn(&format!("pair-{}", camera.id), move || {
            stages::pair(setup, pair_rx, to_preprocess, events)
        })?);
        self.runs.insert(
            camera.id.clone(),
            CameraRun {
                config: camera.clone(),
                pairing: pairing.clone(),
                stop,
                threads,
            },
        );
        Ok(())
    }

    /// Stops one camera and waits until its last frames are in the preprocess queue.
    pub fn stop(&mut self, id: &str) {
        let Some(run) = self.runs.remove(id) else {
            return;
        };
        run.stop.store(true, Ordering::Relaxed);
        let started = Instant::now();
        for thread in run.threads {
            if thread.join().is_err() {
                tracing::error!(camera = id, "a camera thread panicked; see the log above");
            }
        }
        self.events.unregister_queue(&format!("pair:{id}"));
        tracing::info!(
            camera = id,
            ms = started.elapsed().as_millis() as u64,
            "camera stopped"
        );
    }

    /// Restarts the cameras whose config (or the pairing settings) changed, starts new ones
    /// and stops removed ones; unchanged cameras keep running untouched. A camera that fails
    /// to start is reported and left out; the others still apply.
    pub fn apply(
        &mut self,
        wanted: &[CameraConfig],
        pairing: &PairingConfig,
    ) -> Vec<(String, PipelineError)> {
        let unchanged = |run: &CameraRun| {
            wanted
                .iter()
                .any(|c| *c == run.config && run.pairing == *pairing)
        };
        let stale: Vec<String> = self
            .runs
            .iter()
            .filter(|(_, run)| !unchanged(run))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &stale {
            self.stop(id);
        }
        let mut failures = Vec::new();
        for camera in wanted {
            if self.runs.contains_key(&camera.id) {
                continue;
            }
            match self.start(camera, pairing) {
                Ok(()) => tracing::info!(camera = %camera.id, "camera started"),
                Err(e) => failures.push((camera.id.clone(), e)),
            }
        }
        failures
    }

    pub fn ids(&self) -> Vec<String> {
        self.runs.keys().cloned().collect()
    }

    /// Asks every camera's sources to stop (shutdown).
    pub fn stop_all(&self) {
        for run in self.runs.values() {
            run.stop.store(true, Ordering::Relaxed);
        }
    }

    /// True once all cameras ended (their inputs ended, or shutdown): nothing more will
    /// come, so the shared queue is closed and the pipeline drains. A daemon left with no
    /// cameras by a reload keeps waiting for the next one, unless it is `stopping`.
    pub fn close_if_all_ended(&mut self, stopping: bool) -> bool {
        if self.to_preprocess.is_some()
            && (stopping || !self.runs.is_empty())
            && self.runs.values().all(CameraRun::finished)
        {
            self.to_preprocess = None;
        }
        self.to_preprocess.is_none()
    }

    /// Joins what is left (after `close_if_all_ended`).
    pub fn join_all(&mut self) {
        let ids: Vec<String> = self.runs.keys().cloned().collect();
        for id in ids {
            self.stop(&id);
        }
    }
}

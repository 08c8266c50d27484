//! The long-running daemon around the pipeline: builds the sinks, serves HTTP, talks to
//! systemd, and applies reloads (SIGHUP, `POST /api/v1/reload`) and model hot-swaps while
//! frames keep flowing.
//!
//! A reload re-reads the config file and changes only what changed: cameras and sinks
//! whose settings differ restart, the rest keep running; a new model version is loaded,
//! warmed up and swapped in between two frames. A config that fails to load or to build
//! is refused as a whole, with one log line, and the old one stays in force.

mod reload;
mod sinks;
pub mod systemd;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::http::{HttpError, HttpServer, ReloadRequest, Status};
use crate::pipeline::{Pipeline, PipelineError, Summary};
use crate::publish::hub::Hub;
use crate::telemetry::Events;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(transparent)]
    Sink(#[from] sinks::SinkBuildError),
}

/// What the daemon runs with, besides the config.
pub struct Options {
    /// The config file, re-read on reload; `None` (command-line replay): no reload.
    pub config_path: Option<PathBuf>,
    pub stop: Arc<AtomicBool>,
    /// Set by SIGHUP.
    pub reload_signal: Arc<AtomicBool>,
}

/// Runs until the inputs end or `stop` is set; returns the run's summary.
pub fn run(config: Config, options: Options) -> Result<Summary, ServiceError> {
    let events = Arc::new(Events::new());
    let hub = Hub::new();
    let status = Arc::new(Status::default());
    status.set_grace(Duration::from_millis(config.http.ready_grace_ms));
    let built = sinks::build(
        &config,
        &hub,
        &events,
        &options.stop,
        &sinks::Running::default(),
    )?;
    let pipeline = Pipeline::start(&config, built.added, events.clone(), options.stop.clone())?;
    status.set_models_loaded(true);
    let camera_ids: Vec<String> = config.cameras.iter().map(|c| c.id.clone()).collect();
    status.set_cameras(&camera_ids, &[]);
    let (reload_tx, reload_rx) = crossbeam_channel::unbounded::<ReloadRequest>();
    let http = HttpServer::start(
        &config.http,
        hub.clone(),
        events.clone(),
        status.clone(),
        options.config_path.as_ref().map(|_| reload_tx.clone()),
    )?;
    let watchdog = systemd::Watchdog::start(
        events.clone(),
        Duration::from_millis(config.service.stage_stuck_ms),
    );
    systemd::ready(&format!("{} camera(s), models loaded", camera_ids.len()));

    let mut control = Control {
        applied: reload::Applied {
            config,
            sinks: built.running,
        },
        daemon: reload::Daemon {
            pipeline: pipeline.control(),
            hub,
            events,
            status,
            stop: options.stop.clone(),
        },
        last_model_check: Instant::now(),
        last_model_error: String::new(),
    };
    while !pipeline.is_finished() {
        let request = reload_rx.recv_timeout(Duration::from_millis(100)).ok();
        let signalled = options.reload_signal.swap(false, Ordering::Relaxed);
        if options.stop.load(Ordering::Relaxed) {
            continue;
        }
        match &options.config_path {
            Some(path) if request.is_some() || signalled => control.reload(path, request),
            _ => control.check_models(),
        }
    }
    systemd::stopping();
    drop(watchdog);
    let summary = pipeline.wait();
    if let Some(http) = http {
        http.stop();
    }
    Ok(summary)
}

/// The daemon's control loop state: the config in force, and the model watch.
struct Control {
    applied: reload::Applied,
    daemon: reload::Daemon,
    last_model_check: Instant,
    /// The last model-update problem logged, so it is logged once, not every few seconds.
    last_model_error: String,
}

impl Control {
    /// Applies a reload (SIGHUP or HTTP) and answers the HTTP request, if any.
    fn reload(&mut self, path: &Path, request: Option<ReloadRequest>) {
        systemd::reloading();
        let outcome = reload::apply(path, &mut self.applied, &self.daemon);
        match &outcome {
            Ok(summary) => {
                self.daemon.events.reload("ok");
                tracing::info!("config reloaded: {summary}");
            }
            Err(why) => {
                self.daemon.events.reload("rejected");
                tracing::error!("{why}");
            }
        }
        systemd::ready("reloaded");
        if let Some(reply) = request.and_then(|r| r.reply) {
            let _ = reply.send(outcome);
        }
        self.last_model_check = Instant::now();
    }

    /// Every `service.model_watch_s`: swaps in models whose manifests changed.
    fn check_models(&mut self) {
        let watch = self.applied.config.service.model_watch_s;
        if watch == 0 || self.last_model_check.elapsed() < Duration::from_secs(watch) {
            return;
        }
        self.last_model_check = Instant::now();
        let daemon = &self.daemon;
        match reload::swap_changed_models(&self.applied.config, &daemon.pipeline, &daemon.events) {
            Ok(Some(summary)) => tracing::info!("models: {summary}"),
            Ok(None) => {}
            Err(why) if why != self.last_model_error => {
                tracing::error!("{why}");
                self.last_model_error = why;
            }
            Err(_) => {}
        }
    }
}

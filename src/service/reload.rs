//! Applying a re-read config to the running daemon, and model hot-swap.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::sinks::{self, Running};
use crate::config::Config;
use crate::detect::DetectorConfig;
use crate::http::Status;
use crate::pipeline::{
    BoundaryModel, DetectorModel, LandmarkModel, PipelineControl, SinkChange, StageModelError,
};
use crate::publish::hub::Hub;
use crate::source::CameraConfig;
use crate::telemetry::Events;

/// The config in force and the sinks it runs.
pub struct Applied {
    pub config: Config,
    pub sinks: Running,
}

/// What a reload changes things through: the running pipeline and the daemon's shared
/// parts (the hub the HTTP side reads, the counters, readiness, the stop flag new sinks
/// watch).
pub struct Daemon {
    pub pipeline: PipelineControl,
    pub hub: Arc<Hub>,
    pub events: Arc<Events>,
    pub status: Arc<Status>,
    pub stop: Arc<AtomicBool>,
}

/// Re-reads `path` and applies what changed; `Err` (old config untouched) when the new
/// one does not load, a changed camera's sources do not check out, or a sink or model
/// cannot be built.
pub fn apply(path: &Path, applied: &mut Applied, daemon: &Daemon) -> Result<String, String> {
    let refuse = |why: String| format!("reload refused, the running config stays: {why}");
    let plan = Plan::check(path, applied, daemon).map_err(refuse)?;
    let notes = plan.carry_out(applied, daemon)?;
    Ok(if notes.is_empty() {
        "nothing changed".into()
    } else {
        notes.join("; ")
    })
}

/// A new config that checked out, with what it needs built before anything changes.
struct Plan {
    new: Config,
    /// Ids of the cameras whose settings (or the shared pairing) changed.
    restarted: Vec<String>,
    models: NewModels,
    sinks: sinks::Built,
}

impl Plan {
    /// Loads the file and builds everything new; nothing running is touched.
    fn check(path: &Path, applied: &Applied, daemon: &Daemon) -> Result<Plan, String> {
        let new = Config::load(path).map_err(|e| e.to_string())?;
        let old = &applied.config;
        let pairing_changed = new.pairing != old.pairing;
        let changed: Vec<&CameraConfig> = new
            .cameras
            .iter()
            .filter(|c| pairing_changed || !old.cameras.contains(c))
            .collect();
        for camera in &changed {
            crate::source::check_camera(camera)
                .map_err(|e| format!("camera {}: {e}", camera.id))?;
        }
        let restarted = changed.iter().map(|c| c.id.clone()).collect();
        let models = load_changed_models(old, &new, &old.detector, &daemon.events)?;
        let sinks = sinks::build(
            &new,
            &daemon.hub,
            &daemon.events,
            &daemon.stop,
            &applied.sinks,
        )
        .map_err(|e| e.to_string())?;
        Ok(Plan {
            new,
            restarted,
            models,
            sinks,
        })
    }

    /// Swaps models, sinks and cameras over; one note per change.
    fn carry_out(self, applied: &mut Applied, daemon: &Daemon) -> Result<Vec<String>, String> {
        let Plan {
            new,
            restarted,
            models,
            sinks: built,
        } = self;
        let control = &daemon.pipeline;
        let old = &applied.config;
        let mut notes = swap_in(models, control, &daemon.events);
        let added_sinks: Vec<String> = built.added.iter().map(|(_, s)| s.name()).collect();
        let removed_sinks = applied
            .sinks
            .keys
            .iter()
            .filter(|k| !built.keep.contains(k))
            .count();
        if !added_sinks.is_empty() || removed_sinks > 0 {
            let started = match added_sinks.is_empty() {
                true => "none".to_owned(),
                false => added_sinks.join(", "),
            };
            notes.push(format!("sinks: {removed_sinks} closed, started {started}"));
        }
        control
            .change_sinks(SinkChange {
                keep: built.keep,
                add: built.added,
            })
            .map_err(|e| e.to_string())?;
        let removed: Vec<String> = old
            .cameras
            .iter()
            .filter(|c| !new.cameras.iter().any(|n| n.id == c.id))
            .map(|c| c.id.clone())
            .collect();
        let failures = control.apply_cameras(&new.cameras, &new.pairing);
        if !restarted.is_empty() {
            notes.push(format!("cameras (re)started: {}", restarted.join(", ")));
        }
        if !removed.is_empty() {
            notes.push(format!("cameras removed: {}", removed.join(", ")));
        }
        for (id, e) in &failures {
            notes.push(format!("camera {id} failed to start: {e}"));
        }
        daemon.status.set_cameras(&control.camera_ids(), &restarted);
        notes.extend(restart_only_sections(old, &new));
        applied.config = new;
        applied.sinks = built.running;
        Ok(notes)
    }
}

/// Sections a running daemon cannot change: said so, applied at the next start.
fn restart_only_sections(old: &Config, new: &Config) -> Vec<String> {
    [
        ("queues", new.queues != old.queues),
        ("detector", new.detector != old.detector),
        ("tracking", new.tracking != old.tracking),
        ("thermal", new.thermal != old.thermal),
        ("http", new.http != old.http),
        ("service", new.service != old.service),
        ("log", new.log != old.log),
    ]
    .into_iter()
    .filter(|(_, changed)| *changed)
    .map(|(section, _)| format!("[{section}] changed: takes effect at the next restart"))
    .collect()
}

/// The models a reload or the model watch loaded, to hand to their stages.
#[derive(Default)]
struct NewModels {
    detector: Option<DetectorModel>,
    boundary: Option<BoundaryModel>,
    landmark: Option<LandmarkModel>,
}

impl NewModels {
    fn is_empty(&self) -> bool {
        self.detector.is_none() && self.boundary.is_none() && self.landmark.is_none()
    }
}

/// Loads (and warms up) the models whose name, settings or manifest differ from the ones
/// running. The detector is loaded with `detector` (the running `[detector]` section: its
/// input size is what the running stages were built for; a changed section takes effect at
/// the next start).
fn load_changed_models(
    old: &Config,
    new: &Config,
    detector: &DetectorConfig,
    events: &Events,
) -> Result<NewModels, String> {
    let running = events.models();
    let settings_changed = new.models != old.models;
    let differs = |role: &str, name: &str| -> bool {
        if settings_changed {
            return true;
        }
        let manifest = crate::infer::Manifest::read(&new.models.dir.join(format!("{name}.json")));
        match (manifest, running.get(role)) {
            (Ok(m), Some(id)) => m.sha256 != id.sha256 || m.name != id.name,
            _ => true,
        }
    };
    let models = &new.models;
    Ok(NewModels {
        detector: load_if(
            differs("detector", &models.detector),
            "detector",
            events,
            || DetectorModel::load(&models.detector, models, detector),
        )?,
        boundary: load_if(
            differs("boundary", &models.boundary),
            "boundary",
            events,
            || BoundaryModel::load(&models.boundary, models),
        )?,
        landmark: load_if(
            differs("landmark", &models.landmark),
            "landmark",
            events,
            || LandmarkModel::load(&models.landmark, models),
        )?,
    })
}

fn load_if<M>(
    changed: bool,
    role: &str,
    events: &Events,
    load: impl FnOnce() -> Result<M, StageModelError>,
) -> Result<Option<M>, String> {
    if !changed {
        return Ok(None);
    }
    load().map(Some).map_err(|e| {
        events.model_swap(role, "rejected");
        format!("new {role} model: {e}")
    })
}

/// Hands loaded models to their stages; one note per model swapped.
fn swap_in(models: NewModels, control: &PipelineControl, events: &Events) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(m) = models.detector {
        notes.push(format!("detector model → {}", m.model.manifest.id()));
        if control.swap_detector(m).is_ok() {
            events.model_swap("detector", "ok");
        }
    }
    if let Some(m) = models.boundary {
        notes.push(format!("boundary model → {}", m.model.manifest.id()));
        if control.swap_boundary(m).is_ok() {
            events.model_swap("boundary", "ok");
        }
    }
    if let Some(m) = models.landmark {
        notes.push(format!("landmark model → {}", m.model.manifest.id()));
        if control.swap_landmark(m).is_ok() {
            events.model_swap("landmark", "ok");
        }
    }
    notes
}

/// The periodic check of `models/`: swaps in any model whose manifest changed. `Err` when
/// the new version does not load (retried next time: the files may still be copying).
pub fn swap_changed_models(
    config: &Config,
    control: &PipelineControl,
    events: &Events,
) -> Result<Option<String>, String> {
    match load_changed_models(config, config, &config.detector, events) {
        Ok(models) if models.is_empty() => Ok(None),
        Ok(models) => Ok(Some(swap_in(models, control, events).join("; "))),
        Err(why) => Err(format!(
            "model update refused, the running models stay: {why}"
        )),
    }
}

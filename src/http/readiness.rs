//! What `/readyz` and `/api/v1/cameras` report: which cameras the daemon runs, since when,
//! and whether each one is doing its job.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::publish::hub::Hub;
use crate::telemetry::{Events, StreamState};

#[derive(Debug, Default)]
pub struct Status {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    models_loaded: bool,
    /// Camera id → when it was (re)started.
    cameras: BTreeMap<String, Instant>,
    grace: Duration,
}

#[derive(Debug, Serialize)]
pub struct CameraReadiness {
    pub ready: bool,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub models_loaded: bool,
    pub cameras: BTreeMap<String, CameraReadiness>,
}

impl Status {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_models_loaded(&self, loaded: bool) {
        self.lock().models_loaded = loaded;
    }

    pub fn set_grace(&self, grace: Duration) {
        self.lock().grace = grace;
    }

    /// The cameras running now; `restarted` ones get a fresh grace period.
    pub fn set_cameras(&self, ids: &[String], restarted: &[String]) {
        let mut inner = self.lock();
        let now = Instant::now();
        let mut next = BTreeMap::new();
        for id in ids {
            let since = match inner.cameras.get(id) {
                Some(t) if !restarted.contains(id) => *t,
                _ => now,
            };
            next.insert(id.clone(), since);
        }
        inner.cameras = next;
    }

    pub fn camera_ids(&self) -> Vec<String> {
        self.lock().cameras.keys().cloned().collect()
    }

    pub fn readiness(&self, events: &Events, hub: &Hub) -> Readiness {
        let inner = self.lock();
        let streams = events.stream_states();
        let latest = hub.all_latest();
        let mut cameras = BTreeMap::new();
        for (id, started) in &inner.cameras {
            let young = started.elapsed() < inner.grace;
            let own: Vec<_> = streams.iter().filter(|((c, _), _)| c == id).collect();
            let (ready, detail) = if own.is_empty() {
                // Recordings have no stream states: ready once frames come out.
                match latest.get(id) {
                    Some(l) => (true, format!("published sequence {}", l.frame.sequence)),
                    None if young => (true, "starting (within the grace period)".into()),
                    None => (false, "no frame published yet".into()),
                }
            } else {
                let bad: Vec<String> = own
                    .iter()
                    .filter(|(_, s)| s.state != StreamState::Streaming)
                    .map(|((_, spectrum), s)| {
                        format!("{spectrum} {}: {}", s.state.as_str(), s.reason)
                    })
                    .collect();
                let gave_up = own
                    .iter()
                    .any(|(_, s)| matches!(s.state, StreamState::Failed | StreamState::Ended));
                if bad.is_empty() {
                    (true, "streaming".into())
                } else if young && !gave_up {
                    (
                        true,
                        format!("starting (within the grace period): {}", bad.join("; ")),
                    )
                } else {
                    (false, bad.join("; "))
                }
            };
            cameras.insert(id.clone(), CameraReadiness { ready, detail });
        }
        Readiness {
            ready: inner.models_loaded && cameras.values().all(|c| c.ready),
            models_loaded: inner.models_loaded,
            cameras,
        }
    }
}

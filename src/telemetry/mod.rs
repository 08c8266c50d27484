//! Logging setup and the named events every stage reports.
//!
//! An event is named for what happened (`frame_received`, `frame_dropped{reason}`,
//! `pair_unmatched{spectrum}`, `inference_failed{model}`, `pair_published`). Each one is a
//! counter keyed by camera and label and, where useful, a log line. Tests and the exit
//! summary read the counters; a later metrics endpoint exports the same map.

use std::collections::BTreeMap;
use std::sync::Mutex;

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

mod health;
mod heap;
mod heartbeat;
mod logging;

pub use health::camera_health;
pub use heap::{HeapStats, heap_stats};
pub use heartbeat::{Busy, Heartbeat};
pub use logging::{LogConfig, LogFormat, init_logging};

use crate::infer::ModelId;
use crate::stage::Stage;

/// Why a frame left the pipeline without being published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropReason {
    /// A `drop_oldest` queue was full; the oldest frame made room.
    QueueFull,
    /// The image file was missing, truncated or not an image of the expected kind.
    DecodeFailed,
    /// No partner within the pairing tolerance and `pairing.unmatched = "drop"`.
    Unmatched,
    /// Shutdown came before the frame reached a sink (only in `drop_oldest` mode).
    Shutdown,
    /// Same capture time as the previous frame of that stream (a repeated frame).
    Duplicate,
    /// Captured before the previous frame of that stream (clock jump, reordering).
    OutOfOrder,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::DecodeFailed => "decode_failed",
            DropReason::Unmatched => "unmatched",
            DropReason::Shutdown => "shutdown",
            DropReason::Duplicate => "duplicate",
            DropReason::OutOfOrder => "out_of_order",
        }
    }
}

/// Every event and the names of its two fields, for the metrics endpoint.
pub const EVENT_LABELS: &[(&str, &str, &str)] = &[
    // (event, what the "camera" field holds, what the label holds)
    ("frame_received", "camera", "spectrum"),
    ("frame_dropped", "camera", "reason"),
    ("pair_unmatched", "camera", "spectrum"),
    ("pair_published", "camera", ""),
    ("faces_over_limit", "camera", "spectrum"),
    ("inference_failed", "camera", "model"),
    ("sink_failed", "camera", "sink"),
    ("sink_write_retries", "", "sink"),
    ("source_failed", "camera", "spectrum"),
    ("stream_state_changes", "camera", "state"),
    ("stream_reconnects", "camera", "spectrum"),
    ("http_unauthorized", "", ""),
    ("config_reloads", "", "outcome"),
    ("model_swaps", "role", "outcome"),
    ("mqtt_dropped", "camera", "reason"),
    ("mqtt_delivered", "", ""),
    ("mqtt_connections", "", "outcome"),
    ("nats_published", "", ""),
    ("nats_acked", "", ""),
    ("nats_dropped", "camera", "reason"),
    ("nats_reconnects", "", ""),
];

/// Counter key: event name, camera (or role), and one label (reason, spectrum, model…).
pub type CounterKey = (&'static str, String, String);

/// Where one camera stream (visible or thermal) stands; see `source::live`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamState {
    Starting,
    Streaming,
    /// No frame for longer than the stall timeout; a reconnect follows.
    Stalled,
    /// Waiting out the backoff before the next attempt.
    Reconnecting,
    /// Gave up: a permanent error (bad pipeline, no such device) or out of attempts.
    Failed,
    /// The input ended (file sources, or shutdown).
    Ended,
}

impl StreamState {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamState::Starting => "starting",
            StreamState::Streaming => "streaming",
            StreamState::Stalled => "stalled",
            StreamState::Reconnecting => "reconnecting",
            StreamState::Failed => "failed",
            StreamState::Ended => "ended",
        }
    }
}

/// A stream's state, why it is in it, and since when.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamStatus {
    pub state: StreamState,
    pub reason: String,
    pub since: std::time::Instant,
}

/// Prometheus label pairs.
pub type Labels = Vec<(String, String)>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// Reads how many items wait in one queue (for the queue-depth gauge).
pub type DepthProbe = Box<dyn Fn() -> usize + Send + Sync>;

fn latency_histogram() -> Histogram {
    // 0.25 ms .. ~4 s: from a blackout pass to a stalled CPU inference.
    Histogram::new(exponential_buckets(0.25, 2.0, 15))
}

fn batch_histogram() -> Histogram {
    Histogram::new([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0])
}

fn faces_histogram() -> Histogram {
    Histogram::new([0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 16.0, 32.0])
}

/// The shared event sink. Cheap enough for per-frame use at camera rates (one mutex).
pub struct Events {
    counters: Mutex<BTreeMap<CounterKey, u64>>,
    streams: Mutex<BTreeMap<(String, String), StreamStatus>>,
    /// Per-stage latency in milliseconds, labels {stage}.
    latency: HistogramFamily,
    /// Images per inference call, labels {model}.
    batch: HistogramFamily,
    /// Faces per published image, labels {spectrum}.
    faces: HistogramFamily,
    queues: Mutex<BTreeMap<String, DepthProbe>>,
    /// Model versions in use, by role ("detector", "boundary", "landmark").
    models: Mutex<BTreeMap<&'static str, ModelId>>,
    heartbeat: Heartbeat,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("counters", &self.counters)
            .field("streams", &self.streams)
            .finish_non_exhaustive()
    }
}

impl Default for Events {
    fn default() -> Self {
        Events {
            counters: Mutex::default(),
            streams: Mutex::default(),
            latency: Family::new_with_constructor(latency_histogram),
            batch: Family::new_with_constructor(batch_histogram),
            faces: Family::new_with_constructor(faces_histogram),
            queues: Mutex::default(),
            models: Mutex::default(),
            heartbeat: Heartbeat::default(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Events {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn heartbeat(&self) -> &Heartbeat {
        &self.heartbeat
    }

    /// One published frame's per-stage latencies (ms), for the histograms.
    pub fn observe_latency(&self, stages: &[(Stage, f64)]) {
        let mut total = 0.0;
        for (stage, ms) in stages {
            total += ms;
            self.latency
                .get_or_create(&vec![("stage".to_owned(), stage.as_str().to_owned())])
                .observe(*ms);
        }
        self.latency
            .get_or_create(&vec![("stage".to_owned(), "total".to_owned())])
            .observe(total);
    }

    pub fn observe_batch(&self, model: &str, images: usize) {
        self.batch
            .get_or_create(&vec![("model".to_owned(), model.to_owned())])
            .observe(images as f64);
    }

    /// One image's faces: the faces-per-image histogram, and the faces found beyond
    /// `detector.max_faces` (`faces_over_limit`, counted and logged at debug).
    pub fn observe_faces(&self, camera: &str, spectrum: &str, faces: usize, over_limit: usize) {
        self.faces
            .get_or_create(&vec![("spectrum".to_owned(), spectrum.to_owned())])
            .observe(faces as f64);
        if over_limit > 0 {
            self.add("faces_over_limit", camera, spectrum, over_limit as u64);
            tracing::debug!(
                camera,
                spectrum,
                over_limit,
                "faces beyond detector.max_faces left out"
            );
        }
    }

    pub fn faces_histograms(&self) -> HistogramFamily {
        self.faces.clone()
    }

    pub fn latency_histograms(&self) -> HistogramFamily {
        self.latency.clone()
    }

    pub fn batch_histograms(&self) -> HistogramFamily {
        self.batch.clone()
    }

    /// Registers (or replaces) a queue's depth probe under `name` ("boundary", "pair:door").
    pub fn register_queue(&self, name: String, probe: DepthProbe) {
        lock(&self.queues).insert(name, probe);
    }

    pub fn unregister_queue(&self, name: &str) {
        lock(&self.queues).remove(name);
    }

    pub fn queue_depths(&self) -> BTreeMap<String, usize> {
        lock(&self.queues)
            .iter()
            .map(|(name, probe)| (name.clone(), probe()))
            .collect()
    }

    pub fn set_model(&self, role: &'static str, id: ModelId) {
        lock(&self.models).insert(role, id);
    }

    pub fn models(&self) -> BTreeMap<&'static str, ModelId> {
        lock(&self.models).clone()
    }

    fn counters(&self) -> std::sync::MutexGuard<'_, BTreeMap<CounterKey, u64>> {
        lock(&self.counters)
    }

    fn add(&self, name: &'static str, camera: &str, label: &str, amount: u64) {
        *self
            .counters()
            .entry((name, camera.to_owned(), label.to_owned()))
            .or_default() += amount;
    }

    fn bump(&self, name: &'static str, camera: &str, label: &str) {
        self.add(name, camera, label, 1);
    }

    pub fn frame_received(&self, camera: &str, spectrum: &str) {
        self.bump("frame_received", camera, spectrum);
    }

    /// `frames` counts images (a dropped pair is two), so that for every camera
    /// `frame_received == images published + frame_dropped` holds exactly.
    pub fn frame_dropped(&self, camera: &str, reason: DropReason, frames: u64, detail: &str) {
        if reason != DropReason::QueueFull {
            tracing::warn!(camera, reason = reason.as_str(), "frame dropped: {detail}");
        }
        self.add("frame_dropped", camera, reason.as_str(), frames);
    }

    pub fn pair_unmatched(&self, camera: &str, spectrum: &str) {
        self.bump("pair_unmatched", camera, spectrum);
    }

    pub fn inference_failed(&self, camera: &str, model: &str, detail: &str) {
        tracing::warn!(camera, model, "inference failed: {detail}");
        self.bump("inference_failed", camera, model);
    }

    /// Logs the first failure of each sink (and every 1000th), counts them all.
    pub fn sink_failed(&self, camera: &str, sink: &str, detail: &str) {
        let before = self.total("sink_failed", Some(sink));
        if before.is_multiple_of(1000) {
            tracing::error!(
                camera,
                sink,
                failures = before + 1,
                "publish failed: {detail}"
            );
        }
        self.bump("sink_failed", camera, sink);
    }

    /// A sink's write failed and will be retried with the record held (back-pressure).
    pub fn sink_write_retry(&self, sink: &str) {
        self.bump("sink_write_retries", "", sink);
    }

    /// A source (or one attempt of a live one) failed as a whole; logged every time,
    /// because it is rare and an operator must see it.
    pub fn source_failed(&self, camera: &str, spectrum: &str, detail: &str) {
        tracing::error!(camera, spectrum, "source failed: {detail}");
        self.bump("source_failed", camera, spectrum);
    }

    /// Records a stream state change (logged, and counted per target state).
    pub fn stream_state(&self, camera: &str, spectrum: &str, state: StreamState, reason: &str) {
        let mut streams = lock(&self.streams);
        let key = (camera.to_owned(), spectrum.to_owned());
        if streams.get(&key).is_some_and(|s| s.state == state) {
            return;
        }
        match state {
            StreamState::Streaming | StreamState::Starting | StreamState::Ended => {
                tracing::info!(camera, spectrum, state = state.as_str(), "{reason}")
            }
            _ => tracing::warn!(camera, spectrum, state = state.as_str(), "{reason}"),
        }
        streams.insert(
            key,
            StreamStatus {
                state,
                reason: reason.to_owned(),
                since: std::time::Instant::now(),
            },
        );
        drop(streams);
        self.bump("stream_state_changes", camera, state.as_str());
    }

    pub fn count_reconnect(&self, camera: &str, spectrum: &str) {
        self.bump("stream_reconnects", camera, spectrum);
    }

    /// Every stream's current status, keyed by (camera, spectrum).
    pub fn stream_states(&self) -> BTreeMap<(String, String), StreamStatus> {
        lock(&self.streams).clone()
    }

    /// An HTTP request without the right bearer token (logged at most every 100th).
    pub fn http_unauthorized(&self) {
        if self.total("http_unauthorized", None).is_multiple_of(100) {
            tracing::warn!("HTTP request with a missing or wrong bearer token refused");
        }
        self.bump("http_unauthorized", "", "");
    }

    /// A reload was applied ("ok") or refused ("rejected").
    pub fn reload(&self, outcome: &str) {
        self.bump("config_reloads", "", outcome);
    }

    /// A model version was swapped in ("ok") or refused ("rejected"), by role.
    pub fn model_swap(&self, role: &str, outcome: &str) {
        self.bump("model_swaps", role, outcome);
    }

    /// MQTT: a message left the buffer without reaching the broker, by reason.
    pub fn mqtt_dropped(&self, camera: &str, reason: &str) {
        self.bump("mqtt_dropped", camera, reason);
    }

    /// MQTT: the broker took a message (acknowledged at QoS 1/2, written at QoS 0).
    pub fn mqtt_delivered(&self, camera: &str) {
        self.bump("mqtt_delivered", camera, "");
    }

    pub fn mqtt_connection(&self, outcome: &str) {
        self.bump("mqtt_connections", "", outcome);
    }

    /// NATS: a record was sent to the server (every attempt, resends included).
    pub fn nats_published(&self) {
        self.bump("nats_published", "", "");
    }

    /// NATS: the stream confirmed a record (stored, or recognised as a resend).
    pub fn nats_acked(&self) {
        self.bump("nats_acked", "", "");
    }

    /// NATS: a record left the buffer without reaching the stream, by reason.
    pub fn nats_dropped(&self, camera: &str, reason: &str) {
        self.bump("nats_dropped", camera, reason);
    }

    /// NATS: the client lost its server and connected again.
    pub fn nats_reconnect(&self) {
        self.bump("nats_reconnects", "", "");
    }

    pub fn pair_published(&self, camera: &str) {
        self.bump("pair_published", camera, "");
    }

    /// A copy of every counter, for summaries, tests and metrics.
    pub fn snapshot(&self) -> BTreeMap<CounterKey, u64> {
        self.counters().clone()
    }

    /// Sum of one event over all cameras and labels, or one label only.
    pub fn total(&self, name: &str, label: Option<&str>) -> u64 {
        self.counters()
            .iter()
            .filter(|((n, _, l), _)| *n == name && label.is_none_or(|want| l == want))
            .map(|(_, v)| v)
            .sum()
    }

    /// Sum of one event of one camera over all its labels.
    pub fn camera_total(&self, name: &str, camera: &str) -> u64 {
        self.counters()
            .iter()
            .filter(|((n, c, _), _)| *n == name && c == camera)
            .map(|(_, v)| v)
            .sum()
    }

    /// Drops of one camera by reason (read by the sink for every record: no full copy).
    pub fn drops_by_reason(&self, camera: &str) -> BTreeMap<String, u64> {
        self.counters()
            .iter()
            .filter(|((name, cam, _), _)| *name == "frame_dropped" && cam == camera)
            .map(|((_, _, label), v)| (label.clone(), *v))
            .collect()
    }
}

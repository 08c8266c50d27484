//! Shared helpers for the scenario tests: fixture sessions, configs, an in-memory sink.

pub mod chromium;
pub mod daemon;
pub mod mosquitto;
pub mod nats;
pub mod tls;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use spectrald::config::Config;
use spectrald::infer::{BackendKind, ModelsConfig};
use spectrald::pipeline::{Pipeline, Summary};
use spectrald::publish::{Outgoing, Sink, SinkError};
use spectrald::source::CameraConfig;
use spectrald::telemetry::Events;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture_session() -> PathBuf {
    repo().join("tests/fixtures/session-pexels")
}

/// Copies the bundled session into a temp dir so a test can damage it.
pub fn copy_session() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&fixture_session(), dir.path());
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// The shipped, trained lite models.
pub fn trained_models() -> ModelsConfig {
    ModelsConfig {
        dir: repo().join("models"),
        ..Default::default()
    }
}

/// Architecture-exact random-weight models: fast, for tests about plumbing, not accuracy.
pub fn random_models() -> ModelsConfig {
    ModelsConfig {
        dir: repo().join("tests/fixtures/models"),
        boundary: "dmsl-boundary-tiny-random".into(),
        landmark: "dmsl-landmark-tiny-random".into(),
        ..Default::default()
    }
}

pub fn with_backend(mut models: ModelsConfig, backend: BackendKind) -> ModelsConfig {
    models.backend = backend;
    models
}

pub fn replay_config(session: &Path, models: ModelsConfig) -> Config {
    Config {
        models,
        cameras: vec![CameraConfig::replay("cam", session.to_owned(), 0.0, false)],
        ..Default::default()
    }
}

/// Collects published lines in memory; optionally slow, to model a slow consumer.
#[derive(Clone, Default)]
pub struct MemorySink {
    pub lines: Arc<Mutex<Vec<String>>>,
    pub delay: std::time::Duration,
}

impl MemorySink {
    /// Every published line, parsed.
    pub fn records(&self) -> Vec<serde_json::Value> {
        self.lines
            .lock()
            .expect("lock")
            .iter()
            .map(|l| serde_json::from_str(l).expect("every line is JSON"))
            .collect()
    }
}

impl Sink for MemorySink {
    fn name(&self) -> String {
        "memory".into()
    }
    fn publish(&mut self, message: &Outgoing<'_>) -> Result<(), SinkError> {
        let line = message.line;
        std::thread::sleep(self.delay);
        self.lines.lock().expect("lock").push(line.to_owned());
        Ok(())
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

pub struct Run {
    pub summary: Summary,
    pub records: Vec<serde_json::Value>,
    pub events: Arc<Events>,
}

/// Runs a config to completion in-process and parses every published line.
pub fn run(config: &Config, sink: MemorySink) -> Run {
    let events = Arc::new(Events::new());
    let pipeline = Pipeline::start(
        config,
        vec![("memory".to_owned(), Box::new(sink.clone()))],
        events.clone(),
        Arc::new(AtomicBool::new(false)),
    )
    .expect("pipeline starts");
    let summary = pipeline.wait();
    Run {
        summary,
        records: sink.records(),
        events,
    }
}

/// Rewrites one manifest row's timestamp.
pub fn shift_timestamp(session: &Path, file: &str, delta_us: i64) {
    let path = session.join("manifest.csv");
    let text = std::fs::read_to_string(&path).expect("manifest");
    let mut out = String::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split(',').collect();
        if cols.len() == 3 && cols[2] == file {
            let t: i64 = cols[1].parse().expect("timestamp");
            out.push_str(&format!("{},{},{}\n", cols[0], t + delta_us, cols[2]));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    std::fs::write(&path, out).expect("write manifest");
}

pub fn sequences(records: &[serde_json::Value]) -> Vec<u64> {
    records
        .iter()
        .map(|r| r["sequence"].as_u64().expect("sequence"))
        .collect()
}

/// Landmarks of the first (best-scored) face of one spectrum of one record as (x, y)
/// pairs: the bundled session shows one face.
pub fn landmarks(record: &serde_json::Value, spectrum: &str) -> Option<Vec<[f32; 2]>> {
    faces(record, spectrum).into_iter().next()?.landmarks
}

/// Every face of one spectrum of one record.
pub fn faces(
    record: &serde_json::Value,
    spectrum: &str,
) -> Vec<spectrald::publish::record::ParsedFace> {
    spectrald::publish::record::faces_of(record, spectrum)
}

/// The Python interpreter with numpy/pillow/onnxruntime (set up by scripts/setup.sh).
pub fn python() -> PathBuf {
    std::env::var_os("SPECTRALD_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".cache/venv/bin/python"))
}

/// A pipeline running in the background, for live-source tests.
pub struct Live {
    pub pipeline: Pipeline,
    pub events: Arc<Events>,
    pub stop: Arc<AtomicBool>,
    pub sink: MemorySink,
}

pub fn start(config: &Config) -> Live {
    let events = Arc::new(Events::new());
    let stop = Arc::new(AtomicBool::new(false));
    let sink = MemorySink::default();
    let pipeline = Pipeline::start(
        config,
        vec![("memory".to_owned(), Box::new(sink.clone()))],
        events.clone(),
        stop.clone(),
    )
    .expect("pipeline starts");
    Live {
        pipeline,
        events,
        stop,
        sink,
    }
}

impl Live {
    /// Polls `condition` until it holds; panics naming `what` after `timeout`.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: std::time::Duration,
        condition: impl Fn(&Events) -> bool,
    ) {
        let until = std::time::Instant::now() + timeout;
        while !condition(&self.events) {
            if std::time::Instant::now() > until {
                panic!(
                    "timed out after {timeout:?} waiting for {what}; streams: {:?}; counters: {:?}",
                    self.events.stream_states(),
                    self.events.snapshot()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Stops the sources (if still running), drains, and returns what was published.
    pub fn finish(self) -> Run {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let summary = self.pipeline.wait();
        Run {
            summary,
            records: self.sink.records(),
            events: self.events,
        }
    }
}

/// The current state of one camera stream.
pub fn stream_state(
    events: &Events,
    camera: &str,
    spectrum: &str,
) -> Option<spectrald::telemetry::StreamStatus> {
    events
        .stream_states()
        .get(&(camera.to_owned(), spectrum.to_owned()))
        .cloned()
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Runs `spectrald offline ARGS…` in the repo: (exit code, stdout JSON lines, stderr).
pub fn run_offline(args: &[&str]) -> (i32, Vec<serde_json::Value>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spectrald"))
        .arg("offline")
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run spectrald");
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    (
        out.status.code().unwrap_or(-1),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

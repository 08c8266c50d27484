//! Typed configuration: one TOML file, every field defaulted and documented, unknown keys
//! rejected. Paths inside the file are relative to the file's own folder.
//!
//! `spectrald check-config FILE` runs [`Config::load`] and prints what it found.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::frame::PIPELINE_STAGES;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {source}; check the path or pass --config")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: {field}: {message}")]
    Invalid {
        path: PathBuf,
        field: String,
        message: String,
    },
}

/// How a stage's input queue behaves when it is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Wait for room: lossless, back-pressure reaches the source (replay, tests).
    #[default]
    Block,
    /// Drop the oldest queued frame: latency stays bounded (live cameras).
    DropOldest,
}

/// One queue's size and full policy.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Frames the queue holds.
    pub capacity: usize,
    pub when_full: WhenFull,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            capacity: 8,
            when_full: WhenFull::Block,
        }
    }
}

/// The input queue of each stage; `stage.<name>` overrides the default for one of them.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueuesConfig {
    /// Frames each queue holds, unless overridden.
    pub capacity: usize,
    pub when_full: WhenFull,
    /// Per-stage overrides, keyed by the stage whose input the queue is (see frame::PIPELINE_STAGES).
    pub stage: std::collections::BTreeMap<String, QueueConfig>,
}

impl Default for QueuesConfig {
    fn default() -> Self {
        QueuesConfig::uniform(QueueConfig::default())
    }
}

impl QueuesConfig {
    pub fn uniform(queue: QueueConfig) -> Self {
        QueuesConfig {
            capacity: queue.capacity,
            when_full: queue.when_full,
            stage: Default::default(),
        }
    }

    pub fn for_stage(&self, stage: &str) -> QueueConfig {
        self.stage.get(stage).copied().unwrap_or(QueueConfig {
            capacity: self.capacity,
            when_full: self.when_full,
        })
    }
}

/// What happens to a frame that found no partner of the other spectrum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Unmatched {
    /// Run it through the models on its own (single-spectrum output).
    #[default]
    ProcessAlone,
    /// Drop it (counted as `unmatched`).
    Drop,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PairingConfig {
    /// Largest |visible - thermal| capture-time difference that still makes a pair.
    pub tolerance_ms: f64,
    /// Added to thermal timestamps before matching (the thermal clock's offset).
    pub thermal_offset_ms: f64,
    pub unmatched: Unmatched,
    /// A visible frame waits at most this long (wall clock) for its thermal partner when
    /// the thermal stream has gone quiet; then it goes on alone or is dropped.
    pub max_wait_ms: u64,
}

impl Default for PairingConfig {
    fn default() -> Self {
        PairingConfig {
            tolerance_ms: 20.0,
            thermal_offset_ms: 0.0,
            unmatched: Unmatched::ProcessAlone,
            max_wait_ms: 500,
        }
    }
}

/// How raw thermal values become the model's [0, 1] input.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum ThermalNormalization {
    /// Fixed range of raw values: `low` maps to 0, `high` to 1.
    Fixed { low: f32, high: f32 },
    /// Automatic gain per frame between two percentiles of its values.
    Percentile { low: f32, high: f32 },
}

impl Default for ThermalNormalization {
    fn default() -> Self {
        ThermalNormalization::Percentile {
            low: 1.0,
            high: 99.0,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThermalConfig {
    pub normalization: ThermalNormalization,
}

/// Which inference backend runs the models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// ONNX Runtime when its library is found, else tract (the log says which and why).
    #[default]
    Auto,
    Ort,
    Tract,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// Folder with the `*.onnx` files and their `*.json` manifests.
    pub dir: PathBuf,
    /// Manifest names (without `.json`) of the two DMSL models.
    pub boundary: String,
    pub landmark: String,
    pub backend: BackendKind,
    /// Threads per model session (intra-op).
    pub threads: usize,
    /// ONNX Runtime shared library; empty: `ORT_DYLIB_PATH`, then `.cache/onnxruntime/`.
    pub ort_library: Option<PathBuf>,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        ModelsConfig {
            dir: PathBuf::from("models"),
            boundary: "dmsl-boundary-lite".into(),
            landmark: "dmsl-landmark-lite".into(),
            backend: BackendKind::Auto,
            threads: 1,
            ort_library: None,
        }
    }
}

/// Where a camera's frames come from.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceConfig {
    /// A recorded session folder (see the README's "Replay format").
    Replay {
        path: PathBuf,
        /// 1.0 = recorded pace, 2.0 = twice as fast, 0 = as fast as possible.
        #[serde(default)]
        speed: f64,
        /// Start again at the end (timestamps keep increasing).
        #[serde(default, rename = "loop")]
        looped: bool,
    },
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    pub id: String,
    pub source: SourceConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// JSON lines destination: "-" for stdout, else a file appended to (rotation-safe).
    pub jsonl: String,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig { jsonl: "-".into() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter, e.g. "info" or "spectrald=debug".
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Human,
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub queues: QueuesConfig,
    pub pairing: PairingConfig,
    pub thermal: ThermalConfig,
    pub models: ModelsConfig,
    pub cameras: Vec<CameraConfig>,
    pub output: OutputConfig,
    pub log: LogConfig,
}

impl Config {
    /// Reads, parses and validates `path`; relative paths inside become relative to its folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: one_line(&e.to_string()),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        config.validate(path)?;
        Ok(config)
    }

    /// Makes relative paths relative to `base` (the config file's folder).
    pub fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.models.dir);
        if let Some(lib) = self.models.ort_library.as_mut() {
            fix(lib);
        }
        for camera in &mut self.cameras {
            match &mut camera.source {
                SourceConfig::Replay { path, .. } => fix(path),
            }
        }
        if self.output.jsonl != "-" {
            let mut p = PathBuf::from(&self.output.jsonl);
            fix(&mut p);
            self.output.jsonl = p.to_string_lossy().into_owned();
        }
    }

    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |field: &str, message: String| {
            Err(ConfigError::Invalid {
                path: path.to_owned(),
                field: field.into(),
                message,
            })
        };
        if self.queues.capacity == 0 {
            return invalid("queues.capacity", "must be at least 1".into());
        }
        for (name, queue) in &self.queues.stage {
            if !PIPELINE_STAGES.contains(&name.as_str()) {
                return invalid(
                    &format!("queues.stage.{name}"),
                    format!("no such stage; use one of {}", PIPELINE_STAGES.join(", ")),
                );
            }
            if queue.capacity == 0 {
                return invalid(
                    &format!("queues.stage.{name}.capacity"),
                    "must be at least 1".into(),
                );
            }
        }
        if self.pairing.tolerance_ms.is_nan() || self.pairing.tolerance_ms < 0.0 {
            return invalid(
                "pairing.tolerance_ms",
                format!("must be >= 0, got {}", self.pairing.tolerance_ms),
            );
        }
        match self.thermal.normalization {
            ThermalNormalization::Fixed { low, high }
                if high.partial_cmp(&low) != Some(std::cmp::Ordering::Greater) =>
            {
                return invalid(
                    "thermal.normalization",
                    format!("fixed range needs high > low, got low={low} high={high}"),
                );
            }
            ThermalNormalization::Percentile { low, high }
                if !(0.0 <= low && low < high && high <= 100.0) =>
            {
                return invalid(
                    "thermal.normalization",
                    format!("percentiles need 0 <= low < high <= 100, got low={low} high={high}"),
                );
            }
            _ => {}
        }
        if self.models.threads == 0 {
            return invalid("models.threads", "must be at least 1".into());
        }
        if self.cameras.is_empty() {
            return invalid(
                "cameras",
                "no camera configured; add a [[cameras]] table (see config.toml)".into(),
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, camera) in self.cameras.iter().enumerate() {
            if camera.id.is_empty()
                || !camera
                    .id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return invalid(
                    &format!("cameras[{i}].id"),
                    format!("{:?}: use letters, digits, '-' and '_' only", camera.id),
                );
            }
            if !seen.insert(camera.id.as_str()) {
                return invalid(
                    &format!("cameras[{i}].id"),
                    format!("{:?} is used twice; camera ids must be unique", camera.id),
                );
            }
            match &camera.source {
                SourceConfig::Replay {
                    path: dir, speed, ..
                } => {
                    if speed.is_nan() || *speed < 0.0 {
                        return invalid(
                            &format!("cameras[{i}].source.speed"),
                            format!("must be >= 0 (0 = as fast as possible), got {speed}"),
                        );
                    }
                    if !dir.is_dir() {
                        return invalid(
                            &format!("cameras[{i}].source.path"),
                            format!(
                                "{} is not a folder; record a session or fix the path",
                                dir.display()
                            ),
                        );
                    }
                }
            }
        }
        Ok(())
    }
}

/// TOML errors span several lines with a source excerpt; the operator gets one line.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

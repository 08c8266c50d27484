//! Typed configuration: one TOML file, every field defaulted and documented, unknown keys
//! rejected. Paths inside the file are relative to the file's own folder.
//!
//! `spectrald check-config FILE` runs [`Config::load`] and prints what it found.

mod service;

pub use service::{
    HTTP_TOKEN_ENV, HttpConfig, MQTT_PASSWORD_ENV, MqttConfig, MqttTls, MqttWhenFull, Qos,
};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::frame::PIPELINE_STAGES;
use crate::offline::lesion::params::ParamsError;
use crate::thermal::radiometry::{ObjectOverrides, PlanckConstants, Radiometry};

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
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
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

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
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
    /// Fixed temperature range in °C (needs radiometric frames): a face always looks the same.
    FixedCelsius { low_c: f32, high_c: f32 },
    /// Histogram equalization per frame.
    Equalize,
}

impl Default for ThermalNormalization {
    fn default() -> Self {
        ThermalNormalization::Percentile {
            low: 1.0,
            high: 99.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
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

/// Upper bounds of the batching settings: beyond them a batch only adds latency.
const MAX_BATCH: usize = 256;
const MAX_BATCH_WAIT_MS: u64 = 1000;

/// Where ONNX Runtime runs the models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Device {
    #[default]
    Cpu,
    /// ONNX Runtime's CUDA execution provider (needs onnxruntime-gpu's library).
    Cuda,
    /// TensorRT, with CUDA for what TensorRT cannot run (needs TensorRT installed too).
    Tensorrt,
}

impl Device {
    pub fn as_str(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Cuda => "cuda",
            Device::Tensorrt => "tensorrt",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// Folder with the `*.onnx` files and their `*.json` manifests.
    pub dir: PathBuf,
    /// Manifest names (without `.json`) of the two DMSL models.
    pub boundary: String,
    pub landmark: String,
    pub backend: BackendKind,
    /// CPU, or a GPU through ONNX Runtime's execution providers.
    pub device: Device,
    /// Which GPU (CUDA device number) when `device` is not "cpu".
    pub gpu_id: u32,
    /// Threads per model session (intra-op).
    pub threads: usize,
    /// Most frames (from any camera) per model call; each brings one image per spectrum.
    pub max_batch: usize,
    /// How long an inference stage waits for a batch to fill; 0: only frames already queued.
    pub max_wait_ms: u64,
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
            device: Device::Cpu,
            gpu_id: 0,
            threads: 1,
            max_batch: 1,
            max_wait_ms: 0,
            ort_library: None,
        }
    }
}

/// A source of both spectra of a camera.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
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

/// What a GStreamer stream does when its pipeline reaches end of stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AtEos {
    /// Reconnect (RTSP servers and cameras that come back).
    #[default]
    Reconnect,
    /// The stream is over (files, test sources with num-buffers).
    End,
}

/// A source of one spectrum (`[cameras.visible]` / `[cameras.thermal]`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StreamConfig {
    /// A GStreamer pipeline (`pipeline`) or a URI (`uri`, e.g. rtsp://…); spectrald adds
    /// the conversion and the appsink at the end.
    Gstreamer {
        #[serde(default)]
        pipeline: Option<String>,
        #[serde(default)]
        uri: Option<String>,
        /// Pace by the pipeline clock (true for files played at recorded speed).
        #[serde(default)]
        sync: bool,
        #[serde(default)]
        at_eos: AtEos,
    },
    /// A camera through nokhwa: `device` is an index ("0") or part of its name.
    Camera {
        device: String,
        #[serde(default)]
        width: Option<u32>,
        #[serde(default)]
        height: Option<u32>,
        #[serde(default)]
        fps: Option<u32>,
    },
    /// FLIR radiometric `.seq`/`.fff` file, or a folder of `.fff` (thermal only).
    Flir {
        path: PathBuf,
        #[serde(default)]
        speed: f64,
        #[serde(default, rename = "loop")]
        looped: bool,
    },
}

impl StreamConfig {
    /// Live streams reconnect and default their queue to `drop_oldest`.
    pub fn is_live(&self) -> bool {
        !matches!(self, StreamConfig::Flir { .. })
    }
}

/// Reconnect and stall detection for live streams.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReconnectConfig {
    /// First backoff; doubles per failed attempt up to `max_backoff_ms` (with jitter).
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// 0 = keep trying forever.
    pub max_attempts: u32,
    /// A stream that delivered nothing this long after connecting has stalled.
    pub first_frame_timeout_ms: u64,
    /// Stalled when no frame came for this many frame intervals …
    pub stall_intervals: f64,
    /// … but never sooner than this.
    pub min_stall_ms: u64,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        ReconnectConfig {
            initial_backoff_ms: 500,
            max_backoff_ms: 30_000,
            max_attempts: 0,
            first_frame_timeout_ms: 10_000,
            stall_intervals: 10.0,
            min_stall_ms: 1_000,
        }
    }
}

/// What the thermal values of a camera mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ThermalUnits {
    /// As the source says: FLIR files carry Planck constants, a recorded session its
    /// `radiometry.json`; live streams have none unless configured.
    #[default]
    Auto,
    /// TLinear: centi-kelvin.
    Centikelvin,
    /// Raw counts with the Planck constants in `planck`.
    Planck,
    /// Not radiometric: no temperatures.
    None,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RadiometryConfig {
    pub units: ThermalUnits,
    /// Required for `units = "planck"` (the camera's R1, R2, B, F, O).
    pub planck: Option<PlanckConstants>,
    /// Overrides of the scene (emissivity, distance_m, reflected_c, atmospheric_c,
    /// humidity); unset fields keep the file's values or the skin defaults.
    pub object: ObjectOverrides,
}

impl RadiometryConfig {
    /// True when [`RadiometryConfig::resolve`] returns the source's radiometry unchanged.
    pub fn is_passthrough(&self) -> bool {
        self.units == ThermalUnits::Auto && self.object == ObjectOverrides::default()
    }

    /// What a frame's values mean, given what its source said.
    pub fn resolve(&self, from_source: Option<&Radiometry>) -> Option<Radiometry> {
        let base = match self.units {
            ThermalUnits::Auto => from_source.copied(),
            ThermalUnits::Centikelvin => Some(Radiometry::Centikelvin),
            ThermalUnits::Planck => self.planck.map(|planck| Radiometry::Planck {
                planck,
                atmosphere: Default::default(),
                object: Default::default(),
            }),
            ThermalUnits::None => None,
        };
        base.map(|r| r.with_overrides(&self.object))
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    pub id: String,
    /// Both spectra from one source (a recorded session) …
    #[serde(default)]
    pub source: Option<SourceConfig>,
    /// … or each spectrum from its own stream.
    #[serde(default)]
    pub visible: Option<StreamConfig>,
    #[serde(default)]
    pub thermal: Option<StreamConfig>,
    #[serde(default)]
    pub radiometry: RadiometryConfig,
    /// Thermal → visible pixel homography (row-major 3×3), from `spectrald calibrate`.
    #[serde(default)]
    pub homography: Option<[[f64; 3]; 3]>,
    #[serde(default)]
    pub reconnect: ReconnectConfig,
    /// The policy of this camera's source queue; default `drop_oldest` for live streams
    /// (latency stays bounded), `block` for files (nothing lost).
    #[serde(default)]
    pub when_full: Option<WhenFull>,
}

impl CameraConfig {
    /// A camera replaying a recorded session.
    pub fn replay(id: &str, path: PathBuf, speed: f64, looped: bool) -> CameraConfig {
        CameraConfig {
            id: id.to_owned(),
            source: Some(SourceConfig::Replay {
                path,
                speed,
                looped,
            }),
            visible: None,
            thermal: None,
            radiometry: RadiometryConfig::default(),
            homography: None,
            reconnect: ReconnectConfig::default(),
            when_full: None,
        }
    }

    pub fn has_live_streams(&self) -> bool {
        [&self.visible, &self.thermal]
            .into_iter()
            .flatten()
            .any(StreamConfig::is_live)
    }

    /// The policy of this camera's source → pair queue: the camera's own `when_full`, else
    /// `drop_oldest` for live streams and `for_files` for recorded input.
    pub fn source_queue_policy(&self, for_files: WhenFull) -> WhenFull {
        self.when_full.unwrap_or(if self.has_live_streams() {
            WhenFull::DropOldest
        } else {
            for_files
        })
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// JSON lines destination: "-" for stdout, else a file appended to (rotation-safe).
    pub jsonl: String,
    /// A failing write (disk full) holds the pipeline until it succeeds; at shutdown it is
    /// retried this long before the records not yet written are given up (counted).
    pub shutdown_timeout_ms: u64,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            jsonl: "-".into(),
            shutdown_timeout_ms: 5_000,
        }
    }
}

/// Running as a service (systemd).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// A stage that spends longer than this on one frame counts as wedged: the systemd
    /// watchdog pings stop and systemd restarts the service.
    pub stage_stuck_ms: u64,
    /// Seconds between checks of `models/` for new model versions (hot-swap); 0 = only
    /// on reload (SIGHUP, POST /api/v1/reload).
    pub model_watch_s: u64,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            stage_stuck_ms: 20_000,
            model_watch_s: 5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
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

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub queues: QueuesConfig,
    pub pairing: PairingConfig,
    pub thermal: ThermalConfig,
    pub models: ModelsConfig,
    pub cameras: Vec<CameraConfig>,
    pub output: OutputConfig,
    pub http: HttpConfig,
    pub mqtt: MqttConfig,
    pub service: ServiceConfig,
    pub log: LogConfig,
    /// Settings of the offline commands (`spectrald offline … --config FILE`); the daemon
    /// ignores them but checks them, so one file can serve both.
    pub offline: OfflineConfig,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OfflineConfig {
    /// The dermoscopic lesion pipelines (README "Lesion segmentation").
    pub lesion: crate::offline::lesion::LesionParams,
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
        if let Some(tls) = self.mqtt.tls.as_mut() {
            fix(&mut tls.ca_file);
            for file in [&mut tls.client_cert_file, &mut tls.client_key_file]
                .into_iter()
                .flatten()
            {
                fix(file);
            }
        }
        if let Some(lib) = self.models.ort_library.as_mut() {
            fix(lib);
        }
        for camera in &mut self.cameras {
            if let Some(SourceConfig::Replay { path, .. }) = &mut camera.source {
                fix(path);
            }
            for stream in [&mut camera.visible, &mut camera.thermal]
                .into_iter()
                .flatten()
            {
                if let StreamConfig::Flir { path, .. } = stream {
                    fix(path);
                }
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
        match self.offline.lesion.validate() {
            Ok(()) => {}
            Err(ParamsError::Invalid { field, message }) => {
                return invalid(&format!("offline.lesion.{field}"), message);
            }
            Err(other) => return invalid("offline.lesion", other.to_string()),
        }
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
            ThermalNormalization::FixedCelsius { low_c, high_c }
                if high_c.partial_cmp(&low_c) != Some(std::cmp::Ordering::Greater) =>
            {
                return invalid(
                    "thermal.normalization",
                    format!(
                        "fixed_celsius needs high_c > low_c, got low_c={low_c} high_c={high_c}"
                    ),
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
        if self.models.device != Device::Cpu && self.models.backend == BackendKind::Tract {
            return invalid(
                "models.device",
                format!(
                    "\"{}\" needs ONNX Runtime; set backend = \"ort\" (tract runs on the CPU only)",
                    self.models.device.as_str()
                ),
            );
        }
        if !(1..=MAX_BATCH).contains(&self.models.max_batch) {
            return invalid(
                "models.max_batch",
                format!(
                    "must be 1 to {MAX_BATCH} frames, got {}",
                    self.models.max_batch
                ),
            );
        }
        if self.models.max_wait_ms > MAX_BATCH_WAIT_MS {
            return invalid(
                "models.max_wait_ms",
                format!(
                    "must be at most {MAX_BATCH_WAIT_MS} ms (a frame waits that long for its batch), got {}",
                    self.models.max_wait_ms
                ),
            );
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
            if let Some(SourceConfig::Replay {
                path: dir, speed, ..
            }) = &camera.source
            {
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
            if camera.source.is_some() && (camera.visible.is_some() || camera.thermal.is_some()) {
                return invalid(
                    &format!("cameras[{i}]"),
                    "give either `source` (a recorded session) or `visible`/`thermal` streams, not both".into(),
                );
            }
            if camera.source.is_none() && camera.visible.is_none() && camera.thermal.is_none() {
                return invalid(
                    &format!("cameras[{i}]"),
                    "no input: add `source = { kind = \"replay\", … }` or a [cameras.visible] / [cameras.thermal] stream".into(),
                );
            }
            for (spectrum, stream) in [("visible", &camera.visible), ("thermal", &camera.thermal)] {
                let Some(stream) = stream else { continue };
                let field = format!("cameras[{i}].{spectrum}");
                match stream {
                    StreamConfig::Gstreamer { pipeline, uri, .. } => {
                        if pipeline.is_some() == uri.is_some() {
                            return invalid(
                                &field,
                                "give exactly one of `pipeline` or `uri`".into(),
                            );
                        }
                    }
                    StreamConfig::Camera { .. } if spectrum == "thermal" => {
                        return invalid(
                            &field,
                            "nokhwa cameras deliver 8-bit RGB only; read radiometric Y16 thermal cameras with kind = \"gstreamer\", pipeline = \"v4l2src device=/dev/videoN ! video/x-raw,format=GRAY16_LE\"".into(),
                        );
                    }
                    StreamConfig::Camera { .. } => {}
                    StreamConfig::Flir { path, speed, .. } => {
                        if spectrum == "visible" {
                            return invalid(
                                &field,
                                "FLIR radiometric files are thermal; use them as [cameras.thermal]"
                                    .into(),
                            );
                        }
                        if !path.exists() {
                            return invalid(
                                &format!("{field}.path"),
                                format!(
                                    "{} does not exist; give a .seq/.fff file or a folder of .fff files",
                                    path.display()
                                ),
                            );
                        }
                        if speed.is_nan() || *speed < 0.0 {
                            return invalid(
                                &format!("{field}.speed"),
                                format!("must be >= 0, got {speed}"),
                            );
                        }
                    }
                }
            }
            if camera.radiometry.units == ThermalUnits::Planck && camera.radiometry.planck.is_none()
            {
                return invalid(
                    &format!("cameras[{i}].radiometry.planck"),
                    "units = \"planck\" needs the camera's constants: planck = { r1 = …, r2 = …, b = …, f = …, o = … }".into(),
                );
            }
            if let Some(r) = camera.radiometry.resolve(None)
                && let Err(e) = r.validate()
            {
                return invalid(&format!("cameras[{i}].radiometry"), e.to_string());
            }
            if let Some(h) = camera.homography
                && crate::registration::Homography::new(h).is_err()
            {
                return invalid(
                    &format!("cameras[{i}].homography"),
                    "not invertible; run `spectrald calibrate` to compute one".into(),
                );
            }
            let r = &camera.reconnect;
            if r.initial_backoff_ms == 0 || r.max_backoff_ms < r.initial_backoff_ms {
                return invalid(
                    &format!("cameras[{i}].reconnect"),
                    "need 0 < initial_backoff_ms <= max_backoff_ms".into(),
                );
            }
            if r.stall_intervals.is_nan() || r.stall_intervals < 1.0 {
                return invalid(
                    &format!("cameras[{i}].reconnect.stall_intervals"),
                    format!("must be >= 1, got {}", r.stall_intervals),
                );
            }
        }
        if let Err((field, message)) = service::validate(&self.http, &self.mqtt) {
            return invalid(&field, message);
        }
        if self.service.stage_stuck_ms == 0 {
            return invalid("service.stage_stuck_ms", "must be at least 1".into());
        }
        Ok(())
    }
}

/// TOML errors span several lines with a source excerpt; the operator gets one line.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

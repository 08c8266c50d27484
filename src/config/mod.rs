//! The config file: one TOML document, every field defaulted and documented, unknown keys
//! rejected, paths relative to the file's own folder.
//!
//! Each component owns its section's types and their `validate` (the queues in `queue`,
//! `[models]` in `infer`, `[[cameras]]` in `source` …); this module only puts them
//! together, reads the file, and names the file and the field when something is wrong.
//! `spectrald check-config FILE` runs [`Config::load`] and prints what it found (secrets
//! hidden, as in every error: [`redact`]).

pub mod redact;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::detect::DetectorConfig;
use crate::http::HttpConfig;
use crate::infer::ModelsConfig;
use crate::invalid::Invalid;
use crate::nats::NatsConfig;
use crate::offline::OfflineConfig;
use crate::pair::PairingConfig;
use crate::publish::{MqttConfig, OutputConfig};
use crate::queue::QueuesConfig;
use crate::source::{CameraConfig, SourceConfig, StreamConfig, validate_cameras};
use crate::telemetry::LogConfig;
use crate::thermal::ThermalConfig;
use crate::track::TrackingConfig;

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

impl ConfigError {
    fn invalid(path: &Path, e: Invalid) -> ConfigError {
        ConfigError::Invalid {
            path: path.to_owned(),
            field: e.field,
            message: e.message,
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
    pub detector: DetectorConfig,
    pub tracking: TrackingConfig,
    pub cameras: Vec<CameraConfig>,
    pub output: OutputConfig,
    pub http: HttpConfig,
    pub mqtt: MqttConfig,
    pub nats: NatsConfig,
    pub service: ServiceConfig,
    pub log: LogConfig,
    pub offline: OfflineConfig,
}

/// `[service]`: the daemon around the pipeline (systemd watchdog, model watch). The
/// daemon (`service`) sits above this module and reads the whole config, so its own small
/// section is defined here rather than imported from it.
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

impl ServiceConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.stage_stuck_ms == 0 {
            return Err(Invalid::new("stage_stuck_ms", "must be at least 1"));
        }
        Ok(())
    }
}

impl Config {
    /// Reads, parses and validates `path`; relative paths inside become relative to its folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let config = Config::parse_file(path)?;
        config.validate(path)?;
        Ok(config)
    }

    /// The `[offline]` settings of a config file, for the offline commands: the same file
    /// and parser as the daemon's (unknown keys anywhere are refused), but only `[offline]`
    /// is validated — the cameras of a daemon config need not exist where offline work runs.
    pub fn load_offline(path: &Path) -> Result<OfflineConfig, ConfigError> {
        let config = Config::parse_file(path)?;
        config
            .offline
            .validate()
            .map_err(|e| ConfigError::invalid(path, e.within("offline")))?;
        Ok(config.offline)
    }

    fn parse_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: redact::parse_error(&text, &e),
        })?;
        config.resolve_paths(path.parent().unwrap_or(Path::new(".")));
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
            if let Some(SourceConfig::Replay { path, .. } | SourceConfig::Flir { path, .. }) =
                &mut camera.source
            {
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

    /// Checks every section (each with its own `validate`); the first problem, with `path`
    /// (the file, or what stands for it) and the field's full name.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let section = |name: &str, checked: Result<(), Invalid>| {
            checked.map_err(|e| ConfigError::invalid(path, e.within(name)))
        };
        section("offline", self.offline.validate())?;
        section("queues", self.queues.validate())?;
        section("pairing", self.pairing.validate())?;
        section("thermal", self.thermal.validate())?;
        section("models", self.models.validate())?;
        section("detector", self.detector.validate())?;
        section("tracking", self.tracking.validate())?;
        section("cameras", validate_cameras(&self.cameras))?;
        section("http", self.http.validate())?;
        section("mqtt", self.mqtt.validate())?;
        section("nats", self.nats.validate())?;
        section("service", self.service.validate())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offline::lesion::LesionParams;

    fn write(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("spectrald-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join(name);
        std::fs::write(&file, text).expect("write config");
        file
    }

    #[test]
    fn the_shipped_config_loads_and_documents_the_lesion_defaults() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
        let config = Config::load(&file).expect("config.toml loads");
        assert_eq!(config.offline.lesion, LesionParams::default());
        assert_eq!(
            Config::load_offline(&file).expect("offline"),
            config.offline
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_by_name() {
        let file = write("typo.toml", "[offline.lesion]\nclustres = 10\n");
        let e = Config::load_offline(&file).unwrap_err().to_string();
        assert!(e.contains("clustres"), "{e}");
        let file = write("zero.toml", "[offline.lesion]\nclusters = 0\n");
        let e = Config::load_offline(&file).unwrap_err().to_string();
        assert!(e.contains("offline.lesion.clusters"), "{e}");
        let file = write(
            "mixed.toml",
            "[models]\ndir = \"x\"\n[offline.lesion]\nclusters = 8\n",
        );
        let offline = Config::load_offline(&file).expect("daemon sections are not checked");
        assert_eq!(offline.lesion.clusters, 8);
    }

    #[test]
    fn a_section_error_names_the_file_and_the_full_field() {
        let file = write("queues.toml", "[queues]\ncapacity = 0\n");
        let e = Config::load(&file).unwrap_err().to_string();
        assert!(e.starts_with("config file "), "{e}");
        assert!(e.contains("queues.capacity: must be at least 1"), "{e}");
        let file = write(
            "camera.toml",
            "[[cameras]]\nid = \"door\"\nsource = { kind = \"replay\", path = \"nowhere\" }\n",
        );
        let e = Config::load(&file).unwrap_err().to_string();
        assert!(e.contains("cameras[0].source.path"), "{e}");
    }

    #[test]
    fn a_toml_syntax_error_is_one_line() {
        let file = write("broken.toml", "[queues\ncapacity = 1\n");
        let e = Config::load(&file).unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn a_zero_stuck_limit_is_refused() {
        assert_eq!(ServiceConfig::default().validate(), Ok(()));
        let e = ServiceConfig {
            stage_stuck_ms: 0,
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.field, "stage_stuck_ms");
    }
}

//! `spectrald run`, `replay`, `record` and `check-config`: the live side.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;

use spectrald::config::Config;
use spectrald::infer::{BackendKind, ModelsConfig};
use spectrald::signals::{Shutdown, reload_requests};
use spectrald::source::CameraConfig;
use spectrald::telemetry::{self, Events, LogFormat};

use super::common::write_stdout;

#[derive(Args)]
pub struct ReplayArgs {
    /// Session folder with manifest.csv, visible/ and thermal/ (see docs/sources.md, "Replay format").
    dir: PathBuf,
    /// 1.0 = recorded pace, 2.0 = twice as fast, 0 = as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    speed: f64,
    /// Start over at the end until stopped (Ctrl-C).
    #[arg(long = "loop")]
    looped: bool,
    /// Write JSON lines to this file (appended) instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Take queues, pairing, thermal and model settings from this config.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Inference backend (default: from config, else auto).
    #[arg(long, value_enum)]
    backend: Option<BackendKind>,
    /// Folder with the model manifests and ONNX files.
    #[arg(long)]
    models_dir: Option<PathBuf>,
}

#[derive(Args)]
pub struct RecordArgs {
    #[arg(long, short, default_value = "config.toml")]
    config: PathBuf,
    /// Camera id from the config (default: the first camera).
    #[arg(long)]
    camera: Option<String>,
    /// New or empty folder for the session.
    #[arg(long)]
    out: PathBuf,
    /// Stop after this many seconds.
    #[arg(long)]
    seconds: Option<f64>,
    /// Stop after this many frames (both spectra together).
    #[arg(long)]
    frames: Option<u64>,
}

pub fn run(config_path: &Path, log_format: Option<LogFormat>) -> Result<ExitCode> {
    let mut config = Config::load(config_path)?;
    apply_log_format(&mut config, log_format);
    run_pipeline(config, Some(config_path.to_owned()))
}

pub fn replay(args: ReplayArgs, log_format: Option<LogFormat>) -> Result<ExitCode> {
    let mut config = base_config(args.config.as_deref(), log_format)?;
    if let Some(backend) = args.backend {
        config.models.backend = backend;
    }
    if let Some(dir) = args.models_dir {
        config.models.dir = dir;
    }
    if let Some(out) = args.out {
        config.output.jsonl = out.to_string_lossy().into_owned();
    }
    config.cameras = vec![CameraConfig::replay(
        "replay",
        args.dir,
        args.speed,
        args.looped,
    )];
    config.validate(Path::new("<command line>"))?;
    run_pipeline(config, None)
}

pub fn check_config(file: &Path) -> Result<ExitCode> {
    let config = Config::load(file)?;
    for camera in &config.cameras {
        spectrald::source::check_camera(camera)?;
    }
    // Passwords and tokens are shown as "<hidden>", never echoed.
    let mut shown = toml::Value::try_from(&config).context("printing the config")?;
    spectrald::config::redact::redact(&mut shown);
    let text = format!(
        "{}: OK\n{}\n",
        file.display(),
        toml::to_string_pretty(&shown).context("printing the config")?
    );
    write_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}

pub fn record(args: RecordArgs, log_format: Option<LogFormat>) -> Result<ExitCode> {
    let mut config = Config::load(&args.config)?;
    apply_log_format(&mut config, log_format);
    telemetry::init_logging(&config.log);
    let chosen = match &args.camera {
        Some(id) => config
            .cameras
            .iter()
            .find(|c| &c.id == id)
            .with_context(|| {
                let ids: Vec<&str> = config.cameras.iter().map(|c| c.id.as_str()).collect();
                format!(
                    "no camera {id:?} in {}; cameras: {}",
                    args.config.display(),
                    ids.join(", ")
                )
            })?,
        None => config.cameras.first().context("the config has no camera")?,
    };
    let limits = spectrald::source::record::Limits {
        duration: args
            .seconds
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(std::time::Duration::from_secs_f64),
        frames: args.frames,
    };
    let events = Arc::new(Events::new());
    let shutdown = Shutdown::on_signals()?;
    let (visible, thermal) = spectrald::source::record::record(
        chosen,
        &args.out,
        limits,
        shutdown.flag(),
        events.clone(),
    )?;
    let dropped: u64 = events.drops_by_reason(&chosen.id).values().sum();
    eprintln!(
        "recorded {visible} visible + {thermal} thermal frames of camera {} into {} ({dropped} dropped); replay with: spectrald replay {}",
        chosen.id,
        args.out.display(),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn apply_log_format(config: &mut Config, format: Option<LogFormat>) {
    if let Some(format) = format {
        config.log.format = format;
    }
}

/// The config of `replay` and `evaluate`: a file when given, else the defaults with the
/// shipped models; `--log-format` applied.
pub fn base_config(path: Option<&Path>, log_format: Option<LogFormat>) -> Result<Config> {
    let mut config = match path {
        Some(path) => Config::load(path)?,
        None => Config {
            models: ModelsConfig {
                dir: default_models_dir(),
                ..Default::default()
            },
            ..Default::default()
        },
    };
    apply_log_format(&mut config, log_format);
    Ok(config)
}

/// `models/` next to the working directory, else the one in the checkout the binary was
/// built in (target/<profile>/spectrald), so `cargo run` works from any folder.
fn default_models_dir() -> PathBuf {
    let local = PathBuf::from("models");
    if local.is_dir() {
        return local;
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            exe.ancestors()
                .skip(1)
                .take(4)
                .map(|a| a.join("models"))
                .find(|m| m.is_dir())
        })
        .unwrap_or(local)
}

fn run_pipeline(config: Config, config_path: Option<PathBuf>) -> Result<ExitCode> {
    telemetry::init_logging(&config.log);
    let shutdown = Shutdown::on_signals()?;
    let summary = spectrald::service::run(
        config,
        spectrald::service::Options {
            config_path,
            stop: shutdown.flag(),
            reload_signal: reload_requests()?,
        },
    )?;
    tracing::info!("{}", summary.line());
    if summary.not_written > 0 {
        // Records the pipeline computed but an output could not take (closed, or still
        // failing at shutdown): the run did not deliver everything it promised.
        tracing::error!(
            "{} records were not written to every output; see the sink errors above",
            summary.not_written
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

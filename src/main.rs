//! The `spectrald` command line. Library errors become one line for the operator here.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

mod lesion_cli;
mod offline_cli;
mod retrieve_cli;

use spectrald::config::{BackendKind, CameraConfig, Config, LogFormat};
use spectrald::infer::list_manifests;
use spectrald::telemetry::{self, Events};

#[derive(Parser)]
#[command(
    name = "spectrald",
    version,
    about = "Multi-spectral (visible + thermal) facial landmark daemon.",
    long_about = "Multi-spectral (visible + thermal) facial landmark daemon.\n\n\
Reads paired visible/thermal frames, finds the face boundary with the DMSL boundary model, blacks out the rest, \
locates 68 landmarks with the DMSL landmark model and publishes one JSON line per pair \
(schema spectrald.landmarks/v1) on stdout or to a file. Logs go to stderr.\n\n\
Start with:  spectrald replay tests/fixtures/session-pexels"
)]
struct Cli {
    /// Log lines as JSON instead of human-readable text.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormatArg>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Human,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum PaletteArg {
    Iron,
    Rainbow,
    WhiteHot,
}

#[derive(Clone, Copy, ValueEnum)]
enum BackendArg {
    Auto,
    Ort,
    Tract,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon with a config file (cameras, models, queues, outputs).
    Run {
        #[arg(long, short, default_value = "config.toml")]
        config: PathBuf,
    },
    /// Replay one recorded session folder and print landmark JSON lines.
    Replay {
        /// Session folder with manifest.csv, visible/ and thermal/ (see README "Replay format").
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
        backend: Option<BackendArg>,
        /// Folder with the model manifests and ONNX files.
        #[arg(long)]
        models_dir: Option<PathBuf>,
    },
    /// Validate a config file and print it with all defaults filled in.
    CheckConfig { file: PathBuf },
    /// NME of the whole pipeline on a labelled folder (300-W layout: images/, landmarks/*.pts).
    Evaluate {
        dir: PathBuf,
        /// Only the faces models/train holds out of training (split by source photo).
        #[arg(long)]
        held_out: bool,
        /// Evaluate at most this many faces (0 = all).
        #[arg(long, default_value_t = 0)]
        limit: usize,
        /// Take model, backend and queue settings from this config.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Folder with the model manifests and ONNX files.
        #[arg(long)]
        models_dir: Option<PathBuf>,
        /// Write per-face NME as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Record a camera's sources into a session folder that `replay` plays back exactly.
    Record {
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
    },
    /// Fit the thermal → visible homography from point pairs and report its error.
    Calibrate {
        /// CSV with rows thermal_x,thermal_y,visible_x,visible_y (at least 4).
        points: PathBuf,
    },
    /// List the cameras nokhwa can open (index: name).
    Devices,
    /// Draw replay output onto its session's frames: visible | thermal (palette), boxes, landmarks.
    Overlay {
        /// The session folder that was replayed.
        session: PathBuf,
        /// The JSON lines the replay printed.
        records: PathBuf,
        /// Folder for the PNGs (CAMERA-SEQUENCE.png).
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_enum, default_value = "iron")]
        palette: PaletteArg,
    },
    /// Offline models over stored imagery: classify, segment, evaluate (README "Offline stage").
    #[command(subcommand)]
    Offline(offline_cli::OfflineCommand),
    /// Serve the offline models over HTTP (single images and folder jobs).
    ServeOffline(offline_cli::ServeArgs),
    /// List installed models and verify their sha256 against the manifests.
    Models {
        #[arg(long, default_value = "models")]
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // One line: the chain of contexts, outermost first.
            eprintln!("spectrald: error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::from(2)
        }
    }
}

fn apply_log_format(config: &mut Config, arg: Option<LogFormatArg>) {
    if let Some(f) = arg {
        config.log.format = match f {
            LogFormatArg::Human => LogFormat::Human,
            LogFormatArg::Json => LogFormat::Json,
        };
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Run { config } => {
            let mut loaded = Config::load(&config)?;
            apply_log_format(&mut loaded, cli.log_format);
            run_pipeline(loaded, Some(config))
        }
        Command::Replay {
            dir,
            speed,
            looped,
            out,
            config,
            backend,
            models_dir,
        } => {
            let mut config = base_config(config.as_deref(), cli.log_format)?;
            if let Some(b) = backend {
                config.models.backend = match b {
                    BackendArg::Auto => BackendKind::Auto,
                    BackendArg::Ort => BackendKind::Ort,
                    BackendArg::Tract => BackendKind::Tract,
                };
            }
            if let Some(m) = models_dir {
                config.models.dir = m;
            }
            if let Some(out) = out {
                config.output.jsonl = out.to_string_lossy().into_owned();
            }
            config.cameras = vec![CameraConfig::replay("replay", dir, speed, looped)];
            config.validate(Path::new("<command line>"))?;
            run_pipeline(config, None)
        }
        Command::CheckConfig { file } => {
            let config = Config::load(&file)?;
            for camera in &config.cameras {
                spectrald::source::check_camera(camera)?;
            }
            let text = format!(
                "{}: OK\n{}\n",
                file.display(),
                toml::to_string_pretty(&config).context("printing the config")?
            );
            write_stdout(&text)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Models { dir } => list_models(&dir),
        Command::Offline(command) => offline_cli::run(command),
        Command::ServeOffline(args) => offline_cli::serve(args),
        Command::Record {
            config,
            camera,
            out,
            seconds,
            frames,
        } => record(
            &config,
            camera.as_deref(),
            &out,
            seconds,
            frames,
            cli.log_format,
        ),
        Command::Calibrate { points } => calibrate(&points),
        Command::Devices => list_devices(),
        Command::Overlay {
            session,
            records,
            out,
            palette,
        } => {
            use spectrald::thermal::palette::Palette;
            let palette = match palette {
                PaletteArg::Iron => Palette::Iron,
                PaletteArg::Rainbow => Palette::Rainbow,
                PaletteArg::WhiteHot => Palette::WhiteHot,
            };
            let n = spectrald::render::render_session(&session, &records, &out, palette)?;
            eprintln!("wrote {n} overlay pictures to {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Evaluate {
            dir,
            held_out,
            limit,
            config,
            models_dir,
            json,
        } => {
            let mut config = base_config(config.as_deref(), cli.log_format)?;
            if let Some(m) = models_dir {
                config.models.dir = m;
            }
            telemetry::init_logging(&config.log);
            let result = spectrald::evaluate::evaluate(&dir, config, held_out, limit)?;
            println!(
                "faces {}  NME mean {:.4}  median {:.4}  failures (NME > 0.1 or no output) {:.1} %  no output {}",
                result.faces,
                result.nme_mean,
                result.nme_median,
                100.0 * result.failure_rate,
                result.missing
            );
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_string_pretty(&result)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The config of `replay` and `evaluate`: a file when given, else the defaults with the
/// shipped models; `--log-format` applied.
fn base_config(path: Option<&Path>, log_format: Option<LogFormatArg>) -> Result<Config> {
    let mut config = match path {
        Some(path) => Config::load(path)?,
        None => Config {
            models: spectrald::config::ModelsConfig {
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
    let stop = stop_on_signals()?;
    let reload_signal = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, reload_signal.clone())
        .context("installing the SIGHUP handler")?;
    let summary = spectrald::service::run(
        config,
        spectrald::service::Options {
            config_path,
            stop,
            reload_signal,
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

/// Prints to stdout; a reader that went away (`| head`) is not an error.
fn write_stdout(text: &str) -> Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("writing to stdout"),
        _ => Ok(()),
    }
}

fn stop_on_signals() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    // Over a file size limit (RLIMIT_FSIZE) the kernel sends SIGXFSZ, which would kill the
    // process; handled, the write fails with EFBIG instead and the output holds its records
    // like on a full disk.
    signal_hook::flag::register(
        signal_hook::consts::SIGXFSZ,
        Arc::new(AtomicBool::new(false)),
    )
    .context("installing the SIGXFSZ handler")?;
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        // First signal: drain and exit cleanly. A second one: exit at once.
        signal_hook::flag::register_conditional_shutdown(signal, 130, stop.clone())
            .context("installing signal handlers")?;
        signal_hook::flag::register(signal, stop.clone()).context("installing signal handlers")?;
    }
    Ok(stop)
}

fn record(
    config_path: &Path,
    camera: Option<&str>,
    out: &Path,
    seconds: Option<f64>,
    frames: Option<u64>,
    log_format: Option<LogFormatArg>,
) -> Result<ExitCode> {
    let mut config = Config::load(config_path)?;
    apply_log_format(&mut config, log_format);
    telemetry::init_logging(&config.log);
    let chosen = match camera {
        Some(id) => config
            .cameras
            .iter()
            .find(|c| c.id == id)
            .with_context(|| {
                let ids: Vec<&str> = config.cameras.iter().map(|c| c.id.as_str()).collect();
                format!(
                    "no camera {id:?} in {}; cameras: {}",
                    config_path.display(),
                    ids.join(", ")
                )
            })?,
        None => config.cameras.first().context("the config has no camera")?,
    };
    let limits = spectrald::source::record::Limits {
        duration: seconds
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(std::time::Duration::from_secs_f64),
        frames,
    };
    let events = Arc::new(Events::new());
    let stop = stop_on_signals()?;
    let (visible, thermal) =
        spectrald::source::record::record(chosen, out, limits, stop, events.clone())?;
    let dropped: u64 = events.drops_by_reason(&chosen.id).values().sum();
    eprintln!(
        "recorded {visible} visible + {thermal} thermal frames of camera {} into {} ({dropped} dropped); replay with: spectrald replay {}",
        chosen.id,
        out.display(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn calibrate(points: &Path) -> Result<ExitCode> {
    let pairs = spectrald::registration::read_pairs(points)?;
    let fit = spectrald::registration::fit(&pairs)?;
    let rows = fit.homography.rows();
    println!(
        "# thermal -> visible, fitted from {} point pairs in {}",
        pairs.len(),
        points.display()
    );
    println!(
        "# reprojection error (visible pixels): rms {:.3}, max {:.3}",
        fit.rms(),
        fit.max()
    );
    for (pair, error) in pairs.iter().zip(&fit.errors) {
        println!(
            "#   thermal ({:.1}, {:.1}) -> visible ({:.1}, {:.1}): {error:.3} px",
            pair.thermal[0], pair.thermal[1], pair.visible[0], pair.visible[1]
        );
    }
    println!("# paste under the camera's [[cameras]] table:");
    let row = |r: [f64; 3]| format!("[{:.9e}, {:.9e}, {:.9e}]", r[0], r[1], r[2]);
    println!(
        "homography = [{}, {}, {}]",
        row(rows[0]),
        row(rows[1]),
        row(rows[2])
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "camera")]
fn list_devices() -> Result<ExitCode> {
    let devices = spectrald::source::camera::list_devices();
    if devices.is_empty() {
        eprintln!(
            "no cameras found (is the camera plugged in, and is this user in the video group?)"
        );
        return Ok(ExitCode::from(1));
    }
    for d in devices {
        println!("{d}");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "camera"))]
fn list_devices() -> Result<ExitCode> {
    anyhow::bail!("this build has no `camera` feature; rebuild with --features camera")
}

fn list_models(dir: &Path) -> Result<ExitCode> {
    let manifests = list_manifests(dir);
    if manifests.is_empty() {
        anyhow::bail!(
            "no model manifests (*.json) in {}; train and export them with models/train (see models/README.md)",
            dir.display()
        );
    }
    let mut bad = 0;
    for (path, manifest) in manifests {
        match manifest.and_then(|m| m.verify_checksum().map(|_| m)) {
            Ok(m) => println!(
                "ok    {:<28} {:<9} v{:<6} {}  {}",
                m.name,
                m.task,
                m.version,
                &m.sha256[..12.min(m.sha256.len())],
                m.onnx_path().display()
            ),
            Err(e) => {
                bad += 1;
                println!("FAIL  {}: {e}", path.display());
            }
        }
    }
    Ok(if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

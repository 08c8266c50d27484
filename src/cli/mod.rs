//! The `spectrald` command line: one file per group of commands. Library errors become one
//! line for the operator here (anyhow lives only in this folder).
//!
//! | file          | commands                                                          |
//! |---------------|-------------------------------------------------------------------|
//! | `daemon.rs`   | `run`, `replay`, `record`, `check-config`                          |
//! | `tools.rs`    | `evaluate`, `calibrate`, `overlay`, `devices`, `models`           |
//! | `offline.rs`  | `offline classify/segment/evaluate`, `serve-offline`              |
//! | `jobs.rs`     | `offline submit/worker/results`: jobs over NATS JetStream         |
//! | `lesion.rs`   | `offline lesion segment/evaluate`                                 |
//! | `retrieve.rs` | `offline retrieve index/query/feedback/evaluate`                  |
//! | `thermal.rs`  | `thermal info/export`: FLIR files without a pipeline              |
//! | `common.rs`   | what they share: exit codes, progress bars, backend flags, stdout |

mod common;
mod daemon;
mod jobs;
mod lesion;
mod offline;
mod retrieve;
mod thermal;
mod tools;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use spectrald::telemetry::LogFormat;
use spectrald::thermal::palette::Palette;

#[derive(Parser)]
#[command(
    name = "spectrald",
    version,
    about = "Multi-spectral (visible + thermal) facial landmark daemon.",
    long_about = "Multi-spectral (visible + thermal) facial landmark daemon.\n\n\
Reads paired visible/thermal frames, finds every face (YuNet), and for each face finds its boundary \
with the DMSL boundary model, blacks out the rest and locates 68 landmarks with the DMSL landmark \
model; publishes one JSON line per pair (schema spectrald.landmarks/v2: faces per spectrum, with \
track ids and, on thermal, face temperatures) on stdout or to a file. Logs go to stderr.\n\n\
Start with:  spectrald replay tests/fixtures/session-pexels"
)]
struct Cli {
    /// Log lines as JSON instead of human-readable text.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon with a config file (cameras, models, queues, outputs).
    Run {
        #[arg(long, short, default_value = "config.toml")]
        config: PathBuf,
    },
    /// Replay one recorded session folder and print landmark JSON lines.
    Replay(daemon::ReplayArgs),
    /// Validate a config file and print it with all defaults filled in.
    CheckConfig { file: PathBuf },
    /// NME of the whole pipeline on a labelled folder (300-W layout: images/, landmarks/*.pts).
    Evaluate(tools::EvaluateArgs),
    /// Record a camera's sources into a session folder that `replay` plays back exactly.
    Record(daemon::RecordArgs),
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
        palette: Palette,
    },
    /// Offline models over stored imagery: classify, segment, evaluate (docs/offline.md).
    #[command(subcommand)]
    Offline(offline::OfflineCommand),
    /// FLIR files (R-JPEG, .fff, .seq): what they hold, and °C / photo / palette export.
    #[command(subcommand)]
    Thermal(thermal::ThermalCommand),
    /// Serve the offline models over HTTP (single images and folder jobs).
    ServeOffline(offline::ServeArgs),
    /// List installed models and verify their sha256 against the manifests.
    Models {
        #[arg(long, default_value = "models")]
        dir: PathBuf,
    },
}

/// Parses the command line, runs the command, and turns an error into one line (exit 2).
pub fn main() -> ExitCode {
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

fn run(cli: Cli) -> Result<ExitCode> {
    let log_format = cli.log_format;
    match cli.command {
        Command::Run { config } => daemon::run(&config, log_format),
        Command::Replay(args) => daemon::replay(args, log_format),
        Command::CheckConfig { file } => daemon::check_config(&file),
        Command::Record(args) => daemon::record(args, log_format),
        Command::Evaluate(args) => tools::evaluate(args, log_format),
        Command::Calibrate { points } => tools::calibrate(&points),
        Command::Devices => tools::list_devices(),
        Command::Overlay {
            session,
            records,
            out,
            palette,
        } => tools::overlay(&session, &records, &out, palette),
        Command::Models { dir } => tools::list_models(&dir),
        Command::Offline(command) => {
            // A one-shot command's stderr is its summary and error lines; a worker runs
            // for hours and says what it does.
            let level = match command {
                offline::OfflineCommand::Worker(_) => "info",
                _ => "warn",
            };
            command_logging(log_format, level);
            offline::run(command)
        }
        Command::ServeOffline(args) => {
            command_logging(log_format, "info");
            offline::serve(args)
        }
        Command::Thermal(command) => thermal::run(command),
    }
}

/// Logging for the commands without a config file: `level` and up on stderr,
/// `--log-format` honoured (SPECTRALD_LOG overrides the level).
fn command_logging(format: Option<LogFormat>, level: &str) {
    spectrald::telemetry::init_logging(&spectrald::telemetry::LogConfig {
        format: format.unwrap_or_default(),
        level: level.into(),
    });
}

//! `spectrald evaluate`, `calibrate`, `overlay`, `devices` and `models`: tools around the
//! daemon.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use spectrald::infer::list_manifests;
use spectrald::telemetry::{self, LogFormat};
use spectrald::thermal::palette::Palette;

use super::daemon::base_config;

#[derive(Args)]
pub struct EvaluateArgs {
    /// The labelled folder: images/ and landmarks/*.pts (300-W layout).
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
}

pub fn evaluate(args: EvaluateArgs, log_format: Option<LogFormat>) -> Result<ExitCode> {
    let mut config = base_config(args.config.as_deref(), log_format)?;
    if let Some(m) = args.models_dir {
        config.models.dir = m;
    }
    telemetry::init_logging(&config.log);
    let result = spectrald::evaluate::evaluate(&args.dir, config, args.held_out, args.limit)?;
    println!(
        "faces {}  NME mean {:.4}  median {:.4}  failures (NME > 0.1 or no output) {:.1} %  NME > 0.08 {:.1} %  AUC@0.08 {:.3}  no output {} (detector missed {})",
        result.faces,
        result.nme_mean,
        result.nme_median,
        100.0 * result.failure_rate,
        100.0 * result.failure_rate_008,
        result.auc_008,
        result.missing,
        result.missed_detections
    );
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_string_pretty(&result)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn overlay(session: &Path, records: &Path, out: &Path, palette: Palette) -> Result<ExitCode> {
    let n = spectrald::render::render_session(session, records, out, palette)?;
    eprintln!("wrote {n} overlay pictures to {}", out.display());
    Ok(ExitCode::SUCCESS)
}

pub fn calibrate(points: &Path) -> Result<ExitCode> {
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
pub fn list_devices() -> Result<ExitCode> {
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
pub fn list_devices() -> Result<ExitCode> {
    anyhow::bail!("this build has no `camera` feature; rebuild with --features camera")
}

pub fn list_models(dir: &Path) -> Result<ExitCode> {
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

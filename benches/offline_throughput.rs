//! Offline stage throughput against a Python reference, in the same run.
//!
//!     cargo bench --bench offline_throughput [-- SECONDS]
//!
//! (1) Classification: the bundled 4-band GeoTIFF scene (515x403) decoded and tiled at
//! stride 16 into 638 patches, classified in batches of 16 — tiles/s. (2) Segmentation of
//! the same scene's RGB (0.21 MP), with and without contextual-regularization refinement —
//! megapixels/s; (3) the two road-scene models to deploy, on the same scene, each in one
//! whole-image pass and with its manifest's test-time plan (`…-aspp-all`: scales 1 and
//! 1.5, mirrored, 10 passes; `…-aspp-local-all`: 1 + flip, 2 passes) — megapixels/s, so
//! each plan's cost is on record. Decode is included. Then `bench/offline_reference.py` (Pillow + numpy +
//! onnxruntime, same models, same 2 threads, spinning off) does the same, and the ratios are
//! printed. Results: a table on stdout and `target/bench/offline_throughput.json`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use spectrald::infer::{BackendKind, ModelsConfig};
use spectrald::offline::raster::{self, Scale16};
use spectrald::offline::refine::RefineParams;
use spectrald::offline::{OfflineModel, classify, segment};

/// The road-scene segmentation models the docs offer for deployment (same fold accuracy,
/// different test-time plans), with the key each figure has in the Python reference.
const DEPLOY: [(&str, &str); 2] = [
    (
        "segment-camvid-lite0-balanced-352x480-colour-aspp-all",
        "decoder",
    ),
    (
        "segment-camvid-lite0-balanced-352x480-colour-aspp-local-all",
        "local",
    ),
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn load(name: &str) -> Result<OfflineModel, Box<dyn std::error::Error>> {
    let config = ModelsConfig {
        dir: repo().join("models"),
        backend: BackendKind::Ort,
        threads: 2,
        ..Default::default()
    };
    Ok(OfflineModel::load(&config.dir, name, &config)?)
}

/// Runs `work` (returning units done) for `seconds`; units per second.
fn timed(
    seconds: f64,
    mut work: impl FnMut() -> Result<f64, Box<dyn std::error::Error>>,
) -> Result<f64, Box<dyn std::error::Error>> {
    let started = Instant::now();
    let mut done = 0.0;
    while started.elapsed().as_secs_f64() < seconds {
        done += work()?;
    }
    Ok(done / started.elapsed().as_secs_f64())
}

fn python_reference(scene: &Path, seconds: f64) -> Result<serde_json::Value, String> {
    let python = [
        repo().join(".cache/venv/bin/python"),
        PathBuf::from("python3"),
    ]
    .into_iter()
    .find(|p| p.is_file() || p.to_str() == Some("python3"))
    .ok_or("no python")?;
    let out = std::process::Command::new(python)
        .arg(repo().join("bench/offline_reference.py"))
        .args(["--models", &repo().join("models").display().to_string()])
        .args(["--scene", &scene.display().to_string()])
        .args(["--seconds", &seconds.to_string()])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: f64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10.0);
    let scene = repo().join("tests/fixtures/geotiff/rgbn.tif");
    let bytes = std::fs::read(&scene)?;

    let mut sat = load("satellite-eurosat-lite0")?;
    let tiles_per_s = timed(seconds, || {
        let r = raster::read_bytes(&bytes, &scene, true, None, Scale16::Percentile)?;
        let c = classify::classify(&mut sat, &r, &scene, Some(16), 16)?;
        Ok(c.grid.len() as f64)
    })?;

    let mut seg = load("segment-camvid-lite0")?;
    let megapixels = |refine: Option<RefineParams>, seg: &mut OfflineModel| {
        timed(seconds, || {
            let r = raster::read_bytes(&bytes, &scene, true, None, Scale16::Percentile)?;
            segment::segment(seg, &r, &scene, refine.as_ref())?;
            Ok(r.megapixels())
        })
    };
    let mps = megapixels(None, &mut seg)?;
    let mps_refined = megapixels(Some(RefineParams::default()), &mut seg)?;

    // (model, key, plan described, planned MP/s, one-pass MP/s)
    let mut deployed = Vec::new();
    for (name, key) in DEPLOY {
        let mut model = load(name)?;
        let plan = format!(
            "scales {:?}{}",
            model.test_time.scales,
            if model.test_time.flip { " + flip" } else { "" }
        );
        let planned = megapixels(None, &mut model)?;
        model.override_test_time(Some(vec![1.0]), Some(false))?;
        let one_pass = megapixels(None, &mut model)?;
        deployed.push((name, key, plan, planned, one_pass));
    }

    let reference = python_reference(&scene, seconds);
    let ratio = |ours: f64, key: &str| {
        reference
            .as_ref()
            .ok()
            .and_then(|r| r[key].as_f64())
            .map(|theirs| ours / theirs)
    };
    println!(
        "offline stage, ORT 2 threads, {seconds} s per figure, scene {}",
        scene.display()
    );
    println!(
        "{:<34} {:>12} {:>12} {:>8}",
        "", "spectrald", "python", "ratio"
    );
    let show = |label: &str, ours: f64, key: &str| {
        let theirs = reference.as_ref().ok().and_then(|r| r[key].as_f64());
        println!(
            "{label:<34} {ours:>12.2} {:>12} {:>8}",
            theirs.map_or("-".into(), |t| format!("{t:.2}")),
            ratio(ours, key).map_or("-".into(), |r| format!("{r:.2}x"))
        );
    };
    show("classify tiles/s (stride 16)", tiles_per_s, "tiles_per_s");
    show("segment megapixels/s", mps, "megapixels_per_s");
    println!("{:<34} {mps_refined:>12.2}", "segment + CR refinement MP/s");
    for (name, key, plan, planned, one_pass) in &deployed {
        show(
            &format!("{key} MP/s, one pass"),
            *one_pass,
            &format!("{key}_one_pass_megapixels_per_s"),
        );
        show(
            &format!("{key} MP/s, its plan"),
            *planned,
            &format!("{key}_plan_megapixels_per_s"),
        );
        println!("  ({key}: {name}, plan {plan})");
    }
    if let Err(e) = &reference {
        println!("python reference unavailable: {e}");
    }
    let json = serde_json::json!({
        "seconds": seconds,
        "classify_tiles_per_s": tiles_per_s,
        "segment_megapixels_per_s": mps,
        "segment_refined_megapixels_per_s": mps_refined,
        "python": reference.as_ref().ok(),
        "ratio_classify": ratio(tiles_per_s, "tiles_per_s"),
        "ratio_segment": ratio(mps, "megapixels_per_s"),
        "deploy": deployed.iter().map(|(name, key, plan, planned, one_pass)| serde_json::json!({
            "model": name,
            "key": key,
            "plan": plan,
            "one_pass_megapixels_per_s": one_pass,
            "plan_megapixels_per_s": planned,
            "ratio_one_pass": ratio(*one_pass, &format!("{key}_one_pass_megapixels_per_s")),
            "ratio_plan": ratio(*planned, &format!("{key}_plan_megapixels_per_s")),
        })).collect::<Vec<_>>(),
    });
    let out = repo().join("target/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(
        out.join("offline_throughput.json"),
        serde_json::to_string_pretty(&json)? + "\n",
    )?;
    Ok(())
}

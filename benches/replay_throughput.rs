//! End-to-end replay throughput against model-only throughput, for ORT and tract.
//!
//!     cargo bench --bench replay_throughput [-- SECONDS]
//!
//! For each backend, in the same process run: (1) the daemon's pipeline replays the bundled
//! session in a loop as fast as possible for SECONDS (default 10) and reports pairs/s and
//! per-stage p50/p99 latency; (2) the same two models run alone on the same frames, already
//! preprocessed (boundary, black-out, landmark; both spectra as one batch, like the
//! pipeline) for the same time. The ratio end-to-end / model-only is the pipeline's cost
//! (or, above 1, the gain from running the two models' stages on different cores).
//! (3) 1, 2 and 4 cameras replaying at once through the same model stages (ORT): pairs/s
//! over all cameras, latency and peak resident memory.
//! (4) Variants through ORT: dynamic batching (`max_batch` 8) and the int8 lite models,
//! end to end and model-only. (5) Batch-size scaling of each model alone: images/s at
//! batch 1, 8 and 32. `SPECTRALD_BENCH_DEVICE=cuda` runs the ORT parts on a GPU (with
//! `ORT_DYLIB_PATH` at onnxruntime-gpu's library).
//! Then (6) `bench/replay_reference.py`, the Python script a user would write instead
//! (Pillow + numpy + onnxruntime, the same models, frames, preprocessing and thread count),
//! for the same time; the ratio spectrald / Python is the point of the daemon.
//! Python: `SPECTRALD_TEST_PYTHON`, else `.cache/venv/bin/python` (scripts/setup.sh).
//! Results: a table on stdout and `target/bench/replay_throughput.json`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use spectrald::config::Config;
use spectrald::dmsl::{self, BLACKOUT_MARGIN, CANVAS};
use spectrald::geometry::BoundingBox;
use spectrald::infer::Model;
use spectrald::infer::{BackendKind, Device, ModelsConfig};
use spectrald::pipeline::Pipeline;
use spectrald::publish::{Outgoing, Sink, SinkError};
use spectrald::source::CameraConfig;
use spectrald::telemetry::Events;

struct NullSink;

impl Sink for NullSink {
    fn name(&self) -> String {
        "null".into()
    }
    fn publish(&mut self, _: &Outgoing<'_>) -> Result<(), SinkError> {
        Ok(())
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn models(backend: BackendKind) -> ModelsConfig {
    let device = match std::env::var("SPECTRALD_BENCH_DEVICE").as_deref() {
        Ok("cuda") => Device::Cuda,
        Ok("tensorrt") => Device::Tensorrt,
        _ => Device::Cpu,
    };
    ModelsConfig {
        dir: repo().join("models"),
        backend,
        device: if backend == BackendKind::Tract {
            Device::Cpu
        } else {
            device
        },
        ..Default::default()
    }
}

/// The ORT models config with the int8 lite models.
fn int8(mut config: ModelsConfig) -> ModelsConfig {
    config.boundary = "dmsl-boundary-lite-int8".into();
    config.landmark = "dmsl-landmark-lite-int8".into();
    config
}

/// Resident memory of this process now, MiB.
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// `cameras` replays of the session at once, as fast as possible, for `seconds`.
fn end_to_end(
    models: ModelsConfig,
    seconds: f64,
    cameras: usize,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let session = repo().join("tests/fixtures/session-pexels");
    let config = Config {
        models,
        cameras: (0..cameras)
            .map(|i| CameraConfig::replay(&format!("bench-{i}"), session.clone(), 0.0, true))
            .collect(),
        ..Default::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let pipeline = Pipeline::start(
        &config,
        vec![("null".to_owned(), Box::new(NullSink))],
        Arc::new(Events::new()),
        stop.clone(),
    )?;
    // Peak resident memory while it runs (sampled; this process holds nothing else big).
    let started = Instant::now();
    let mut peak_rss = rss_mib();
    while started.elapsed().as_secs_f64() < seconds {
        std::thread::sleep(Duration::from_millis(100));
        peak_rss = peak_rss.max(rss_mib());
    }
    stop.store(true, Ordering::Relaxed);
    let summary = pipeline.wait();
    let mut stages = serde_json::Map::new();
    for stage in spectrald::stage::Stage::TIMED
        .map(spectrald::stage::Stage::as_str)
        .into_iter()
        .chain(["total"])
    {
        if let Some((p50, p99)) = summary.latency.percentiles(stage) {
            stages.insert(
                stage.into(),
                serde_json::json!({"p50_ms": p50, "p99_ms": p99}),
            );
        }
    }
    Ok(
        serde_json::json!({"cameras": cameras, "pairs_per_s": summary.pairs_per_second(), "pairs": summary.published, "seconds": summary.seconds, "peak_rss_mib": peak_rss, "latency": stages}),
    )
}

fn canvases() -> Result<Vec<Vec<f32>>, Box<dyn std::error::Error>> {
    let session = repo().join("tests/fixtures/session-pexels");
    let mut resizer = fast_image_resize::Resizer::new();
    let mut out = Vec::new();
    for entry in spectrald::source::replay::read_manifest(&session)? {
        let (w, h, pixels) =
            spectrald::source::replay::decode(&session.join(&entry.file), entry.spectrum)?;
        let gray = match &pixels {
            spectrald::frame::Pixels::Rgb8(rgb) => dmsl::gray_from_rgb8(rgb),
            spectrald::frame::Pixels::Gray16(v) => {
                dmsl::gray_from_thermal(v, Default::default(), None)
                    .expect("percentile AGC needs no radiometry")
            }
        };
        out.push(dmsl::letterbox(&gray, w, h, &mut resizer)?.0);
    }
    Ok(out)
}

fn model_only(
    config: ModelsConfig,
    seconds: f64,
    frames: &[Vec<f32>],
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let mut boundary = Model::load(&config.dir, &config.boundary, &config)?;
    let mut landmark = Model::load(&config.dir, &config.landmark, &config)?;
    let started = Instant::now();
    let mut pairs = 0usize;
    let mut input = Vec::with_capacity(2 * CANVAS * CANVAS);
    while started.elapsed().as_secs_f64() < seconds {
        let pair = (pairs * 2) % frames.len();
        input.clear();
        input.extend_from_slice(&frames[pair]);
        input.extend_from_slice(&frames[pair + 1]);
        let boxes = boundary.infer(&input, 2)?;
        for (i, canvas) in input.chunks_exact_mut(CANVAS * CANVAS).enumerate() {
            let b = &boxes[0][i * 4..i * 4 + 4];
            dmsl::blackout(
                canvas,
                BoundingBox {
                    x: b[0],
                    y: b[1],
                    w: b[2],
                    h: b[3],
                },
                BLACKOUT_MARGIN,
            );
        }
        landmark.infer(&input, 2)?;
        pairs += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(serde_json::json!({"pairs_per_s": pairs as f64 / secs, "pairs": pairs, "seconds": secs}))
}

/// One model alone on `batch` canvases per call: images/s and peak RSS.
fn batch_scaling(
    config: &ModelsConfig,
    name: &str,
    batch: usize,
    seconds: f64,
    frames: &[Vec<f32>],
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let mut model = Model::load(&config.dir, name, config)?;
    let input: Vec<f32> = frames
        .iter()
        .cycle()
        .take(batch)
        .flat_map(|f| f.iter().copied())
        .collect();
    // The first call allocates what every later call reuses: resident memory after it is
    // the working size, sampled outside the timed loop (reading /proc is not free).
    model.infer(&input, batch)?;
    let peak_rss = rss_mib();
    let started = Instant::now();
    let mut images = 0usize;
    while started.elapsed().as_secs_f64() < seconds {
        model.infer(&input, batch)?;
        images += batch;
    }
    let secs = started.elapsed().as_secs_f64();
    let peak_rss = peak_rss.max(rss_mib());
    Ok(
        serde_json::json!({"model": name, "batch": batch, "images_per_s": images as f64 / secs, "peak_rss_mib": peak_rss}),
    )
}

fn rate(v: &serde_json::Value) -> f64 {
    v["pairs_per_s"].as_f64().unwrap_or(f64::NAN)
}

/// Runs the Python reference pipeline for `seconds`; its JSON summary.
fn python_reference(seconds: f64) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let python = std::env::var_os("SPECTRALD_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".cache/venv/bin/python"));
    let out = std::process::Command::new(&python)
        .arg(repo().join("bench/replay_reference.py"))
        .arg("--models")
        .arg(repo().join("models"))
        .arg("--session")
        .arg(repo().join("tests/fixtures/session-pexels"))
        .args(["--seconds", &seconds.to_string(), "--threads", "1"])
        .output()
        .map_err(|e| format!("{}: {e} (run scripts/setup.sh)", python.display()))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned().into());
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this too, without it:
    // then a one-second smoke run only proves the harness works.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let default = if args.iter().any(|a| a == "--bench") {
        10.0
    } else {
        1.0
    };
    let seconds: f64 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(default);
    let frames = canvases()?;
    let mut results = serde_json::Map::new();
    println!(
        "{:<7} {:>12} {:>12} {:>7}  {:>22}  {:>22}",
        "backend",
        "e2e pairs/s",
        "model pairs/s",
        "ratio",
        "total p50/p99 ms",
        "landmark p50/p99 ms"
    );
    for (name, backend) in [("ort", BackendKind::Ort), ("tract", BackendKind::Tract)] {
        let e2e = match end_to_end(models(backend), seconds, 1) {
            Ok(v) => v,
            Err(e) => {
                println!("{name:<7} skipped: {e}");
                continue;
            }
        };
        let only = model_only(models(backend), seconds, &frames)?;
        let ratio = e2e["pairs_per_s"].as_f64().unwrap_or(0.0)
            / only["pairs_per_s"].as_f64().unwrap_or(f64::NAN);
        let lat = |stage: &str| {
            format!(
                "{:.1} / {:.1}",
                e2e["latency"][stage]["p50_ms"].as_f64().unwrap_or(f64::NAN),
                e2e["latency"][stage]["p99_ms"].as_f64().unwrap_or(f64::NAN)
            )
        };
        println!(
            "{name:<7} {:>12.1} {:>12.1} {:>7.2}  {:>22}  {:>22}",
            e2e["pairs_per_s"].as_f64().unwrap_or(0.0),
            only["pairs_per_s"].as_f64().unwrap_or(0.0),
            ratio,
            lat("total"),
            lat("landmark")
        );
        results.insert(name.into(), serde_json::json!({"end_to_end": e2e, "model_only": only, "ratio_end_to_end_over_model_only": ratio}));
    }
    // Scaling: several cameras through the same two model stages (ORT).
    let mut scaling = Vec::new();
    println!("cameras  pairs/s (all)  total p99 ms  peak RSS MiB");
    for cameras in [1, 2, 4] {
        let run = end_to_end(models(BackendKind::Ort), seconds, cameras)?;
        println!(
            "{cameras:>7}  {:>13.1}  {:>12.1}  {:>12.1}",
            run["pairs_per_s"].as_f64().unwrap_or(0.0),
            run["latency"]["total"]["p99_ms"]
                .as_f64()
                .unwrap_or(f64::NAN),
            run["peak_rss_mib"].as_f64().unwrap_or(f64::NAN)
        );
        scaling.push(run);
    }
    results.insert("ort_cameras".into(), serde_json::Value::Array(scaling));

    // Variants: batching across frames, and the int8 models.
    let ort = models(BackendKind::Ort);
    let batched = ModelsConfig {
        max_batch: 8,
        ..ort.clone()
    };
    println!("variant (ORT)          e2e pairs/s  model pairs/s  total p50/p99 ms");
    let mut variants = serde_json::Map::new();
    for (name, config, alone) in [
        ("lite fp32, batch 1", ort.clone(), true),
        ("lite fp32, max_batch 8", batched, false),
        ("lite int8, batch 1", int8(ort.clone()), true),
    ] {
        let e2e = end_to_end(config.clone(), seconds, 1)?;
        let only = if alone {
            model_only(config, seconds, &frames)?
        } else {
            serde_json::Value::Null
        };
        println!(
            "{name:<22} {:>12.1} {:>14.1}  {:>7.1} / {:.1}",
            rate(&e2e),
            rate(&only),
            e2e["latency"]["total"]["p50_ms"]
                .as_f64()
                .unwrap_or(f64::NAN),
            e2e["latency"]["total"]["p99_ms"]
                .as_f64()
                .unwrap_or(f64::NAN),
        );
        variants.insert(
            name.into(),
            serde_json::json!({"end_to_end": e2e, "model_only": only}),
        );
    }
    results.insert("ort_variants".into(), serde_json::Value::Object(variants));

    // Batch-size scaling of each model alone (what a GPU gains from batching).
    println!("model                       batch  images/s  peak RSS MiB");
    let mut sizes = Vec::new();
    for config in [ort.clone(), int8(ort)] {
        for name in [config.boundary.clone(), config.landmark.clone()] {
            for batch in [1, 8, 32] {
                let run = batch_scaling(&config, &name, batch, seconds / 3.0, &frames)?;
                println!(
                    "{name:<27} {batch:>5}  {:>8.1}  {:>12.1}",
                    run["images_per_s"].as_f64().unwrap_or(f64::NAN),
                    run["peak_rss_mib"].as_f64().unwrap_or(f64::NAN)
                );
                sizes.push(run);
            }
        }
    }
    results.insert("ort_batch_sizes".into(), serde_json::Value::Array(sizes));
    match python_reference(seconds) {
        Ok(python) => {
            let python_rate = python["pairs_per_s"].as_f64().unwrap_or(f64::NAN);
            let ours = results
                .get("ort")
                .and_then(|r| r["end_to_end"]["pairs_per_s"].as_f64())
                .unwrap_or(f64::NAN);
            println!(
                "python  {python_rate:>12.1}   (Pillow + numpy + onnxruntime {}, 1 thread per session, sequential; latency p50/p99 {:.1} / {:.1} ms)",
                python["onnxruntime"].as_str().unwrap_or("?"),
                python["latency_p50_ms"].as_f64().unwrap_or(f64::NAN),
                python["latency_p99_ms"].as_f64().unwrap_or(f64::NAN),
            );
            println!(
                "spectrald (ort) / python: {:.2}x pairs/s",
                ours / python_rate
            );
            results.insert(
                "python_reference".into(),
                serde_json::json!({"result": python, "ratio_spectrald_ort_over_python": ours / python_rate}),
            );
        }
        Err(e) => println!("python  skipped: {e}"),
    }
    let out = repo().join("target/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(
        out.join("replay_throughput.json"),
        serde_json::to_string_pretty(&serde_json::Value::Object(results))?,
    )?;
    println!("wrote target/bench/replay_throughput.json");
    Ok(())
}

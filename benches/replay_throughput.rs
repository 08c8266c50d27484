//! End-to-end replay throughput against model-only throughput, for ORT and tract.
//!
//!     cargo bench --bench replay_throughput [-- SECONDS]
//!
//! Sessions (built once into `target/bench/sessions` from the bundled one, replayed with its
//! rig's homography, so each visible face is also a thermal face): 0 faces per frame (a
//! background), 1 (the bundled session), 4 (its frames tiled 2 × 2).
//! For each backend, in the same process run: (1) the daemon's pipeline replays the
//! one-face session in a loop as fast as possible for SECONDS (default 10) and reports
//! pairs/s and per-stage p50/p99 latency; (2) the three models run alone on the same frames,
//! already preprocessed (detector on the visible frame; boundary, black-out, landmark on both
//! spectra's face crops as one batch, like the pipeline) for the same time. The ratio
//! end-to-end / model-only is the pipeline's cost (or, above 1, the gain from running the
//! models' stages on different cores). (1b) pairs/s with 0, 1 and 4 faces per frame, both
//! backends, and the Python reference on the same sessions.
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
use spectrald::detect::{self, DetectorConfig};
use spectrald::dmsl::{self, BLACKOUT_MARGIN, CANVAS, FaceCrop};
use spectrald::frame::Pixels;
use spectrald::geometry::BoundingBox;
use spectrald::infer::Model;
use spectrald::infer::{BackendKind, Device, ModelsConfig};
use spectrald::pipeline::{DetectorModel, Pipeline};
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

/// The ORT models config of the int8 variant: the int8 boundary model with the fp32 landmark
/// model (int8 costs the heatmap landmark model 17 % NME; models/dmsl-lite.md).
fn int8(mut config: ModelsConfig) -> ModelsConfig {
    config.boundary = "dmsl-boundary-lite-int8".into();
    config.landmark = "dmsl-landmark-lite".into();
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

/// The bundled session's rig: thermal pixel (x, y) sees visible pixel (2x + 0.5, 2y + 0.5).
const RIG: [[f64; 3]; 3] = [[2.0, 0.0, 0.5], [0.0, 2.0, 0.5], [0.0, 0.0, 1.0]];

fn fixture() -> PathBuf {
    repo().join("tests/fixtures/session-pexels")
}

type Error = Box<dyn std::error::Error>;

/// Writes a session of `frames` (visible, thermal) images with the fixture's timestamps.
fn write_session(
    dir: &std::path::Path,
    frames: impl Iterator<
        Item = (
            image::RgbImage,
            image::ImageBuffer<image::Luma<u16>, Vec<u16>>,
        ),
    >,
) -> Result<(), Error> {
    std::fs::create_dir_all(dir.join("visible"))?;
    std::fs::create_dir_all(dir.join("thermal"))?;
    let mut manifest = String::from("spectrum,timestamp_us,file\n");
    for (i, (visible, thermal)) in frames.enumerate() {
        let t = i as i64 * 83_417;
        let (v, th) = (format!("visible/{i:06}.png"), format!("thermal/{i:06}.png"));
        visible.save(dir.join(&v))?;
        thermal.save(dir.join(&th))?;
        manifest += &format!("visible,{t},{v}\nthermal,{},{th}\n", t + 4000);
    }
    std::fs::write(dir.join("manifest.csv"), manifest)?;
    std::fs::copy(
        fixture().join("radiometry.json"),
        dir.join("radiometry.json"),
    )?;
    Ok(())
}

/// The sessions with 0, 1 and 4 faces per frame (see the module doc).
fn sessions() -> Result<Vec<(usize, PathBuf)>, Error> {
    let root = repo().join("target/bench/sessions");
    let fixture_frames: Vec<_> = (0..24)
        .map(|i| -> Result<_, Error> {
            let visible = image::open(fixture().join(format!("visible/{i:06}.jpg")))?.to_rgb8();
            let thermal = image::open(fixture().join(format!("thermal/{i:06}.png")))?.to_luma16();
            Ok((visible, thermal))
        })
        .collect::<Result<_, _>>()?;
    let four = root.join("faces-4");
    if !four.join("manifest.csv").is_file() {
        write_session(
            &four,
            (0..24).map(|i| {
                let tile = |k: usize| &fixture_frames[(i + 6 * k) % 24];
                let mut v = image::RgbImage::new(640, 480);
                let mut t = image::ImageBuffer::new(320, 240);
                for k in 0..4 {
                    let (x, y) = ((k % 2) as i64, (k / 2) as i64);
                    image::imageops::replace(&mut v, &tile(k).0, x * 320, y * 240);
                    image::imageops::replace(&mut t, &tile(k).1, x * 160, y * 120);
                }
                (v, t)
            }),
        )?;
    }
    let none = root.join("faces-0");
    if !none.join("manifest.csv").is_file() {
        // The wall behind the face (the frames' top-left corner), scaled up: no face.
        write_session(
            &none,
            fixture_frames.iter().map(|(v, t)| {
                let wall = image::imageops::crop_imm(v, 0, 0, 64, 48).to_image();
                let wall =
                    image::imageops::resize(&wall, 320, 240, image::imageops::FilterType::Triangle);
                (wall, t.clone())
            }),
        )?;
    }
    Ok(vec![(0, none), (1, fixture()), (4, four)])
}

/// `cameras` replays of `session` at once, as fast as possible, for `seconds`.
fn end_to_end(
    models: ModelsConfig,
    seconds: f64,
    cameras: usize,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    end_to_end_on(&fixture(), models, seconds, cameras)
}

fn end_to_end_on(
    session: &std::path::Path,
    models: ModelsConfig,
    seconds: f64,
    cameras: usize,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let config = Config {
        models,
        cameras: (0..cameras)
            .map(|i| {
                let mut camera =
                    CameraConfig::replay(&format!("bench-{i}"), session.to_owned(), 0.0, true);
                camera.homography = Some(RIG);
                camera
            })
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
        .iter()
        .map(|s| s.as_str())
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

/// One pair, ready for the models: the detector's input for the visible frame, and the
/// visible and thermal face crops (the face the detector finds, the thermal one through the
/// rig), as the pipeline makes them.
struct Prepared {
    detector_input: Vec<f32>,
    crops: Vec<f32>,
}

fn prepare(config: &ModelsConfig) -> Result<Vec<Prepared>, Error> {
    let detector_config = DetectorConfig::default();
    let mut detector = DetectorModel::load(&config.detector, config, &detector_config)?;
    let names: Vec<&str> = detector
        .model
        .manifest
        .outputs
        .iter()
        .map(|o| o.name.as_str())
        .collect();
    let heads = detect::Heads::find(&names)?;
    let to_thermal = spectrald::registration::Homography::new(RIG)?.inverse();
    let mut resizer = fast_image_resize::Resizer::new();
    let mut out = Vec::new();
    let entries = spectrald::source::replay::read_manifest(&fixture())?;
    for pair in entries.chunks_exact(2) {
        let decoded = |i: usize| {
            spectrald::source::replay::decode(&fixture().join(&pair[i].file), pair[i].spectrum)
        };
        let ((vw, vh, visible), (tw, th, thermal)) = (decoded(0)?, decoded(1)?);
        let (Pixels::Rgb8(rgb), Pixels::Gray16(counts)) = (&visible, &thermal) else {
            return Err("the fixture pairs visible then thermal".into());
        };
        let (input, scale) = detect::rgb_input(
            rgb,
            vw,
            vh,
            (detector_config.input_width, detector_config.input_height),
            detector_config.model_size(),
            &mut resizer,
        )?;
        let outputs = detector.model.infer(&input, 1)?;
        let views: Vec<&[f32]> = outputs.iter().map(Vec::as_slice).collect();
        let (w, h) = detector_config.model_size();
        let (faces, _) = detect::decode(&views, &heads, w, h, scale, &detector_config);
        let face = faces.first().ok_or("no face in a fixture frame")?;
        let gray_visible: Vec<f32> = dmsl::gray_from_rgb8(rgb).into_iter().map(|p| p.0).collect();
        let gray_thermal: Vec<f32> = dmsl::gray_from_thermal(counts, Default::default(), None)?
            .into_iter()
            .map(|p| p.0)
            .collect();
        let eyes = |k: &[[f32; 2]]| Some((k[0], k[1]));
        let visible_crop = FaceCrop::of_detection(face.face_box, eyes(&face.keypoints), true);
        let keypoints = to_thermal.map_points(&face.keypoints);
        let thermal_crop =
            FaceCrop::of_detection(to_thermal.map_box(face.face_box), eyes(&keypoints), true);
        let mut crops = visible_crop.sample(&gray_visible, vw as usize, vh as usize);
        crops.extend(thermal_crop.sample(&gray_thermal, tw as usize, th as usize));
        out.push(Prepared {
            detector_input: input,
            crops,
        });
    }
    detector.model.infer(&out[0].detector_input, 1)?;
    Ok(out)
}

/// The face crops alone, one canvas each (for the batch-size runs).
fn canvases(prepared: &[Prepared]) -> Vec<Vec<f32>> {
    prepared
        .iter()
        .flat_map(|p| p.crops.chunks_exact(CANVAS * CANVAS).map(<[f32]>::to_vec))
        .collect()
}

fn model_only(
    config: ModelsConfig,
    seconds: f64,
    prepared: &[Prepared],
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let mut detector = DetectorModel::load(&config.detector, &config, &DetectorConfig::default())?;
    let mut boundary = Model::load(&config.dir, &config.boundary, &config)?;
    let mut landmark = Model::load(&config.dir, &config.landmark, &config)?;
    let started = Instant::now();
    let mut pairs = 0usize;
    let mut input = Vec::with_capacity(2 * CANVAS * CANVAS);
    while started.elapsed().as_secs_f64() < seconds {
        let pair = &prepared[pairs % prepared.len()];
        detector.model.infer(&pair.detector_input, 1)?;
        input.clear();
        input.extend_from_slice(&pair.crops);
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

/// Runs the Python reference pipeline on `session` for `seconds`; its JSON summary.
fn python_reference(
    session: &std::path::Path,
    seconds: f64,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let python = std::env::var_os("SPECTRALD_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".cache/venv/bin/python"));
    let out = std::process::Command::new(&python)
        .arg(repo().join("bench/replay_reference.py"))
        .arg("--models")
        .arg(repo().join("models"))
        .arg("--session")
        .arg(session)
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
    let prepared = prepare(&models(BackendKind::Ort))?;
    let frames = canvases(&prepared);
    let sessions = sessions()?;
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
        let only = model_only(models(backend), seconds, &prepared)?;
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
    // Faces per frame: the per-face models run once per face and spectrum.
    println!("faces/frame  ort pairs/s  tract pairs/s  python pairs/s  ort / python");
    let mut by_faces = Vec::new();
    for (faces, session) in &sessions {
        let ort = end_to_end_on(session, models(BackendKind::Ort), seconds, 1)?;
        let tract = end_to_end_on(session, models(BackendKind::Tract), seconds, 1)
            .unwrap_or(serde_json::Value::Null);
        let python = python_reference(session, seconds).unwrap_or(serde_json::Value::Null);
        println!(
            "{faces:>11}  {:>11.1}  {:>13.1}  {:>14.1}  {:>12.2}",
            rate(&ort),
            rate(&tract),
            rate(&python),
            rate(&ort) / rate(&python)
        );
        by_faces.push(serde_json::json!({"faces_per_frame": faces, "ort": ort, "tract": tract, "python": python}));
    }
    results.insert("faces_per_frame".into(), serde_json::Value::Array(by_faces));
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
            model_only(config, seconds, &prepared)?
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
    match python_reference(&fixture(), seconds) {
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

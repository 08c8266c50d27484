//! Scale-out on NATS JetStream, measured on this machine (a real nats-server on loopback):
//!
//!     cargo bench --bench nats_scaleout [-- RECORDS]
//!
//! (1) Sink throughput in the same run: RECORDS landmark records (default 20 000; shaped
//! like the daemon's, one face with 68 points per spectrum, about 3 KB each) through the
//! JSONL sink into a file, then through the NATS sink with every publish acknowledged by
//! the stream (`max_inflight` 1, the default that keeps order across failures, and 32) —
//! records/s, the time to the last flush or ack included.
//! (2) Offline jobs: 60 scenes (256x256 crops of the bundled scene, tiled at stride 32)
//! through `offline classify` locally, then `offline submit` + 1, 2 and 3 `offline worker`
//! processes until `offline results --follow` has all 60 — inputs/s and the ratio to local.
//! Results: a table on stdout and `target/bench/nats_scaleout.json`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use spectrald::frame::Frame;
use spectrald::nats::{NatsConfig, NatsSink};
use spectrald::publish::jsonl::JsonlSink;
use spectrald::publish::{Outgoing, Sink};
use spectrald::telemetry::Events;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> BenchResult<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A nats-server with JetStream in `dir`, killed on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(dir: &Path) -> BenchResult<(Server, String)> {
    let port = free_port()?;
    let config = dir.join("nats.conf");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}\njetstream {{ store_dir: {:?} }}\n",
            dir.join("js")
        ),
    )?;
    let binary = repo().join(".cache/venv/bin/nats-server");
    let child = Command::new(if binary.exists() {
        binary
    } else {
        "nats-server".into()
    })
    .arg("-c")
    .arg(&config)
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .map_err(|e| format!("nats-server (scripts/setup.sh installs it): {e}"))?;
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if started.elapsed() > Duration::from_secs(15) {
            return Err("nats-server did not start".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((Server(child), format!("nats://127.0.0.1:{port}")))
}

/// A record shaped like the daemon's: one face per spectrum, 68 points each.
fn record(sequence: u64) -> String {
    let face = |scale: f64| {
        serde_json::json!({
            "track_id": 0, "score": 0.93,
            "box": {"x": 111.5 * scale, "y": 33.9 * scale, "w": 143.2 * scale, "h": 198.8 * scale},
            "landmarks": (0..68).map(|i| [111.0 + i as f64 * 1.37, 123.0 + i as f64 * 0.91]).collect::<Vec<_>>(),
            "boundary_box": {"x": 104.1, "y": 30.2, "w": 150.3, "h": 204.0},
        })
    };
    serde_json::json!({
        "schema": "spectrald.landmarks/v2", "camera": "kiosk-1", "sequence": sequence,
        "timestamp_ns": 1_764_000_000_000_000_000u64 + sequence * 33_000_000,
        "spectra": {"visible": {"faces": [face(1.0)]}, "thermal": {"faces": [face(0.5)], "face_temperature_c": 34.6}},
        "models": {"boundary": {"name": "dmsl-boundary-lite", "sha256": "00fab3e16090"},
                   "landmark": {"name": "dmsl-landmark-lite", "sha256": "99e503bc8eea"}},
        "latency_ms": {"total": 62.0},
    })
    .to_string()
}

/// Records/s through `sink`, the final flush included.
fn sink_rate(sink: &mut dyn Sink, lines: &[String]) -> BenchResult<f64> {
    let camera: Arc<str> = Arc::from("kiosk-1");
    let started = Instant::now();
    for (i, line) in lines.iter().enumerate() {
        let frame = Frame::new(camera.clone(), i as u64, None, None);
        sink.publish(&Outgoing {
            frame: &frame,
            line,
        })?;
    }
    sink.flush()?;
    Ok(lines.len() as f64 / started.elapsed().as_secs_f64())
}

fn nats_rate(url: &str, stream: &str, window: usize, lines: &[String]) -> BenchResult<f64> {
    let config = NatsConfig {
        url: Some(url.to_owned()),
        rig: Some("bench".into()),
        stream: stream.into(),
        subject_prefix: stream.to_lowercase(),
        max_inflight: window,
        health_bucket: String::new(),
        shutdown_timeout_ms: 120_000,
        ..Default::default()
    };
    let events = Arc::new(Events::new());
    let mut sink = NatsSink::start(&config, events.clone(), Arc::new(AtomicBool::new(false)))?
        .ok_or("no NATS sink")?;
    let rate = sink_rate(&mut sink, lines)?;
    let acked = events.total("nats_acked", None);
    if acked < lines.len() as u64 {
        return Err(format!("only {acked} of {} records acknowledged", lines.len()).into());
    }
    Ok(rate)
}

fn spectrald() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_spectrald"));
    c.current_dir(repo()).env("NO_COLOR", "1");
    c
}

/// 60 crops of the scene scaled to 1024x768: 256x256 each, at different places.
fn scenes(dir: &Path) -> BenchResult<Vec<String>> {
    let scene = image::open(repo().join("tests/fixtures/geotiff/rgbn.tif"))?.into_rgb8();
    let big = image::imageops::resize(&scene, 1024, 768, image::imageops::FilterType::Triangle);
    let mut out = Vec::new();
    for i in 0..60u32 {
        let (x, y) = ((i * 97) % (1024 - 256), (i * 61) % (768 - 256));
        let path = dir.join(format!("scene-{i:02}.png"));
        image::imageops::crop_imm(&big, x, y, 256, 256)
            .to_image()
            .save(&path)?;
        out.push(path.display().to_string());
    }
    Ok(out)
}

fn run_ok(command: &mut Command, what: &str) -> BenchResult<()> {
    let out = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()?;
    if !out.status.success() {
        return Err(format!("{what}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(())
}

fn local_rate(inputs: &[String], out: &Path) -> BenchResult<f64> {
    let started = Instant::now();
    run_ok(
        spectrald()
            .args([
                "offline",
                "classify",
                "--model",
                "satellite-eurosat-lite0",
                "--stride",
                "32",
                "--out",
            ])
            .arg(out)
            .args(inputs),
        "offline classify",
    )?;
    Ok(inputs.len() as f64 / started.elapsed().as_secs_f64())
}

/// Inputs/s from submit to the last result, with `workers` workers waiting beforehand.
fn distributed_rate(
    url: &str,
    inputs: &[String],
    workers: usize,
    dir: &Path,
    idle_exit_s: u64,
) -> BenchResult<f64> {
    let idle = idle_exit_s.to_string();
    let batch = format!("bench{workers}");
    let mut children = Vec::new();
    for w in 0..workers {
        let out = dir.join(format!("{batch}-w{w}"));
        children.push(
            spectrald()
                .args([
                    "offline",
                    "worker",
                    "--nats",
                    url,
                    "--idle-exit-s",
                    &idle,
                    "--out",
                ])
                .arg(&out)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?,
        );
    }
    std::thread::sleep(Duration::from_secs(1)); // connections up (workers exit when idle)
    let started = Instant::now();
    run_ok(
        spectrald()
            .args([
                "offline",
                "submit",
                "--nats",
                url,
                "--batch-id",
                &batch,
                "--stride",
                "32",
            ])
            .arg("satellite-eurosat-lite0")
            .args(inputs),
        "offline submit",
    )?;
    run_ok(
        spectrald().args([
            "offline",
            "results",
            "--nats",
            url,
            "--batch-id",
            &batch,
            "--follow",
        ]),
        "offline results",
    )?;
    let rate = inputs.len() as f64 / started.elapsed().as_secs_f64();
    for mut c in children {
        c.wait()?;
    }
    Ok(rate)
}

fn main() -> BenchResult<()> {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this too, without it:
    // then a small smoke run proves the harness works and writes no figures.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke = !args.iter().any(|a| a == "--bench");
    let records: usize = args
        .iter()
        .find_map(|a| a.parse().ok())
        .unwrap_or(if smoke { 1_000 } else { 20_000 });
    let dir = tempfile::tempdir()?;
    let (_server, url) = start_server(dir.path())?;
    let lines: Vec<String> = (0..records as u64).map(record).collect();
    let bytes = lines.iter().map(String::len).sum::<usize>() / lines.len();

    let events = Arc::new(Events::new());
    let mut jsonl = JsonlSink::open(
        &dir.path().join("out.jsonl").display().to_string(),
        events,
        Arc::new(AtomicBool::new(false)),
        Duration::from_secs(5),
    )?;
    let jsonl_rate = sink_rate(&mut jsonl, &lines)?;
    drop(jsonl);
    let nats1 = nats_rate(&url, "BENCH1", 1, &lines)?;
    let nats32 = nats_rate(&url, "BENCH32", 32, &lines)?;
    println!("sinks: {records} records of {bytes} bytes, one nats-server on loopback");
    println!("  jsonl (file)              {jsonl_rate:>10.0} records/s");
    println!(
        "  nats, max_inflight = 1    {nats1:>10.0} records/s  ({:.4}x jsonl)",
        nats1 / jsonl_rate
    );
    println!(
        "  nats, max_inflight = 32   {nats32:>10.0} records/s  ({:.4}x jsonl)",
        nats32 / jsonl_rate
    );

    let mut inputs = scenes(dir.path())?;
    if smoke {
        inputs.truncate(6);
    }
    let local = local_rate(&inputs, &dir.path().join("local"))?;
    println!(
        "offline: {} scenes 256x256, classify at stride 32 (49 tiles each)",
        inputs.len()
    );
    println!("  local offline classify    {local:>10.2} inputs/s");
    let mut distributed = Vec::new();
    for workers in 1..=if smoke { 1 } else { 3 } {
        let rate = distributed_rate(
            &url,
            &inputs,
            workers,
            dir.path(),
            if smoke { 3 } else { 10 },
        )?;
        println!(
            "  {workers} worker(s) over NATS     {rate:>10.2} inputs/s  ({:.2}x local)",
            rate / local
        );
        distributed.push(serde_json::json!({"workers": workers, "inputs_per_s": rate, "ratio_to_local": rate / local}));
    }
    if smoke {
        return Ok(());
    }
    let report = serde_json::json!({
        "records": records, "record_bytes": bytes,
        "jsonl_records_per_s": jsonl_rate,
        "nats_records_per_s": {"max_inflight_1": nats1, "max_inflight_32": nats32},
        "offline_local_inputs_per_s": local,
        "offline_distributed": distributed,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
    });
    let out = repo().join("target/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(
        out.join("nats_scaleout.json"),
        serde_json::to_string_pretty(&report)? + "\n",
    )?;
    Ok(())
}

//! Fault injection against the real binary (see RELIABILITY.md): a full disk that comes
//! back, a full disk at shutdown, a slow reader, a NaN reaching a model, a wedged stage
//! under the systemd watchdog, and `drop_oldest` under a consumer ten times slower than
//! the source. Each checks what a user relies on: every pair accounted for exactly once,
//! the counters, and the one-line messages.
use crate::common;

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::*;
use spectrald::pipeline::Pipeline;
use spectrald::queue::{QueueConfig, QueuesConfig, WhenFull};
use spectrald::source::CameraConfig;

/// The bundled session has 24 pairs.
const PAIRS: u64 = 24;

/// A config replaying the bundled session once, as fast as possible, with the fast
/// random-weight models; `extra` is appended.
fn config(dir: &Path, jsonl: &str, extra: &str) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!(
            "[models]\ndir = {:?}\nboundary = \"dmsl-boundary-tiny-random\"\nlandmark = \"dmsl-landmark-tiny-random\"\n\n[[cameras]]\nid = \"kiosk\"\nsource = {{ kind = \"replay\", path = {:?}, speed = 0.0 }}\nhomography = [[2.0, 0.0, 0.5], [0.0, 2.0, 0.5], [0.0, 0.0, 1.0]]\n\n[output]\njsonl = {jsonl:?}\n{extra}\n",
            repo().join("tests/fixtures/models"),
            fixture_session()
        ),
    )
    .expect("config");
    path
}

/// `spectrald run --config DIR/config.toml`, optionally under `prlimit ARGS --`; stderr to
/// DIR/stderr.log (where `Daemon::log` reads it). No HTTP: the daemon's port is 0.
fn spawn(
    dir: tempfile::TempDir,
    prlimit: Option<&str>,
    env: &[(&str, &str)],
    stdout: Stdio,
) -> Daemon {
    let binary = env!("CARGO_BIN_EXE_spectrald");
    let mut command = match prlimit {
        Some(limits) => {
            let mut c = Command::new("prlimit");
            c.arg(limits).arg("--").arg(binary);
            c
        }
        None => Command::new(binary),
    };
    command
        .args(["run", "--config"])
        .arg(dir.path().join("config.toml"))
        .current_dir(dir.path())
        .env("SPECTRALD_LOG", "info,ort=warn")
        .stdout(stdout)
        .stderr(std::fs::File::create(dir.path().join("stderr.log")).expect("log"));
    for (k, v) in env {
        command.env(k, v);
    }
    let child = command.spawn().expect("spectrald starts");
    Daemon {
        child,
        dir,
        port: 0,
    }
}

fn wait_for_log(daemon: &Daemon, needle: &str, timeout: Duration) {
    let started = Instant::now();
    while !daemon.log().contains(needle) {
        assert!(
            started.elapsed() < timeout,
            "no {needle:?} in the log within {timeout:?}:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn summary(daemon: &Daemon) -> String {
    let log = daemon.log();
    log.lines()
        .find(|l| l.contains("summary:"))
        .unwrap_or_else(|| panic!("summary line in:\n{log}"))
        .to_owned()
}

fn parse_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

#[test]
fn full_disk_holds_the_records_and_resumes_without_loss_when_space_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    config(dir.path(), "out.jsonl", "");
    // A file size limit stands in for a full disk: writes past it fail (EFBIG), like
    // ENOSPC, and raising it is "space freed". Soft limit only, so it can be raised again.
    let limit = 20_000u64;
    let mut daemon = spawn(
        dir,
        Some(&format!("--fsize={limit}:unlimited")),
        &[],
        Stdio::null(),
    );
    wait_for_log(&daemon, "holding the records", Duration::from_secs(60));
    let out = daemon.path("out.jsonl");
    let size = || std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    let held_at = size();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        daemon.child.try_wait().expect("wait").is_none(),
        "the daemon waits, it does not exit:\n{}",
        daemon.log()
    );
    assert_eq!(size(), held_at, "nothing more was written while full");
    assert!(held_at <= limit);
    let freed = Command::new("prlimit")
        .args([
            "--pid",
            &daemon.child.id().to_string(),
            "--fsize=unlimited:unlimited",
        ])
        .status()
        .expect("prlimit");
    assert!(freed.success());
    assert_eq!(daemon.wait_exit(Duration::from_secs(60)), 0);
    let records = parse_lines(&std::fs::read_to_string(&out).expect("output"));
    assert_eq!(
        sequences(&records),
        (0..PAIRS).collect::<Vec<_>>(),
        "every pair once, no line cut in half"
    );
    let log = daemon.log();
    assert!(log.contains("writing again after"), "{log}");
    let summary = summary(&daemon);
    assert!(
        summary.contains(&format!("published {PAIRS}, dropped 0"))
            && summary.contains("not written 0"),
        "{summary}"
    );
}

#[test]
fn full_disk_at_shutdown_is_counted_and_the_exit_code_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    // /dev/full answers every write with ENOSPC.
    config(dir.path(), "/dev/full", "shutdown_timeout_ms = 1000\n");
    let mut daemon = spawn(dir, None, &[], Stdio::null());
    wait_for_log(&daemon, "No space left on device", Duration::from_secs(60));
    let message = daemon.log();
    let line = message
        .lines()
        .find(|l| l.contains("No space left on device"))
        .expect("error line");
    assert!(
        line.contains("/dev/full") && line.contains("free space") && line.contains("retrying"),
        "names the file, the fix and what happens: {line}"
    );
    assert_eq!(daemon.stop(), 1);
    let log = daemon.log();
    assert!(
        log.contains("shutting down while the output still fails"),
        "{log}"
    );
    let summary = summary(&daemon);
    let published = number_after(&summary, "published ");
    assert!(published >= 1, "{summary}");
    assert_eq!(
        number_after(&summary, "not written "),
        published,
        "every record the sink could not write is counted: {summary}"
    );
}

fn number_after(text: &str, key: &str) -> u64 {
    text.split(key)
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {key:?} number in {text}"))
}

#[test]
fn slow_stdout_reader_back_pressures_the_pipeline_without_loss() {
    let dir = tempfile::tempdir().expect("tempdir");
    config(dir.path(), "-", "");
    let mut daemon = spawn(dir, None, &[], Stdio::piped());
    let stdout = daemon.child.stdout.take().expect("stdout");
    // 24 records of ~8 KB are more than a pipe holds (64 KiB): the sink must wait for us.
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        lines.push(line.expect("line"));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)), 0);
    let records = parse_lines(&lines.join("\n"));
    assert_eq!(sequences(&records), (0..PAIRS).collect::<Vec<_>>());
    let summary = summary(&daemon);
    assert!(summary.contains("dropped 0"), "{summary}");
}

#[test]
fn nan_reaching_a_model_fails_that_pair_only_and_it_is_still_published() {
    nan_on_pair_five(None);
}

/// In a batch the NaN poisons one call of several frames; the stage runs them again one by
/// one, so still only pair 5 fails.
#[test]
fn nan_in_a_batch_fails_that_pair_only() {
    let log = nan_on_pair_five(Some("max_batch = 8\nmax_wait_ms = 500\n"));
    assert!(
        log.contains("running its frames one by one"),
        "the batch holding pair 5 was retried frame by frame:\n{log}"
    );
}

/// Replays with a NaN injected into the boundary model's input of pair 5; `batching` goes
/// into `[models]`. Returns the daemon's log.
fn nan_on_pair_five(batching: Option<&str>) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = config(dir.path(), "out.jsonl", "");
    if let Some(batching) = batching {
        let text = std::fs::read_to_string(&path).expect("config");
        std::fs::write(
            &path,
            text.replacen("[models]\n", &format!("[models]\n{batching}"), 1),
        )
        .expect("config");
    }
    let mut daemon = spawn(
        dir,
        None,
        &[
            ("SPECTRALD_FAULTS", "nan_input:boundary@5"),
            (
                "SPECTRALD_LOG",
                "info,ort=warn,spectrald::pipeline::batch=debug",
            ),
        ],
        Stdio::null(),
    );
    assert_eq!(daemon.wait_exit(Duration::from_secs(60)), 0);
    let records = parse_lines(&std::fs::read_to_string(daemon.path("out.jsonl")).expect("output"));
    assert_eq!(sequences(&records), (0..PAIRS).collect::<Vec<_>>());
    for record in &records {
        for spectrum in ["visible", "thermal"] {
            let result = &record["spectra"][spectrum];
            let error = result["error"].as_str();
            if record["sequence"] == 5 {
                let error = error.unwrap_or_default();
                assert!(
                    error.contains("inference_failed") && error.contains("not finite"),
                    "{spectrum}: {error}"
                );
                assert_eq!(
                    result["faces"],
                    serde_json::json!([]),
                    "no landmarks from a failed run"
                );
            } else {
                assert_eq!(error, None, "sequence {}: {result}", record["sequence"]);
                // The session shows one face; the thermal one is registered from it.
                assert!(result["faces"][0]["landmarks"].is_array(), "{result}");
            }
        }
    }
    let summary = summary(&daemon);
    assert!(summary.contains("inference failed 1"), "{summary}");
    daemon.log()
}

#[test]
fn wedged_stage_stops_the_watchdog_pings_until_it_moves_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = config(dir.path(), "out.jsonl", "[service]\nstage_stuck_ms = 500\n");
    let looping = std::fs::read_to_string(&path)
        .expect("config")
        .replace("speed = 0.0 }", "speed = 1.0, loop = true }");
    std::fs::write(&path, looping).expect("config");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("notify socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let mut daemon = spawn(
        dir,
        None,
        &[
            ("NOTIFY_SOCKET", socket_path.to_str().expect("utf-8")),
            ("WATCHDOG_USEC", "400000"),
            ("SPECTRALD_FAULTS", "stall:landmark@3:3000"),
        ],
        Stdio::null(),
    );
    let started = Instant::now();
    let mut pings: Vec<Duration> = Vec::new();
    let mut buf = [0u8; 4096];
    // The session loops at its recorded pace: frame 3 comes within the first second.
    while started.elapsed() < Duration::from_secs(7) {
        assert!(
            daemon.child.try_wait().expect("wait").is_none(),
            "{}",
            daemon.log()
        );
        if let Ok(n) = socket.recv(&mut buf)
            && String::from_utf8_lossy(&buf[..n]).contains("WATCHDOG=1")
        {
            pings.push(started.elapsed());
        }
    }
    assert_eq!(daemon.stop(), 0);
    // Pings every 200 ms, but none for the ~2.5 s the landmark stage sat on frame 3 past
    // the 500 ms limit; then they came back.
    let longest_gap = pings
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    assert!(
        longest_gap >= Duration::from_millis(2000),
        "pings withheld while wedged: {pings:?}"
    );
    let gap_end = pings
        .windows(2)
        .find(|w| w[1] - w[0] == longest_gap)
        .map(|w| w[1])
        .unwrap_or_default();
    assert!(
        pings.iter().any(|p| *p > gap_end),
        "pings resume after the stage moves on: {pings:?}"
    );
    let log = daemon.log();
    let line = log
        .lines()
        .find(|l| l.contains("stage stuck on one frame"))
        .unwrap_or_else(|| panic!("wedge logged:\n{log}"));
    assert!(line.contains("landmark"), "{line}");
    let records = parse_lines(&std::fs::read_to_string(daemon.path("out.jsonl")).expect("output"));
    assert!(records.len() > 3, "went on after the stall");
    assert_eq!(
        sequences(&records),
        (0..records.len() as u64).collect::<Vec<_>>()
    );
}

#[test]
fn drop_oldest_keeps_latency_bounded_under_a_consumer_ten_times_slower() {
    // The session replayed at 4x its recorded pace (~48 pairs/s, one every ~21 ms),
    // looping, behind a sink that takes 210 ms per record.
    let mut config = replay_config(&fixture_session(), random_models());
    config.cameras = vec![CameraConfig::replay("cam", fixture_session(), 4.0, true)];
    config.queues = QueuesConfig::uniform(QueueConfig {
        capacity: 1,
        when_full: WhenFull::DropOldest,
    });
    let delay = Duration::from_millis(210);
    let sink = MemorySink {
        delay,
        ..Default::default()
    };
    let events = Arc::new(spectrald::telemetry::Events::new());
    let stop = Arc::new(AtomicBool::new(false));
    let pipeline = Pipeline::start(
        &config,
        vec![("memory".to_owned(), Box::new(sink.clone()))],
        events.clone(),
        stop.clone(),
    )
    .expect("pipeline starts");
    std::thread::sleep(Duration::from_secs(8));
    stop.store(true, Ordering::Relaxed);
    let summary = pipeline.wait();
    let records = sink.records();
    // Latency from reading a frame to publishing it is bounded by what the queues hold
    // (one frame in each of the seven queues, plus the one at each stage), never by how
    // long the run has gone on: without dropping it would grow by ~190 ms per record.
    let (_, p99) = summary.latency.percentiles("total").expect("latencies");
    let bound = 16.0 * delay.as_millis() as f64;
    assert!(
        p99 < bound,
        "p99 {p99:.0} ms over {} records; bound {bound} ms",
        records.len()
    );
    assert!(records.len() >= 10, "published {}", records.len());
    // The source kept its pace (it is not held back as `block` would hold a file source):
    // 8 s at ~96 images/s, with a wide margin for a busy machine.
    assert!(summary.frames_in >= 300, "{}", summary.line());
    // Every image read is accounted for exactly: published, or counted as dropped.
    let images_published: u64 = records
        .iter()
        .map(|r| r["spectra"].as_object().map_or(0, |m| m.len() as u64))
        .sum();
    let dropped: u64 = summary.dropped.values().sum();
    assert!(dropped > 0, "{summary:?}");
    assert_eq!(
        images_published + dropped,
        summary.frames_in,
        "{}",
        summary.line()
    );
}

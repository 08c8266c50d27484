//! `offline submit | worker | results` against a real nats-server: three workers share 60
//! inputs, one is SIGKILLed in the middle of a job, and every input still has exactly one
//! result, the same line the local command prints; an input too large for the server's
//! store fails alone, with a line; a job with an option the worker does not know fails
//! with a line instead of running another analysis.

use crate::common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::nats::{Cluster, edit_newest_message, stream_messages};
use common::run_offline as offline;
use serde_json::Value;

const SAT: &str = "satellite-eurosat-lite0";

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// 58 patches cut from the fixture scene and, at positions 20 and 40, two larger scenes
/// (tiled at stride 32: slow enough to be killed in the middle of).
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let scene = image::open(common::repo().join("tests/fixtures/geotiff/rgbn.tif"))
        .expect("scene")
        .into_rgb8();
    let big = image::imageops::resize(&scene, 2048, 1536, image::imageops::FilterType::Triangle);
    let mut paths = Vec::new();
    for i in 0..60u32 {
        let path = dir.join(format!("in-{i:02}.png"));
        match i {
            20 => big
                .save(dir.join("big-a.png"))
                .map(|_| dir.join("big-a.png")),
            40 => image::imageops::flip_horizontal(&big)
                .save(dir.join("big-b.png"))
                .map(|_| dir.join("big-b.png")),
            _ => {
                let (x, y) = (
                    (i * 37) % (scene.width() - 64),
                    (i * 53) % (scene.height() - 64),
                );
                image::imageops::crop_imm(&scene, x, y, 64, 64)
                    .to_image()
                    .save(&path)
                    .map(|_| path)
            }
        }
        .map(|p| paths.push(p))
        .expect("write input");
    }
    paths
}

/// A worker that exits after `idle_s` seconds without a job.
fn worker(url: &str, out: &Path, log: &Path, idle_s: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_spectrald"))
        .args([
            "offline",
            "worker",
            "--nats",
            url,
            "--ack-wait-s",
            "3",
            "--idle-exit-s",
            idle_s,
        ])
        .arg("--out")
        .arg(out)
        .env("NO_COLOR", "1")
        .current_dir(common::repo())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log"))
        .spawn()
        .expect("start worker")
}

/// One worker takes every queued job and exits once idle; then `offline results` for
/// `batch` (the newest batch when `None`).
fn work_off_then_results(
    url: &str,
    dir: &Path,
    log: &str,
    batch: Option<&str>,
) -> (i32, Vec<Value>, String) {
    let mut w = worker(url, &dir.join("w"), &dir.join(log), "3");
    assert!(w.wait().expect("worker exits when idle").success());
    let mut args = vec!["results", "--nats", url];
    if let Some(batch) = batch {
        args.extend(["--batch-id", batch]);
    }
    offline_within(&args, Duration::from_secs(30))
}

/// `spectrald offline ARGS`, killed (and failed) after `limit`.
fn offline_within(args: &[&str], limit: Duration) -> (i32, Vec<Value>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_spectrald"))
        .arg("offline")
        .args(args)
        .current_dir(common::repo())
        .stdout(std::fs::File::create(&out).expect("out"))
        .stderr(std::fs::File::create(&err).expect("err"))
        .spawn()
        .expect("run spectrald");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!(
                "spectrald offline {args:?} still running after {limit:?}: {}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let lines = std::fs::read_to_string(&out)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    (
        status.code().unwrap_or(-1),
        lines,
        std::fs::read_to_string(&err).unwrap_or_default(),
    )
}

/// A result line without what differs between runs and machines (time taken, where the
/// files went, whether a store had it).
fn comparable(line: &Value) -> Value {
    let mut line = line.clone();
    if let Some(map) = line.as_object_mut() {
        for key in ["ms", "outputs", "from_store"] {
            map.remove(key);
        }
    }
    line
}

#[test]
fn three_workers_one_killed_mid_job_give_each_input_exactly_one_result() {
    let cluster = Cluster::start(1);
    let url = cluster.urls();
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = inputs(dir.path());
    let names: Vec<String> = paths.iter().map(|p| s(p)).collect();
    let args = |head: &[&str]| -> Vec<String> {
        head.iter()
            .map(|a| a.to_string())
            .chain(names.iter().cloned())
            .collect()
    };

    let local_out = dir.path().join("local");
    let local_args = args(&[
        "classify",
        "--model",
        SAT,
        "--stride",
        "32",
        "--out",
        &s(&local_out),
    ]);
    let (code, local, stderr) = offline(&local_args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!((code, local.len()), (0, 60), "{stderr}");

    let submit_args = args(&[
        "submit",
        "--nats",
        &url,
        "--batch-id",
        "t1",
        "--stride",
        "32",
        SAT,
    ]);
    let (code, _, stderr) = offline(&submit_args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("batch t1: 60 jobs"), "{stderr}");

    let logs: Vec<PathBuf> = (0..3)
        .map(|i| dir.path().join(format!("w{i}.log")))
        .collect();
    let mut workers: Vec<Child> = (0..3)
        .map(|i| worker(&url, &dir.path().join(format!("w{i}")), &logs[i], "10"))
        .collect();
    // Kill whichever worker starts on a large scene first, while it works on it.
    let started = Instant::now();
    let (victim, job) = 'wait: loop {
        for (i, log) in logs.iter().enumerate() {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if let Some(line) = text
                .lines()
                .find(|l| l.contains("working on it") && l.contains("big-"))
            {
                break 'wait (i, line.to_owned());
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no worker took a large scene"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    workers[victim].kill().expect("SIGKILL");
    let _ = workers[victim].wait();
    let job_id = job
        .split("job=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("job id in the log line")
        .to_owned();
    let victim_log = std::fs::read_to_string(&logs[victim]).unwrap_or_default();
    assert!(
        !victim_log
            .lines()
            .any(|l| l.contains(" done ") && l.contains(&format!("job={job_id} "))),
        "the victim was killed mid-job:\n{victim_log}"
    );

    let (code, results, stderr) = offline_within(
        &["results", "--nats", &url, "--batch-id", "t1", "--follow"],
        Duration::from_secs(240),
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        results.iter().map(comparable).collect::<Vec<_>>(),
        local.iter().map(comparable).collect::<Vec<_>>(),
        "the same lines, in the same order, as the local command"
    );

    // The killed worker's job went to another worker.
    let survivors: String = (0..3)
        .filter(|&i| i != victim)
        .map(|i| std::fs::read_to_string(&logs[i]).unwrap_or_default())
        .collect();
    assert!(
        survivors
            .lines()
            .any(|l| l.contains(&format!("job={job_id} ")) && l.contains("delivered=2")),
        "job {job_id} redelivered to a survivor:\n{survivors}"
    );
    // Exactly one result per job in the stream itself, not only in the printout.
    let stored = stream_messages(&url, "SPECTRALD_RESULTS");
    let mut per_job: HashMap<String, usize> = HashMap::new();
    for (_, id, _) in &stored {
        *per_job.entry(id.clone()).or_default() += 1;
    }
    assert_eq!(per_job.len(), 60, "{per_job:?}");
    assert!(per_job.values().all(|&n| n == 1), "{per_job:?}");

    for (i, w) in workers.iter_mut().enumerate() {
        if i != victim {
            assert!(w.wait().expect("worker exits when idle").success());
        }
    }
}

#[test]
fn an_input_too_large_for_the_store_fails_alone_and_results_say_what_is_missing() {
    let cluster = Cluster::start(1);
    let url = cluster.urls();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut paths = inputs(dir.path());
    paths.truncate(3);
    // Noise does not compress: about 3.6 MB of PNG against a 1 MB bucket.
    let mut rng = fastrand::Rng::with_seed(7);
    let noise = image::RgbImage::from_fn(1100, 1100, |_, _| {
        image::Rgb([rng.u8(..), rng.u8(..), rng.u8(..)])
    });
    let big = dir.path().join("noise.png");
    noise.save(&big).expect("noise");
    paths.insert(1, big.clone());
    let mut args: Vec<String> = [
        "submit",
        "--nats",
        &url,
        "--batch-id",
        "t2",
        "--store-max-mb",
        "1",
        SAT,
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    args.extend(paths.iter().map(|p| s(p)));
    let (code, _, stderr) = offline(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 3, "some inputs were not queued: {stderr}");
    assert!(
        stderr.contains(&format!("not queued: {}: ", s(&big)))
            && stderr.contains("does not fit the NATS object store"),
        "{stderr}"
    );
    assert!(stderr.contains("batch t2: 3 jobs"), "{stderr}");

    // Before any worker ran: nothing yet, and said so.
    let (code, lines, stderr) = offline_within(
        &["results", "--nats", &url, "--batch-id", "t2"],
        Duration::from_secs(30),
    );
    assert_eq!((code, lines.len()), (3, 0), "{stderr}");
    assert!(stderr.contains("3 not finished"), "{stderr}");

    let (code, lines, stderr) = work_off_then_results(&url, dir.path(), "w.log", Some("t2"));
    assert_eq!(code, 3, "one input failed: {stderr}");
    let inputs: Vec<&str> = lines.iter().filter_map(|l| l["input"].as_str()).collect();
    assert_eq!(
        inputs,
        [s(&paths[0]), s(&paths[2]), s(&paths[3])],
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("failed: {}: ", s(&big))),
        "{stderr}"
    );

    // A model no worker has: every job fails with the reason, none hangs.
    let (code, _, stderr) = offline(&[
        "submit",
        "--nats",
        &url,
        "--batch-id",
        "t3",
        "no-such-model",
        &s(&paths[0]),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = work_off_then_results(&url, dir.path(), "w2.log", None);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("cannot load model no-such-model"),
        "the newest batch (t3) and why it failed: {stderr}"
    );

    // A segmentation batch with its own test-time plan: the workers run that plan (one
    // whole-image pass, not the manifest's scales 1 and 1.5 mirrored) and say so.
    const MS: &str = "segment-camvid-lite0-balanced-352x480-colour-aspp";
    let frame = s(&common::fixture_session().join("visible/000000.jpg"));
    let (code, _, stderr) = offline(&[
        "submit",
        "--nats",
        &url,
        "--batch-id",
        "t4",
        "--scales",
        "1",
        "--flip=false",
        MS,
        &frame,
    ]);
    assert_eq!(code, 0, "{stderr}");
    let (code, lines, stderr) = work_off_then_results(&url, dir.path(), "w3.log", Some("t4"));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(lines[0]["scales"], serde_json::json!([1.0]), "{}", lines[0]);
    assert_eq!(lines[0]["flip"], false, "{}", lines[0]);
    // A scale no model runs is refused at submit, before anything is queued.
    let (code, _, stderr) = offline(&[
        "submit",
        "--nats",
        &url,
        "--scales",
        "0.5",
        MS,
        &s(&paths[0]),
    ]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("--scales: test-time scale 0.5 is outside 1..=8"),
        "{stderr}"
    );

    // A job from a newer submitter, with an option this worker does not know: not run
    // without it (that would be another analysis under the same id), answered with a line.
    let (code, _, stderr) = offline(&[
        "submit",
        "--nats",
        &url,
        "--batch-id",
        "t5",
        SAT,
        &s(&paths[0]),
    ]);
    assert_eq!(code, 0, "{stderr}");
    edit_newest_message(&url, "SPECTRALD_JOBS", |job| {
        job["options"]["tiles"] = serde_json::json!(4);
    });
    let (code, lines, stderr) = work_off_then_results(&url, dir.path(), "w4.log", Some("t5"));
    assert_eq!((code, lines.len()), (3, 0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "failed: {}: this worker (spectrald ",
            s(&paths[0])
        )) && stderr.contains("unknown field `tiles`")
            && stderr.contains("upgrade the workers"),
        "{stderr}"
    );
}

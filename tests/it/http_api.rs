//! The HTTP API of a running daemon (the real binary, replaying the bundled session).

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::daemon::{Daemon, http, raw, replay_config};

fn models() -> std::path::PathBuf {
    common::repo().join("models")
}

/// Reads `n` landmark events from the event stream.
fn read_events(port: u16, n: usize) -> Vec<serde_json::Value> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET /api/v1/landmarks/stream?camera=kiosk-1 HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    .expect("send");
    let mut records = Vec::new();
    let mut event = String::new();
    for line in BufReader::new(stream).lines() {
        let line = line.expect("stream line");
        if let Some(name) = line.strip_prefix("event: ") {
            event = name.to_owned();
        } else if let Some(data) = line.strip_prefix("data: ")
            && event == "landmarks"
        {
            records.push(serde_json::from_str(data).expect("event is JSON"));
            if records.len() == n {
                break;
            }
        }
    }
    records
}

#[test]
fn health_readiness_metrics_cameras_events_and_snapshots_describe_the_running_pipeline() {
    let port = common::free_port();
    let daemon = Daemon::start(&replay_config(port, &models(), ""));
    daemon.wait_published("kiosk-1", 5, Duration::from_secs(60));

    assert_eq!(daemon.get("/healthz", None), (200, "ok\n".into()));
    let (status, body) = daemon.get("/readyz", None);
    let ready: serde_json::Value = serde_json::from_str(&body).expect("readyz JSON");
    assert_eq!(status, 200, "{body}");
    assert_eq!(ready["cameras"]["kiosk-1"]["ready"], true, "{body}");

    let (status, body) = daemon.get("/api/v1/cameras", None);
    assert_eq!(status, 200);
    let cameras: serde_json::Value = serde_json::from_str(&body).expect("cameras JSON");
    assert_eq!(cameras[0]["id"], "kiosk-1");
    assert!(cameras[0]["fps"].as_f64().unwrap_or(0.0) > 1.0, "{body}");
    assert_eq!(
        cameras[0]["last_record"]["schema"], "spectrald.landmarks/v2",
        "{body}"
    );

    // Prometheus text: every sample line is NAME{LABELS} VALUE, and the families an
    // operator graphs are there, with this run's numbers.
    let (status, metrics) = daemon.get("/metrics", None);
    assert_eq!(status, 200);
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap_or("");
        assert!(value.parse::<f64>().is_ok(), "not a sample line: {line}");
    }
    let sample = |prefix: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in\n{metrics}"))
    };
    assert!(
        sample("spectrald_frame_received_total{camera=\"kiosk-1\",spectrum=\"visible\"}") >= 5.0
    );
    assert!(sample("spectrald_pair_published_total{camera=\"kiosk-1\"}") >= 5.0);
    assert!(sample("spectrald_stage_latency_ms_count{stage=\"landmark\"}") >= 5.0);
    // The detector's latency and the faces found per image (one face per fixture frame).
    assert!(sample("spectrald_stage_latency_ms_count{stage=\"detect\"}") >= 5.0);
    let images = sample("spectrald_faces_per_image_count{spectrum=\"visible\"}");
    assert!(images >= 5.0);
    assert_eq!(
        sample("spectrald_faces_per_image_sum{spectrum=\"visible\"}"),
        images,
        "one face in every visible frame"
    );
    assert!(sample("spectrald_inference_batch_size_count{model=\"dmsl-boundary-lite\"}") >= 5.0);
    sample("spectrald_queue_depth{queue=\"pair:kiosk-1\"}");
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(models().join("dmsl-boundary-lite.json")).expect("manifest"),
    )
    .expect("manifest JSON");
    let sha = manifest["sha256"].as_str().expect("sha");
    assert!(
        metrics.contains(&format!(
            "spectrald_model_info{{role=\"boundary\",name=\"dmsl-boundary-lite\",sha256=\"{sha}\"}} 1"
        )),
        "{metrics}"
    );

    // The event stream: consecutive records of this camera, in order.
    let events = read_events(port, 5);
    assert_eq!(events.len(), 5);
    for pair in events.windows(2) {
        assert_eq!(
            pair[1]["sequence"].as_u64(),
            pair[0]["sequence"].as_u64().map(|s| s + 1)
        );
    }
    assert!(events.iter().all(|e| e["camera"] == "kiosk-1"));

    // Snapshot: visible 320x240 | 4 px | thermal 160x120 scaled to 240 high, boxes drawn.
    let (status, head, _) = http(
        port,
        "GET",
        "/api/v1/cameras/kiosk-1/snapshot.png",
        None,
        "",
    );
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: image/png")
    );
    let png = fetch_bytes(port, "/api/v1/cameras/kiosk-1/snapshot.png");
    let image = image::load_from_memory(&png).expect("PNG").to_rgb8();
    assert_eq!((image.width(), image.height()), (644, 240));
    let green = |x0: u32, x1: u32| {
        (x0..x1)
            .flat_map(|x| (0..240).map(move |y| (x, y)))
            .filter(|&(x, y)| image.get_pixel(x, y).0 == [0, 255, 0])
            .count()
    };
    assert!(green(0, 320) > 200, "no face box on the visible panel");
    assert!(green(324, 644) > 200, "no face box on the thermal panel");
}

/// Body bytes of a GET (no chunking: the images come with a Content-Length).
fn fetch_bytes(port: u16, path: &str) -> Vec<u8> {
    use std::io::Read;
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut all = Vec::new();
    stream.read_to_end(&mut all).expect("read");
    let at = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of head");
    all[at + 4..].to_vec()
}

#[test]
fn a_configured_token_guards_the_api_but_not_health() {
    let port = common::free_port();
    let daemon = Daemon::start(&replay_config(port, &models(), "token = \"s3cret-token\""));
    assert_eq!(daemon.get("/healthz", None).0, 200);
    assert_eq!(
        daemon.get("/readyz", None).0 / 100,
        2,
        "readyz needs no token"
    );
    let (status, body) = daemon.get("/api/v1/cameras", None);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("bearer token"), "{body}");
    assert_eq!(daemon.get("/api/v1/cameras", Some("s3cret-tokeN")).0, 401);
    assert_eq!(daemon.get("/api/v1/cameras", Some("s3cret")).0, 401);
    assert_eq!(daemon.get("/metrics", None).0, 401);
    assert_eq!(daemon.get("/api/v1/cameras", Some("s3cret-token")).0, 200);
    let (_, metrics) = daemon.get("/metrics", Some("s3cret-token"));
    assert!(
        metrics.contains("spectrald_http_unauthorized_total 4"),
        "{metrics}"
    );
    let (status, _, _) = http(port, "POST", "/api/v1/reload", None, "");
    assert_eq!(status, 401, "reload needs the token");
}

#[test]
fn listening_beyond_loopback_without_a_token_is_refused_before_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = replay_config(common::free_port(), &models(), "")
        .replace("listen = \"127.0.0.1:", "listen = \"0.0.0.0:");
    std::fs::write(dir.path().join("c.toml"), config).expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spectrald"))
        .args(["check-config"])
        .arg(dir.path().join("c.toml"))
        .env_remove("SPECTRALD_HTTP_TOKEN")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("http.listen") && stderr.contains("SPECTRALD_HTTP_TOKEN"),
        "{stderr}"
    );
    let ok = std::process::Command::new(env!("CARGO_BIN_EXE_spectrald"))
        .args(["check-config"])
        .arg(dir.path().join("c.toml"))
        .env("SPECTRALD_HTTP_TOKEN", "from-the-environment")
        .output()
        .expect("run");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

#[test]
fn malformed_huge_and_escaping_requests_are_refused_and_serving_goes_on() {
    let port = common::free_port();
    let daemon = Daemon::start(&replay_config(port, &models(), "max_body_bytes = 1024"));
    daemon.wait_published("kiosk-1", 1, Duration::from_secs(60));
    let (status, _, _) = raw(port, b"GARBAGE\r\n\r\n");
    assert_eq!(status, 400, "a request line that is not HTTP");
    let (status, _, _) = raw(port, b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n");
    assert_eq!(status, 400, "a header line without a colon");
    let big = "x".repeat(64 * 1024);
    let (status, _, body) = http(port, "POST", "/api/v1/reload", None, &big);
    assert_eq!(status, 413, "body over max_body_bytes: {body}");
    for path in [
        "/../../../etc/passwd",
        "/api/v1/cameras/..%2F..%2F..%2Fetc%2Fpasswd/snapshot.png",
        "/api/v1/cameras/kiosk-1/..%2F..%2Fconfig.toml",
        "/api/v1/cameras/kiosk-1/%2e%2e/%2e%2e/etc/passwd",
        "/app.js/../../config.toml",
    ] {
        let (status, body) = daemon.get(path, None);
        assert_eq!(status, 404, "{path}: {body}");
        assert!(
            !body.contains("root:") && !body.contains("[models]"),
            "{path} leaked: {body}"
        );
    }
    let (status, body) = daemon.get("/api/v1/cameras/nope/snapshot.png", None);
    assert_eq!(status, 404);
    assert!(
        body.contains("no camera \"nope\"") && body.contains("kiosk-1"),
        "{body}"
    );
    // Still serving, still publishing.
    let before = daemon.published("kiosk-1");
    assert!(before >= 1, "the camera list still answers");
    daemon.wait_published("kiosk-1", before + 1, Duration::from_secs(30));
    assert_eq!(daemon.get("/healthz", None).0, 200);
}

#[test]
fn readiness_names_the_camera_whose_stream_ended() {
    let port = common::free_port();
    // A second, looping camera keeps the daemon up after "door" ends.
    let config = replay_config(
        port,
        &models(),
        r#"ready_grace_ms = 0
[[cameras]]
id = "door"
[cameras.visible]
kind = "gstreamer"
pipeline = "videotestsrc num-buffers=15 ! video/x-raw,width=64,height=48,framerate=30/1"
at_eos = "end"
"#,
    );
    let daemon = Daemon::start(&config);
    let started = std::time::Instant::now();
    loop {
        let (status, body) = daemon.get("/readyz", None);
        let parsed: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        let detail = parsed["cameras"]["door"]["detail"].as_str().unwrap_or("");
        if detail.contains("visible ended") {
            assert_eq!(status, 503, "{body}");
            assert_eq!(parsed["ready"], false);
            assert_eq!(parsed["cameras"]["door"]["ready"], false, "{body}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no 503 seen (last status {status}); log:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn slow_clients_trickling_headers_are_cut_off_and_healthy_clients_served() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let port = common::free_port();
    // Four connection slots; a request head has one second to arrive.
    let daemon = Daemon::start(&replay_config(
        port,
        &models(),
        "max_connections = 4\nheader_timeout_ms = 1000",
    ));
    daemon.wait_published("kiosk-1", 1, Duration::from_secs(60));
    // Slow loris: four times as many connections as slots, each sending its head a byte
    // at a time, never finishing it.
    let slow: Vec<TcpStream> = (0..16)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    let attacking = Arc::new(AtomicBool::new(true));
    let trickler = {
        let attacking = attacking.clone();
        let mut slow: Vec<TcpStream> = slow.iter().filter_map(|s| s.try_clone().ok()).collect();
        std::thread::spawn(move || {
            for s in &mut slow {
                let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n");
            }
            while attacking.load(Ordering::Relaxed) {
                for s in &mut slow {
                    let _ = s.write_all(b"X");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let before = daemon.published("kiosk-1");
    // Healthy clients are answered during the attack (each `http` gives up after 10 s).
    for _ in 0..5 {
        let (status, _, body) = http(port, "GET", "/healthz", None, "");
        assert_eq!(status, 200, "a healthy client starved by slow ones: {body}");
    }
    // And the pipeline kept publishing.
    daemon.wait_published("kiosk-1", before + 3, Duration::from_secs(30));
    // The slow connections were closed by the daemon, not left holding their slots.
    for mut s in slow {
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut answer = Vec::new();
        let ended = std::io::Read::read_to_end(&mut s, &mut answer);
        assert!(
            ended.is_ok()
                || ended.as_ref().is_err_and(|e| !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                )),
            "a slow connection still open: {ended:?}"
        );
    }
    attacking.store(false, Ordering::Relaxed);
    trickler.join().expect("trickler");
    assert_eq!(daemon.get("/healthz", None).0, 200);
}

#[test]
fn the_shipped_config_keeps_serving_until_stopped_and_logs_plain_text() {
    let repo = common::repo();
    let port = common::free_port();
    // The shipped file, with its relative paths made absolute and its own port.
    let shipped = std::fs::read_to_string(repo.join("config.toml")).expect("config.toml");
    let config = shipped
        .replace(
            "path = \"tests/fixtures/session-pexels\"",
            &format!("path = {:?}", repo.join("tests/fixtures/session-pexels")),
        )
        .replace(
            "dir = \"models\"",
            &format!("dir = {:?}", repo.join("models")),
        )
        .replace(
            "listen = \"127.0.0.1:8080\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        )
        .replace("jsonl = \"-\"", "jsonl = \"out.jsonl\"");
    assert!(
        config.contains(&format!("127.0.0.1:{port}")),
        "listen line moved"
    );
    let mut daemon = Daemon::start(&config);
    // The bundled session is 24 pairs: past them, it is looping, and still serving.
    daemon.wait_published("kiosk-1", 30, Duration::from_secs(60));
    assert_eq!(daemon.get("/healthz", None).0, 200);
    assert_eq!(daemon.stop(), 0);
    // Its log went to a file: no terminal colour codes in it.
    let log = daemon.log();
    assert!(log.contains("summary:"), "{log}");
    assert!(!log.contains('\u{1b}'), "colour codes in a log file");
}

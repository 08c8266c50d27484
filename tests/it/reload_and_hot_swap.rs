//! Reload (SIGHUP, POST /api/v1/reload) and model hot-swap on a running daemon, and the
//! systemd notification protocol it speaks while doing so.

use crate::common;

use std::collections::BTreeMap;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use common::daemon::{Daemon, http, replay_config};
use sha2::{Digest, Sha256};

fn copy_models(to: &Path) {
    std::fs::create_dir_all(to).expect("models dir");
    for entry in std::fs::read_dir(common::repo().join("models")).expect("models") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            std::fs::copy(&path, to.join(path.file_name().expect("name"))).expect("copy");
        }
    }
}

fn sequences_by_camera(records: &[serde_json::Value]) -> BTreeMap<String, Vec<u64>> {
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in records {
        out.entry(r["camera"].as_str().expect("camera").to_owned())
            .or_default()
            .push(r["sequence"].as_u64().expect("sequence"));
    }
    out
}

fn assert_gap_free(records: &[serde_json::Value]) {
    for (camera, seqs) in sequences_by_camera(records) {
        let want: Vec<u64> = (0..seqs.len() as u64).collect();
        assert_eq!(seqs, want, "camera {camera}: every sequence once, in order");
    }
}

const PUBLISH_TIMEOUT: Duration = Duration::from_secs(60);

fn two_cameras(port: u16, models: &Path, second_speed: f64) -> String {
    replay_config(port, models, "")
        + &format!(
            "[[cameras]]\nid = \"kiosk-2\"\nsource = {{ kind = \"replay\", path = \"{}\", speed = {second_speed}, loop = true }}\n",
            common::fixture_session().display()
        )
}

#[test]
fn sighup_restarts_the_changed_camera_and_leaves_the_other_running() {
    let port = common::free_port();
    let models = common::repo().join("models");
    let daemon = Daemon::start(&two_cameras(port, &models, 1.0));
    daemon.wait_published("kiosk-2", 5, PUBLISH_TIMEOUT);
    std::fs::write(daemon.path("config.toml"), two_cameras(port, &models, 2.0))
        .expect("rewrite config");
    daemon.signal("HUP");
    let started = Instant::now();
    while !daemon.log().contains("config reloaded") {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = daemon.log();
    assert!(
        log.contains("cameras (re)started: kiosk-2"),
        "the changed camera restarts: {log}"
    );
    let stopped: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("camera stopped"))
        .collect();
    assert!(
        stopped.iter().all(|l| l.contains("kiosk-2")) && !stopped.is_empty(),
        "only kiosk-2 stopped: {stopped:?}"
    );
    let kiosk2 = daemon.published("kiosk-2");
    daemon.wait_published("kiosk-2", kiosk2 + 5, PUBLISH_TIMEOUT);
    let mut daemon = daemon;
    assert_eq!(daemon.stop(), 0);
    // Nothing lost or repeated on either camera: sequence numbers continue over the restart.
    assert_gap_free(&daemon.records());
}

#[test]
fn a_broken_config_is_refused_and_the_old_one_keeps_running() {
    let port = common::free_port();
    let daemon = Daemon::start(&replay_config(port, &common::repo().join("models"), ""));
    daemon.wait_published("kiosk-1", 3, PUBLISH_TIMEOUT);
    std::fs::write(
        daemon.path("config.toml"),
        replay_config(port, &common::repo().join("models"), "") + "\n[queues]\ncapacity = 0\n",
    )
    .expect("break config");
    let (status, _, body) = http(port, "POST", "/api/v1/reload", None, "");
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("reload refused") && body.contains("queues.capacity"),
        "{body}"
    );
    std::fs::write(daemon.path("config.toml"), "this is [not toml").expect("garbage");
    let (status, _, body) = http(port, "POST", "/api/v1/reload", None, "");
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("config.toml"), "{body}");
    let before = daemon.published("kiosk-1");
    daemon.wait_published("kiosk-1", before + 5, PUBLISH_TIMEOUT);
    let (_, metrics) = daemon.get("/metrics", None);
    assert!(
        metrics.contains("spectrald_config_reloads_total{outcome=\"rejected\"} 2"),
        "{metrics}"
    );
}

/// A new version of a model: the same graph with a different doc string (protobuf field
/// 6 of ModelProto appended; the last one wins), so its sha256 changes and its outputs
/// do not.
fn publish_new_version(models: &Path, name: &str) -> String {
    let onnx = models.join(format!("{name}.onnx"));
    let mut bytes = std::fs::read(&onnx).expect("onnx");
    let doc = b"spectrald hot-swap test version 2";
    bytes.push(0x32);
    bytes.push(doc.len() as u8);
    bytes.extend_from_slice(doc);
    install_model(models, name, &bytes, "1.0.1")
}

/// Writes a model's ONNX bytes, then its manifest with their sha256 and `version`.
fn install_model(models: &Path, name: &str, bytes: &[u8], version: &str) -> String {
    let sha = hex(&Sha256::digest(bytes));
    let manifest_path = models.join(format!("{name}.json"));
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).expect("manifest"))
            .expect("manifest JSON");
    // Model first, manifest last: the manifest names what is complete.
    std::fs::write(models.join(format!("{name}.onnx")), bytes).expect("write onnx");
    manifest["sha256"] = serde_json::json!(sha);
    manifest["version"] = serde_json::json!(version);
    std::fs::write(&manifest_path, manifest.to_string()).expect("write manifest");
    sha
}

/// A daemon replaying the fixture with its own copy of the models (so a test can change
/// them); returns it, its models folder and its HTTP port.
fn with_own_models(model_watch_s: u64) -> (Daemon, std::path::PathBuf, u16) {
    let dir = tempfile::tempdir().expect("tempdir");
    let models = dir.path().join("models");
    copy_models(&models);
    let port = common::free_port();
    let config =
        replay_config(port, &models, "") + &format!("[service]\nmodel_watch_s = {model_watch_s}\n");
    (Daemon::start_in(dir, &config, &[]), models, port)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_new_model_version_is_swapped_in_between_frames_losing_and_repeating_nothing() {
    let (mut daemon, models, _) = with_own_models(1);
    daemon.wait_published("kiosk-1", 5, PUBLISH_TIMEOUT);
    let old = daemon.records()[0]["models"]["boundary"]["sha256"]
        .as_str()
        .expect("sha")
        .to_owned();
    let new = publish_new_version(&models, "dmsl-boundary-lite");
    assert_ne!(old, new);
    // The watcher notices the new manifest within a second or two.
    let started = Instant::now();
    while !daemon
        .records()
        .iter()
        .any(|r| r["models"]["boundary"]["sha256"] == new.as_str())
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let at = daemon.published("kiosk-1");
    daemon.wait_published("kiosk-1", at + 5, PUBLISH_TIMEOUT);
    assert_eq!(daemon.stop(), 0);
    let records = daemon.records();
    assert_gap_free(&records);
    // One switch: every frame before it ran on the old model, every frame after on the new.
    let shas: Vec<&str> = records
        .iter()
        .map(|r| r["models"]["boundary"]["sha256"].as_str().expect("sha"))
        .collect();
    let switch = shas.iter().position(|s| *s == new).expect("new model used");
    assert!(switch > 0);
    assert!(shas[..switch].iter().all(|s| *s == old), "{shas:?}");
    assert!(shas[switch..].iter().all(|s| *s == new), "{shas:?}");
    assert!(
        daemon.log().contains("model swapped in"),
        "{}",
        daemon.log()
    );
}

#[test]
fn a_corrupt_model_is_refused_and_the_running_one_keeps_serving() {
    let (daemon, models, port) = with_own_models(0);
    daemon.wait_published("kiosk-1", 3, PUBLISH_TIMEOUT);
    // A truncated file whose manifest matches it: the checksum passes, the graph does not.
    let bytes = std::fs::read(models.join("dmsl-landmark-lite.onnx")).expect("onnx");
    install_model(
        &models,
        "dmsl-landmark-lite",
        &bytes[..bytes.len() / 3],
        "1.0.2",
    );
    let (status, _, body) = http(port, "POST", "/api/v1/reload", None, "");
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("reload refused") && body.contains("landmark"),
        "{body}"
    );
    let before = daemon.published("kiosk-1");
    daemon.wait_published("kiosk-1", before + 5, PUBLISH_TIMEOUT);
    let (_, metrics) = daemon.get("/metrics", None);
    assert!(
        metrics.contains("spectrald_model_swaps_total{role=\"landmark\",outcome=\"rejected\"} 1"),
        "{metrics}"
    );
}

#[test]
fn systemd_hears_ready_watchdog_reloading_and_stopping() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("notify socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let port = common::free_port();
    let config = replay_config(port, &common::repo().join("models"), "");
    let mut daemon = Daemon::start_in(
        dir,
        &config,
        &[
            ("NOTIFY_SOCKET", socket_path.to_str().expect("utf-8")),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let mut heard: Vec<String> = Vec::new();
    let listen = |for_how_long: Duration, heard: &mut Vec<String>| {
        let until = Instant::now() + for_how_long;
        let mut buf = [0u8; 4096];
        while Instant::now() < until {
            if let Ok(n) = socket.recv(&mut buf) {
                heard.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    };
    listen(Duration::from_secs(2), &mut heard);
    assert!(heard.iter().any(|m| m.contains("READY=1")), "{heard:?}");
    let pings = heard.iter().filter(|m| m.contains("WATCHDOG=1")).count();
    assert!(pings >= 4, "watchdog pings every 200 ms: {heard:?}");
    daemon.signal("HUP");
    listen(Duration::from_secs(2), &mut heard);
    let reloading = heard.iter().position(|m| m.contains("RELOADING=1"));
    let ready_again = heard.iter().rposition(|m| m.contains("READY=1"));
    assert!(
        reloading.is_some() && ready_again > reloading,
        "RELOADING=1 then READY=1: {heard:?}"
    );
    assert_eq!(daemon.stop(), 0);
    listen(Duration::from_millis(300), &mut heard);
    assert!(heard.iter().any(|m| m.contains("STOPPING=1")), "{heard:?}");
}

#[test]
fn the_unit_file_verifies_and_is_hardened() {
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = std::fs::read_to_string(common::repo().join("systemd/spectrald.service"))
        .expect("unit file")
        .replace("/usr/local/bin/spectrald", env!("CARGO_BIN_EXE_spectrald"));
    let path = dir.path().join("spectrald.service");
    std::fs::write(&path, unit).expect("write unit");
    let verify = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (apt install systemd)");
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let security = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(&path)
        .output()
        .expect("systemd-analyze security");
    let text = String::from_utf8_lossy(&security.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| l.split("exposure level for spectrald.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    // systemd rates 0-10, lower is better; "OK" ends at 3.9.
    assert!(score <= 2.5, "exposure level {score}:\n{text}");
}

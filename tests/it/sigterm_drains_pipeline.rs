//! SIGTERM mid-stream: the daemon stops reading, drains every queue, publishes every pair it
//! had read exactly once, prints the summary and exits 0.
use crate::common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn sigterm_drains_pipeline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[models]\ndir = {:?}\nboundary = \"dmsl-boundary-tiny-random\"\nlandmark = \"dmsl-landmark-tiny-random\"\n\n[[cameras]]\nid = \"kiosk\"\nsource = {{ kind = \"replay\", path = {:?}, speed = 1.0, loop = true }}\n",
            repo().join("tests/fixtures/models"),
            fixture_session()
        ),
    )
    .expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_spectrald"))
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn spectrald");
    // Recorded pace is ~12 pairs/s and the session loops: stop it mid-stream.
    std::thread::sleep(Duration::from_millis(2500));
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let started = Instant::now();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("read stdout");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    let exit = child.wait().expect("wait");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "drained promptly"
    );
    assert!(exit.success(), "exit status {exit:?}; stderr: {stderr}");
    let records: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert!(
        records.len() >= 10,
        "ran for a while: {} records",
        records.len()
    );
    assert_eq!(
        sequences(&records),
        (0..records.len() as u64).collect::<Vec<_>>(),
        "each pair once, in order"
    );
    let summary = stderr
        .lines()
        .find(|l| l.contains("summary:"))
        .unwrap_or_else(|| panic!("summary line in: {stderr}"));
    assert!(
        summary.contains(&format!("published {}", records.len())),
        "{summary}"
    );
    assert!(summary.contains("dropped 0"), "{summary}");
}

//! The `nats` sink against real nats-server processes: one server, a server that goes away
//! and comes back, a 3-node cluster losing a node, a server that is not there yet, and a
//! stream whose settings do not fit.

use crate::common;

use std::collections::HashSet;
use std::time::Duration;

use common::daemon::{Daemon, replay_config};
use common::nats::{Cluster, kv_get, stream_messages};

fn models() -> std::path::PathBuf {
    common::repo().join("models")
}

fn nats_section(url: &str, extra: &str) -> String {
    format!(
        "[nats]\nurl = \"{url}\"\nrig = \"rig-a\"\ninitial_backoff_ms = 100\nmax_backoff_ms = 500\nack_timeout_ms = 2000\n{extra}\n"
    )
}

/// Asserts the stream's records carry sequences 0, 1, … `count - 1`, in that order.
fn assert_once_in_order(stored: &[common::nats::Stored], count: usize, what: &str) {
    let sequences: Vec<u64> = stored
        .iter()
        .map(|(_, _, v)| v["sequence"].as_u64().expect("sequence"))
        .collect();
    assert_eq!(sequences, (0..count as u64).collect::<Vec<_>>(), "{what}");
}

/// Asserts the stream holds exactly the JSONL records, once each, in order, with ids
/// `rig-a.BOOT.kiosk-1.SEQUENCE`.
fn assert_stream_matches(stored: &[common::nats::Stored], records: &[serde_json::Value]) {
    assert_once_in_order(stored, records.len(), "every record once, in order");
    for ((subject, id, payload), record) in stored.iter().zip(records) {
        assert_eq!(subject, "spectrald.kiosk-1.landmarks");
        assert_eq!(payload, record, "the stream holds what JSONL got");
        let parts: Vec<&str> = id.split('.').collect();
        assert_eq!(parts.len(), 4, "{id}");
        assert_eq!((parts[0], parts[2]), ("rig-a", "kiosk-1"), "{id}");
        assert_eq!(parts[3], record["sequence"].to_string(), "{id}");
    }
    let ids: HashSet<&String> = stored.iter().map(|(_, id, _)| id).collect();
    assert_eq!(ids.len(), stored.len(), "ids are unique");
}

fn metric(daemon: &Daemon, prefix: &str) -> f64 {
    let (_, metrics) = daemon.get("/metrics", None);
    metrics
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn records_reach_the_stream_once_each_in_order_and_the_rig_reports_its_health() {
    let cluster = Cluster::start(1);
    let url = cluster.urls();
    let port = common::free_port();
    let mut daemon = Daemon::start(
        &(replay_config(port, &models(), "") + &nats_section(&url, "health_interval_s = 1")),
    );
    daemon.wait_published("kiosk-1", 30, Duration::from_secs(60));
    let health = kv_get(&url, "spectrald_health", "rig-a").expect("the rig's health entry");
    assert_eq!(health["state"], "online", "{health}");
    assert!(
        health["cameras"]["kiosk-1"]["published"].as_u64() >= Some(1),
        "{health}"
    );
    assert!(metric(&daemon, "spectrald_nats_acked_total") >= 1.0);
    assert_eq!(daemon.stop(), 0, "{}", daemon.log());
    assert_stream_matches(&stream_messages(&url, "SPECTRALD"), &daemon.records());
    let health = kv_get(&url, "spectrald_health", "rig-a").expect("health entry");
    assert_eq!(health["state"], "offline", "a clean stop says so: {health}");
}

#[test]
fn a_server_down_for_seconds_in_block_mode_loses_nothing() {
    let mut cluster = Cluster::start(1);
    let url = cluster.urls();
    let port = common::free_port();
    let daemon_config = replay_config(port, &models(), "")
        + &nats_section(&url, "buffer = 5\nwhen_full = \"block\"");
    let mut daemon = Daemon::start(&daemon_config);
    daemon.wait_published("kiosk-1", 10, Duration::from_secs(60));
    cluster.servers[0].kill();
    std::thread::sleep(Duration::from_secs(3));
    cluster.servers[0].start();
    let resumed = daemon.published("kiosk-1");
    daemon.wait_published("kiosk-1", resumed + 20, Duration::from_secs(60));
    assert!(metric(&daemon, "spectrald_nats_reconnects_total") >= 1.0);
    assert_eq!(daemon.stop(), 0, "{}", daemon.log());
    assert!(
        daemon.log().contains("NATS server unreachable"),
        "the outage was logged:\n{}",
        daemon.log()
    );
    assert_stream_matches(&stream_messages(&url, "SPECTRALD"), &daemon.records());
}

#[test]
fn a_three_node_cluster_losing_a_node_keeps_every_record_once_in_order() {
    let mut cluster = Cluster::start(3);
    let port = common::free_port();
    let mut daemon = Daemon::start(
        &(replay_config(port, &models(), "") + &nats_section(&cluster.urls(), "replicas = 3")),
    );
    daemon.wait_published("kiosk-1", 10, Duration::from_secs(90));
    cluster.servers[0].kill();
    let during = daemon.published("kiosk-1");
    daemon.wait_published("kiosk-1", during + 15, Duration::from_secs(90));
    cluster.servers[0].start();
    let after = daemon.published("kiosk-1");
    daemon.wait_published("kiosk-1", after + 10, Duration::from_secs(90));
    assert_eq!(daemon.stop(), 0, "{}", daemon.log());
    // Read from a node that stayed up.
    assert_stream_matches(
        &stream_messages(&cluster.servers[1].url(), "SPECTRALD"),
        &daemon.records(),
    );
}

#[test]
fn a_server_not_there_yet_is_waited_for_while_other_outputs_go_on() {
    let mut cluster = Cluster::new(1);
    let url = cluster.urls();
    let port = common::free_port();
    let mut daemon = Daemon::start(
        &(replay_config(port, &models(), "")
            + &nats_section(&url, "buffer = 20\nwhen_full = \"drop_oldest\"")),
    );
    daemon.wait_published("kiosk-1", 40, Duration::from_secs(60));
    assert!(daemon.records().len() >= 30, "JSONL keeps flowing");
    assert!(
        daemon.log().contains("NATS server not reachable yet"),
        "{}",
        daemon.log()
    );
    assert!(metric(&daemon, "spectrald_nats_dropped_total") >= 1.0);
    // The server comes: records flow into the stream from then on.
    cluster.servers[0].start();
    let started = std::time::Instant::now();
    while metric(&daemon, "spectrald_nats_acked_total") < 10.0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "nothing reached the late server; log:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(daemon.stop(), 0);
    let stored = stream_messages(&url, "SPECTRALD");
    let sequences: Vec<u64> = stored
        .iter()
        .map(|(_, _, v)| v["sequence"].as_u64().expect("sequence"))
        .collect();
    assert!(
        sequences.windows(2).all(|w| w[0] < w[1]),
        "in order: {sequences:?}"
    );
}

#[test]
fn a_stream_with_settings_that_do_not_fit_is_refused_naming_the_setting() {
    let cluster = Cluster::start(1);
    let url = cluster.urls();
    common::nats::block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect(&url).await.expect("connect"));
        js.create_stream(async_nats::jetstream::stream::Config {
            name: "SPECTRALD".into(),
            subjects: vec!["spectrald.>".into()],
            retention: async_nats::jetstream::stream::RetentionPolicy::Interest,
            ..Default::default()
        })
        .await
        .expect("create");
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        replay_config(common::free_port(), &models(), "") + &nats_section(&url, ""),
    )
    .expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spectrald"))
        .args(["run", "--config"])
        .arg(&config)
        .current_dir(dir.path())
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("error"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        line.contains("retention = interest") && line.contains("nats.retention"),
        "{line}"
    );
}

#[test]
fn a_reload_that_changes_the_nats_section_hands_over_without_loss_or_repeat() {
    let cluster = Cluster::start(1);
    let url = cluster.urls();
    let port = common::free_port();
    let config = |rig: &str| {
        replay_config(port, &models(), "") + &nats_section(&url, "").replace("rig-a", rig)
    };
    let mut daemon = Daemon::start(&config("rig-a"));
    daemon.wait_published("kiosk-1", 10, Duration::from_secs(60));
    std::fs::write(daemon.path("config.toml"), config("rig-b")).expect("rewrite config");
    daemon.signal("HUP");
    let started = std::time::Instant::now();
    while !daemon.log().contains("config reloaded") {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let at = daemon.published("kiosk-1");
    daemon.wait_published("kiosk-1", at + 10, Duration::from_secs(60));
    assert_eq!(daemon.stop(), 0, "{}", daemon.log());
    let stored = stream_messages(&url, "SPECTRALD");
    let records = daemon.records();
    assert_once_in_order(
        &stored,
        records.len(),
        "every record once, in order, across the reload",
    );
    // The old sink published up to the switch, the new one (its new rig name) after it.
    let rigs: Vec<&str> = stored
        .iter()
        .map(|(_, id, _)| id.split('.').next().unwrap_or(""))
        .collect();
    let switch = rigs
        .iter()
        .position(|r| *r == "rig-b")
        .expect("rig-b published");
    assert!(
        switch > 0 && rigs[..switch].iter().all(|r| *r == "rig-a"),
        "{rigs:?}"
    );
    assert!(rigs[switch..].iter().all(|r| *r == "rig-b"), "{rigs:?}");
}

#[test]
fn a_password_from_the_environment_works_and_never_reaches_the_log() {
    let password = "s3cret-Pw-4417";
    let cluster = Cluster::start_with(
        1,
        &format!("authorization {{ user: spectrald, password: \"{password}\" }}\n"),
    );
    let url = cluster.urls();
    let port = common::free_port();
    let config =
        replay_config(port, &models(), "") + &nats_section(&url, "username = \"spectrald\"");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut daemon = Daemon::start_in(
        dir,
        &config,
        &[
            ("SPECTRALD_NATS_PASSWORD", password),
            ("SPECTRALD_LOG", "debug"),
        ],
    );
    daemon.wait_published("kiosk-1", 10, Duration::from_secs(60));
    assert!(
        metric(&daemon, "spectrald_nats_acked_total") >= 1.0,
        "{}",
        daemon.log()
    );
    assert_eq!(daemon.stop(), 0);
    assert!(
        !daemon.log().contains(password),
        "the password leaked into the log"
    );

    // A wrong one: a clear line, the secret not in it, and the other outputs go on.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut daemon = Daemon::start_in(
        dir,
        &(replay_config(port, &models(), "")
            + &nats_section(
                &url,
                "username = \"spectrald\"\nwhen_full = \"drop_oldest\"\nbuffer = 5",
            )),
        &[("SPECTRALD_NATS_PASSWORD", "wrong-Pw-9921")],
    );
    daemon.wait_published("kiosk-1", 10, Duration::from_secs(60));
    assert_eq!(daemon.stop(), 0);
    let log = daemon.log();
    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("NATS server refused our credentials"))
        .collect();
    assert_eq!(refusals.len(), 1, "said once, with the fix:\n{log}");
    assert!(refusals[0].contains("SPECTRALD_NATS_PASSWORD"), "{log}");
    assert!(!log.contains("wrong-Pw-9921"), "{log}");
}

#[test]
fn tls_with_the_right_ca_delivers_and_another_ca_is_refused_with_a_line() {
    let certs = tempfile::tempdir().expect("tempdir");
    common::tls::certificates(certs.path(), "good");
    common::tls::certificates(certs.path(), "other");
    let p = |name: &str| certs.path().join(name).display().to_string();
    let cluster = Cluster::start_with(
        1,
        &format!(
            "tls {{ cert_file: {:?}, key_file: {:?} }}\n",
            p("good-server.pem"),
            p("good-server.key")
        ),
    );
    let url = cluster.urls().replace("nats://", "tls://");
    let port = common::free_port();
    let with_ca = |ca: &str| {
        replay_config(port, &models(), "")
            + &nats_section(&url, "buffer = 5\nwhen_full = \"drop_oldest\"")
            + &format!("[nats.tls]\nca_file = {:?}\n", p(ca))
    };
    let mut daemon = Daemon::start(&with_ca("good-ca.pem"));
    daemon.wait_published("kiosk-1", 10, Duration::from_secs(60));
    assert!(
        metric(&daemon, "spectrald_nats_acked_total") >= 1.0,
        "{}",
        daemon.log()
    );
    assert_eq!(daemon.stop(), 0);

    let mut daemon = Daemon::start(&with_ca("other-ca.pem"));
    daemon.wait_published("kiosk-1", 10, Duration::from_secs(60));
    assert_eq!(daemon.stop(), 0);
    let log = daemon.log();
    assert!(
        log.lines()
            .filter(|l| l.contains("NATS server tls://") && l.contains("check nats.tls.ca_file"))
            .count()
            == 1,
        "said once, with the fix:\n{log}"
    );
}

//! The MQTT sink against a real mosquitto broker and a real subscriber.

use crate::common;

use std::time::{Duration, Instant};

use common::daemon::{Daemon, replay_config};
use common::mosquitto::{Broker, Subscriber};
use common::tls::certificates;

fn models() -> std::path::PathBuf {
    common::repo().join("models")
}

fn sequences(payloads: &[String]) -> Vec<u64> {
    payloads
        .iter()
        .map(|p| {
            let v: serde_json::Value = serde_json::from_str(p).expect("landmarks payload is JSON");
            v["sequence"].as_u64().expect("sequence")
        })
        .collect()
}

#[test]
fn landmarks_health_and_availability_reach_a_real_subscriber() {
    let broker = Broker::start("");
    let subscriber = Subscriber::start(&broker, "spectrald/#", &["-q", "1"]);
    let config = replay_config(0, &models(), "")
        .replace("loop = true", "loop = false")
        .replace("speed = 1.0", "speed = 0.0")
        .replace("[http]\nlisten = \"127.0.0.1:0\"", "")
        + &format!(
            "[mqtt]\nhost = \"127.0.0.1\"\nport = {}\nqos = \"1\"\nhealth_interval_s = 1\n",
            broker.port
        );
    let mut daemon = Daemon::start(&config);
    assert_eq!(
        daemon.wait_exit(Duration::from_secs(120)),
        0,
        "{}",
        daemon.log()
    );
    subscriber.wait_for(
        "24 landmark messages and offline",
        Duration::from_secs(10),
        |s| {
            s.payloads("/landmarks").len() >= 24
                && s.payloads("/available").contains(&"offline".into())
        },
    );
    assert_eq!(
        sequences(&subscriber.payloads("kiosk-1/landmarks")),
        (0..24).collect::<Vec<u64>>(),
        "every record once, in order"
    );
    let available = subscriber.payloads("spectrald/available");
    assert_eq!(available.first().map(String::as_str), Some("online"));
    assert_eq!(available.last().map(String::as_str), Some("offline"));
    let health = subscriber.payloads("kiosk-1/health");
    let last: serde_json::Value =
        serde_json::from_str(health.last().expect("a health message")).expect("health JSON");
    assert_eq!(last["camera"], "kiosk-1");
    assert!(last["published"].as_u64().is_some(), "{last}");
    // The JSONL sink got the same records.
    assert_eq!(daemon.records().len(), 24);
}

#[test]
fn broker_restart_mid_stream_delivers_every_message_exactly_once_in_order() {
    // Exactly-once across a broker restart: QoS 2, persistent sessions on both sides, and a
    // broker that keeps them (persistence).
    let mut broker = Broker::start("persistence true\nautosave_interval 1");
    let subscriber = Subscriber::start(
        &broker,
        "spectrald/kiosk-1/landmarks",
        &["-q", "2", "-c", "-i", "spectrald-test-subscriber"],
    );
    let port = common::free_port();
    let config = replay_config(port, &models(), "")
        + &format!(
            "[mqtt]\nhost = \"127.0.0.1\"\nport = {}\nqos = \"2\"\nclean_session = false\nclient_id = \"spectrald-restart-test\"\nbuffer = 5\nwhen_full = \"block\"\ninitial_backoff_ms = 100\nmax_backoff_ms = 500\n",
            broker.port
        );
    let mut daemon = Daemon::start(&config);
    subscriber.wait_for(
        "20 messages before the outage",
        Duration::from_secs(60),
        |s| s.payloads("/landmarks").len() >= 20,
    );
    broker.stop();
    std::thread::sleep(Duration::from_secs(3));
    let during = subscriber.payloads("/landmarks").len();
    broker.restart();
    subscriber.wait_for(
        "20 more messages after the restart",
        Duration::from_secs(60),
        |s| s.payloads("/landmarks").len() >= during + 20,
    );
    assert_eq!(daemon.stop(), 0, "{}", daemon.log());
    let published: Vec<u64> = daemon
        .records()
        .iter()
        .map(|r| r["sequence"].as_u64().expect("sequence"))
        .collect();
    assert!(published.len() > during + 20);
    let started = Instant::now();
    while subscriber.payloads("/landmarks").len() < published.len()
        && started.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let received = sequences(&subscriber.payloads("/landmarks"));
    assert_eq!(
        received,
        published,
        "every message once, in order, across the restart; log:\n{}",
        daemon.log()
    );
    assert!(
        daemon.log().contains("MQTT broker unreachable"),
        "the outage was logged:\n{}",
        daemon.log()
    );
}

#[test]
fn broker_refusing_auth_is_reported_and_other_outputs_go_on() {
    let broker = Broker::start("allow_anonymous false");
    let port = common::free_port();
    let config = replay_config(port, &models(), "")
        + &format!(
            "[mqtt]\nhost = \"127.0.0.1\"\nport = {}\nusername = \"spectrald\"\npassword = \"{WRONG_PASSWORD}\"\nbuffer = 3\nwhen_full = \"drop_oldest\"\ninitial_backoff_ms = 100\nmax_backoff_ms = 200\n",
            broker.port
        );
    // Everything at debug level, the MQTT client's own logging included: the password
    // must still never appear.
    let daemon = Daemon::start_in(
        tempfile::tempdir().expect("tempdir"),
        &config,
        &[("SPECTRALD_LOG", "debug")],
    );
    // 16 messages fit in rumqttc's request queue and 3 in the buffer; later ones drop.
    daemon.wait_published("kiosk-1", 30, Duration::from_secs(60));
    let (_, metrics) = daemon.get("/metrics", None);
    let value = |prefix: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    assert!(
        value("spectrald_mqtt_connections_total{outcome=\"failed\"}") >= 1.0,
        "{metrics}"
    );
    assert!(
        value("spectrald_mqtt_dropped_total{camera=\"kiosk-1\",reason=\"buffer_full\"}") >= 1.0,
        "{metrics}"
    );
    let log = daemon.log();
    assert!(
        log.contains("MQTT broker unreachable") && log.contains("spectrald"),
        "{log}"
    );
    assert!(
        log.contains("check mqtt.username and the password"),
        "{log}"
    );
    assert!(daemon.records().len() >= 10, "JSONL keeps flowing");
    assert!(
        !log.contains(WRONG_PASSWORD),
        "the MQTT password was logged:\n{log}"
    );
}

const WRONG_PASSWORD: &str = "not-the-password-7c1e";

#[test]
fn tls_with_a_password_delivers_and_a_broker_signed_by_another_ca_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    // The broker (it runs as the `mosquitto` user) must read these.
    let certs = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(certs.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    certificates(certs.path(), "good");
    certificates(certs.path(), "other");
    let passwords = certs.path().join("passwords");
    let status = std::process::Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&passwords)
        .args(["spectrald", TLS_PASSWORD])
        .status()
        .expect("mosquitto_passwd");
    assert!(status.success());
    for entry in std::fs::read_dir(certs.path()).expect("list") {
        let path = entry.expect("entry").path();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    let file = |name: &str| certs.path().join(name).display().to_string();
    let broker = Broker::start(&format!(
        "allow_anonymous false\npassword_file {}\ncafile {}\ncertfile {}\nkeyfile {}\n",
        file("passwords"),
        file("good-ca.pem"),
        file("good-server.pem"),
        file("good-server.key"),
    ));
    let tls_client = [
        "--cafile",
        &file("good-ca.pem"),
        "-u",
        "spectrald",
        "-P",
        TLS_PASSWORD,
    ];
    let sub = Subscriber::start_with(&broker, "spectrald/#", &[], &tls_client);
    let mqtt = |ca: &str| {
        format!(
            "[mqtt]\nhost = \"127.0.0.1\"\nport = {}\nusername = \"spectrald\"\npassword = \"{TLS_PASSWORD}\"\ninitial_backoff_ms = 100\nmax_backoff_ms = 200\nbuffer = 3\nwhen_full = \"drop_oldest\"\n[mqtt.tls]\nca_file = \"{}\"\n",
            broker.port,
            file(ca)
        )
    };

    // The right CA and password: records arrive over TLS; the password is never logged.
    let port = common::free_port();
    let daemon = Daemon::start_in(
        tempfile::tempdir().expect("tempdir"),
        &(replay_config(port, &models(), "") + &mqtt("good-ca.pem")),
        &[("SPECTRALD_LOG", "debug")],
    );
    let started = Instant::now();
    while sub.payloads("/landmarks").len() < 5 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no landmarks over TLS; log:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let got = sequences(&sub.payloads("/landmarks"));
    assert!(got.windows(2).all(|w| w[0] < w[1]), "in order: {got:?}");
    drop(daemon);

    // A broker whose certificate another CA signed: refused, said in one line, counted;
    // the JSONL output goes on.
    let port = common::free_port();
    let daemon = Daemon::start_in(
        tempfile::tempdir().expect("tempdir"),
        &(replay_config(port, &models(), "") + &mqtt("other-ca.pem")),
        &[("SPECTRALD_LOG", "debug")],
    );
    daemon.wait_published("kiosk-1", 10, Duration::from_secs(60));
    let (_, metrics) = daemon.get("/metrics", None);
    let failed = metrics
        .lines()
        .find(|l| l.starts_with("spectrald_mqtt_connections_total{outcome=\"failed\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(failed >= 1.0, "{metrics}");
    let log = daemon.log();
    let refused = log
        .lines()
        .find(|l| l.contains("MQTT broker unreachable"))
        .unwrap_or_else(|| panic!("no refusal logged:\n{log}"));
    assert!(refused.contains("certificate verify failed"), "{refused}");
    assert!(
        refused.contains("mqtt.tls.ca_file"),
        "names the setting: {refused}"
    );
    eprintln!("refusal as logged: {refused}");
    assert!(daemon.records().len() >= 10, "JSONL keeps flowing");
    for log in [log, daemon.log()] {
        assert!(!log.contains(TLS_PASSWORD), "the password was logged");
    }
}

const TLS_PASSWORD: &str = "tls-password-93b1";

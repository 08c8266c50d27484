//! A real mosquitto broker on a loopback port, and a real subscriber (`mosquitto_sub`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Broker {
    child: Option<Child>,
    pub port: u16,
    config: PathBuf,
    _dir: Arc<tempfile::TempDir>,
}

fn wait_until_listening(port: u16) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "mosquitto did not listen on {port} (apt install mosquitto)"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Broker {
    /// `extra`: more mosquitto.conf lines (persistence, auth).
    pub fn start(extra: &str) -> Broker {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        // Started as root, mosquitto drops to the `mosquitto` user: let it write its
        // persistence file here.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
        let port = super::free_port();
        let config = dir.path().join("mosquitto.conf");
        std::fs::write(
            &config,
            format!(
                "listener {port} 127.0.0.1\n{}persistence_location {}/\n{extra}\n",
                if extra.contains("allow_anonymous") {
                    ""
                } else {
                    "allow_anonymous true\n"
                },
                dir.path().display()
            ),
        )
        .expect("write mosquitto.conf");
        let mut broker = Broker {
            child: None,
            port,
            config,
            _dir: dir,
        };
        broker.restart();
        broker
    }

    pub fn restart(&mut self) {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto starts (apt install mosquitto)");
        self.child = Some(child);
        wait_until_listening(self.port);
    }

    /// SIGTERM (mosquitto saves its persistence file) and wait.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `mosquitto_sub -v` collecting "topic payload" lines.
pub struct Subscriber {
    child: Child,
    pub lines: Arc<Mutex<Vec<String>>>,
}

impl Subscriber {
    /// `args`: extra options (e.g. a persistent session: -c -i ID -q 2).
    pub fn start(broker: &Broker, topic: &str, args: &[&str]) -> Subscriber {
        Self::start_with(broker, topic, args, &[])
    }

    /// As `start`; `connection`: options of the connection itself (TLS, credentials),
    /// given to the probe publisher too.
    pub fn start_with(
        broker: &Broker,
        topic: &str,
        args: &[&str],
        connection: &[&str],
    ) -> Subscriber {
        let mut child = Command::new("mosquitto_sub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &broker.port.to_string(),
                "-v",
                "-t",
                topic,
            ])
            .args(args)
            .args(connection)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub starts (apt install mosquitto-clients)");
        let stdout = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().expect("lines").push(line);
            }
        });
        // mosquitto_sub gives no "subscribed" signal: publish probes on the filtered topic
        // until one comes back, then forget them.
        let probe_topic = topic.replace(['#', '+'], "probe");
        let started = Instant::now();
        while !lines
            .lock()
            .expect("lines")
            .iter()
            .any(|l| l.ends_with(" __probe__"))
        {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "mosquitto_sub did not subscribe to {topic}"
            );
            let _ = Command::new("mosquitto_pub")
                .args(["-h", "127.0.0.1", "-p", &broker.port.to_string(), "-q", "1"])
                .args(["-t", &probe_topic, "-m", "__probe__"])
                .args(connection)
                .status();
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(200));
        lines.lock().expect("lines").clear();
        Subscriber { child, lines }
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lines").clone()
    }

    /// Payloads received on topics ending in `suffix`, parsed as JSON where possible.
    pub fn payloads(&self, suffix: &str) -> Vec<String> {
        self.lines()
            .iter()
            .filter_map(|l| l.split_once(' '))
            .filter(|(topic, payload)| topic.ends_with(suffix) && *payload != "__probe__")
            .map(|(_, payload)| payload.to_owned())
            .collect()
    }

    pub fn wait_for(&self, what: &str, timeout: Duration, check: impl Fn(&Subscriber) -> bool) {
        let started = Instant::now();
        while !check(self) {
            assert!(
                started.elapsed() < timeout,
                "timed out waiting for {what}; received {} lines",
                self.lines().len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

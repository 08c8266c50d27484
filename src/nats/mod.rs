//! NATS JetStream: the engine spectrald scales out on (docs/scaling.md).
//!
//! | file          | what                                                               |
//! |---------------|--------------------------------------------------------------------|
//! | `config.rs`   | `[nats]`: server, stream, buffer, credentials                      |
//! | `connect.rs`  | connection options from config or environment (token, user/password, nkey, TLS) |
//! | `stream.rs`   | create a stream, or check that an existing one fits                |
//! | `sink.rs`     | the live sink: records → `PREFIX.CAMERA.landmarks`, acknowledged, de-duplicated by id |
//! | `health.rs`   | each rig's last state in a key-value bucket, with a TTL            |
//! | `jobs.rs`     | distributed offline jobs: submit (object store + work queue), worker, results |
//!
//! async-nats runs on a small tokio runtime of its own; the pipeline's threads hand
//! records over through the sink's outage buffer and never wait on the network.

mod config;
mod connect;
mod health;
pub mod jobs;
mod sink;
mod stream;

pub use config::{
    NATS_NKEY_SEED_ENV, NATS_PASSWORD_ENV, NATS_TOKEN_ENV, NatsConfig, NatsTls, Retention,
    shown_url,
};
pub use connect::{Credentials, connect};
pub use sink::NatsSink;
pub use stream::{StreamWanted, ensure_stream};

#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error("NATS server {url}: {message}; {hint}")]
    Connect {
        url: String,
        message: String,
        hint: &'static str,
    },
    #[error(
        "NATS stream {stream} exists with {setting} = {found}, but the config says {wanted}; \
         change nats.{setting} to match, or change the stream (`nats stream edit {stream}`)"
    )]
    Incompatible {
        stream: String,
        setting: &'static str,
        found: String,
        wanted: String,
    },
    #[error("NATS stream {stream}: {message}")]
    Stream { stream: String, message: String },
    #[error("NATS {what}: {message}")]
    Request { what: String, message: String },
    #[error("nats.tls: {path}: no such file; check the path")]
    TlsFile { path: String },
    #[error("cannot start the NATS thread: {0}")]
    Thread(std::io::Error),
}

/// A small multi-threaded runtime for the client's connection tasks, which must keep
/// running (pings, reconnects) while our own threads block on their buffers.
pub fn runtime(name: &str) -> Result<tokio::runtime::Runtime, NatsError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
        .map_err(NatsError::Thread)
}

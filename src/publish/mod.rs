//! Sinks: where the landmark records go. Every sink receives the same serialized
//! `spectrald.landmarks/v2` line (see [`record`]); one file per sink kind.

mod config;
pub mod hub;
pub mod jsonl;
pub mod mqtt;
mod mqtt_tls;
pub mod outage;
pub mod record;

pub use config::{MQTT_PASSWORD_ENV, MqttConfig, MqttTls, OutputConfig, Qos};
pub use outage::WhenFull;
pub use record::{LandmarkRecord, SCHEMA};

use crate::frame::Frame;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("JSONL output {path}: {source}; check the path, permissions and free space")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// The reader went away (stdout closed, e.g. `| head`): publishing there is over.
    #[error("{0} was closed by its reader")]
    Closed(String),
}

/// One published frame: the serialized record (no trailing newline) and the frame it
/// describes (for sinks that show pictures, like the live page).
pub struct Outgoing<'a> {
    pub frame: &'a Frame,
    pub line: &'a str,
}

/// A destination for landmark records.
pub trait Sink: Send {
    /// Name for logs and counters ("jsonl:-", "jsonl:/var/log/x.jsonl").
    fn name(&self) -> String;
    /// Publishes one record.
    fn publish(&mut self, message: &Outgoing<'_>) -> Result<(), SinkError>;
    /// Makes everything published so far durable/visible.
    fn flush(&mut self) -> Result<(), SinkError>;
}

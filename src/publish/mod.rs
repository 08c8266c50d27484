//! Sinks: where the landmark records go. Every sink receives the same serialized
//! `spectrald.landmarks/v1` line (see [`record`]); one file per sink kind.

pub mod jsonl;
pub mod record;

pub use record::{LandmarkRecord, SCHEMA};

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

/// A destination for landmark records.
pub trait Sink: Send {
    /// Name for logs and counters ("jsonl:-", "jsonl:/var/log/x.jsonl").
    fn name(&self) -> String;
    /// Publishes one serialized record (no trailing newline).
    fn publish(&mut self, line: &str) -> Result<(), SinkError>;
    /// Makes everything published so far durable/visible.
    fn flush(&mut self) -> Result<(), SinkError>;
}

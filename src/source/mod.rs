//! Where frames come from. Every source kind implements [`Source`]: it produces
//! [`SpectrumFrame`]s in capture order per spectrum and stops when its input ends or the
//! shared stop flag is set.

pub mod replay;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::frame::SpectrumFrame;
use crate::pipeline::QueueSender;
use crate::telemetry::Events;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("replay session {path}: {message}")]
    Session { path: String, message: String },
}

/// A producer of frames for one camera.
pub trait Source: Send {
    /// Sends frames until the input ends, `stop` is set, or the pipeline closes.
    /// Per-frame problems are counted in `events` and skipped; only problems that make
    /// the whole source unusable return an error.
    fn run(
        self: Box<Self>,
        out: QueueSender<SpectrumFrame>,
        stop: Arc<AtomicBool>,
        events: Arc<Events>,
    ) -> Result<(), SourceError>;
}

//! Live streams (GStreamer, cameras) under one supervisor: connect, stream, detect stalls,
//! reconnect with exponential backoff and jitter.
//!
//! ```text
//! starting ──frame──► streaming ──no frame for stall timeout──► stalled ─┐
//!    ▲                    │ error / end of stream                       │
//!    └──── backoff ◄── reconnecting ◄──────────────────────────────────────┘
//! permanent error (bad pipeline) or max_attempts reached ──► failed
//! ```
//! Every transition is an event (`stream_state_changes{state}`) and the current state
//! with its reason is kept for health and metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::ReconnectConfig;
use super::{Source, SourceError};
use crate::backoff::{Backoff, sleep_unless};
use crate::frame::{Pixels, Spectrum, SpectrumFrame};
use crate::queue::QueueSender;
use crate::telemetry::{Events, StreamState};

/// One image as a live stream delivers it.
#[derive(Debug)]
pub struct Captured {
    pub width: u32,
    pub height: u32,
    pub pixels: Pixels,
    /// Capture time, Unix microseconds.
    pub captured_us: i64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StreamError {
    /// The stream ended normally (end of stream from a file or a server).
    #[error("end of stream: {0}")]
    Ended(String),
    /// Worth retrying: network, device busy or unplugged, server gone.
    #[error("{0}")]
    Failed(String),
    /// Retrying cannot help: the configuration is wrong.
    #[error("{0}")]
    Permanent(String),
}

/// An open stream.
/// Created and used on its source thread only (so camera handles need not be `Send`).
pub trait LiveStream {
    /// Waits at most `timeout` for the next image; `Ok(None)` when none came.
    fn next_image(&mut self, timeout: Duration) -> Result<Option<Captured>, StreamError>;
}

/// Opens a stream; called again for every reconnect.
pub trait Connector: Send {
    /// Names the stream in messages (URI, pipeline, device).
    fn describe(&self) -> String;
    fn connect(&mut self) -> Result<Box<dyn LiveStream>, StreamError>;
}

/// What the stream does at end of stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtEnd {
    Reconnect,
    Stop,
}

pub struct LiveSource {
    camera: Arc<str>,
    spectrum: Spectrum,
    connector: Box<dyn Connector>,
    reconnect: ReconnectConfig,
    at_end: AtEnd,
}

/// Tracks the frame interval to decide when a stream has stalled.
struct StallClock {
    last: Instant,
    interval: Option<Duration>,
}

impl StallClock {
    fn frame(&mut self, now: Instant) {
        let gap = now - self.last;
        // Exponential moving average: one slow frame does not move it much.
        self.interval = Some(match self.interval {
            None => gap,
            Some(i) => i.mul_f64(0.9) + gap.mul_f64(0.1),
        });
        self.last = now;
    }

    fn timeout(&self, config: &ReconnectConfig) -> Duration {
        match self.interval {
            None => Duration::from_millis(config.first_frame_timeout_ms),
            Some(i) => i
                .mul_f64(config.stall_intervals)
                .max(Duration::from_millis(config.min_stall_ms)),
        }
    }
}

impl LiveSource {
    pub fn new(
        camera: &str,
        spectrum: Spectrum,
        connector: Box<dyn Connector>,
        reconnect: ReconnectConfig,
        at_end: AtEnd,
    ) -> LiveSource {
        LiveSource {
            camera: camera.into(),
            spectrum,
            connector,
            reconnect,
            at_end,
        }
    }

    fn state(&self, events: &Events, state: StreamState, reason: &str) {
        events.stream_state(&self.camera, self.spectrum.as_str(), state, reason);
    }

    /// Streams until the stream breaks; says why it stopped.
    fn stream(
        &self,
        mut stream: Box<dyn LiveStream>,
        out: &QueueSender<SpectrumFrame>,
        stop: &AtomicBool,
        events: &Events,
    ) -> Outcome {
        let what = self.connector.describe();
        let mut clock = StallClock {
            last: Instant::now(),
            interval: None,
        };
        let poll = Duration::from_millis(100);
        loop {
            if stop.load(Ordering::Relaxed) {
                return Outcome::Stopped;
            }
            match stream.next_image(poll) {
                Ok(Some(image)) => {
                    if clock.interval.is_none() {
                        self.state(
                            events,
                            StreamState::Streaming,
                            &format!("{what}: streaming"),
                        );
                    }
                    clock.frame(Instant::now());
                    events.frame_received(&self.camera, self.spectrum.as_str());
                    let frame = SpectrumFrame {
                        camera: self.camera.clone(),
                        spectrum: self.spectrum,
                        captured_us: image.captured_us,
                        width: image.width,
                        height: image.height,
                        pixels: Arc::new(image.pixels),
                        origin: what.as_str().into(),
                        received: Instant::now(),
                        radiometry: None,
                        registration: None,
                    };
                    if out.send(frame).is_err() {
                        return Outcome::Stopped;
                    }
                }
                Ok(None) => {
                    let timeout = clock.timeout(&self.reconnect);
                    let silent = clock.last.elapsed();
                    if silent > timeout {
                        let reason = format!(
                            "{what}: no frame for {} ms (stall timeout {} ms); reconnecting",
                            silent.as_millis(),
                            timeout.as_millis()
                        );
                        self.state(events, StreamState::Stalled, &reason);
                        return Outcome::Retry(reason);
                    }
                }
                Err(StreamError::Ended(m)) => {
                    return match self.at_end {
                        AtEnd::Stop => Outcome::Ended(format!("{what}: {m}")),
                        AtEnd::Reconnect => {
                            let reason = format!("{what}: stream ended ({m})");
                            events.source_failed(&self.camera, self.spectrum.as_str(), &reason);
                            Outcome::Retry(reason)
                        }
                    };
                }
                Err(StreamError::Failed(m)) => {
                    let reason = format!("{what}: {m}");
                    events.source_failed(&self.camera, self.spectrum.as_str(), &reason);
                    return Outcome::Retry(reason);
                }
                Err(StreamError::Permanent(m)) => return Outcome::Permanent(m),
            }
        }
    }
}

enum Outcome {
    Stopped,
    Ended(String),
    /// Try again; the text says what went wrong.
    Retry(String),
    Permanent(String),
}

impl Source for LiveSource {
    fn run(
        mut self: Box<Self>,
        out: QueueSender<SpectrumFrame>,
        stop: Arc<AtomicBool>,
        events: Arc<Events>,
    ) -> Result<(), SourceError> {
        let what = self.connector.describe();
        let spectrum = self.spectrum.as_str();
        let mut backoff = Backoff::new(
            Duration::from_millis(self.reconnect.initial_backoff_ms),
            Duration::from_millis(self.reconnect.max_backoff_ms),
        );
        loop {
            if stop.load(Ordering::Relaxed) {
                self.state(&events, StreamState::Ended, "shutdown");
                return Ok(());
            }
            self.state(
                &events,
                StreamState::Starting,
                &format!("{what}: connecting"),
            );
            let outcome = match self.connector.connect() {
                Ok(stream) => {
                    let outcome = self.stream(stream, &out, &stop, &events);
                    backoff.reset(); // it connected: the backoff starts over
                    outcome
                }
                Err(StreamError::Permanent(m)) => Outcome::Permanent(m),
                Err(e) => {
                    let reason = format!("{what}: {e}");
                    events.source_failed(&self.camera, spectrum, &reason);
                    Outcome::Retry(reason)
                }
            };
            let last_error = match outcome {
                Outcome::Stopped => {
                    self.state(&events, StreamState::Ended, "shutdown");
                    return Ok(());
                }
                Outcome::Ended(reason) => {
                    self.state(&events, StreamState::Ended, &reason);
                    return Ok(());
                }
                Outcome::Permanent(m) => {
                    let reason = format!("{what}: {m}");
                    events.source_failed(&self.camera, spectrum, &reason);
                    self.state(&events, StreamState::Failed, &reason);
                    return Ok(());
                }
                Outcome::Retry(reason) => reason,
            };
            let delay = backoff.next_delay();
            let failures = backoff.failures();
            if self.reconnect.max_attempts > 0 && failures >= self.reconnect.max_attempts {
                let reason =
                    format!("gave up after {failures} failed attempts; last: {last_error}");
                self.state(&events, StreamState::Failed, &reason);
                return Ok(());
            }
            self.state(
                &events,
                StreamState::Reconnecting,
                &format!(
                    "{last_error}; reconnect attempt {failures} in {} ms",
                    delay.as_millis()
                ),
            );
            events.count_reconnect(&self.camera, spectrum);
            if !sleep_unless(&stop, delay) {
                self.state(&events, StreamState::Ended, "shutdown");
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stall_timeout_follows_the_frame_interval() {
        let config = ReconnectConfig::default();
        let start = Instant::now();
        let mut clock = StallClock {
            last: start,
            interval: None,
        };
        assert_eq!(
            clock.timeout(&config),
            Duration::from_millis(config.first_frame_timeout_ms)
        );
        for i in 1..=20 {
            clock.frame(start + Duration::from_millis(100 * i));
        }
        let expected = Duration::from_millis(100).mul_f64(config.stall_intervals);
        let got = clock.timeout(&config);
        assert!(
            got.abs_diff(expected.max(Duration::from_millis(config.min_stall_ms)))
                < Duration::from_millis(20),
            "{got:?}"
        );
    }
}

//! The live view of the pipeline for the HTTP side: each camera's latest published frame
//! (images and record), its publish rate, and a broadcast of every record for the
//! Server-Sent Events stream. The sink thread writes, HTTP handlers read; a slow HTTP
//! client never holds up the pipeline (the broadcast drops for laggards and says so).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::broadcast;

use super::{Outgoing, Sink, SinkError};
use crate::frame::Frame;

/// Records the SSE broadcast holds for a slow reader before it skips ahead.
const BROADCAST_CAPACITY: usize = 256;

/// One record on the broadcast: its camera and the serialized v1 JSON.
#[derive(Debug, Clone)]
pub struct Published {
    pub camera: Arc<str>,
    pub sequence: u64,
    pub line: Arc<str>,
}

/// A camera's newest published frame.
#[derive(Debug, Clone)]
pub struct Latest {
    pub frame: Arc<Frame>,
    pub record: Arc<str>,
    pub at: Instant,
    /// Published pairs per second (exponentially weighted).
    pub fps: f64,
}

#[derive(Debug)]
pub struct Hub {
    latest: Mutex<BTreeMap<String, Latest>>,
    broadcast: broadcast::Sender<Published>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            latest: Mutex::default(),
            broadcast: broadcast::channel(BROADCAST_CAPACITY).0,
        }
    }
}

impl Hub {
    pub fn new() -> Arc<Hub> {
        Arc::new(Hub::default())
    }

    pub fn latest(&self, camera: &str) -> Option<Latest> {
        self.latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(camera)
            .cloned()
    }

    pub fn all_latest(&self) -> BTreeMap<String, Latest> {
        self.latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Published> {
        self.broadcast.subscribe()
    }

    fn publish(&self, frame: &Frame, line: &str) {
        let now = Instant::now();
        let mut latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        let fps = match latest.get(&*frame.camera) {
            Some(previous) => {
                let dt = now.duration_since(previous.at).as_secs_f64();
                let instant = if dt > 0.0 { 1.0 / dt } else { previous.fps };
                if previous.fps > 0.0 {
                    0.8 * previous.fps + 0.2 * instant
                } else {
                    instant
                }
            }
            None => 0.0,
        };
        let record: Arc<str> = line.into();
        latest.insert(
            frame.camera.to_string(),
            Latest {
                frame: Arc::new(frame.clone()),
                record: record.clone(),
                at: now,
                fps,
            },
        );
        drop(latest);
        // No subscriber is not an error: nobody is watching the stream right now.
        let _ = self.broadcast.send(Published {
            camera: frame.camera.clone(),
            sequence: frame.sequence,
            line: record,
        });
    }
}

/// The sink that feeds a [`Hub`].
pub struct HubSink(pub Arc<Hub>);

impl Sink for HubSink {
    fn name(&self) -> String {
        "http".into()
    }

    fn publish(&mut self, message: &Outgoing<'_>) -> Result<(), SinkError> {
        self.0.publish(message.frame, message.line);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

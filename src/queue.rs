//! Bounded queues between stages, with the configured full-queue policy.
//!
//! `block`: `send` waits for room, so back-pressure reaches the source and nothing is lost.
//! `drop_oldest`: `send` never waits; when the queue is full the oldest queued item is
//! taken out and counted as `frame_dropped{reason=queue_full}`, so the newest always gets in.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use serde::{Deserialize, Serialize};

use crate::frame::{Frame, SpectrumFrame};
use crate::invalid::Invalid;
use crate::stage::Stage;
use crate::telemetry::{DropReason, Events};

/// How a stage's input queue behaves when it is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Wait for room: lossless, back-pressure reaches the source (replay, tests).
    #[default]
    Block,
    /// Drop the oldest queued frame: latency stays bounded (live cameras).
    DropOldest,
}

/// One queue's size and full policy.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Frames the queue holds.
    pub capacity: usize,
    pub when_full: WhenFull,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            capacity: 8,
            when_full: WhenFull::Block,
        }
    }
}

/// The input queue of each stage; `stage.<name>` overrides the default for one of them.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueuesConfig {
    /// Frames each queue holds, unless overridden.
    pub capacity: usize,
    pub when_full: WhenFull,
    /// Per-stage overrides, keyed by the stage whose input the queue is ([`Stage`] names).
    pub stage: std::collections::BTreeMap<String, QueueConfig>,
}

impl Default for QueuesConfig {
    fn default() -> Self {
        QueuesConfig::uniform(QueueConfig::default())
    }
}

impl QueuesConfig {
    pub fn uniform(queue: QueueConfig) -> Self {
        QueuesConfig {
            capacity: queue.capacity,
            when_full: queue.when_full,
            stage: Default::default(),
        }
    }

    pub fn for_stage(&self, stage: Stage) -> QueueConfig {
        self.stage
            .get(stage.as_str())
            .copied()
            .unwrap_or(QueueConfig {
                capacity: self.capacity,
                when_full: self.when_full,
            })
    }

    /// Checks `[queues]`: capacities of at least 1, overrides only for stages that exist.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.capacity == 0 {
            return Err(Invalid::new("capacity", "must be at least 1"));
        }
        for (name, queue) in &self.stage {
            if let Err(message) = name.parse::<Stage>() {
                return Err(Invalid::new(format!("stage.{name}"), message));
            }
            if queue.capacity == 0 {
                return Err(Invalid::new(
                    format!("stage.{name}.capacity"),
                    "must be at least 1",
                ));
            }
        }
        Ok(())
    }
}

/// Anything that travels through a queue knows its camera and how many images it
/// carries, for drop accounting.
pub trait Tracked {
    fn camera(&self) -> &str;
    fn images(&self) -> u64;
}

impl Tracked for Frame {
    fn camera(&self) -> &str {
        &self.camera
    }
    fn images(&self) -> u64 {
        self.visible.is_some() as u64 + self.thermal.is_some() as u64
    }
}

impl Tracked for SpectrumFrame {
    fn camera(&self) -> &str {
        &self.camera
    }
    fn images(&self) -> u64 {
        1
    }
}

/// The sending half; clone it to fan in several producers.
pub struct QueueSender<T> {
    tx: Sender<T>,
    /// Only for `drop_oldest`: lets the sender evict the oldest item.
    evict: Option<Receiver<T>>,
    events: Arc<Events>,
}

impl<T> Clone for QueueSender<T> {
    fn clone(&self) -> Self {
        QueueSender {
            tx: self.tx.clone(),
            evict: self.evict.clone(),
            events: self.events.clone(),
        }
    }
}

/// The receiver side went away (the pipeline is shutting down); the item comes back.
#[derive(Debug)]
pub struct Closed<T>(pub T);

pub fn queue<T>(config: &QueueConfig, events: Arc<Events>) -> (QueueSender<T>, Receiver<T>) {
    let (tx, rx) = crossbeam_channel::bounded(config.capacity);
    let evict = (config.when_full == WhenFull::DropOldest).then(|| rx.clone());
    (QueueSender { tx, evict, events }, rx)
}

impl<T: Tracked> QueueSender<T> {
    pub fn send(&self, item: T) -> Result<(), Closed<T>> {
        let Some(evict) = &self.evict else {
            return self.tx.send(item).map_err(|e| Closed(e.0));
        };
        let mut item = item;
        loop {
            match self.tx.try_send(item) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Disconnected(back)) => return Err(Closed(back)),
                Err(TrySendError::Full(back)) => {
                    item = back;
                    if let Ok(oldest) = evict.try_recv() {
                        self.events.frame_dropped(
                            oldest.camera(),
                            DropReason::QueueFull,
                            oldest.images(),
                            "queue full",
                        );
                    }
                }
            }
        }
    }

    /// Items waiting in the queue now.
    pub fn len(&self) -> usize {
        self.tx.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tx.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Item(u32);
    impl Tracked for Item {
        fn camera(&self) -> &str {
            "cam"
        }
        fn images(&self) -> u64 {
            1
        }
    }

    #[test]
    fn drop_oldest_keeps_the_newest_and_counts() {
        let events = Arc::new(Events::new());
        let (tx, rx) = queue::<Item>(
            &QueueConfig {
                capacity: 2,
                when_full: WhenFull::DropOldest,
            },
            events.clone(),
        );
        for i in 0..5 {
            tx.send(Item(i)).map_err(|_| "closed").expect("send");
        }
        let kept: Vec<u32> = rx.try_iter().map(|i| i.0).collect();
        assert_eq!(kept, vec![3, 4]);
        assert_eq!(events.drops_by_reason("cam").get("queue_full"), Some(&3));
    }

    #[test]
    fn block_reports_closed_when_receiver_is_gone() {
        let events = Arc::new(Events::new());
        let (tx, rx) = queue::<Item>(
            &QueueConfig {
                capacity: 1,
                when_full: WhenFull::Block,
            },
            events,
        );
        drop(rx);
        assert!(matches!(tx.send(Item(1)), Err(Closed(Item(1)))));
    }

    #[test]
    fn queue_settings_need_room_and_a_real_stage() {
        assert_eq!(QueuesConfig::default().validate(), Ok(()));
        let zero = QueuesConfig {
            capacity: 0,
            ..Default::default()
        };
        assert_eq!(zero.validate().unwrap_err().field, "capacity");
        let mut typo = QueuesConfig::default();
        typo.stage
            .insert("landmarks".into(), QueueConfig::default());
        let e = typo.validate().unwrap_err();
        assert_eq!(e.field, "stage.landmarks");
        assert!(e.message.contains("landmark, postprocess"), "{e}");
        let mut empty = QueuesConfig::default();
        empty.stage.insert(
            "sink".into(),
            QueueConfig {
                capacity: 0,
                when_full: WhenFull::Block,
            },
        );
        assert_eq!(empty.validate().unwrap_err().field, "stage.sink.capacity");
        assert_eq!(empty.for_stage(Stage::Pair), QueueConfig::default());
    }
}

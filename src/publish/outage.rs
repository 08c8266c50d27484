//! The bounded buffer between the pipeline and a network sink (MQTT, NATS): records wait
//! here while the server is away, and a full buffer does what `when_full` says — hold the
//! pipeline (`block`: nothing is lost) or drop the oldest or the newest record (counted by
//! the sink's own counter).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// What a full buffer does with the next record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    #[default]
    Block,
    DropOldest,
    DropNewest,
}

/// One record on its way out.
#[derive(Debug, Clone)]
pub struct Pending {
    pub camera: std::sync::Arc<str>,
    pub sequence: u64,
    pub payload: Vec<u8>,
}

impl Pending {
    /// What a sink's buffer holds for one published record.
    pub fn of(message: &super::Outgoing<'_>) -> Pending {
        Pending {
            camera: message.frame.camera.clone(),
            sequence: message.frame.sequence,
            payload: message.line.as_bytes().to_vec(),
        }
    }
}

/// Why a record was dropped: `buffer_full` or `shutdown`.
pub type DropReason = &'static str;

pub struct OutageBuffer {
    queue: Mutex<VecDeque<Pending>>,
    changed: Condvar,
    capacity: usize,
    closed: AtomicBool,
}

impl OutageBuffer {
    pub fn new(capacity: usize) -> OutageBuffer {
        OutageBuffer {
            queue: Mutex::new(VecDeque::new()),
            changed: Condvar::new(),
            capacity: capacity.max(1),
            closed: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Pending>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait<'a>(
        &self,
        queue: MutexGuard<'a, VecDeque<Pending>>,
    ) -> MutexGuard<'a, VecDeque<Pending>> {
        self.changed
            .wait_timeout(queue, Duration::from_millis(100))
            .map(|(q, _)| q)
            .unwrap_or_else(|p| p.into_inner().0)
    }

    /// Adds a record. When full: `block` waits for room — until `stop` has been set for
    /// `shutdown_timeout`, then the record is dropped as `shutdown`; the drop policies
    /// make room at once. `dropped` is told about every record given up.
    pub fn push(
        &self,
        pending: Pending,
        when_full: WhenFull,
        stop: &AtomicBool,
        shutdown_timeout: Duration,
        dropped: impl Fn(&Pending, DropReason),
    ) {
        let mut queue = self.lock();
        let mut waited_since: Option<Instant> = None;
        while queue.len() >= self.capacity {
            match when_full {
                WhenFull::DropNewest => {
                    dropped(&pending, "buffer_full");
                    return;
                }
                WhenFull::DropOldest => {
                    if let Some(old) = queue.pop_front() {
                        dropped(&old, "buffer_full");
                    }
                }
                WhenFull::Block => {
                    // Back-pressure: the pipeline waits with us. Only a shutdown during an
                    // outage ends the wait, after shutdown_timeout, and counts the loss.
                    if stop.load(Ordering::Relaxed) {
                        let since = *waited_since.get_or_insert_with(Instant::now);
                        if since.elapsed() > shutdown_timeout {
                            dropped(&pending, "shutdown");
                            return;
                        }
                    }
                    queue = self.wait(queue);
                }
            }
        }
        queue.push_back(pending);
        drop(queue);
        self.changed.notify_all();
    }

    /// The oldest record, waiting for one; `None` once the buffer is closed and empty.
    pub fn pop(&self) -> Option<Pending> {
        let mut queue = self.lock();
        loop {
            if let Some(p) = queue.pop_front() {
                drop(queue);
                self.changed.notify_all();
                return Some(p);
            }
            if self.closed.load(Ordering::Relaxed) {
                return None;
            }
            queue = self.wait(queue);
        }
    }

    /// Up to `max` records without waiting.
    pub fn take_ready(&self, max: usize) -> Vec<Pending> {
        let mut queue = self.lock();
        let n = queue.len().min(max);
        let out: Vec<Pending> = queue.drain(..n).collect();
        drop(queue);
        if !out.is_empty() {
            self.changed.notify_all();
        }
        out
    }

    /// A sink's flush: waits until the buffer is empty and `outstanding()` (sent, not yet
    /// confirmed) is 0, or `timeout` has passed.
    pub fn wait_drained(&self, outstanding: impl Fn() -> u64, timeout: Duration) {
        let started = Instant::now();
        while (!self.is_empty() || outstanding() > 0) && started.elapsed() < timeout {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Takes everything still waiting (shutdown: the caller counts them lost).
    pub fn drain(&self) -> Vec<Pending> {
        let out = self.lock().drain(..).collect();
        self.changed.notify_all();
        out
    }

    /// No more records will come: `pop` returns `None` once empty.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn record(sequence: u64) -> Pending {
        Pending {
            camera: Arc::from("cam"),
            sequence,
            payload: vec![],
        }
    }

    fn fill(when_full: WhenFull) -> (Vec<u64>, Vec<(u64, DropReason)>) {
        let buffer = OutageBuffer::new(2);
        let dropped = Mutex::new(Vec::new());
        for s in 0..4 {
            buffer.push(
                record(s),
                when_full,
                &AtomicBool::new(false),
                Duration::ZERO,
                |p, why| dropped.lock().expect("lock").push((p.sequence, why)),
            );
        }
        let kept = buffer.take_ready(10).iter().map(|p| p.sequence).collect();
        (kept, dropped.into_inner().expect("lock"))
    }

    #[test]
    fn drop_policies_keep_the_newest_or_the_oldest_and_say_which_went() {
        assert_eq!(
            fill(WhenFull::DropOldest),
            (vec![2, 3], vec![(0, "buffer_full"), (1, "buffer_full")])
        );
        assert_eq!(
            fill(WhenFull::DropNewest),
            (vec![0, 1], vec![(2, "buffer_full"), (3, "buffer_full")])
        );
    }

    #[test]
    fn block_waits_for_room_and_gives_up_only_after_a_stop() {
        let buffer = Arc::new(OutageBuffer::new(1));
        let stop = AtomicBool::new(false);
        buffer.push(record(0), WhenFull::Block, &stop, Duration::ZERO, |_, _| {});
        let reader = {
            let buffer = buffer.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(200));
                buffer.pop().map(|p| p.sequence)
            })
        };
        // Waits until the reader made room.
        buffer.push(record(1), WhenFull::Block, &stop, Duration::ZERO, |_, _| {
            panic!("nothing is dropped while not stopping")
        });
        assert_eq!(reader.join().expect("reader"), Some(0));
        stop.store(true, Ordering::Relaxed);
        let lost = Mutex::new(None);
        buffer.push(
            record(2),
            WhenFull::Block,
            &stop,
            Duration::from_millis(50),
            |p, why| *lost.lock().expect("lock") = Some((p.sequence, why)),
        );
        assert_eq!(*lost.lock().expect("lock"), Some((2, "shutdown")));
        buffer.close();
        assert_eq!(buffer.pop().map(|p| p.sequence), Some(1));
        assert!(buffer.pop().is_none());
    }
}

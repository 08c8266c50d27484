//! Is any stage stuck? Each compute stage marks itself busy while it works on one frame;
//! the systemd watchdog (see `service`) pings only while no stage has been busy on a
//! single frame for longer than the limit. Waiting for input or for room downstream is
//! not busy: a slow consumer (a broker outage in `block` mode) is back-pressure, not a
//! wedge, and must not get the service killed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::stage::Stage;

#[derive(Debug)]
pub struct Heartbeat {
    epoch: Instant,
    /// Per stage ([`Stage::ALL`] order): milliseconds since `epoch` + 1 when it started
    /// its current frame, 0 when idle.
    busy_since: [AtomicU64; Stage::ALL.len()],
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat {
            epoch: Instant::now(),
            busy_since: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// Marks a stage busy until dropped.
pub struct Busy<'a> {
    slot: &'a AtomicU64,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.slot.store(0, Ordering::Relaxed);
    }
}

impl Heartbeat {
    pub fn busy(&self, stage: Stage) -> Busy<'_> {
        let slot = &self.busy_since[stage.index()];
        slot.store(
            self.epoch.elapsed().as_millis() as u64 + 1,
            Ordering::Relaxed,
        );
        Busy { slot }
    }

    /// The stage that has been on one frame the longest, if longer than `limit`.
    pub fn wedged(&self, limit: Duration) -> Option<(Stage, Duration)> {
        let now = self.epoch.elapsed().as_millis() as u64 + 1;
        Stage::ALL
            .into_iter()
            .zip(&self.busy_since)
            .filter_map(|(stage, since)| match since.load(Ordering::Relaxed) {
                0 => None,
                t => Some((stage, Duration::from_millis(now.saturating_sub(t)))),
            })
            .filter(|(_, busy)| *busy > limit)
            .max_by_key(|(_, busy)| *busy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_busy_past_the_limit_is_wedged_and_recovers_when_done() {
        let beat = Heartbeat::default();
        assert_eq!(beat.wedged(Duration::ZERO), None);
        let busy = beat.busy(Stage::Landmark);
        std::thread::sleep(Duration::from_millis(30));
        let (stage, for_how_long) = beat.wedged(Duration::from_millis(10)).expect("wedged");
        assert_eq!(stage, Stage::Landmark);
        assert!(for_how_long >= Duration::from_millis(20));
        assert_eq!(beat.wedged(Duration::from_secs(60)), None);
        drop(busy);
        assert_eq!(beat.wedged(Duration::ZERO), None);
    }
}

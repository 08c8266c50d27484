//! Exponential backoff with jitter: one helper for everything that retries (live camera
//! reconnects, the MQTT connection, a JSONL output that cannot write).
//!
//! The delay doubles per failed attempt up to a cap. With jitter it is "equal jitter"
//! (half fixed, half random), so cameras behind one failed switch do not all retry in the
//! same millisecond. A success resets it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    jitter: bool,
    /// Failed attempts since the last reset.
    failures: u32,
}

impl Backoff {
    /// Doubling from `initial` to `max`, jittered.
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            jitter: true,
            failures: 0,
        }
    }

    /// The same without jitter: a lone writer retrying has nobody to spread out from.
    pub fn steady(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            jitter: false,
            ..Backoff::new(initial, max)
        }
    }

    /// Counts a failure and returns how long to wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let random = if self.jitter { fastrand::f64() } else { 1.0 };
        self.delay(self.failures, random)
    }

    /// The delay before attempt `attempt` (1-based) for a random draw in [0, 1].
    pub fn delay(&self, attempt: u32, random: f64) -> Duration {
        let exponent = attempt.saturating_sub(1).min(30);
        let full = self
            .initial
            .mul_f64(2f64.powi(exponent as i32))
            .min(self.max);
        if self.jitter {
            full.mul_f64(0.5 + 0.5 * random.clamp(0.0, 1.0))
        } else {
            full
        }
    }

    /// After a success: the next failure waits `initial` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Failed attempts since the last reset.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// Sleeps `duration`, waking early (false) when `stop` is set.
pub fn sleep_unless(stop: &AtomicBool, duration: Duration) -> bool {
    let until = Instant::now() + duration;
    while Instant::now() < until {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let left = until.saturating_duration_since(Instant::now());
        std::thread::sleep(left.min(Duration::from_millis(20)));
    }
    !stop.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_jitters() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let ms = |attempt, r| b.delay(attempt, r).as_millis();
        assert_eq!((ms(1, 1.0), ms(2, 1.0), ms(3, 1.0)), (100, 200, 400));
        assert_eq!(ms(10, 1.0), 1000);
        assert_eq!(ms(1, 0.0), 50);
        assert_eq!(ms(40, 0.5), 750);
    }

    #[test]
    fn failures_count_up_and_reset() {
        let mut b = Backoff::steady(Duration::from_millis(10), Duration::from_millis(25));
        assert_eq!(b.next_delay(), Duration::from_millis(10));
        assert_eq!(b.next_delay(), Duration::from_millis(20));
        assert_eq!(b.next_delay(), Duration::from_millis(25));
        assert_eq!(b.failures(), 3);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(10));
    }

    #[test]
    fn sleep_unless_wakes_when_stopped() {
        let stop = AtomicBool::new(true);
        let started = Instant::now();
        assert!(!sleep_unless(&stop, Duration::from_secs(5)));
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}

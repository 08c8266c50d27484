//! Pairs visible and thermal frames by capture time.
//!
//! Cameras run on separate clocks and frame rates, so each visible frame is matched to the
//! thermal frame nearest in time within `tolerance` (after adding the thermal clock offset).
//! A visible frame is decided once the thermal stream has moved past its tolerance window,
//! the thermal stream has ended, or it has waited `max_wait` of wall time (a stalled
//! thermal camera must not stall the visible one). Frames that find no partner come out as
//! [`Paired::Alone`]; the caller counts them and, per config, processes or drops them.

mod config;

pub use config::{PairingConfig, Unmatched};

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::frame::{Spectrum, SpectrumFrame};

#[derive(Debug)]
pub enum Paired {
    Pair {
        visible: SpectrumFrame,
        thermal: SpectrumFrame,
    },
    Alone(SpectrumFrame),
}

#[derive(Debug)]
pub struct Pairer {
    tolerance_us: i64,
    thermal_offset_us: i64,
    max_wait: Duration,
    /// Pending frames with the instant the pairer got them (waits are measured from there,
    /// not from capture, so time spent queued upstream under back-pressure does not count).
    visible: VecDeque<(SpectrumFrame, Instant)>,
    thermal: VecDeque<(SpectrumFrame, Instant)>,
    /// Latest (offset-corrected) capture time seen per spectrum.
    latest_visible: Option<i64>,
    latest_thermal: Option<i64>,
}

impl Pairer {
    pub fn new(tolerance_ms: f64, thermal_offset_ms: f64, max_wait: Duration) -> Pairer {
        Pairer {
            tolerance_us: (tolerance_ms * 1000.0).round() as i64,
            thermal_offset_us: (thermal_offset_ms * 1000.0).round() as i64,
            max_wait,
            visible: VecDeque::new(),
            thermal: VecDeque::new(),
            latest_visible: None,
            latest_thermal: None,
        }
    }

    fn thermal_time(&self, f: &SpectrumFrame) -> i64 {
        f.captured_us + self.thermal_offset_us
    }

    /// Takes one frame; returns whatever became decidable.
    pub fn push(&mut self, frame: SpectrumFrame) -> Vec<Paired> {
        let now = Instant::now();
        match frame.spectrum {
            Spectrum::Visible => {
                self.latest_visible = Some(
                    self.latest_visible
                        .map_or(frame.captured_us, |t| t.max(frame.captured_us)),
                );
                self.visible.push_back((frame, now));
            }
            Spectrum::Thermal => {
                let t = self.thermal_time(&frame);
                self.latest_thermal = Some(self.latest_thermal.map_or(t, |l| l.max(t)));
                self.thermal.push_back((frame, now));
            }
        }
        // `now`, not None: with only one stream arriving steadily (the other camera head
        // died) the input is never idle, so `expire` never runs; waiting frames must be
        // released here or they pile up without bound.
        self.decide(false, Some(now))
    }

    /// Decides frames that have waited longer than `max_wait` (call when input is idle).
    pub fn expire(&mut self, now: Instant) -> Vec<Paired> {
        self.decide(false, Some(now))
    }

    /// End of both streams: everything left is decided.
    pub fn finish(&mut self) -> Vec<Paired> {
        self.decide(true, None)
    }

    pub fn pending(&self) -> usize {
        self.visible.len() + self.thermal.len()
    }

    /// Index and distance of the pending thermal frame nearest to `t_v` within tolerance
    /// (the earliest on a tie).
    fn best_thermal(&self, t_v: i64) -> Option<(usize, i64)> {
        self.thermal
            .iter()
            .enumerate()
            .map(|(i, (t, _))| (i, (self.thermal_time(t) - t_v).abs()))
            .filter(|(_, d)| *d <= self.tolerance_us)
            .min_by_key(|(_, d)| *d)
    }

    fn waited_too_long(&self, arrived: Instant, now: Option<Instant>) -> bool {
        now.is_some_and(|now| now.saturating_duration_since(arrived) >= self.max_wait)
    }

    fn decide(&mut self, all: bool, now: Option<Instant>) -> Vec<Paired> {
        let mut out = Vec::new();
        while let Some((front, arrived)) = self.visible.front() {
            let t_v = front.captured_us;
            let best = self.best_thermal(t_v);
            // Thermal frames arrive in capture order, so once the stream has reached
            // t_v + d no later frame can be nearer than the best one (distance d) found:
            // decide now rather than a whole tolerance window later.
            let decided = match (best, self.latest_thermal) {
                (Some((_, d)), Some(latest)) => latest >= t_v + d,
                (None, Some(latest)) => latest > t_v + self.tolerance_us,
                (_, None) => false,
            };
            if !(all || decided || self.waited_too_long(*arrived, now)) {
                break;
            }
            let Some((visible, _)) = self.visible.pop_front() else {
                break;
            };
            // Thermal frames too old for this (and so any later) visible frame are unmatched.
            while self
                .thermal
                .front()
                .is_some_and(|(t, _)| self.thermal_time(t) < t_v - self.tolerance_us)
            {
                if let Some((old, _)) = self.thermal.pop_front() {
                    out.push(Paired::Alone(old));
                }
            }
            match self
                .best_thermal(t_v)
                .and_then(|(i, _)| self.thermal.remove(i))
            {
                Some((thermal, _)) => out.push(Paired::Pair { visible, thermal }),
                None => out.push(Paired::Alone(visible)),
            }
        }
        // Thermal frames no pending or future visible frame can reach.
        let horizon = self
            .visible
            .front()
            .map(|(v, _)| v.captured_us)
            .or(self.latest_visible);
        while let Some((t, arrived)) = self.thermal.front() {
            let unreachable = horizon.is_some_and(|h| self.thermal_time(t) < h - self.tolerance_us);
            if !(all || unreachable || self.waited_too_long(*arrived, now)) {
                break;
            }
            if let Some((old, _)) = self.thermal.pop_front() {
                out.push(Paired::Alone(old));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::frame::Pixels;

    fn frame(spectrum: Spectrum, t_ms: i64) -> SpectrumFrame {
        SpectrumFrame {
            camera: "c".into(),
            spectrum,
            captured_us: t_ms * 1000,
            width: 1,
            height: 1,
            pixels: Arc::new(Pixels::Gray16(vec![0])),
            origin: "test".into(),
            received: Instant::now(),
            radiometry: None,
            registration: None,
        }
    }

    fn describe(out: &[Paired]) -> Vec<String> {
        out.iter()
            .map(|p| match p {
                Paired::Pair { visible, thermal } => format!(
                    "V{}+T{}",
                    visible.captured_us / 1000,
                    thermal.captured_us / 1000
                ),
                Paired::Alone(f) => format!(
                    "{}{}",
                    if f.spectrum == Spectrum::Visible {
                        "V"
                    } else {
                        "T"
                    },
                    f.captured_us / 1000
                ),
            })
            .collect()
    }

    fn run(pairer: &mut Pairer, frames: Vec<SpectrumFrame>) -> Vec<String> {
        let mut out = Vec::new();
        for f in frames {
            out.extend(pairer.push(f));
        }
        out.extend(pairer.finish());
        describe(&out)
    }

    #[test]
    fn nearest_thermal_within_tolerance_wins() {
        let mut p = Pairer::new(20.0, 0.0, Duration::from_secs(1));
        let got = run(
            &mut p,
            vec![
                frame(Spectrum::Visible, 100),
                frame(Spectrum::Thermal, 95),
                frame(Spectrum::Thermal, 104),
                frame(Spectrum::Visible, 133),
                frame(Spectrum::Thermal, 140),
            ],
        );
        assert_eq!(got, vec!["V100+T104", "T95", "V133+T140"]);
    }

    #[test]
    fn late_thermal_beyond_tolerance_leaves_both_alone() {
        let mut p = Pairer::new(20.0, 0.0, Duration::from_secs(1));
        let got = run(
            &mut p,
            vec![
                frame(Spectrum::Visible, 100),
                frame(Spectrum::Thermal, 150),
                frame(Spectrum::Visible, 200),
            ],
        );
        assert_eq!(got, vec!["V100", "T150", "V200"]);
    }

    #[test]
    fn thermal_clock_offset_is_applied() {
        let mut p = Pairer::new(10.0, -50.0, Duration::from_secs(1));
        let got = run(
            &mut p,
            vec![frame(Spectrum::Visible, 100), frame(Spectrum::Thermal, 152)],
        );
        assert_eq!(got, vec!["V100+T152"]);
    }

    #[test]
    fn stalled_thermal_stream_releases_visible_after_max_wait() {
        let mut p = Pairer::new(20.0, 0.0, Duration::from_millis(20));
        assert!(p.push(frame(Spectrum::Visible, 100)).is_empty());
        std::thread::sleep(Duration::from_millis(25));
        assert_eq!(describe(&p.expire(Instant::now())), vec!["V100"]);
        assert_eq!(p.pending(), 0);
    }

    #[test]
    fn a_steady_single_stream_is_released_while_it_keeps_arriving() {
        // Regression: the thermal head is gone and visible frames keep coming faster than
        // the pair stage's idle tick, so `expire` never runs; they used to pile up (memory
        // grew by one frame per frame, found by the reconnect leak test).
        let max_wait = Duration::from_millis(30);
        let mut p = Pairer::new(20.0, 0.0, max_wait);
        let mut released = 0;
        for i in 0..40 {
            released += p.push(frame(Spectrum::Visible, 100 + i * 33)).len();
            std::thread::sleep(Duration::from_millis(5));
        }
        // At 5 ms per frame, at most max_wait / 5 ms (+1 for timing) frames wait.
        assert!(p.pending() <= 8, "{} frames still waiting", p.pending());
        assert_eq!(released + p.pending(), 40);
    }

    #[test]
    fn a_pair_is_decided_as_soon_as_no_later_frame_can_be_nearer() {
        let mut p = Pairer::new(20.0, 0.0, Duration::from_secs(1));
        assert!(p.push(frame(Spectrum::Visible, 100)).is_empty());
        // A partner 4 ms after the visible frame: nothing later can be nearer.
        assert_eq!(
            describe(&p.push(frame(Spectrum::Thermal, 104))),
            vec!["V100+T104"]
        );
        // A partner 5 ms before: a frame up to 105 could still be nearer, so wait for it.
        assert!(p.push(frame(Spectrum::Visible, 200)).is_empty());
        assert!(p.push(frame(Spectrum::Thermal, 195)).is_empty());
        assert_eq!(
            describe(&p.push(frame(Spectrum::Thermal, 203))),
            vec!["V200+T203"]
        );
        // T195 could still pair with a visible frame up to 215: it waits for one.
        assert_eq!(describe(&p.finish()), vec!["T195"]);
    }

    #[test]
    fn a_thermal_frame_pairs_at_most_once() {
        let mut p = Pairer::new(20.0, 0.0, Duration::from_secs(1));
        let got = run(
            &mut p,
            vec![
                frame(Spectrum::Visible, 100),
                frame(Spectrum::Visible, 110),
                frame(Spectrum::Thermal, 105),
                frame(Spectrum::Thermal, 200),
            ],
        );
        assert_eq!(got, vec!["V100+T105", "V110", "T200"]);
    }
}

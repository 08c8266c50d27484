//! A thermal frame captured outside the pairing tolerance leaves its visible frame without
//! a partner: both are counted as unmatched and, per config, processed alone or dropped.
use crate::common;

use common::*;
use spectrald::pair::Unmatched;

fn late_session() -> tempfile::TempDir {
    let dir = copy_session();
    // Frame 5's thermal moves from +4 ms to +44 ms: 40 ms from its visible frame and
    // 39 ms from the next one, beyond the 20 ms tolerance of both.
    shift_timestamp(dir.path(), "thermal/000005.png", 40_000);
    dir
}

#[test]
fn late_thermal_frame_is_processed_alone_and_counted() {
    let dir = late_session();
    let run = run(
        &replay_config(dir.path(), random_models()),
        MemorySink::default(),
    );
    assert_eq!(
        run.records.len(),
        25,
        "23 pairs + the lone visible + the lone thermal"
    );
    assert_eq!(sequences(&run.records), (0..25).collect::<Vec<u64>>());
    let singles: Vec<&serde_json::Value> = run
        .records
        .iter()
        .filter(|r| r["pair_skew_ms"].is_null())
        .collect();
    assert_eq!(singles.len(), 2);
    assert!(
        singles
            .iter()
            .any(|r| r["spectra"]["visible"].is_object() && r["spectra"]["thermal"].is_null())
    );
    assert!(
        singles
            .iter()
            .any(|r| r["spectra"]["thermal"].is_object() && r["spectra"]["visible"].is_null())
    );
    assert_eq!(run.events.total("pair_unmatched", Some("visible")), 1);
    assert_eq!(run.events.total("pair_unmatched", Some("thermal")), 1);
}

#[test]
fn late_thermal_frame_is_dropped_and_counted_when_configured() {
    let dir = late_session();
    let mut config = replay_config(dir.path(), random_models());
    config.pairing.unmatched = Unmatched::Drop;
    let run = run(&config, MemorySink::default());
    assert_eq!(run.records.len(), 23);
    assert_eq!(run.summary.dropped.get("unmatched"), Some(&2));
    // The record after the gap reports the drops.
    let total: u64 = run
        .records
        .iter()
        .filter_map(|r| r["drops_since_last"]["unmatched"].as_u64())
        .sum();
    assert_eq!(total, 2);
}

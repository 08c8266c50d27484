//! In `block` mode every replayed pair is published exactly once, in order.
use crate::common;

use common::*;

#[test]
fn replay_is_lossless() {
    let mut config = replay_config(&fixture_session(), random_models());
    // The fixture's rig: thermal faces are the visible ones, registered.
    config.cameras[0].homography = Some([[2.0, 0.0, 0.5], [0.0, 2.0, 0.5], [0.0, 0.0, 1.0]]);
    let run = run(&config, MemorySink::default());
    assert_eq!(run.records.len(), 24, "24 pairs in the fixture");
    assert_eq!(sequences(&run.records), (0..24).collect::<Vec<u64>>());
    for r in &run.records {
        assert!(
            r["spectra"]["visible"]["faces"][0]["landmarks"].is_array()
                && r["spectra"]["thermal"]["faces"][0]["landmarks"].is_array(),
            "{r}"
        );
        assert!((r["pair_skew_ms"].as_f64().unwrap_or(-1.0) - 4.0).abs() < 1e-9);
    }
    assert_eq!(run.summary.frames_in, 48);
    assert_eq!(run.summary.published, 24);
    assert!(run.summary.dropped.is_empty(), "{:?}", run.summary.dropped);
    assert_eq!(run.summary.unmatched, 0);
}

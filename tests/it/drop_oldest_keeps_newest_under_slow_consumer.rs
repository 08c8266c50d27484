//! With `drop_oldest`, a slow consumer makes the pipeline drop old frames (counted) and
//! keep the newest, so latency stays bounded instead of growing with the backlog.
use crate::common;

use std::time::Duration;

use common::*;
use spectrald::queue::{QueueConfig, QueuesConfig, WhenFull};

#[test]
fn drop_oldest_keeps_newest_under_slow_consumer() {
    let mut config = replay_config(&fixture_session(), random_models());
    config.queues = QueuesConfig::uniform(QueueConfig {
        capacity: 1,
        when_full: WhenFull::DropOldest,
    });
    let sink = MemorySink {
        delay: Duration::from_millis(40),
        ..Default::default()
    };
    let run = run(&config, sink);
    let queue_full = run.summary.dropped.get("queue_full").copied().unwrap_or(0);
    assert!(
        queue_full > 0,
        "a 40 ms consumer behind a fast replay must drop: {:?}",
        run.summary
    );
    assert!(run.records.len() < 24, "published {}", run.records.len());
    let seqs = sequences(&run.records);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "order kept: {seqs:?}");
    // The newest frame of the session (the last thermal one) is never the one dropped.
    let last_thermal = run
        .records
        .last()
        .and_then(|r| r["spectra"]["thermal"]["captured_us"].as_i64());
    let newest = spectrald::source::replay::read_manifest(&fixture_session())
        .expect("manifest")
        .last()
        .map(|e| e.timestamp_us);
    assert_eq!(last_thermal, newest);
    // Every image is accounted for exactly: published, or counted as dropped.
    let images_published: u64 = run
        .records
        .iter()
        .map(|r| r["spectra"].as_object().map_or(0, |m| m.len() as u64))
        .sum();
    let dropped: u64 = run.summary.dropped.values().sum();
    assert_eq!(images_published + dropped, 48, "{:?}", run.summary);
}

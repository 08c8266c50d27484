//! A corrupt or truncated frame is counted and skipped; everything else is still published.
use crate::common;

use common::*;

#[test]
fn corrupt_and_truncated_frames_are_skipped_and_counted() {
    let dir = copy_session();
    std::fs::write(dir.path().join("visible/000003.jpg"), b"this is not a jpeg").expect("corrupt");
    let thermal = dir.path().join("thermal/000010.png");
    let bytes = std::fs::read(&thermal).expect("read");
    std::fs::write(&thermal, &bytes[..bytes.len() / 3]).expect("truncate");
    std::fs::remove_file(dir.path().join("thermal/000020.png")).expect("remove");

    let run = run(
        &replay_config(dir.path(), random_models()),
        MemorySink::default(),
    );
    assert_eq!(run.summary.dropped.get("decode_failed"), Some(&3));
    // 21 intact pairs plus the three partners of the broken frames, each alone.
    assert_eq!(run.records.len(), 24);
    assert_eq!(run.events.total("pair_unmatched", None), 3);
    assert_eq!(sequences(&run.records), (0..24).collect::<Vec<u64>>());
}

#[test]
fn eight_bit_thermal_frame_is_rejected_with_a_clear_count() {
    let dir = copy_session();
    let img = image::GrayImage::from_pixel(160, 120, image::Luma([128u8]));
    img.save(dir.path().join("thermal/000007.png"))
        .expect("save");
    let run = run(
        &replay_config(dir.path(), random_models()),
        MemorySink::default(),
    );
    assert_eq!(run.summary.dropped.get("decode_failed"), Some(&1));
    assert_eq!(run.records.len(), 24);
}

//! Thermal frames may be 16-bit TIFF as well as 16-bit PNG; both give the same landmarks.
use crate::common;

use common::*;

#[test]
fn thermal_tiff_frames_replay_like_png() {
    let dir = copy_session();
    let manifest = std::fs::read_to_string(dir.path().join("manifest.csv")).expect("manifest");
    for n in 0..24 {
        let png = dir.path().join(format!("thermal/{n:06}.png"));
        let img = image::open(&png).expect("fixture").to_luma16();
        img.save(dir.path().join(format!("thermal/{n:06}.tiff")))
            .expect("tiff");
        std::fs::remove_file(png).expect("remove png");
    }
    std::fs::write(
        dir.path().join("manifest.csv"),
        manifest.replace(".png", ".tiff"),
    )
    .expect("manifest");
    let tiff = run(
        &replay_config(dir.path(), random_models()),
        MemorySink::default(),
    );
    let png = run(
        &replay_config(&fixture_session(), random_models()),
        MemorySink::default(),
    );
    assert_eq!(tiff.records.len(), 24);
    assert!(
        tiff.summary.dropped.is_empty(),
        "{:?}",
        tiff.summary.dropped
    );
    for (a, b) in tiff.records.iter().zip(&png.records) {
        assert_eq!(landmarks(a, "thermal"), landmarks(b, "thermal"));
    }
}

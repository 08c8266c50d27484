//! Several faces per frame (tests/fixtures/session-group): each found face gets its own
//! landmarks and a track id that stays with it while it moves and crosses another face; a
//! face that leaves takes its id with it; a frame without faces publishes `faces: []`.
//! And a crowd is capped at `detector.max_faces`, the rest counted.
use crate::common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use spectrald::source::CameraConfig;

fn group_session() -> std::path::PathBuf {
    repo().join("tests/fixtures/session-group")
}

/// Per frame file: face letter → true centre.
fn truth() -> BTreeMap<String, BTreeMap<String, [f32; 2]>> {
    serde_json::from_str(
        &std::fs::read_to_string(group_session().join("truth.json")).expect("truth.json"),
    )
    .expect("truth JSON")
}

#[test]
fn faces_move_cross_and_leave_with_their_own_ids_and_landmarks() {
    let config = replay_config(&group_session(), trained_models());
    let run = run(&config, MemorySink::default());
    let truth = truth();
    assert_eq!(run.records.len(), truth.len());
    let (mut shown, mut found) = (0, 0);
    let (mut points_on, mut points_all) = (0, 0);
    // Face letter → the track ids it was published under.
    let mut ids: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for (record, (file, faces)) in run.records.iter().zip(&truth) {
        let detected = common::faces(record, "visible");
        if faces.is_empty() {
            assert_eq!(
                record["spectra"]["visible"]["faces"],
                serde_json::json!([]),
                "{file}: no face, no landmarks"
            );
        }
        shown += faces.len();
        for face in &detected {
            let b = face.face_box;
            let centre = [b.x + b.w / 2.0, b.y + b.h / 2.0];
            // Every detection is one of the shown faces (no false face) …
            let (letter, _) = faces
                .iter()
                .map(|(l, c)| (l, (c[0] - centre[0]).hypot(c[1] - centre[1])))
                .filter(|(_, d)| *d < 0.5 * b.w.max(b.h))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap_or_else(|| panic!("{file}: a face at {centre:?} that is not there"));
            found += 1;
            ids.entry(letter.clone())
                .or_default()
                .insert(face.track_id.expect("track id"));
            // … with 68 landmarks on it: inside its box grown by a third.
            let points = face.landmarks.as_ref().expect("landmarks");
            assert_eq!(points.len(), 68);
            let inside = points
                .iter()
                .filter(|p| {
                    p[0] > b.x - b.w / 3.0
                        && p[0] < b.x + b.w * 4.0 / 3.0
                        && p[1] > b.y - b.h / 3.0
                        && p[1] < b.y + b.h * 4.0 / 3.0
                })
                .count();
            // A face half hidden behind another (frame 6) has some points off it.
            assert!(
                inside >= 48,
                "{file}: {inside} of 68 landmarks on face {letter}"
            );
            points_on += inside;
            points_all += points.len();
        }
    }
    assert!(
        points_on * 100 >= points_all * 97,
        "{points_on} of {points_all} landmarks on their faces"
    );
    // B passes in front of A: A may be hidden for a frame or two, no more.
    assert!(found + 2 >= shown, "found {found} of {shown} shown faces");
    for (letter, set) in &ids {
        assert_eq!(set.len(), 1, "face {letter} kept one track id, got {set:?}");
    }
    let distinct: BTreeSet<u64> = ids.values().flatten().copied().collect();
    assert_eq!(distinct.len(), 3, "three faces, three ids: {ids:?}");
}

#[test]
fn a_crowd_is_capped_at_max_faces_and_the_rest_counted() {
    // 192 copies of one face (a 16 x 12 grid of 40 px faces) in one 640x480 frame.
    let source = image::open(group_session().join("visible/000000.jpg"))
        .expect("frame")
        .to_rgb8();
    let face = image::imageops::crop_imm(&source, 236, 40, 84, 110).to_image();
    let face = image::imageops::resize(&face, 40, 52, image::imageops::FilterType::Triangle);
    let mut crowd = image::RgbImage::from_pixel(640, 480, image::Rgb([120, 130, 120]));
    for row in 0..12 {
        for col in 0..16 {
            image::imageops::replace(&mut crowd, &face, col * 40, row * 40 - 6);
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("visible")).expect("mkdir");
    crowd
        .save(dir.path().join("visible/000000.png"))
        .expect("png");
    std::fs::write(
        dir.path().join("manifest.csv"),
        "spectrum,timestamp_us,file\nvisible,0,visible/000000.png\n",
    )
    .expect("manifest");
    let mut config = replay_config(dir.path(), random_models());
    config.cameras = vec![CameraConfig::replay("crowd", dir.path().into(), 0.0, false)];
    config.detector.max_faces = 20;
    let run = run(&config, MemorySink::default());
    let visible = &run.records[0]["spectra"]["visible"];
    let faces = visible["faces"].as_array().expect("faces");
    assert_eq!(faces.len(), 20, "capped at detector.max_faces");
    let over = visible["faces_over_limit"]
        .as_u64()
        .expect("faces_over_limit");
    assert!(
        over >= 100,
        "most of the crowd was found and counted: {over}"
    );
    assert_eq!(run.events.total("faces_over_limit", Some("visible")), over);
    // Best scores first.
    let scores: Vec<f64> = faces
        .iter()
        .map(|f| f["score"].as_f64().expect("score"))
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
}

/// The daemon's detector (ONNX graph made size-free, our decoding and NMS) finds what
/// OpenCV's own `FaceDetectorYN` finds on the same frames (`opencv_yunet.json`, written by
/// models/train/make_group_fixture.py): same faces, boxes within a pixel (the two JPEG
/// decoders differ by a grey level here and there), scores within 0.02.
#[test]
fn the_detector_finds_what_opencv_finds() {
    let reference: BTreeMap<String, Vec<serde_json::Value>> = serde_json::from_str(
        &std::fs::read_to_string(group_session().join("opencv_yunet.json")).expect("reference"),
    )
    .expect("reference JSON");
    let mut config = replay_config(&group_session(), random_models());
    // OpenCV ran at the frames' own size: no scaling on either side.
    config.detector.input_width = 320;
    config.detector.input_height = 240;
    let run = run(&config, MemorySink::default());
    assert_eq!(run.records.len(), reference.len());
    let mut compared = 0;
    for (record, (file, expected)) in run.records.iter().zip(&reference) {
        let mut found = common::faces(record, "visible");
        assert_eq!(
            found.len(),
            expected.len(),
            "{file}: {found:?} vs {expected:?}"
        );
        for want in expected {
            let b: Vec<f32> = want["box"]
                .as_array()
                .expect("box")
                .iter()
                .map(|v| v.as_f64().expect("number") as f32)
                .collect();
            let nearest = found
                .iter()
                .enumerate()
                .min_by(|(_, p), (_, q)| {
                    let d = |f: &spectrald::publish::record::ParsedFace| {
                        (f.face_box.x - b[0]).abs() + (f.face_box.y - b[1]).abs()
                    };
                    d(p).total_cmp(&d(q))
                })
                .map(|(i, _)| i)
                .expect("a face");
            let got = found.remove(nearest);
            let g = got.face_box;
            for (p, q) in [(g.x, b[0]), (g.y, b[1]), (g.w, b[2]), (g.h, b[3])] {
                assert!((p - q).abs() < 1.0, "{file}: box {g:?} vs OpenCV {b:?}");
            }
            let score = want["score"].as_f64().expect("score") as f32;
            assert!(
                (got.score - score).abs() < 0.02,
                "{file}: score {} vs {score}",
                got.score
            );
            compared += 1;
        }
    }
    assert!(compared >= 30, "{compared} faces compared");
}

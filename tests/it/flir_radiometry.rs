//! FLIR radiometric files: our reader and Planck conversion against ExifTool's metadata
//! and flirpy/ThermImage's raw2temp on real FLIR frames (tests/fixtures/flir, reference
//! values from tests/fixtures/flir/make_reference.py), and what bad files do.

use crate::common;

use std::path::PathBuf;

use spectrald::config::Config;
use spectrald::detect::{DetectorConfig, ThermalDetection};
use spectrald::source::flir::{FffError, FffFrame, frame_len, parse_fff};
use spectrald::source::{CameraConfig, StreamConfig};
use spectrald::thermal::Radiometry;
use spectrald::thermal::ThermalUnits;
use spectrald::thermal::radiometry::PlanckConstants;

fn fixture(name: &str) -> PathBuf {
    common::repo().join("tests/fixtures/flir").join(name)
}

fn reference() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture("reference.json")).expect("reference.json");
    serde_json::from_str(&text).expect("reference JSON")
}

/// Every FFF frame in a file (a .seq is FFF frames back to back).
fn frames(name: &str) -> Vec<FffFrame> {
    let data = std::fs::read(fixture(name)).expect("fixture");
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let len = frame_len(&data[at..]).expect("frame length");
        out.push(parse_fff(&data[at..at + len]).expect("frame parses"));
        at += len;
    }
    out
}

fn close(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance * b.abs().max(1.0)
}

#[test]
fn fff_counts_to_celsius_match_reference() {
    let reference = reference();
    let mut worst = 0.0f64;
    for (name, expected) in reference.as_object().expect("object") {
        let frames = frames(name);
        let expected_frames = expected["frames"].as_array().expect("frames");
        assert_eq!(frames.len(), expected_frames.len(), "{name}: frame count");
        let meta = &expected["exiftool"];
        for (frame, want) in frames.iter().zip(expected_frames) {
            assert_eq!(
                frame.width as u64,
                want["width"].as_u64().expect("w"),
                "{name}"
            );
            assert_eq!(
                frame.height as u64,
                want["height"].as_u64().expect("h"),
                "{name}"
            );
            let Some(Radiometry::Planck { planck, object, .. }) = frame.radiometry else {
                panic!("{name}: no Planck radiometry parsed");
            };
            // Metadata as ExifTool reads it.
            for (ours, key) in [
                (planck.r1, "Planck R1"),
                (planck.r2, "Planck R2"),
                (planck.b, "Planck B"),
                (planck.f, "Planck F"),
                (planck.o, "Planck O"),
                (object.emissivity, "Emissivity"),
                (object.distance_m, "Object Distance"),
                (object.reflected_c, "Reflected Apparent Temperature"),
                (object.atmospheric_c, "Atmospheric Temperature"),
                (object.humidity, "Relative Humidity"),
            ] {
                let theirs = meta[key].as_f64().expect("exiftool value");
                assert!(
                    close(ours, theirs, 1e-3),
                    "{name}: {key} ours {ours} exiftool {theirs}"
                );
            }
            let converter = frame.radiometry.expect("radiometry").converter();
            // Raw counts and temperatures at sample pixels.
            for sample in want["samples"].as_array().expect("samples") {
                let s: Vec<f64> = sample
                    .as_array()
                    .expect("row")
                    .iter()
                    .map(|v| v.as_f64().expect("num"))
                    .collect();
                let (row, col, raw, celsius) = (s[0] as usize, s[1] as usize, s[2] as u16, s[3]);
                let ours = frame.counts[row * frame.width as usize + col];
                assert_eq!(ours, raw, "{name}: raw count at ({row}, {col})");
                let t = converter.celsius(ours);
                worst = worst.max((t - celsius).abs());
                assert!(
                    (t - celsius).abs() < 0.02,
                    "{name}: ({row}, {col}) ours {t:.4} °C reference {celsius:.4} °C"
                );
            }
            // Whole-frame statistics.
            let temps: Vec<f64> = frame.counts.iter().map(|&c| converter.celsius(c)).collect();
            let min = temps.iter().copied().fold(f64::MAX, f64::min);
            let max = temps.iter().copied().fold(f64::MIN, f64::max);
            let mean = temps.iter().sum::<f64>() / temps.len() as f64;
            for (ours, key) in [
                (min, "celsius_min"),
                (max, "celsius_max"),
                (mean, "celsius_mean"),
            ] {
                let theirs = want[key].as_f64().expect("stat");
                assert!(
                    (ours - theirs).abs() < 0.02,
                    "{name}: {key} ours {ours:.4} reference {theirs:.4}"
                );
                worst = worst.max((ours - theirs).abs());
            }
        }
    }
    eprintln!("largest difference from the reference: {worst:.5} °C");
}

#[test]
fn seq_frames_carry_camera_time() {
    let frames = frames("duo-pro-r-3frames.seq");
    let times: Vec<i64> = frames
        .iter()
        .map(|f| f.captured_us.expect("camera time"))
        .collect();
    // 2018-11-05 11:14:43.084 UTC, then 2.091 s and 30 ms later (the camera's clock).
    assert_eq!(times[0], 1_541_416_483_084_000);
    assert_eq!(times[1] - times[0], 2_091_000);
    assert_eq!(times[2] - times[1], 30_000);
    assert_eq!(frames[0].camera_model, "Duo Pro R");
}

fn thermal_only_camera(path: PathBuf) -> Config {
    let mut camera = CameraConfig::replay("flir", PathBuf::new(), 0.0, false);
    camera.source = None;
    camera.thermal = Some(StreamConfig::Flir {
        path,
        speed: 0.0,
        looped: false,
    });
    // The FLIR scenes show no face: the detector is off for thermal and the whole-frame
    // face is kept whatever its score, so every frame gets a box to read temperatures in.
    Config {
        models: common::random_models(),
        detector: DetectorConfig {
            thermal: ThermalDetection::Off,
            whole_frame_min_score: 0.0,
            ..Default::default()
        },
        cameras: vec![camera],
        ..Default::default()
    }
}

#[test]
fn flir_seq_replays_with_face_temperatures_in_celsius() {
    let run = common::run(
        &thermal_only_camera(fixture("duo-pro-r-3frames.seq")),
        common::MemorySink::default(),
    );
    assert_eq!(run.records.len(), 3);
    for record in &run.records {
        let thermal = &record["spectra"]["thermal"];
        assert_eq!(thermal["width"], 640);
        assert_eq!(thermal["detector"], "whole_frame");
        let t = &thermal["faces"][0]["temperature"];
        assert_eq!(t["unit"], "celsius");
        // The scene (an outdoor Duo Pro R frame) lies between 9.5 and 12.6 °C.
        let max = t["box_max"].as_f64().expect("box_max");
        let mean = t["box_mean"].as_f64().expect("box_mean");
        assert!(
            (9.5..=12.6).contains(&max) && (9.5..=max).contains(&mean),
            "{t}"
        );
    }
}

#[test]
fn truncated_seq_is_counted_and_the_rest_plays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = std::fs::read(fixture("duo-pro-r-3frames.seq")).expect("seq");
    let frame = frame_len(&data).expect("len");
    // One whole frame, then half of the next: the camera was unplugged mid-write.
    let cut = dir.path().join("cut.seq");
    std::fs::write(&cut, &data[..frame + frame / 2]).expect("write");
    let run = common::run(&thermal_only_camera(cut), common::MemorySink::default());
    assert_eq!(run.records.len(), 1, "the whole frame is published");
    assert_eq!(run.events.total("frame_dropped", Some("decode_failed")), 1);
    assert_eq!(run.summary.frames_in, 2);
}

#[test]
fn missing_planck_tags_are_named_and_config_constants_fill_in() {
    let mut data = std::fs::read(fixture("t420.fff")).expect("fff");
    // Blank the camera-info record's type in the directory (little-endian file, record 0).
    let dir_offset = u32::from_le_bytes(data[0x18..0x1c].try_into().expect("4 bytes")) as usize;
    assert_eq!(
        u16::from_le_bytes([data[dir_offset], data[dir_offset + 1]]),
        0x20
    );
    data[dir_offset] = 0;
    let frame = parse_fff(&data).expect("raw data still parses");
    assert!(frame.radiometry.is_none());
    assert!(
        FffError::NoCameraInfo
            .to_string()
            .contains("[cameras.radiometry]")
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("no-planck.fff");
    std::fs::write(&path, &data).expect("write");
    // Without constants in the config: the frame is dropped and counted, nothing crashes.
    let run = common::run(
        &thermal_only_camera(path.clone()),
        common::MemorySink::default(),
    );
    assert_eq!(run.records.len(), 0);
    assert_eq!(run.events.total("frame_dropped", Some("decode_failed")), 1);
    // With the camera's constants in the config, temperatures come back.
    let mut config = thermal_only_camera(path);
    config.cameras[0].radiometry.units = ThermalUnits::Planck;
    config.cameras[0].radiometry.planck = Some(PlanckConstants {
        r1: 16125.788,
        r2: 0.010903412,
        b: 1420.1,
        f: 1.0,
        o: -5588.0,
    });
    let run = common::run(&config, common::MemorySink::default());
    assert_eq!(run.records.len(), 1);
    let max = run.records[0]["spectra"]["thermal"]["faces"][0]["temperature"]["box_max"]
        .as_f64()
        .expect("temperature");
    assert!((20.0..=30.0).contains(&max), "T420 frame reads {max} °C");
}

#[test]
fn not_a_flir_file_is_refused_clearly() {
    let err = parse_fff(b"\x89PNG\r\n\x1a\n and so on and so forth, long enough").expect_err("png");
    assert!(err.to_string().contains("not an FFF frame"), "{err}");
}

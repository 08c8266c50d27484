//! FLIR radiometric files: our reader and Planck conversion against ExifTool's metadata
//! and flirpy/ThermImage's raw2temp on real FLIR frames (tests/fixtures/flir, reference
//! values from tests/fixtures/flir/make_reference.py), and what bad files do.

use crate::common;

use std::path::PathBuf;

use spectrald::config::Config;
use spectrald::detect::{DetectorConfig, ThermalDetection};
use spectrald::flir::{FffError, FffFrame, frame_len, parse_fff};
use spectrald::source::{CameraConfig, StreamConfig};
use spectrald::thermal::Radiometry;
use spectrald::thermal::ThermalUnits;
use spectrald::thermal::radiometry::PlanckConstants;

pub fn fixture(name: &str) -> PathBuf {
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

// ---- Radiometric JPEGs (R-JPEG) ----

/// flyr's temperatures of every pixel of `flir_example.jpg` (make_rjpeg_reference.py).
pub fn flyr_celsius() -> (u32, u32, Vec<f64>) {
    let png = image::open(fixture("flir_example.celsius.png"))
        .expect("reference png")
        .into_luma16();
    let values = png
        .pixels()
        .map(|p| p.0[0] as f64 / 100.0 - 100.0)
        .collect();
    (png.width(), png.height(), values)
}

#[test]
fn rjpeg_celsius_matches_an_independent_reader_to_a_hundredth_of_a_degree() {
    let image = spectrald::flir::read_frame_of(&fixture("flir_example.jpg"), 0).expect("reads");
    let frame = &image.frame;
    assert_eq!((frame.width, frame.height), (240, 320));
    assert_eq!(frame.raw_type, spectrald::flir::RawType::Png);
    let converter = frame.radiometry.expect("camera info").converter();
    let (w, h, reference) = flyr_celsius();
    assert_eq!((w, h), (frame.width, frame.height));
    let worst = frame
        .counts
        .iter()
        .zip(&reference)
        .map(|(raw, want)| (converter.celsius(*raw) - want).abs())
        .fold(0.0f64, f64::max);
    // The reference is stored in 0.005 °C steps.
    assert!(worst < 0.01, "max |spectrald − flyr| = {worst:.4} °C");
    // The embedded visible photo, not the palette rendering the JPEG itself shows.
    let (vw, vh, _) = image
        .decode_visible(&fixture("flir_example.jpg"))
        .expect("decodes")
        .expect("a photo");
    assert_eq!((vw, vh), (480, 640));
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("flir_example.reference.json")).expect("json"),
    )
    .expect("json");
    let pip = frame.pip.expect("picture in picture");
    assert!((pip.real2ir - reference["pip"]["real2ir"].as_f64().expect("ratio")).abs() < 1e-6);
    assert_eq!(
        (pip.offset_x, pip.offset_y, pip.pip_x2, pip.pip_y2),
        (14, -14, 239, 319)
    );
}

/// Copies of the fixture R-JPEG with their FLIR APP1 segments edited.
fn rjpeg_segments(data: &[u8]) -> Vec<(usize, usize)> {
    // (start of the segment's marker, end) of every FLIR APP1 segment.
    let mut out = Vec::new();
    let mut at = 2;
    while at + 4 <= data.len() && data[at] == 0xff && data[at + 1] != 0xda {
        let len = u16::from_be_bytes([data[at + 2], data[at + 3]]) as usize;
        if data[at + 1] == 0xe1 && data[at + 4..].starts_with(b"FLIR\0") {
            out.push((at, at + 2 + len));
        }
        at += 2 + len;
    }
    out
}

#[test]
fn broken_rjpegs_are_named_for_what_is_wrong() {
    let good = std::fs::read(fixture("flir_example.jpg")).expect("fixture");
    let dir = tempfile::tempdir().expect("tempdir");
    let read = |name: &str, bytes: &[u8]| -> String {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        match spectrald::flir::read_frame_of(&path, 0) {
            Ok(_) => "read".into(),
            Err(e) => e.to_string(),
        }
    };
    // A plain JPEG: the bundled session's visible frame.
    let plain = std::fs::read(common::fixture_session().join("visible/000000.jpg")).expect("jpeg");
    let e = read("plain.jpg", &plain);
    assert!(
        e.contains("plain.jpg") && e.contains("without FLIR segments"),
        "{e}"
    );
    // The second of two FLIR segments cut out.
    let segments = rjpeg_segments(&good);
    assert_eq!(segments.len(), 2);
    let (start, end) = segments[1];
    let missing = [&good[..start], &good[end..]].concat();
    let e = read("missing.jpg", &missing);
    assert!(e.contains("segment 1 of 2 is missing"), "{e}");
    // The raw thermal PNG cut short: its bytes end inside the second segment.
    let mut cut = good.clone();
    let (start, end) = segments[1];
    for b in &mut cut[start + 12..end - 100] {
        *b = 0;
    }
    let e = read("cut.jpg", &cut);
    assert!(
        e.contains("cut.jpg") && e.contains("raw thermal PNG"),
        "{e}"
    );
    // An unknown raw type: the raw data record's subtype set to 7.
    let fff = spectrald::flir::extract_fff(&good).expect("fff");
    let directory = u32::from_be_bytes(fff[0x18..0x1c].try_into().expect("4")) as usize;
    let count = u32::from_be_bytes(fff[0x1c..0x20].try_into().expect("4")) as usize;
    let raw_entry = (0..count)
        .map(|i| directory + 32 * i)
        .find(|&at| u16::from_be_bytes([fff[at], fff[at + 1]]) == 1)
        .expect("raw data record");
    // Its place in the JPEG: the FFF bytes of segment 0 start 12 bytes into it.
    let mut odd = good.clone();
    let at = segments[0].0 + 12 + raw_entry + 2;
    odd[at..at + 2].copy_from_slice(&7u16.to_be_bytes());
    let e = read("odd.jpg", &odd);
    assert!(e.contains("raw data subtype 7"), "{e}");
}

/// The fixture R-JPEG with its camera clock `seconds` later: the capture time (u32 seconds,
/// little-endian) sits 0x384 into the camera info record, which lies in the first FLIR
/// segment (FFF offset 24044, found by reading the record directory).
fn captured_later(good: &[u8], seconds: u32) -> Vec<u8> {
    let segment = rjpeg_segments(good)[0].0;
    let at = segment + 12 + 24044 + 0x384;
    let mut out = good.to_vec();
    let was = u32::from_le_bytes(good[at..at + 4].try_into().expect("4"));
    // ExifTool: Date/Time Original 2017:09:08 16:04:36.266+02:00.
    assert_eq!(
        was, 1_504_879_476,
        "the capture time is where the test expects it"
    );
    out[at..at + 4].copy_from_slice(&(was + seconds).to_le_bytes());
    out
}

#[test]
fn rjpeg_folder_replays_as_pairs_and_a_broken_file_is_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = std::fs::read(fixture("flir_example.jpg")).expect("fixture");
    // Names out of capture order: a is 100 s after c, d 50 s after it.
    std::fs::write(dir.path().join("a.jpg"), captured_later(&good, 100)).expect("copy");
    // Cut inside the first FLIR segment: the thermal image is gone.
    std::fs::write(dir.path().join("b.jpg"), &good[..40_000]).expect("cut");
    std::fs::write(dir.path().join("c.jpg"), &good).expect("copy");
    std::fs::write(dir.path().join("d.jpg"), captured_later(&good, 50)).expect("copy");
    let mut camera = CameraConfig::replay("rjpeg", PathBuf::new(), 0.0, false);
    camera.source = Some(spectrald::source::SourceConfig::Flir {
        path: dir.path().to_owned(),
        speed: 0.0,
        looped: false,
    });
    let config = Config {
        models: common::random_models(),
        cameras: vec![camera],
        ..Default::default()
    };
    let run = common::run(&config, common::MemorySink::default());
    assert_eq!(
        run.records.len(),
        3,
        "the three good files; the cut one counted"
    );
    // Replayed in capture order (c, d, a), not by name.
    let captured: Vec<i64> = run
        .records
        .iter()
        .map(|r| {
            r["spectra"]["thermal"]["captured_us"]
                .as_i64()
                .expect("time")
        })
        .collect();
    assert_eq!(
        [captured[1] - captured[0], captured[2] - captured[1]],
        [50_000_000, 50_000_000],
        "{captured:?}"
    );
    assert_eq!(run.events.total("frame_dropped", Some("decode_failed")), 2);
    for record in &run.records {
        assert_eq!(record["pair_skew_ms"], 0.0, "{record}");
        let (v, t) = (&record["spectra"]["visible"], &record["spectra"]["thermal"]);
        assert_eq!(
            (v["width"].as_u64(), v["height"].as_u64()),
            (Some(480), Some(640))
        );
        assert_eq!(
            (t["width"].as_u64(), t["height"].as_u64()),
            (Some(240), Some(320))
        );
        // No face on a mug: nothing published, and no error either.
        assert!(v["error"].is_null() && t["error"].is_null(), "{record}");
        assert_eq!(v["faces"].as_array().map(Vec::len), Some(0), "{record}");
        // The file's picture-in-picture placement registers thermal onto visible, so the
        // thermal faces would be the visible ones mapped across.
        assert_eq!(t["detector"], "registered_visible", "{record}");
    }
}

#[test]
fn the_picture_in_picture_record_places_the_thermal_image_on_the_photo() {
    let image = spectrald::flir::read_frame_of(&fixture("flir_example.jpg"), 0).expect("reads");
    let rows = image
        .frame
        .pip
        .expect("pip")
        .thermal_to_visible(240, 320, 480, 640)
        .expect("a mapping");
    // flyr's placement: the 240x320 thermal image scaled to 342x456 (480 / (240 · 1.40397)),
    // its top-left at (240 − 171 + 14, 320 − 228 − 14) = (83, 78) on the photo.
    let h = spectrald::registration::Homography::new(rows).expect("invertible");
    let corner = h.apply([-0.5, -0.5]);
    assert!(
        (corner[0] + 0.5 - 83.0).abs() < 1e-9 && (corner[1] + 0.5 - 78.0).abs() < 1e-9,
        "{corner:?}"
    );
    let far = h.apply([239.5, 319.5]);
    assert!((far[0] + 0.5 - (83.0 + 342.0)).abs() < 1e-9, "{far:?}");
    assert!((far[1] + 0.5 - (78.0 + 456.0)).abs() < 1e-9, "{far:?}");
}

//! `spectrald thermal info|export` on real FLIR files: what a thermographer gets out of an
//! R-JPEG or a `.seq` without running a pipeline, checked against flyr's reading of the
//! same file (tests/fixtures/flir/make_rjpeg_reference.py).

use std::path::Path;
use std::process::Output;

use crate::flir_radiometry::{fixture, flyr_celsius};

fn thermal(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_spectrald"))
        .arg("thermal")
        .args(args)
        .output()
        .expect("run spectrald")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A float32 TIFF read back with the `tiff` decoder: (width, height, values).
fn read_f32_tiff(path: &Path) -> (u32, u32, Vec<f32>) {
    let file = std::fs::File::open(path).expect("tiff written");
    let mut decoder = tiff::decoder::Decoder::new(std::io::BufReader::new(file)).expect("a tiff");
    assert_eq!(
        decoder.colortype().expect("colour type"),
        tiff::ColorType::Gray(32)
    );
    let (w, h) = decoder.dimensions().expect("dimensions");
    match decoder.read_image().expect("pixels") {
        tiff::decoder::DecodingResult::F32(values) => (w, h, values),
        _ => panic!("{} is not float32", path.display()),
    }
}

#[test]
fn info_reports_what_the_rjpeg_holds() {
    let jpg = fixture("flir_example.jpg");
    let out = thermal(&["info", "--json", jpg.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("flir_example.reference.json")).expect("reference"),
    )
    .expect("json");
    assert_eq!(info["kind"], "rjpeg");
    assert_eq!(info["frames"], 1);
    // ExifTool: Date/Time Original 2017:09:08 16:04:36.266+02:00.
    assert_eq!(info["captured"], "2017-09-08T14:04:36.266Z");
    assert_eq!(info["thermal"]["raw_type"], "png");
    assert_eq!(info["thermal"]["width"], reference["thermal"]["width"]);
    assert_eq!(info["thermal"]["height"], reference["thermal"]["height"]);
    for (ours, theirs) in [("min_c", "celsius_min"), ("max_c", "celsius_max")] {
        let ours = info["thermal"]["temperature"][ours].as_f64().expect("°C");
        let theirs = reference["thermal"][theirs].as_f64().expect("°C");
        assert!((ours - theirs).abs() < 0.01, "{ours} vs flyr {theirs}");
    }
    assert_eq!(info["visible"]["source"], "embedded");
    assert_eq!(
        (&info["visible"]["width"], &info["visible"]["height"]),
        (
            &reference["optical"]["width"],
            &reference["optical"]["height"]
        )
    );
    assert_eq!(info["radiometry"]["units"], "planck");
    assert!(
        (info["radiometry"]["object"]["emissivity"]
            .as_f64()
            .expect("ε")
            - 0.95)
            .abs()
            < 1e-6
    );
    assert_eq!(info["picture_in_picture"]["offset_x"], 14);
    // The text form names the same things, one per line.
    let out = thermal(&["info", jpg.to_str().expect("utf-8")]);
    let shown = text(&out.stdout);
    assert!(shown.contains("240x320, raw Png"), "{shown}");
    assert!(shown.contains("emissivity 0.95 "), "{shown}");
}

#[test]
fn export_writes_celsius_tiff_photo_and_palette() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tiff, photo, png) = (
        dir.path().join("mug.tiff"),
        dir.path().join("mug-photo.png"),
        dir.path().join("mug-iron.png"),
    );
    let jpg = fixture("flir_example.jpg");
    let path = |p: &Path| p.to_str().expect("utf-8").to_owned();
    let out = thermal(&[
        "export",
        &path(&jpg),
        "--celsius",
        &path(&tiff),
        "--visible",
        &path(&photo),
        "--png",
        &path(&png),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (w, h, celsius) = read_f32_tiff(&tiff);
    let (rw, rh, reference) = flyr_celsius();
    assert_eq!((w, h), (rw, rh));
    let worst = celsius
        .iter()
        .zip(&reference)
        .map(|(ours, theirs)| (*ours as f64 - theirs).abs())
        .fold(0.0, f64::max);
    assert!(worst < 0.01, "max |TIFF − flyr| = {worst:.4} °C");
    let photo = image::open(&photo).expect("photo png");
    assert_eq!((photo.width(), photo.height()), (480, 640));
    let rendering = image::open(&png).expect("palette png").into_rgb8();
    assert_eq!(rendering.dimensions(), (240, 320));
    // Iron: the hottest pixel (the coffee) white-hot, the coldest black.
    let hottest = celsius
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i as u32)
        .expect("pixels");
    assert_eq!(
        rendering.get_pixel(hottest % w, hottest / w).0,
        [255, 255, 255]
    );

    // The operator's emissivity replaces the camera's: a perfect emitter reads cooler
    // than the same radiance from a 0.95 one (the mug is above the reflected 20 °C).
    let black_body = dir.path().join("mug-e1.tiff");
    let out = thermal(&[
        "export",
        &path(&jpg),
        "--celsius",
        &path(&black_body),
        "--emissivity",
        "1.0",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (_, _, e1) = read_f32_tiff(&black_body);
    let mean = |v: &[f32]| v.iter().map(|&c| c as f64).sum::<f64>() / v.len() as f64;
    assert!(
        mean(&e1) < mean(&celsius) - 0.3,
        "{} vs {}",
        mean(&e1),
        mean(&celsius)
    );
}

#[test]
fn export_of_every_frame_of_a_sequence_numbers_the_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seq = fixture("duo-pro-r-3frames.seq");
    let tiff = dir.path().join("duo.tiff");
    let out = thermal(&[
        "export",
        seq.to_str().expect("utf-8"),
        "--frame",
        "all",
        "--celsius",
        tiff.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for n in 0..3 {
        let (w, h, celsius) = read_f32_tiff(&dir.path().join(format!("duo-{n:06}.tiff")));
        assert_eq!((w, h), (640, 512));
        // An outdoor November scene: 9–13 °C (tests/fixtures/flir/reference.json).
        assert!(celsius.iter().all(|c| (5.0..20.0).contains(c)), "frame {n}");
    }
    assert!(!dir.path().join("duo-000003.tiff").exists());
    // A frame past the end is named with the count.
    let out = thermal(&["info", seq.to_str().expect("utf-8"), "--frame", "5"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("frame 5 does not exist; the file has 3"),
        "{err}"
    );
}

#[test]
fn files_that_are_not_radiometric_get_one_line_naming_them() {
    let plain = crate::common::fixture_session().join("visible/000000.jpg");
    let dir = tempfile::tempdir().expect("tempdir");
    let tiff = dir.path().join("out.tiff");
    let out = thermal(&[
        "export",
        plain.to_str().expect("utf-8"),
        "--celsius",
        tiff.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("000000.jpg") && err.contains("without FLIR segments"),
        "{err}"
    );
    assert!(
        !tiff.exists(),
        "nothing written for a file that did not read"
    );
    // Export with nothing to write says what to give.
    let out = thermal(&[
        "export",
        fixture("flir_example.jpg").to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--celsius OUT.tiff"));
}

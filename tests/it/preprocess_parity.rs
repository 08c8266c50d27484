//! The daemon's preprocessing equals the training script's (models/train/dmsl_preprocess.py)
//! on the same frames: the models see at inference exactly what they were trained on.
use crate::common;

use std::process::Command;

use common::*;
use spectrald::dmsl;
use spectrald::thermal::ThermalNormalization;

fn python_canvas(image: &std::path::Path, spectrum: &str, normalization: &str) -> Vec<f32> {
    let out = tempfile::NamedTempFile::new().expect("temp");
    let status = Command::new(python())
        .arg(repo().join("models/train/dmsl_preprocess.py"))
        .arg(image)
        .args([
            "--spectrum",
            spectrum,
            "--normalization",
            normalization,
            "--out",
        ])
        .arg(out.path())
        .status()
        .expect("python runs (scripts/setup.sh makes .cache/venv)");
    assert!(status.success(), "python preprocessing failed");
    std::fs::read(out.path())
        .expect("read")
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn assert_close(rust: &[f32], python: &[f32], what: &str) {
    assert_eq!(rust.len(), python.len(), "{what}");
    let worst = rust
        .iter()
        .zip(python)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-5, "{what}: max |rust - python| = {worst}");
}

#[test]
fn visible_preprocessing_matches_training() {
    // JPEG decoders may differ by one grey level (Pillow uses libjpeg-turbo, the image crate
    // zune-jpeg): both sides read the same pixels from a lossless PNG copy instead.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut resizer = fast_image_resize::Resizer::new();
    for n in [0, 11] {
        let img = image::open(fixture_session().join(format!("visible/{n:06}.jpg")))
            .expect("fixture")
            .to_rgb8();
        let path = dir.path().join(format!("{n}.png"));
        img.save(&path).expect("png copy");
        let (canvas, _) = dmsl::letterbox(
            &dmsl::gray_from_rgb8(img.as_raw()),
            img.width(),
            img.height(),
            &mut resizer,
        )
        .expect("letterbox");
        assert_close(
            &canvas,
            &python_canvas(&path, "visible", "-"),
            &path.display().to_string(),
        );
    }
    // Odd sizes exercise the letterbox rounding and padding on both sides.
    let odd = image::imageops::crop_imm(
        &image::open(fixture_session().join("visible/000005.jpg"))
            .expect("fixture")
            .to_rgb8(),
        3,
        5,
        201,
        97,
    )
    .to_image();
    let path = dir.path().join("odd.png");
    odd.save(&path).expect("png copy");
    let (canvas, _) = dmsl::letterbox(
        &dmsl::gray_from_rgb8(odd.as_raw()),
        odd.width(),
        odd.height(),
        &mut resizer,
    )
    .expect("letterbox");
    assert_close(
        &canvas,
        &python_canvas(&path, "visible", "-"),
        "201x97 crop",
    );
}

#[test]
fn thermal_preprocessing_matches_training() {
    let mut resizer = fast_image_resize::Resizer::new();
    let path = fixture_session().join("thermal/000004.png");
    let img = image::open(&path).expect("fixture").to_luma16();
    for (normalization, arg) in [
        (
            ThermalNormalization::Percentile {
                low: 1.0,
                high: 99.0,
            },
            "percentile:1:99",
        ),
        (
            ThermalNormalization::Fixed {
                low: 29315.0,
                high: 31315.0,
            },
            "fixed:29315:31315",
        ),
    ] {
        let gray = dmsl::gray_from_thermal(img.as_raw(), normalization, None)
            .expect("raw-value normalization needs no radiometry");
        let (canvas, _) =
            dmsl::letterbox(&gray, img.width(), img.height(), &mut resizer).expect("letterbox");
        assert_close(&canvas, &python_canvas(&path, "thermal", arg), arg);
    }
}

//! The daemon's face crop equals the training script's (`face_crop` in
//! models/train/dmsl_preprocess.py) on the same image and detection: a face at the centre,
//! one cut by the frame edge (black padding), one turned upright by its eyes, a large one
//! (sub-sampled 4 × 4 per canvas pixel) and a small one (1 × 1).
use crate::common;

use std::process::Command;

use common::*;
use spectrald::dmsl::{self, FaceCrop};
use spectrald::geometry::BoundingBox;

fn python_crop(image: &std::path::Path, spec: &str, upright: bool) -> Vec<f32> {
    let out = tempfile::NamedTempFile::new().expect("temp");
    let mut command = Command::new(python());
    command
        .arg(repo().join("models/train/dmsl_preprocess.py"))
        .arg(image)
        // `--crop=…`: a spec starting with a minus sign is not an option.
        .args(["--spectrum", "visible", &format!("--crop={spec}"), "--out"])
        .arg(out.path());
    if upright {
        command.arg("--upright");
    }
    let status = command
        .status()
        .expect("python runs (scripts/setup.sh makes .cache/venv)");
    assert!(status.success(), "python face crop failed");
    std::fs::read(out.path())
        .expect("read")
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[test]
fn face_crops_match_training() {
    // A lossless copy: JPEG decoders may differ by a grey level between Rust and Pillow.
    let dir = tempfile::tempdir().expect("tempdir");
    let img = image::open(fixture_session().join("visible/000007.jpg"))
        .expect("fixture")
        .to_rgb8();
    let path = dir.path().join("frame.png");
    img.save(&path).expect("png copy");
    let gray: Vec<f32> = dmsl::gray_from_rgb8(img.as_raw())
        .into_iter()
        .map(|p| p.0)
        .collect();
    let (w, h) = (img.width() as usize, img.height() as usize);
    // (box, eyes, upright): values exact in f32 so both sides start from the same numbers.
    let cases: [([f32; 4], Option<[f32; 4]>, bool); 5] = [
        ([112.0, 34.0, 143.0, 160.0], None, false),
        ([250.0, -20.0, 90.0, 110.0], None, false),
        (
            [112.0, 34.0, 143.0, 160.0],
            Some([150.0, 100.5, 215.25, 90.0]),
            true,
        ),
        ([-40.0, -60.0, 400.0, 420.0], None, false),
        (
            [140.0, 80.0, 40.0, 44.0],
            Some([150.0, 95.0, 170.0, 99.0]),
            true,
        ),
    ];
    for (b, eyes, upright) in cases {
        let face = BoundingBox {
            x: b[0],
            y: b[1],
            w: b[2],
            h: b[3],
        };
        let crop =
            FaceCrop::of_detection(face, eyes.map(|e| ([e[0], e[1]], [e[2], e[3]])), upright);
        let rust = crop.sample(&gray, w, h);
        let mut spec = format!("{},{},{},{}", b[0], b[1], b[2], b[3]);
        if let Some(e) = eyes {
            spec += &format!(",{},{},{},{}", e[0], e[1], e[2], e[3]);
        }
        let python = python_crop(&path, &spec, upright);
        assert_eq!(rust.len(), python.len(), "{spec}");
        let worst = rust
            .iter()
            .zip(&python)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "crop {spec}: max |rust - python| = {worst}");
        // Not a blank canvas: the crop holds the image.
        assert!(rust.iter().any(|v| *v > 0.05), "crop {spec} is black");
    }
}

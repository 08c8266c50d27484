//! `spectrald offline segment` and segmentation scoring: label maps the size of the image,
//! overlays, contextual-regularization refinement, and the FCN metrics on a labelled folder
//! whose answers are known exactly.
use crate::common;

use std::path::{Path, PathBuf};

use common::run_offline as offline;
use serde_json::Value;

const SEG: &str = "segment-camvid-lite0";

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn frames() -> Vec<PathBuf> {
    ["000000.jpg", "000010.jpg"]
        .iter()
        .map(|f| common::fixture_session().join("visible").join(f))
        .collect()
}

/// Pixels labelled differently in two maps of one image.
fn differing_pixels(a: &image::GrayImage, b: &image::GrayImage) -> usize {
    a.pixels().zip(b.pixels()).filter(|(p, q)| p != q).count()
}

#[test]
fn segment_writes_label_maps_and_overlays_the_size_of_the_image() {
    let out = tempfile::tempdir().expect("tempdir");
    let frame = &frames()[0];
    let (code, lines, stderr) = offline(&[
        "segment",
        "--model",
        SEG,
        "--out",
        &s(out.path()),
        &s(frame),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let line = &lines[0];
    assert_eq!(line["task"], "segment");
    assert_eq!(line["refined"], false);
    let fractions: f64 = line["class_fractions"]
        .as_object()
        .expect("fractions")
        .values()
        .filter_map(Value::as_f64)
        .sum();
    assert!((fractions - 1.0).abs() < 2e-3, "{line}");
    let labels = image::open(out.path().join("000000.labels.png"))
        .expect("labels")
        .into_luma8();
    assert_eq!(labels.dimensions(), (320, 240));
    assert!(labels.pixels().all(|p| p[0] < 11));
    let overlay = image::open(out.path().join("000000.overlay.png")).expect("overlay");
    assert_eq!((overlay.width(), overlay.height()), (320, 240));

    // Refinement is another result (the store keeps both) and changes the map only a little.
    let (code, lines, stderr) = offline(&[
        "segment",
        "--model",
        SEG,
        "--refine",
        "--out",
        &s(out.path()),
        &s(frame),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(lines[0]["refined"], true);
    assert!(
        lines[0].get("from_store").is_none(),
        "refined is not the stored plain result"
    );
    // Same file name: the refined map replaces the plain one in the output folder.
    let refined = image::open(out.path().join("000000.labels.png"))
        .expect("refined labels")
        .into_luma8();
    let changed = differing_pixels(&labels, &refined);
    assert!(
        changed < 320 * 240 / 5,
        "refinement rewrote {changed} pixels"
    );
}

#[test]
fn evaluate_gives_exact_scores_on_known_labels_and_ignores_void() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("seg");
    let inputs: Vec<String> = frames().iter().map(|p| s(p)).collect();
    let mut args = vec![
        "segment",
        "--model",
        SEG,
        "--out",
        out.to_str().expect("utf8"),
    ];
    args.extend(inputs.iter().map(String::as_str));
    let (code, _, stderr) = offline(&args);
    assert_eq!(code, 0, "{stderr}");
    // A dataset whose labels are the model's own answers: every score is exactly 1.
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("images")).expect("mkdir");
    std::fs::create_dir_all(data.join("labels")).expect("mkdir");
    for frame in frames() {
        let stem = frame
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("stem")
            .to_string();
        std::fs::copy(&frame, data.join("images").join(format!("{stem}.jpg"))).expect("copy");
        let mut labels = image::open(out.join(format!("{stem}.labels.png")))
            .expect("labels")
            .into_luma8();
        if stem == "000000" {
            // A 10x10 void block (class 11, "unlabelled"): not counted at all.
            for y in 0..10 {
                for x in 0..10 {
                    labels.put_pixel(x, y, image::Luma([11]));
                }
            }
        }
        labels
            .save(data.join("labels").join(format!("{stem}.png")))
            .expect("save");
    }
    let report = dir.path().join("report");
    let evaluate = || {
        offline(&[
            "evaluate",
            "--task",
            "segment",
            "--model",
            SEG,
            "--out",
            &s(&report),
            &s(&data),
        ])
    };
    let (code, stdout, stderr) = evaluate();
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.is_empty(), "the table is plain text, not JSON lines");
    let metrics: Value = serde_json::from_str(
        &std::fs::read_to_string(report.join("metrics.json")).expect("metrics"),
    )
    .expect("json");
    let seg = &metrics["segmentation"];
    assert_eq!(seg["pixels"], 2 * 320 * 240 - 100);
    for key in [
        "pixel_accuracy",
        "mean_accuracy",
        "mean_iu",
        "frequency_weighted_iu",
    ] {
        assert_eq!(seg[key].as_f64(), Some(1.0), "{key}: {seg}");
    }

    // A label of the wrong size is named and the run says partial.
    image::GrayImage::new(100, 100)
        .save(data.join("labels/000010.png"))
        .expect("save");
    let (code, _, stderr) = evaluate();
    assert_eq!(code, 3, "{stderr}");
    let metrics = std::fs::read_to_string(report.join("metrics.json")).expect("metrics");
    assert!(
        metrics.contains("label is 100x100, its image 320x240"),
        "{metrics}"
    );
}

#[test]
fn test_time_scales_come_from_the_manifest_and_flags_override_them() {
    // The shipped sequence-split model carries `test_time` (scales 1 and 1.5, mirrored).
    const MS: &str = "segment-camvid-lite0-balanced-352x480-colour-aspp";
    let out = tempfile::tempdir().expect("tempdir");
    let frame = &frames()[0];
    let out_dir = s(out.path());
    let frame_path = s(frame);
    let segment = |extra: &[&str]| {
        let mut args = vec!["segment", "--model", MS, "--out", &out_dir];
        args.extend_from_slice(extra);
        args.push(&frame_path);
        let (code, lines, stderr) = offline(&args);
        assert_eq!(code, 0, "{stderr}");
        let labels = image::open(out.path().join("000000.labels.png"))
            .expect("labels")
            .into_luma8();
        (lines[0].clone(), labels)
    };
    let (line, tiled) = segment(&[]);
    assert_eq!(line["scales"], serde_json::json!([1.0, 1.5]), "{line}");
    assert_eq!(line["flip"], true, "{line}");
    assert_eq!(tiled.dimensions(), (320, 240));

    // One whole-image pass is another result, not the stored multi-scale one, and it
    // labels some pixels differently (about a third on this face frame, far from the
    // road scenes the model knows; the same image, so most pixels agree).
    let (line, single) = segment(&["--scales", "1", "--flip=false"]);
    assert_eq!(line["scales"], serde_json::json!([1.0]), "{line}");
    assert_eq!(line["flip"], false, "{line}");
    assert!(line.get("from_store").is_none(), "{line}");
    let changed = differing_pixels(&tiled, &single);
    assert!(
        changed > 0 && changed < 320 * 240 / 2,
        "{changed} pixels differ"
    );

    // A bare --flip before the inputs is the flag, not a value swallowing the first path;
    // with the manifest's scales it is the plan already stored.
    let (line, _) = segment(&["--flip"]);
    assert_eq!(line["scales"], serde_json::json!([1.0, 1.5]), "{line}");
    assert_eq!(line["from_store"], true, "{line}");

    // A scale below 1 is refused with the reason, before any input is read.
    let (code, _, stderr) = offline(&[
        "segment",
        "--model",
        MS,
        "--scales",
        "0.5",
        "--out",
        &s(out.path()),
        &s(frame),
    ]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("--scales/--flip: test-time scale 0.5 is outside 1..=8"),
        "{stderr}"
    );
}

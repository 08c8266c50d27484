//! Dermoscopic lesion segmentation on synthetic images whose lesion mask is known: a
//! brown lesion on textured skin inside a black frame, crossed by dark hairs. Hair
//! removal must give back the lesion mask; the frame never counts as lesion; metrics are
//! the hand counts; bad inputs get one clear line each.
use crate::common;

use std::path::Path;

use common::run_offline as offline;
use image::{GrayImage, Luma, Rgb, RgbImage};
use spectrald::offline::lesion::score::PixelCounts;
use spectrald::offline::lesion::{self, LesionParams, Method};

const W: u32 = 400;
const H: u32 = 300;

/// A small deterministic texture in −10..=10 (skin and lesion are not flat).
fn texture(x: u32, y: u32) -> i32 {
    let h = (x.wrapping_mul(73_856_093) ^ y.wrapping_mul(19_349_663)).wrapping_mul(2_654_435_761);
    (h >> 27) as i32 - 16 + ((x / 7 + y / 5) % 5) as i32
}

fn in_lesion(x: u32, y: u32) -> bool {
    let (dx, dy) = ((x as f32 - 200.0) / 75.0, (y as f32 - 150.0) / 50.0);
    dx * dx + dy * dy <= 1.0
}

fn in_frame(x: u32, y: u32) -> bool {
    let (dx, dy) = (x as f32 - 200.0, y as f32 - 150.0);
    (dx * dx + dy * dy).sqrt() > 185.0
}

/// Long straight dark hairs, 2 px thick: two diagonals through the lesion, a horizontal
/// one over skin only, a vertical one through the lesion.
fn on_hair(x: u32, y: u32) -> bool {
    let (xf, yf) = (x as f32, y as f32);
    let d1 = (yf - (0.55 * xf + 20.0)).abs() / (1.0f32 + 0.3025).sqrt();
    let d2 = (yf - (-0.7 * xf + 330.0)).abs() / (1.0f32 + 0.49).sqrt();
    d1 < 1.0 || d2 < 1.0 || (60..62).contains(&y) || (250..252).contains(&x)
}

fn shade(base: [i32; 3], t: i32) -> Rgb<u8> {
    Rgb(base.map(|c| (c + t).clamp(0, 255) as u8))
}

fn synthetic(hairs: bool) -> RgbImage {
    RgbImage::from_fn(W, H, |x, y| {
        let t = texture(x, y);
        if in_frame(x, y) {
            shade([12, 10, 10], t / 4)
        } else if hairs && on_hair(x, y) {
            shade([45, 32, 28], t / 2)
        } else if in_lesion(x, y) {
            shade([120, 75, 55], t)
        } else {
            shade([225, 170, 150], t)
        }
    })
}

fn truth() -> GrayImage {
    GrayImage::from_fn(W, H, |x, y| Luma([if in_lesion(x, y) { 255 } else { 0 }]))
}

fn run(image: &RgbImage, method: Method, hair_removal: bool) -> lesion::Segmentation {
    let params = LesionParams {
        hair_removal,
        ..LesionParams::default()
    };
    lesion::segment(image, "synthetic", method, &params, true).expect("segment")
}

#[test]
fn hair_removal_gives_back_the_lesion_mask_under_hairs() {
    let hairy = synthetic(true);
    let without = PixelCounts::compare(&run(&hairy, Method::Otsu, false).mask, &truth());
    let with = PixelCounts::compare(&run(&hairy, Method::Otsu, true).mask, &truth());
    // Without hair removal every hair pixel on skin is a false lesion pixel.
    let hair_on_skin = (0..W)
        .flat_map(|x| (0..H).map(move |y| (x, y)))
        .filter(|&(x, y)| on_hair(x, y) && !in_lesion(x, y) && !in_frame(x, y))
        .count() as u64;
    assert!(
        without.fp >= hair_on_skin * 9 / 10,
        "{without:?}, {hair_on_skin} hair pixels on skin"
    );
    let s = with.scores();
    assert!(s.f1 > 0.97, "with hair removal: {with:?} {s:?}");
    assert!(with.fp < without.fp / 10, "{with:?} vs {without:?}");
    // The hair pixels inside the lesion were replaced by lesion colour, not skin colour.
    assert!(s.recall > 0.97, "{s:?}");
}

#[test]
fn colour_clustering_finds_the_lesion_and_keeps_the_frame_out() {
    for hair_removal in [false, true] {
        let image = synthetic(hair_removal);
        let seg = run(&image, Method::Cluster, true);
        let c = PixelCounts::compare(&seg.mask, &truth());
        let s = c.scores();
        assert!(
            s.f1 > 0.95,
            "hairs {hair_removal}: {c:?} {s:?} clusters {:?}",
            seg.clusters
        );
        assert!(seg.clusters.iter().any(|c| c.lesion));
        assert!(seg.clusters.iter().any(|c| !c.lesion));
        for (x, y, p) in seg.mask.enumerate_pixels() {
            assert!(
                !(p[0] > 0 && in_frame(x, y)),
                "frame pixel {x},{y} labelled lesion"
            );
        }
        // The intermediate masks a user can inspect: M2 covers the lesion.
        let m2 = seg.steps.m2.as_ref().expect("M2 kept");
        let covered = PixelCounts::compare(m2, &truth()).scores().recall;
        assert!(covered > 0.99, "M2 covers {covered} of the lesion");
    }
}

#[test]
fn a_clean_image_is_left_alone_by_hair_removal() {
    let clean = synthetic(false);
    let seg = run(&clean, Method::Otsu, true);
    assert!(
        seg.hair_pixels < 50,
        "{} pixels replaced on a hairless image",
        seg.hair_pixels
    );
    let s = PixelCounts::compare(&seg.mask, &truth()).scores();
    assert!(s.f1 > 0.98, "{s:?}");
}

fn save_rgb(image: &RgbImage, path: &Path) {
    image.save(path).expect("write image");
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn cli_segments_writes_masks_and_debug_steps_and_reports_bad_inputs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inputs = dir.path().join("in");
    std::fs::create_dir_all(&inputs).expect("mkdir");
    save_rgb(&synthetic(true), &inputs.join("hairy.png"));
    // Grey and 16-bit inputs are analysed (with a warning for grey).
    image::DynamicImage::ImageRgb8(synthetic(false))
        .to_luma8()
        .save(inputs.join("grey.png"))
        .expect("grey");
    image::DynamicImage::ImageRgb8(synthetic(false))
        .to_rgb16()
        .save(inputs.join("deep16.png"))
        .expect("16-bit");
    RgbImage::new(W, H)
        .save(inputs.join("black.png"))
        .expect("black");
    RgbImage::from_pixel(8, 8, Rgb([200, 150, 130]))
        .save(inputs.join("tiny.png"))
        .expect("tiny");
    std::fs::write(inputs.join("broken.jpg"), b"\xFF\xD8\xFF\xE0 not really").expect("broken");
    let out = dir.path().join("out");
    let debug = dir.path().join("debug");
    let store = dir.path().join("results.sqlite");
    let segment = |extra: &[&str]| {
        let (out, store, inputs) = (s(&out), s(&store), s(&inputs));
        let mut args = vec!["lesion", "segment", "--out", &out, "--store", &store];
        args.extend_from_slice(extra);
        args.push(&inputs);
        offline(&args)
    };
    let (code, lines, stderr) = segment(&["--debug-dir", &s(&debug)]);
    assert_eq!(
        code, 3,
        "two bad files among good ones: partial success\n{stderr}"
    );
    let by_name = |name: &str| {
        lines
            .iter()
            .find(|l| l["input"].as_str().is_some_and(|i| i.ends_with(name)))
            .unwrap_or_else(|| panic!("no line for {name}: {lines:?}"))
    };
    let hairy = by_name("hairy.png");
    assert_eq!(hairy["task"], "lesion");
    assert_eq!(hairy["method"], "cluster");
    assert!(hairy["hair_pixels"].as_u64().unwrap_or(0) > 1000, "{hairy}");
    let mask = image::open(out.join("hairy.lesion.png"))
        .expect("mask")
        .to_luma8();
    assert!(PixelCounts::compare(&mask, &truth()).scores().f1 > 0.95);
    for step in [
        "1-hair-candidates",
        "3-hair-removed",
        "4-frame-m0",
        "5-otsu",
        "8-m2",
        "9-clusters",
    ] {
        assert!(
            debug.join(format!("hairy.{step}.png")).is_file(),
            "{step} missing"
        );
    }
    let grey = by_name("grey.png");
    assert!(
        grey["warnings"][0].as_str().unwrap_or("").contains("grey"),
        "{grey}"
    );
    assert!(
        grey["lesion_fraction"].as_f64().unwrap_or(0.0) > 0.05,
        "{grey}"
    );
    let deep = by_name("deep16.png");
    assert_eq!(deep["bit_depth"], 16);
    let deep_mask = image::open(out.join("deep16.lesion.png"))
        .expect("mask")
        .to_luma8();
    assert!(PixelCounts::compare(&deep_mask, &truth()).scores().f1 > 0.95);
    let black = by_name("black.png");
    assert_eq!(black["lesion_pixels"], 0);
    assert!(black["warnings"].to_string().contains("dark"), "{black}");
    assert!(
        stderr.contains("tiny.png: 8x8 is smaller than the 11-pixel hair structuring element"),
        "{stderr}"
    );
    assert!(stderr.contains("broken.jpg"), "{stderr}");
    assert_eq!(stderr.matches("failed: ").count(), 2, "{stderr}");
    // The results went to the store: a second run takes them from there, the same lines
    // (its masks are still in --out); a deleted mask, or other parameters (another pipeline
    // id), are segmented anew.
    let pipeline = hairy["pipeline"].as_str().expect("pipeline id").to_owned();
    assert!(pipeline.starts_with("lesion-cluster@"), "{pipeline}");
    let (code, again, stderr) = segment(&[]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("0 segmented, 4 already in"), "{stderr}");
    let stored = again
        .iter()
        .find(|l| l["input"] == hairy["input"])
        .expect("hairy again");
    assert_eq!(stored["from_store"], true);
    assert_eq!(stored["lesion_pixels"], hairy["lesion_pixels"]);
    std::fs::remove_file(out.join("hairy.lesion.png")).expect("remove a mask");
    let (_, _, stderr) = segment(&[]);
    assert!(stderr.contains("1 segmented, 3 already in"), "{stderr}");
    assert!(
        out.join("hairy.lesion.png").is_file(),
        "the mask is written again"
    );
    let (_, plain, stderr) = segment(&["--no-hair-removal"]);
    assert!(stderr.contains("4 segmented, 0 already in"), "{stderr}");
    assert_ne!(plain[0]["pipeline"].as_str(), Some(pipeline.as_str()));
    // --no-store: every image segmented, nothing reused, no store file written.
    let elsewhere = dir.path().join("unstored.sqlite");
    let (code, lines, stderr) = offline(&[
        "lesion",
        "segment",
        "--out",
        &s(&out),
        "--store",
        &s(&elsewhere),
        "--no-store",
        &s(&inputs),
    ]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("4 segmented, no store"), "{stderr}");
    assert!(lines.iter().all(|l| l.get("from_store").is_none()));
    assert!(
        !elsewhere.exists(),
        "--no-store wrote {}",
        elsewhere.display()
    );
    let (code, _, stderr) = segment(&["--no-store", "--force"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--force"), "{stderr}");
}

#[test]
fn cli_evaluate_scores_the_four_pipelines_and_survives_bad_masks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("set");
    std::fs::create_dir_all(data.join("images")).expect("mkdir");
    std::fs::create_dir_all(data.join("masks")).expect("mkdir");
    save_rgb(&synthetic(true), &data.join("images/a.png"));
    truth().save(data.join("masks/a_lesion.png")).expect("mask");
    // A lesion-free image of skin only, with an empty mask: scores stay defined.
    RgbImage::from_fn(W, H, |x, y| shade([225, 170, 150], texture(x, y)))
        .save(data.join("images/b.png"))
        .expect("skin");
    GrayImage::new(W, H)
        .save(data.join("masks/b.png"))
        .expect("empty mask");
    // A mask of the wrong size, and an image without a mask.
    save_rgb(&synthetic(false), &data.join("images/c.png"));
    GrayImage::new(W / 2, H / 2)
        .save(data.join("masks/c.png"))
        .expect("small mask");
    save_rgb(&synthetic(false), &data.join("images/d.png"));
    let out = dir.path().join("eval");
    let (code, _, stderr) = offline(&[
        "lesion",
        "evaluate",
        "--per-image",
        "--out",
        &s(&out),
        &s(&data),
    ]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("c: ") && stderr.contains("mask is 200x150, the image 400x300"),
        "{stderr}"
    );
    assert!(stderr.contains("d: no mask masks/d.png"), "{stderr}");
    let csv = std::fs::read_to_string(out.join("per-image.csv")).expect("per-image.csv");
    assert!(!csv.contains("NaN") && !csv.contains("inf"), "{csv}");
    // a and b in four pipelines.
    assert_eq!(csv.lines().count(), 1 + 2 * 4, "{csv}");
    // The global row is the sum of the per-image rows.
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).expect("json"))
            .expect("metrics.json");
    for variant in metrics["variants"].as_array().expect("variants") {
        let images = variant["images"].as_array().expect("images");
        for key in ["tp", "fp", "fn_", "tn"] {
            let sum: u64 = images
                .iter()
                .map(|i| i["counts"][key].as_u64().unwrap_or(0))
                .sum();
            assert_eq!(variant["global_counts"][key].as_u64(), Some(sum), "{key}");
        }
        let total: u64 = ["tp", "fp", "fn_", "tn"]
            .iter()
            .map(|k| variant["global_counts"][k].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(total, 2 * u64::from(W * H));
    }
    let summary = std::fs::read_to_string(out.join("summary.csv")).expect("summary");
    assert!(summary.contains("cluster,true,global,2,"), "{summary}");
    assert!(!summary.contains("NaN"), "{summary}");
}

#[test]
fn cli_refuses_an_unknown_parameter_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "[offline.lesion]\nhair_treshold = 20\n").expect("write");
    let image = dir.path().join("a.png");
    save_rgb(&synthetic(false), &image);
    let (code, _, stderr) = offline(&["lesion", "segment", "--config", &s(&config), &s(&image)]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("hair_treshold"), "{stderr}");
}

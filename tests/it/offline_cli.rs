//! `spectrald offline classify|evaluate` as an operator runs them: a real 4-band GeoTIFF
//! scene, folders with bad files among good ones, resuming, and the error for every kind
//! of input the models cannot take.
use crate::common;

use std::path::{Path, PathBuf};

use common::run_offline as offline;
use serde_json::Value;
use tiff::decoder::Decoder;
use tiff::tags::Tag;

const SAT: &str = "satellite-eurosat-lite0";

fn scene() -> PathBuf {
    common::repo().join("tests/fixtures/geotiff/rgbn.tif")
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// The scene's RGB as an 8-bit image (what `image` decodes: the first three bands).
fn scene_rgb() -> image::RgbImage {
    image::open(scene()).expect("decode scene").into_rgb8()
}

fn crop(x: u32, y: u32, size: u32) -> image::RgbImage {
    image::imageops::crop_imm(&scene_rgb(), x, y, size, size).to_image()
}

fn tag_f64(decoder: &mut Decoder<std::fs::File>, tag: u16) -> Option<Vec<f64>> {
    decoder
        .find_tag(Tag::Unknown(tag))
        .ok()
        .flatten()
        .and_then(|v| v.into_f64_vec().ok())
}

#[test]
fn geotiff_scene_is_tiled_into_a_georeferenced_class_map() {
    let out = tempfile::tempdir().expect("tempdir");
    let (code, lines, stderr) = offline(&[
        "classify",
        "--model",
        SAT,
        "--stride",
        "32",
        "--out",
        &s(out.path()),
        &s(&scene()),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let line = &lines[0];
    assert_eq!(line["schema"], "spectrald.offline/v1");
    assert_eq!(
        line["bands"],
        serde_json::json!(["red", "green", "blue", "nir"])
    );
    assert_eq!(line["georeferenced"], true);
    assert_eq!(
        (
            line["tiles"]["cols"].as_u64(),
            line["tiles"]["rows"].as_u64()
        ),
        (Some(15), Some(11))
    );
    let counted: u64 = line["tiles"]["counts"]
        .as_object()
        .expect("counts")
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(counted, 15 * 11);
    // The town on the left half of the scene is built-up land.
    assert_eq!(line["class"], "Residential", "{line}");
    // 5 m pixels against EuroSAT's 10 m: said, with the fix.
    assert!(
        line["warnings"][0]
            .as_str()
            .is_some_and(|w| w.contains("5 m") && w.contains("gdalwarp")),
        "{line}"
    );

    let map = out.path().join("rgbn.classes.tif");
    let mut decoder = Decoder::new(std::fs::File::open(&map).expect("class map")).expect("tiff");
    assert_eq!(decoder.dimensions().expect("dims"), (15, 11));
    // One cell per 32-pixel step of 5 m pixels; the scene's corner stays where it was.
    assert_eq!(tag_f64(&mut decoder, 33550), Some(vec![160.0, 160.0, 0.0]));
    let tie = tag_f64(&mut decoder, 33922).expect("tiepoint");
    assert_eq!(&tie[3..5], &[792988.0, 2050382.0]);
    let crs = decoder
        .find_tag(Tag::Unknown(34737))
        .ok()
        .flatten()
        .and_then(|v| v.into_string().ok());
    assert!(crs.is_some_and(|c| c.contains("UTM zone 18N")));
    let legend = std::fs::read_to_string(out.path().join("rgbn.legend.svg")).expect("legend");
    assert!(
        legend.contains("Residential (") && legend.contains("rgbn.classes.png"),
        "{legend}"
    );
    assert!(out.path().join("rgbn.classes.png").is_file());
}

#[test]
fn scene_without_georeference_still_classifies_and_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = dir.path().join("plain.tif");
    scene_rgb().save(&plain).expect("write plain tiff");
    let out = dir.path().join("out");
    let (code, lines, stderr) = offline(&[
        "classify",
        "--model",
        SAT,
        "--stride",
        "32",
        "--out",
        &s(&out),
        &s(&plain),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(lines[0]["georeferenced"], false);
    assert!(
        lines[0]["note"]
            .as_str()
            .is_some_and(|n| n.contains("no georeference"))
    );
    let mut decoder =
        Decoder::new(std::fs::File::open(out.join("plain.classes.tif")).expect("map"))
            .expect("tiff");
    assert_eq!(tag_f64(&mut decoder, 33550), None);
}

#[test]
fn sixteen_bit_scene_with_a_fixed_range_gives_the_8_bit_classes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rgb = scene_rgb();
    let (w, h) = rgb.dimensions();
    // 4 bands (NIR left dark): 16-bit values v*257 map back to v/255 with --range 0:65535.
    let samples: Vec<u16> = rgb
        .pixels()
        .flat_map(|p| [p[0], p[1], p[2], 0].map(|v| u16::from(v) * 257))
        .collect();
    let deep = dir.path().join("deep.tif");
    spectrald::offline::geotiff::write_bands_u16(&deep, w as usize, h as usize, 4, &samples, None)
        .expect("write 16-bit");
    let shallow = dir.path().join("shallow.tif");
    rgb.save(&shallow).expect("write 8-bit");
    let out = s(&dir.path().join("out"));
    let (code, lines, stderr) = offline(&[
        "classify",
        "--model",
        SAT,
        "--stride",
        "32",
        "--range",
        "0:65535",
        "--out",
        &out,
        &s(&deep),
        &s(&shallow),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(lines[0]["bit_depth"], 16);
    assert_eq!(lines[1]["bit_depth"], 8);
    assert_eq!(lines[0]["tiles"]["counts"], lines[1]["tiles"]["counts"]);
}

/// A folder with three good patches and three bad files.
fn mixed_folder(dir: &Path) {
    for (i, (x, y)) in [(0, 0), (100, 100), (400, 300)].iter().enumerate() {
        crop(*x, *y, 64)
            .save(dir.join(format!("good-{i}.png")))
            .expect("write patch");
    }
    let png = std::fs::read(dir.join("good-0.png")).expect("read");
    std::fs::write(dir.join("truncated.png"), &png[..png.len() / 2]).expect("write");
    std::fs::write(dir.join("notes.jpg"), b"not an image at all").expect("write");
    // A JPEG cut short (the JPEG decoder alone would fill the rest with grey).
    let mut jpeg = std::io::Cursor::new(Vec::new());
    crop(200, 200, 64)
        .write_to(&mut jpeg, image::ImageFormat::Jpeg)
        .expect("jpeg");
    let jpeg = jpeg.into_inner();
    std::fs::write(dir.join("cut.jpg"), &jpeg[..jpeg.len() * 2 / 3]).expect("write");
    crop(0, 0, 32).save(dir.join("tiny.png")).expect("write");
}

#[test]
fn bad_files_in_a_folder_are_skipped_listed_and_the_run_resumes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let images = dir.path().join("images");
    std::fs::create_dir(&images).expect("mkdir");
    mixed_folder(&images);
    let out = s(&dir.path().join("out"));
    let (code, lines, stderr) = offline(&["classify", "--model", SAT, "--out", &out, &s(&images)]);
    assert_eq!(code, 3, "partial: {stderr}");
    assert_eq!(lines.len(), 3);
    assert!(
        stderr.contains("3 analysed, 0 already") && stderr.contains("4 failed"),
        "{stderr}"
    );
    for (name, why) in [
        ("cut.jpg", "truncated"),
        ("truncated.png", "not a readable image"),
        ("notes.jpg", "not a readable image"),
        ("tiny.png", "32x32 is smaller than the model input 64x64"),
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with("failed:") && l.contains(name) && l.contains(why)),
            "{name}: {stderr}"
        );
    }
    // Again: the three good ones come from the store, nothing is analysed twice.
    let (code, lines, stderr) = offline(&["classify", "--model", SAT, "--out", &out, &s(&images)]);
    assert_eq!(code, 3);
    assert!(stderr.contains("0 analysed, 3 already"), "{stderr}");
    assert!(lines.iter().all(|l| l["from_store"] == true));
    // --force analyses them again.
    let (_, _, stderr) = offline(&[
        "classify",
        "--model",
        SAT,
        "--force",
        "--out",
        &out,
        &s(&images),
    ]);
    assert!(stderr.contains("3 analysed, 0 already"), "{stderr}");
}

#[test]
fn band_and_bit_depth_problems_are_named_with_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = s(&dir.path().join("out"));
    // Grey + alpha: no red band.
    let gray = image::GrayAlphaImage::from_pixel(64, 64, image::LumaA([90, 255]));
    let gray_path = dir.path().join("gray.png");
    gray.save(&gray_path).expect("write");
    let (code, _, stderr) = offline(&["classify", "--model", SAT, "--out", &out, &s(&gray_path)]);
    assert_eq!(code, 3);
    assert!(
        stderr.contains("needs band \"red\"") && stderr.contains("--bands"),
        "{stderr}"
    );
    // 32-bit float samples.
    let float_path = dir.path().join("float.tif");
    let file = std::fs::File::create(&float_path).expect("create");
    let mut encoder = tiff::encoder::TiffEncoder::new(file).expect("encoder");
    encoder
        .write_image::<tiff::encoder::colortype::Gray32Float>(64, 64, &vec![0.5f32; 64 * 64])
        .expect("write float");
    let (_, _, stderr) = offline(&["classify", "--model", SAT, "--out", &out, &s(&float_path)]);
    assert!(
        stderr.contains("floating-point") && stderr.contains("8- or 16-bit"),
        "{stderr}"
    );
    // --bands naming the wrong number of bands.
    let (_, _, stderr) = offline(&[
        "classify",
        "--model",
        SAT,
        "--bands",
        "red,nir",
        "--out",
        &out,
        &s(&scene()),
    ]);
    assert!(
        stderr.contains("--bands names 2 bands, the image has 4"),
        "{stderr}"
    );
    // Bands named differently: the model finds red, green and blue wherever they are.
    let (code, lines, stderr) = offline(&[
        "classify",
        "--model",
        SAT,
        "--bands",
        "nir,red,green,blue",
        "--stride",
        "64",
        "--out",
        &out,
        &s(&scene()),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(lines[0]["bands"][0], "nir");
}

#[test]
fn a_manifest_that_disagrees_with_its_graph_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let models = common::repo().join("models");
    std::fs::copy(
        models.join(format!("{SAT}.onnx")),
        dir.path().join(format!("{SAT}.onnx")),
    )
    .expect("copy");
    let text = std::fs::read_to_string(models.join(format!("{SAT}.json"))).expect("manifest");
    let mut manifest: Value = serde_json::from_str(&text).expect("json");
    manifest["classes"].as_array_mut().expect("classes").pop();
    manifest["outputs"][0]["shape"] = serde_json::json!([-1, 9]);
    std::fs::write(dir.path().join(format!("{SAT}.json")), manifest.to_string()).expect("write");
    let (code, _, stderr) = offline(&[
        "classify",
        "--model",
        SAT,
        "--models-dir",
        &s(dir.path()),
        "--out",
        &s(&dir.path().join("out")),
        &s(&scene()),
    ]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("output probabilities shape") && stderr.contains(SAT),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn evaluate_scores_a_labelled_folder_and_writes_the_confusion_matrix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let patches = dir.path().join("patches");
    std::fs::create_dir(&patches).expect("mkdir");
    mixed_folder(&patches);
    for bad in ["truncated.png", "notes.jpg", "tiny.png", "cut.jpg"] {
        std::fs::remove_file(patches.join(bad)).expect("rm");
    }
    let (_, lines, _) = offline(&[
        "classify",
        "--model",
        SAT,
        "--out",
        &s(&dir.path().join("o")),
        &s(&patches),
    ]);
    // A labelled folder: the first two patches labelled as the model classifies them, the
    // third deliberately with another class, so accuracy is exactly 2/3.
    let data = dir.path().join("data");
    let mut wrong_class = String::new();
    for (i, line) in lines.iter().enumerate() {
        let mut class = line["class"].as_str().expect("class").to_string();
        if i == 2 {
            class = if class == "Forest" {
                "SeaLake".into()
            } else {
                "Forest".into()
            };
            wrong_class = class.clone();
        }
        std::fs::create_dir_all(data.join(&class)).expect("mkdir");
        std::fs::copy(
            patches.join(format!("good-{i}.png")),
            data.join(&class).join(format!("p{i}.png")),
        )
        .expect("copy");
    }
    let out = dir.path().join("eval");
    let evaluate = || {
        offline(&[
            "evaluate",
            "--task",
            "classify",
            "--model",
            SAT,
            "--out",
            &s(&out),
            &s(&data),
        ])
    };
    let (code, _, stderr) = evaluate();
    assert_eq!(code, 0, "{stderr}");
    let metrics: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).expect("metrics"))
            .expect("json");
    let accuracy = metrics["classification"]["accuracy"]
        .as_f64()
        .expect("accuracy");
    assert!((accuracy - 2.0 / 3.0).abs() < 1e-9, "{metrics}");
    let csv = std::fs::read_to_string(out.join("confusion.csv")).expect("csv");
    let total: u64 = csv
        .lines()
        .skip(1)
        .flat_map(|l| l.split(',').skip(1))
        .filter_map(|v| v.parse::<u64>().ok())
        .sum();
    assert_eq!(total, 3);
    let row = csv
        .lines()
        .find(|l| l.starts_with(&format!("{wrong_class},")))
        .expect("row of the mislabelled class");
    assert_eq!(
        row.split(',')
            .skip(1)
            .filter_map(|v| v.parse::<u64>().ok())
            .sum::<u64>(),
        1
    );
    let png = image::open(out.join("confusion.png")).expect("png");
    assert_eq!(png.width(), 11 * 24);

    // A folder whose class name the model does not know is refused, naming it.
    std::fs::create_dir_all(data.join("Glacier")).expect("mkdir");
    std::fs::copy(patches.join("good-0.png"), data.join("Glacier/x.png")).expect("copy");
    let (code, _, stderr) = evaluate();
    assert_eq!(code, 2);
    assert!(
        stderr.contains("\"Glacier\" is not one of the model's classes"),
        "{stderr}"
    );
}

//! The two backends compute the same models: outputs agree within 1e-4 on the fixture.
use crate::common;

use common::*;
use spectrald::infer::BackendKind;
use spectrald::infer::Model;

fn canvases() -> Vec<f32> {
    let mut resizer = fast_image_resize::Resizer::new();
    let mut input = Vec::new();
    for n in [0, 7, 15, 23] {
        let img = image::open(fixture_session().join(format!("visible/{n:06}.jpg")))
            .expect("fixture")
            .to_rgb8();
        let gray = spectrald::dmsl::gray_from_rgb8(img.as_raw());
        let (canvas, _) =
            spectrald::dmsl::letterbox(&gray, img.width(), img.height(), &mut resizer)
                .expect("letterbox");
        input.extend(canvas);
    }
    input
}

fn compare(models: spectrald::infer::ModelsConfig) {
    let input = canvases();
    for name in [models.boundary.clone(), models.landmark.clone()] {
        let mut ort = Model::load(
            &models.dir,
            &name,
            &with_backend(models.clone(), BackendKind::Ort),
        )
        .expect("ONNX Runtime loads (run scripts/setup.sh)");
        let mut tract = Model::load(
            &models.dir,
            &name,
            &with_backend(models.clone(), BackendKind::Tract),
        )
        .expect("tract loads");
        assert_eq!((ort.backend_name(), tract.backend_name()), ("ort", "tract"));
        for batch in [1, 4] {
            let slice = &input[..batch * 128 * 128];
            let a = ort.infer(slice, batch).expect("ort runs");
            let b = tract.infer(slice, batch).expect("tract runs");
            for (x, y) in a.iter().zip(&b) {
                let worst = x
                    .iter()
                    .zip(y)
                    .map(|(p, q)| (p - q).abs())
                    .fold(0.0f32, f32::max);
                assert!(worst < 1e-4, "{name} batch {batch}: max difference {worst}");
            }
        }
    }
}

#[test]
fn ort_and_tract_agree_on_random_fixture_models() {
    compare(random_models());
}

#[test]
fn ort_and_tract_agree_on_shipped_models() {
    compare(trained_models());
}

/// The detector, size-free, at two input sizes and a batch of two: both backends find the
/// same face in the same place (the raw outputs agree; the decoded box to a tenth of a pixel).
#[test]
fn ort_and_tract_agree_on_the_face_detector() {
    let models = trained_models();
    let img = image::open(fixture_session().join("visible/000007.jpg"))
        .expect("fixture")
        .to_rgb8();
    let mut resizer = fast_image_resize::Resizer::new();
    for (w, h) in [(640u32, 480u32), (320, 256)] {
        let config = spectrald::detect::DetectorConfig {
            input_width: w,
            input_height: h,
            ..Default::default()
        };
        let (canvas, scale) = spectrald::detect::rgb_input(
            img.as_raw(),
            img.width(),
            img.height(),
            (w, h),
            config.model_size(),
            &mut resizer,
        )
        .expect("detector input");
        let input: Vec<f32> = canvas.iter().chain(&canvas).copied().collect();
        let mut faces = Vec::new();
        for backend in [BackendKind::Ort, BackendKind::Tract] {
            let manifest = spectrald::infer::Manifest::read(
                &models.dir.join(format!("{}.json", models.detector)),
            )
            .expect("manifest")
            .sized(h, w);
            let names: Vec<String> = manifest.outputs.iter().map(|o| o.name.clone()).collect();
            let mut model =
                Model::open(manifest, &with_backend(models.clone(), backend)).expect("loads");
            let outputs = model.infer(&input, 2).expect("runs");
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let heads = spectrald::detect::Heads::find(&names).expect("heads");
            for item in 0..2 {
                let views: Vec<&[f32]> = outputs
                    .iter()
                    .map(|o| {
                        let len = o.len() / 2;
                        &o[item * len..(item + 1) * len]
                    })
                    .collect();
                let (found, _) = spectrald::detect::decode(&views, &heads, w, h, scale, &config);
                faces.push(found);
            }
        }
        assert!(faces.iter().all(|f| f.len() == 1), "{w}x{h}: {faces:?}");
        let boxes: Vec<_> = faces.iter().map(|f| f[0].face_box).collect();
        for b in &boxes[1..] {
            for (p, q) in [(b.x, boxes[0].x), (b.y, boxes[0].y), (b.w, boxes[0].w)] {
                assert!((p - q).abs() < 0.1, "{w}x{h}: {boxes:?}");
            }
        }
    }
}

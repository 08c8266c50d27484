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

//! `spectrald evaluate` runs a labelled folder (300-W layout) through the real pipeline and
//! scores it with NME; here the labels are the fixture's dlib reference points.
use crate::common;

use common::*;
use spectrald::config::Config;

fn labelled_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("images")).expect("mkdir");
    std::fs::create_dir_all(dir.path().join("landmarks")).expect("mkdir");
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture_session().join("reference_landmarks.json"))
            .expect("reference"),
    )
    .expect("json");
    for n in [0, 5, 10, 15] {
        let name = format!("face_{n}");
        std::fs::copy(
            fixture_session().join(format!("visible/{n:06}.jpg")),
            dir.path().join(format!("images/{name}.jpg")),
        )
        .expect("copy");
        let points = reference["frames"][format!("visible/{n:06}.jpg")]
            .as_array()
            .expect("points")
            .clone();
        // .pts files are 1-based.
        let body: String = points
            .iter()
            .map(|p| {
                format!(
                    "{} {}\n",
                    p[0].as_f64().unwrap_or(0.0) + 1.0,
                    p[1].as_f64().unwrap_or(0.0) + 1.0
                )
            })
            .collect();
        std::fs::write(
            dir.path().join(format!("landmarks/{name}.pts")),
            format!("version: 1\nn_points: 68\n{{\n{body}}}\n"),
        )
        .expect("pts");
    }
    dir
}

#[test]
fn evaluate_scores_a_labelled_folder() {
    let dir = labelled_folder();
    let config = Config {
        models: trained_models(),
        ..Default::default()
    };
    let result =
        spectrald::evaluate::evaluate(dir.path(), config, false, 0).expect("evaluate runs");
    assert_eq!(result.faces, 4);
    assert_eq!(result.missing, 0);
    assert_eq!(result.per_face.len(), 4);
    assert!(
        result.nme_mean > 0.0 && result.nme_mean < 0.2,
        "NME {}",
        result.nme_mean
    );

    // Random weights land far from the face: the score must show it.
    let config = Config {
        models: random_models(),
        ..Default::default()
    };
    let random =
        spectrald::evaluate::evaluate(dir.path(), config, false, 0).expect("evaluate runs");
    assert!(
        random.nme_mean > 2.0 * result.nme_mean,
        "random {} vs trained {}",
        random.nme_mean,
        result.nme_mean
    );
}

#[test]
fn evaluate_rejects_a_folder_without_labels() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = spectrald::evaluate::evaluate(dir.path(), Config::default(), false, 0)
        .expect_err("no labels");
    assert!(err.to_string().contains("images/ and landmarks/"), "{err}");
}

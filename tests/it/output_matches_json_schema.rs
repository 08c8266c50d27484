//! Every line the daemon emits validates against the shipped JSON Schema, including
//! single-spectrum records and records that carry an error.
use crate::common;

use common::*;

fn validator() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("schema/landmarks-v2.json")).expect("schema file"),
    )
    .expect("schema JSON");
    jsonschema::validator_for(&schema).expect("valid schema")
}

fn assert_all_valid(records: &[serde_json::Value]) {
    let validator = validator();
    for record in records {
        let errors: Vec<String> = validator
            .iter_errors(record)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{record}\n{errors:?}");
    }
}

#[test]
fn output_matches_json_schema() {
    let run = run(
        &replay_config(&fixture_session(), random_models()),
        MemorySink::default(),
    );
    assert_eq!(run.records.len(), 24);
    assert_all_valid(&run.records);
}

#[test]
fn multi_face_and_empty_frames_match_json_schema() {
    // Up to three faces per frame, frames without any; faces cut by the frame edge.
    let run = run(
        &replay_config(
            &repo().join("tests/fixtures/session-group"),
            random_models(),
        ),
        MemorySink::default(),
    );
    assert_eq!(run.records.len(), 14);
    assert!(run.records.iter().any(|r| {
        r["spectra"]["visible"]["faces"]
            .as_array()
            .is_some_and(|f| f.len() == 3)
    }));
    assert!(
        run.records
            .iter()
            .any(|r| r["spectra"]["visible"]["faces"] == serde_json::json!([]))
    );
    assert_all_valid(&run.records);
}

#[test]
fn single_spectrum_and_drop_records_match_json_schema() {
    let dir = copy_session();
    shift_timestamp(dir.path(), "thermal/000002.png", 40_000);
    std::fs::write(dir.path().join("visible/000009.jpg"), b"garbage").expect("corrupt");
    let run = run(
        &replay_config(dir.path(), random_models()),
        MemorySink::default(),
    );
    assert!(run.records.iter().any(|r| r["pair_skew_ms"].is_null()));
    assert!(
        run.records
            .iter()
            .any(|r| r["drops_since_last"]["decode_failed"].as_u64() == Some(1))
    );
    assert_all_valid(&run.records);
}

#[test]
fn schema_rejects_a_record_without_faces_or_with_landmarks_beside_an_error() {
    let models = serde_json::json!({
        "detector": {"name": "d", "sha256": "0".repeat(64)},
        "boundary": {"name": "b", "sha256": "0".repeat(64)},
        "landmark": {"name": "l", "sha256": "0".repeat(64)}
    });
    let record = |visible: serde_json::Value| {
        serde_json::json!({
            "schema": "spectrald.landmarks/v2", "camera": "c", "sequence": 0,
            "spectra": {"visible": visible}, "models": models,
            "latency_ms": {"total": 1.0}, "drops_since_last": {}
        })
    };
    let validator = validator();
    let face = serde_json::json!({
        "track_id": 3, "score": 0.9, "box": {"x": 1.0, "y": 2.0, "w": 30.0, "h": 40.0},
        "landmarks": vec![[1.0, 2.0]; 68]
    });
    let good = record(serde_json::json!({
        "width": 64, "height": 48, "captured_us": 0, "detector": "detector", "faces": [face]
    }));
    assert!(validator.is_valid(&good), "a face with its landmarks");
    let none = record(serde_json::json!({
        "width": 64, "height": 48, "captured_us": 0, "detector": "detector", "faces": []
    }));
    assert!(validator.is_valid(&none), "no face: an empty list");
    let missing = record(serde_json::json!({"width": 64, "height": 48, "captured_us": 0}));
    assert!(
        !validator.is_valid(&missing),
        "the schema must not accept a spectrum without its faces list"
    );
    let short = record(serde_json::json!({
        "width": 64, "height": 48, "captured_us": 0, "detector": "detector",
        "faces": [{"score": 0.9, "box": {"x": 1.0, "y": 2.0, "w": 3.0, "h": 4.0}, "landmarks": [[1.0, 2.0]]}]
    }));
    assert!(!validator.is_valid(&short), "landmarks are 68 points");
    let failed_with_faces = record(serde_json::json!({
        "width": 64, "height": 48, "captured_us": 0, "error": "inference_failed: x", "faces": [face]
    }));
    assert!(
        !validator.is_valid(&failed_with_faces),
        "no landmarks beside an error"
    );
}

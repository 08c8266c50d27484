//! Every line the daemon emits validates against the shipped JSON Schema, including
//! single-spectrum records and records that carry an error.
use crate::common;

use common::*;

fn validator() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("schema/landmarks-v1.json")).expect("schema file"),
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
fn schema_rejects_a_record_without_landmarks_or_error() {
    let bad = serde_json::json!({
        "schema": "spectrald.landmarks/v1", "camera": "c", "sequence": 0,
        "spectra": {"visible": {"width": 1, "height": 1, "captured_us": 0}},
        "models": {"boundary": {"name": "b", "sha256": "0".repeat(64)}, "landmark": {"name": "l", "sha256": "0".repeat(64)}},
        "latency_ms": {"total": 1.0}, "drops_since_last": {}
    });
    assert!(
        !validator().is_valid(&bad),
        "the schema must not accept an empty spectrum"
    );
}

//! Dynamic batching (`models.max_batch`, `models.max_wait_ms`): frames from two cameras go
//! through the trained models in shared batches, and every record is the same as when each
//! frame runs alone.
use crate::common;

use common::*;
use spectrald::config::Config;
use spectrald::source::CameraConfig;

/// Two cameras replaying the bundled session at once, as fast as possible.
fn two_cameras(max_batch: usize, max_wait_ms: u64) -> Config {
    let mut models = trained_models();
    models.max_batch = max_batch;
    models.max_wait_ms = max_wait_ms;
    Config {
        models,
        cameras: ["door", "lobby"]
            .iter()
            .map(|id| CameraConfig::replay(id, fixture_session(), 0.0, false))
            .collect(),
        ..Default::default()
    }
}

/// (camera, sequence, spectrum) → landmarks in source pixels.
fn landmarks(records: &[serde_json::Value]) -> Vec<((String, u64, String), Vec<f64>)> {
    let mut out = Vec::new();
    for r in records {
        for spectrum in ["visible", "thermal"] {
            // The bundled session shows one face per spectrum.
            let points = r["spectra"][spectrum]["faces"][0]["landmarks"]
                .as_array()
                .unwrap_or_else(|| panic!("{spectrum} landmarks in {r}"));
            let flat = points
                .iter()
                .flat_map(|p| p.as_array().expect("[x, y]").iter())
                .map(|v| v.as_f64().expect("number"))
                .collect();
            let key = (
                r["camera"].as_str().expect("camera").to_owned(),
                r["sequence"].as_u64().expect("sequence"),
                spectrum.to_owned(),
            );
            out.push((key, flat));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// `spectrald_inference_batch_size_{sum,count}` of one model from the metrics text.
fn batch_metric(metrics: &str, model: &str, suffix: &str) -> f64 {
    let prefix = format!("spectrald_inference_batch_size_{suffix}{{model=\"{model}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{prefix} in:\n{metrics}"))
}

#[test]
fn batches_across_cameras_give_the_same_landmarks_as_one_frame_at_a_time() {
    let alone = run(&two_cameras(1, 0), MemorySink::default());
    let batched = run(&two_cameras(8, 200), MemorySink::default());
    for run in [&alone, &batched] {
        assert_eq!(run.summary.published, 48, "24 pairs from each camera");
        assert_eq!(run.summary.inference_failed, 0);
    }

    let metrics = spectrald::http::render_metrics(&batched.events).expect("metrics");
    let model = "dmsl-landmark-lite";
    let (images, calls) = (
        batch_metric(&metrics, model, "sum"),
        batch_metric(&metrics, model, "count"),
    );
    assert_eq!(images, 96.0, "every image of both cameras went through");
    assert!(
        calls < 48.0,
        "frames were batched: {images} images in {calls} calls"
    );
    let alone_metrics = spectrald::http::render_metrics(&alone.events).expect("metrics");
    assert_eq!(
        batch_metric(&alone_metrics, model, "count"),
        48.0,
        "max_batch = 1: one call per frame"
    );

    let (a, b) = (landmarks(&alone.records), landmarks(&batched.records));
    assert_eq!(a.len(), b.len());
    let mut worst = 0.0f64;
    for ((key_a, pa), (key_b, pb)) in a.iter().zip(&b) {
        assert_eq!(key_a, key_b);
        for (x, y) in pa.iter().zip(pb) {
            worst = worst.max((x - y).abs());
        }
    }
    // Batched kernels may sum in another order; a thousandth of a pixel is far below noise.
    assert!(worst < 1e-3, "batched landmarks differ by up to {worst} px");
}

//! Term visual signatures (paper, Step 2): the weight rows of the classifier's last linear
//! layer, one per term — the direction of that term's separating hyperplane in the
//! feature space. Read from the ONNX file itself, so any model the offline stage serves
//! has them without a sidecar that could drift from its weights.
//!
//! The walk starts at the graph's output and goes back through shape-only and
//! elementwise nodes (Softmax, Resize, Add of a bias, Reshape, ...) to the first Gemm,
//! MatMul or Conv whose weight is an initializer; its rows must number the terms.
//! Decoding uses tract-onnx's protobuf types (the `tract` feature), the ONNX schema is
//! not worth a second copy.

use std::path::Path;

/// Why signatures could not be read; the message names the file and the way out.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error(
    "term signatures from {path}: {message}; pass --image-weight 0 to rank by the ontology alone"
)]
pub struct SignatureError {
    pub path: String,
    pub message: String,
}

/// One row of weights per term, in the model's output order.
#[cfg(feature = "tract")]
pub fn from_onnx(path: &Path, terms: usize) -> Result<Vec<Vec<f32>>, SignatureError> {
    use std::collections::HashMap;
    use tract_onnx::pb::{NodeProto, TensorProto};
    use tract_onnx::prelude::Framework;

    let err = |message: String| SignatureError {
        path: path.display().to_string(),
        message,
    };
    let proto = tract_onnx::onnx()
        .proto_model_for_path(path)
        .map_err(|e| err(e.to_string()))?;
    let graph = proto
        .graph
        .ok_or_else(|| err("the file has no graph".into()))?;
    let weights: HashMap<&str, &TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let producer: HashMap<&str, &NodeProto> = graph
        .node
        .iter()
        .flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n)))
        .collect();
    let output = graph
        .output
        .first()
        .ok_or_else(|| err("the graph has no output".into()))?;
    let mut name = output.name.as_str();
    // Bounded: a graph is a DAG, but a malformed file must not loop forever.
    for _ in 0..graph.node.len() {
        let node = producer.get(name).ok_or_else(|| {
            err(format!(
                "no node produces {name:?} and no linear layer was found before it"
            ))
        })?;
        let weight = node.input.get(1).and_then(|w| weights.get(w.as_str()));
        match (node.op_type.as_str(), weight) {
            ("Gemm", Some(w)) => {
                let trans_b = node
                    .attribute
                    .iter()
                    .any(|a| a.name == "transB" && a.i != 0);
                let m = matrix(w).map_err(err)?;
                // Gemm computes A·B (or A·Bᵀ): term rows are B's columns unless transposed.
                return check(if trans_b { m } else { transpose(&m) }, terms, &node.name)
                    .map_err(err);
            }
            ("MatMul", Some(w)) => {
                return check(transpose(&matrix(w).map_err(err)?), terms, &node.name).map_err(err);
            }
            ("Conv", Some(w)) => {
                // [terms, channels, kh, kw]: one flattened kernel per output channel.
                return check(matrix(w).map_err(err)?, terms, &node.name).map_err(err);
            }
            _ => {}
        }
        // Follow the data input: the first one that is not a constant.
        name = node
            .input
            .iter()
            .map(String::as_str)
            .find(|i| !i.is_empty() && !weights.contains_key(i))
            .ok_or_else(|| {
                err(format!(
                    "node {:?} ({}) has no data input to follow",
                    node.name, node.op_type
                ))
            })?;
    }
    Err(err(
        "no Gemm, MatMul or Conv with constant weights leads to the output".into(),
    ))
}

#[cfg(not(feature = "tract"))]
pub fn from_onnx(path: &Path, _terms: usize) -> Result<Vec<Vec<f32>>, SignatureError> {
    Err(SignatureError {
        path: path.display().to_string(),
        message: "reading ONNX weights needs the `tract` feature (cargo build --features tract)"
            .into(),
    })
}

/// A float initializer as rows × (product of the other dims).
#[cfg(feature = "tract")]
fn matrix(t: &tract_onnx::pb::TensorProto) -> Result<Vec<Vec<f32>>, String> {
    const FLOAT: i32 = 1;
    if t.data_type != FLOAT {
        return Err(format!(
            "weight {:?} is ONNX type {}, not float32",
            t.name, t.data_type
        ));
    }
    let values: Vec<f32> = if t.raw_data.is_empty() {
        t.float_data.clone()
    } else {
        t.raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    };
    let rows = t.dims.first().copied().unwrap_or(0).max(0) as usize;
    if rows == 0 || values.is_empty() || !values.len().is_multiple_of(rows) {
        return Err(format!(
            "weight {:?} has shape {:?} and {} values (external data is not supported)",
            t.name,
            t.dims,
            values.len()
        ));
    }
    Ok(values
        .chunks(values.len() / rows)
        .map(<[f32]>::to_vec)
        .collect())
}

#[cfg(feature = "tract")]
fn transpose(m: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let cols = m.first().map_or(0, Vec::len);
    (0..cols)
        .map(|c| m.iter().map(|r| r[c]).collect())
        .collect()
}

#[cfg(feature = "tract")]
fn check(rows: Vec<Vec<f32>>, terms: usize, node: &str) -> Result<Vec<Vec<f32>>, String> {
    if rows.len() != terms {
        return Err(format!(
            "the last linear layer ({node:?}) has {} outputs but the manifest lists {terms} classes",
            rows.len()
        ));
    }
    Ok(rows)
}

#[cfg(all(test, feature = "tract"))]
mod tests {
    use super::*;

    fn repo(p: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
    }

    #[test]
    fn the_bundled_classifier_and_segmenter_have_one_row_per_class() {
        let sat = from_onnx(&repo("models/satellite-eurosat-lite0.onnx"), 10).unwrap();
        assert_eq!(sat.len(), 10);
        assert!(sat.iter().all(|r| r.len() == sat[0].len() && r.len() > 100));
        assert_ne!(sat[0], sat[1], "rows are distinct hyperplanes");
        // The segmenter's last layer is a 1×1 convolution before Resize and Softmax.
        let seg = from_onnx(&repo("models/segment-camvid-lite0.onnx"), 11).unwrap();
        assert_eq!(seg.len(), 11);
        let e = from_onnx(&repo("models/satellite-eurosat-lite0.onnx"), 7).unwrap_err();
        assert!(e.message.contains("10 outputs"), "{e}");
        let e = from_onnx(&repo("models/no-such.onnx"), 7).unwrap_err();
        assert!(e.to_string().contains("no-such.onnx"), "{e}");
    }
}

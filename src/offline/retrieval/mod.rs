//! Semantic image retrieval with relevance feedback (Kurtz et al., "Semantic retrieval of
//! radiological images with relevance feedback", `../shared/papers/
//! semantic-retrieval-relevance-feedback.txt`), over the term likelihood vectors the
//! offline models produce (class probabilities, class-area fractions).
//!
//! | module        | what it owns                                                       |
//! |---------------|--------------------------------------------------------------------|
//! | [`ontology`]  | the term hierarchy file, ontological term dissimilarity s_Θ        |
//! | [`terms`]     | image-based dissimilarity s_Γ from term signatures, the combined matrix, relevance-feedback updates |
//! | [`hsbd`]      | the AHC dendrogram over terms and the HSBD distance between vectors |
//! | [`ndcg`]      | NDCG@K with graded relevance                                        |
//!
//! Status: the measures are built and unit-tested; indexing from the store, the
//! `spectrald offline retrieve` commands and the HTTP session are not built yet.
//!
//! The paper calls its term measures "similarities" but every one of them grows with
//! distance (Euclidean distance of signatures, log of path length), the dendrogram merges
//! the smallest values first, and feedback *decreases* the value for terms the user found
//! alike. Here they are named for what they are: dissimilarities.

pub mod evaluate;
pub mod hsbd;
pub mod index;
pub mod ndcg;
pub mod ontology;
pub mod search;
pub mod session;
pub mod signatures;
pub mod terms;
pub mod vectors;

use std::path::{Path, PathBuf};

use crate::infer::Manifest;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RetrievalError {
    #[error("ontology {path}: {message}")]
    Ontology { path: String, message: String },
    #[error("term {0:?} is not in the ontology; add it (with its parent) to the ontology file")]
    UnknownTerm(String),
    #[error(
        "no image of model {0} is indexed; analyse some first (`spectrald offline classify --model NAME INPUTS` or `offline segment`), with the same --store"
    )]
    EmptyIndex(String),
    #[error(
        "{0} is not in the index; give an input as the store names it or its sha256 (≥ 8 hex digits), as `retrieve query` prints them"
    )]
    NotIndexed(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Signatures(#[from] signatures::SignatureError),
    #[error("{what}: expected {expected} values, got {got}")]
    Length {
        what: &'static str,
        expected: usize,
        got: usize,
    },
}

/// Where a model's term hierarchy lives unless given: the file its manifest names
/// (`"ontology"`, relative to the manifest), else `NAME.ontology.toml` beside it.
pub fn default_ontology(manifest: &Manifest) -> PathBuf {
    let file = manifest
        .ontology
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.ontology.toml", manifest.name)));
    manifest.path.parent().unwrap_or(Path::new(".")).join(file)
}

/// The initial retriever of a model: its classes as terms, signatures from its ONNX
/// weights (skipped when `image_weight` is 0), the ontology file.
pub fn retriever_for(
    manifest: &Manifest,
    ontology: Option<&Path>,
    image_weight: f64,
    feedback: terms::Feedback,
) -> Result<search::Retriever, RetrievalError> {
    if manifest.classes.is_empty() {
        return Err(RetrievalError::Invalid(format!(
            "model {} lists no classes in {}; retrieval needs a classify or segment model",
            manifest.name,
            manifest.path.display()
        )));
    }
    let path = ontology.map_or_else(|| default_ontology(manifest), Path::to_path_buf);
    let tree = ontology::Ontology::read(&path)?;
    let signatures = if image_weight > 0.0 {
        Some(signatures::from_onnx(
            &manifest.onnx_path(),
            manifest.classes.len(),
        )?)
    } else {
        None
    };
    search::Retriever::new(
        &manifest.classes,
        &tree,
        signatures.as_deref(),
        image_weight,
        feedback,
    )
    .map_err(|e| match e {
        RetrievalError::UnknownTerm(term) => RetrievalError::Ontology {
            path: path.display().to_string(),
            message: format!(
                "class {term:?} of model {} is not in it; add `{term} = \"PARENT\"` under [parents]",
                manifest.name
            ),
        },
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(extra: &str) -> Manifest {
        let mut m: Manifest = serde_json::from_str(&format!(
            r#"{{"name": "seg-a", "task": "segment", "version": "1", "file": "a.onnx", "sha256": "",
                "input": {{"name": "image", "shape": [-1, 3, 8, 8]}}, "outputs": []{extra}}}"#
        ))
        .expect("manifest json");
        m.path = PathBuf::from("/models/seg-a.json");
        m
    }

    #[test]
    fn the_ontology_is_the_manifests_file_else_one_named_after_the_model() {
        assert_eq!(
            default_ontology(&manifest("")),
            Path::new("/models/seg-a.ontology.toml")
        );
        assert_eq!(
            default_ontology(&manifest(r#", "ontology": "camvid.ontology.toml""#)),
            Path::new("/models/camvid.ontology.toml")
        );
    }
}

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

pub mod hsbd;
pub mod ndcg;
pub mod ontology;
pub mod terms;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RetrievalError {
    #[error("ontology {path}: {message}")]
    Ontology { path: String, message: String },
    #[error("term {0:?} is not in the ontology; add it (with its parent) to the ontology file")]
    UnknownTerm(String),
    #[error("{what}: expected {expected} values, got {got}")]
    Length {
        what: &'static str,
        expected: usize,
        got: usize,
    },
}

//! Ranking an index against a query: the term dissimilarity matrix and its dendrogram
//! (HSBD), relevance-feedback rounds that update them, and the plain vector distances
//! (Euclidean, cosine) the paper's method is compared with.

use serde::{Deserialize, Serialize};

use super::RetrievalError;
use super::hsbd::Dendrogram;
use super::ontology::Ontology;
use super::terms::{self, Feedback};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// The paper's hierarchical semantic-based distance over the term dendrogram.
    Hsbd,
    Euclidean,
    /// 1 − cosine similarity.
    Cosine,
}

impl Metric {
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Hsbd => "hsbd",
            Metric::Euclidean => "euclidean",
            Metric::Cosine => "cosine",
        }
    }

    pub fn parse(text: &str) -> Result<Metric, RetrievalError> {
        match text {
            "hsbd" => Ok(Metric::Hsbd),
            "euclidean" => Ok(Metric::Euclidean),
            "cosine" => Ok(Metric::Cosine),
            other => Err(RetrievalError::Invalid(format!(
                "metric {other:?}: use hsbd, euclidean or cosine"
            ))),
        }
    }
}

/// The term side of retrieval: terms, their feedback categories, the dissimilarity
/// matrix (initially the mix of signatures and ontology, then moved by feedback) and the
/// dendrogram built from it.
#[derive(Debug, Clone)]
pub struct Retriever {
    pub terms: Vec<String>,
    pub categories: Vec<String>,
    matrix: Vec<Vec<f64>>,
    dendrogram: Dendrogram,
    pub feedback: Feedback,
}

impl Retriever {
    /// The initial matrix: `image_weight`·s_Γ(signatures) + (1 − w)·s_Θ(ontology).
    /// Signatures may be absent only when w = 0.
    pub fn new(
        terms: &[String],
        ontology: &Ontology,
        signatures: Option<&[Vec<f32>]>,
        image_weight: f64,
        feedback: Feedback,
    ) -> Result<Retriever, RetrievalError> {
        if !(0.0..=1.0).contains(&image_weight) {
            return Err(RetrievalError::Invalid(format!(
                "image weight {image_weight} must lie in [0, 1]"
            )));
        }
        let semantic = ontology.dissimilarities(terms)?;
        let visual = match signatures {
            Some(rows) if rows.len() == terms.len() => terms::signature_dissimilarities(rows),
            Some(rows) => {
                return Err(RetrievalError::Length {
                    what: "term signatures",
                    expected: terms.len(),
                    got: rows.len(),
                });
            }
            None if image_weight == 0.0 => semantic.clone(),
            None => {
                return Err(RetrievalError::Invalid(
                    "no term signatures for a non-zero image weight".into(),
                ));
            }
        };
        let matrix = terms::combine(&visual, &semantic, image_weight)?;
        let categories = terms
            .iter()
            .map(|t| ontology.category(t))
            .collect::<Result<_, _>>()?;
        Retriever::from_matrix(terms.to_vec(), categories, matrix, feedback)
    }

    /// A retriever from a saved matrix (a feedback session), checked: square, one row per
    /// term, finite values in [0, 1], symmetric, zero diagonal.
    pub fn from_matrix(
        terms: Vec<String>,
        categories: Vec<String>,
        matrix: Vec<Vec<f64>>,
        feedback: Feedback,
    ) -> Result<Retriever, RetrievalError> {
        let k = terms.len();
        if categories.len() != k || matrix.len() != k || matrix.iter().any(|r| r.len() != k) {
            return Err(RetrievalError::Invalid(format!(
                "term matrix must be {k}×{k} with {k} categories"
            )));
        }
        for (i, row) in matrix.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                if !(0.0..=1.0).contains(&v)
                    || (v - matrix[j][i]).abs() > 1e-9
                    || (i == j && v != 0.0)
                {
                    return Err(RetrievalError::Invalid(format!(
                        "term matrix entry ({i}, {j}) = {v}: values must be in [0, 1], symmetric, 0 on the diagonal"
                    )));
                }
            }
        }
        let dendrogram = Dendrogram::build(&matrix);
        Ok(Retriever {
            terms,
            categories,
            matrix,
            dendrogram,
            feedback,
        })
    }

    pub fn matrix(&self) -> &[Vec<f64>] {
        &self.matrix
    }

    pub fn dendrogram(&self) -> &Dendrogram {
        &self.dendrogram
    }

    /// One relevance-feedback round: the penalty update, then a new dendrogram. Returns
    /// how many term pairs moved.
    pub fn learn(&mut self, query: &[f64], relevant: &[&[f64]], irrelevant: &[&[f64]]) -> usize {
        let moved = terms::apply_feedback(
            &mut self.matrix,
            &self.categories,
            query,
            relevant,
            irrelevant,
            self.feedback,
        );
        self.dendrogram = Dendrogram::build(&self.matrix);
        moved
    }

    pub fn distance(&self, metric: Metric, a: &[f64], b: &[f64]) -> f64 {
        match metric {
            Metric::Hsbd => self.dendrogram.distance(a, b),
            Metric::Euclidean => a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y).powi(2))
                .sum::<f64>()
                .sqrt(),
            Metric::Cosine => {
                let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
                let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
                let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
                // An all-zero vector is like nothing: maximally far.
                if na == 0.0 || nb == 0.0 {
                    1.0
                } else {
                    1.0 - dot / (na * nb)
                }
            }
        }
    }

    /// The `k` vectors nearest to `query` by `metric` as (position, distance), nearest
    /// first; ties by position, so a ranking is reproducible. `skip(i)` leaves out a
    /// candidate (the query itself). Fewer than `k` candidates: all of them.
    pub fn rank<'a>(
        &self,
        metric: Metric,
        query: &[f64],
        candidates: impl Iterator<Item = &'a [f64]>,
        k: usize,
        skip: impl Fn(usize) -> bool,
    ) -> Vec<(usize, f64)> {
        let mut scored: Vec<(usize, f64)> = candidates
            .enumerate()
            .filter(|(i, _)| !skip(*i))
            .map(|(i, v)| (i, self.distance(metric, query, v)))
            .collect();
        let order = |a: &(usize, f64), b: &(usize, f64)| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0));
        let k = k.min(scored.len());
        if k == 0 {
            return Vec::new();
        }
        // Partial selection: O(n) to find the k nearest, then sort only those.
        scored.select_nth_unstable_by(k - 1, order);
        scored.truncate(k);
        scored.sort_by(order);
        scored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TREE: &str = "[parents]\nforest = \"green\"\ncrops = \"green\"\nriver = \"blue\"\n";

    fn terms() -> Vec<String> {
        ["forest", "crops", "river"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn ontology_only_ranking_puts_the_sibling_term_before_the_cousin() {
        let o = Ontology::parse(TREE, "t.toml").unwrap();
        let r = Retriever::new(&terms(), &o, None, 0.0, Feedback::default()).unwrap();
        let index: Vec<Vec<f64>> = vec![
            vec![0.0, 0.0, 1.0], // river
            vec![0.0, 1.0, 0.0], // crops
            vec![1.0, 0.0, 0.0], // forest (the query itself)
        ];
        let hits = r.rank(
            Metric::Hsbd,
            &[1.0, 0.0, 0.0],
            index.iter().map(Vec::as_slice),
            5,
            |i| i == 2,
        );
        assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), vec![1, 0]);
        // Euclidean cannot tell the two apart: both √2; ties go by position.
        let hits = r.rank(
            Metric::Euclidean,
            &[1.0, 0.0, 0.0],
            index.iter().map(Vec::as_slice),
            2,
            |_| false,
        );
        assert_eq!(hits[0], (2, 0.0));
        assert!((hits[1].1 - 2f64.sqrt()).abs() < 1e-12 && hits[1].0 == 0);
        assert!(
            r.rank(
                Metric::Cosine,
                &[1.0, 0.0, 0.0],
                index.iter().map(Vec::as_slice),
                0,
                |_| false
            )
            .is_empty()
        );
    }

    #[test]
    fn feedback_that_calls_a_cousin_relevant_moves_it_up() {
        // Both terms under one category so the penalty applies; the ontology initially
        // says crops is nearer forest than river is.
        let tree = "[parents]\nforest = \"green\"\ncrops = \"green\"\ngreen = \"land\"\nriver = \"land\"\n";
        let o = Ontology::parse(tree, "t.toml").unwrap();
        let mut r = Retriever::new(&terms(), &o, None, 0.0, Feedback::default()).unwrap();
        let query = [0.9, 0.05, 0.05];
        let river = [0.05, 0.05, 0.9];
        let crops = [0.05, 0.9, 0.05];
        let before = r.distance(Metric::Hsbd, &query, &river);
        assert!(before > r.distance(Metric::Hsbd, &query, &crops));
        for _ in 0..5 {
            r.learn(&query, &[&river], &[&crops]);
        }
        let after = r.distance(Metric::Hsbd, &query, &river);
        assert!(after < before, "{before} → {after}");
        assert!(
            r.distance(Metric::Hsbd, &query, &river) < r.distance(Metric::Hsbd, &query, &crops)
        );
    }

    #[test]
    fn bad_matrices_and_weights_are_refused() {
        let t = terms();
        let cats = vec!["x".to_string(); 3];
        let asym = vec![
            vec![0.0, 0.2, 0.3],
            vec![0.5, 0.0, 0.1],
            vec![0.3, 0.1, 0.0],
        ];
        assert!(
            Retriever::from_matrix(t.clone(), cats.clone(), asym, Feedback::default()).is_err()
        );
        assert!(
            Retriever::from_matrix(t.clone(), cats, vec![vec![0.0]], Feedback::default()).is_err()
        );
        let o = Ontology::parse(TREE, "t.toml").unwrap();
        assert!(Retriever::new(&t, &o, None, 0.5, Feedback::default()).is_err());
        assert!(Retriever::new(&t, &o, None, 1.5, Feedback::default()).is_err());
    }
}

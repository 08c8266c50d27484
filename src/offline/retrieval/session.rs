//! A relevance-feedback session: the query, the term matrix as feedback has moved it and
//! the marks given so far. Serialisable, so the CLI keeps it in a file between commands
//! and the HTTP service in memory; the same results line comes out of both.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::RetrievalError;
use super::index::{Entry, Index};
use super::search::{Metric, Retriever};
use super::terms::Feedback;
use crate::offline::run::SCHEMA;

/// Session files carry this schema name; others are refused.
pub const SESSION_SCHEMA: &str = "spectrald.retrieval-session/v1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Query {
    pub input: String,
    pub input_sha256: String,
    pub vector: Vec<f64>,
}

/// The marks of one feedback round, by content hash.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Round {
    pub relevant: Vec<String>,
    pub irrelevant: Vec<String>,
    /// Term-pair updates the round made (absent in sessions from before this field).
    #[serde(default)]
    pub moved: Option<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub schema: String,
    pub model: String,
    pub terms: Vec<String>,
    pub categories: Vec<String>,
    pub metric: Metric,
    pub k: usize,
    pub query: Query,
    pub feedback: Feedback,
    /// The term dissimilarity matrix after the rounds so far.
    pub matrix: Vec<Vec<f64>>,
    pub rounds: Vec<Round>,
}

/// The terms of a vector worth showing: likelihood ≥ 0.05, largest first, at most 3.
fn main_terms(terms: &[String], vector: &[f64]) -> Value {
    let mut order: Vec<usize> = (0..vector.len()).filter(|&t| vector[t] >= 0.05).collect();
    order.sort_by(|&a, &b| vector[b].total_cmp(&vector[a]).then(a.cmp(&b)));
    order
        .iter()
        .take(3)
        .map(|&t| (terms[t].clone(), json!((vector[t] * 1e4).round() / 1e4)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

impl Session {
    pub fn new(
        model_id: &str,
        retriever: &Retriever,
        metric: Metric,
        k: usize,
        query: &Entry,
    ) -> Result<Session, RetrievalError> {
        if k == 0 {
            return Err(RetrievalError::Invalid(
                "K (results per query) must be at least 1".into(),
            ));
        }
        Ok(Session {
            schema: SESSION_SCHEMA.into(),
            model: model_id.into(),
            terms: retriever.terms.clone(),
            categories: retriever.categories.clone(),
            metric,
            k,
            query: Query {
                input: query.input.clone(),
                input_sha256: query.sha256.clone(),
                vector: query.vector.clone(),
            },
            feedback: retriever.feedback,
            matrix: retriever.matrix().to_vec(),
            rounds: Vec::new(),
        })
    }

    /// Parses a saved session, refusing other files and tampered matrices.
    pub fn parse(text: &str, path: &str) -> Result<Session, RetrievalError> {
        let bad = |message: String| RetrievalError::Invalid(format!("session {path}: {message}"));
        let session: Session = serde_json::from_str(text).map_err(|e| {
            bad(format!(
                "{e}; start a new one with `spectrald offline retrieve query --session FILE`"
            ))
        })?;
        if session.schema != SESSION_SCHEMA {
            return Err(bad(format!(
                "schema {:?}, expected {SESSION_SCHEMA}",
                session.schema
            )));
        }
        session.retriever().map_err(|e| bad(e.to_string()))?;
        if session.query.vector.len() != session.terms.len() {
            return Err(bad("query vector and terms differ in length".into()));
        }
        Ok(session)
    }

    pub fn retriever(&self) -> Result<Retriever, RetrievalError> {
        Retriever::from_matrix(
            self.terms.clone(),
            self.categories.clone(),
            self.matrix.clone(),
            self.feedback,
        )
    }

    fn check_index(&self, index: &Index) -> Result<(), RetrievalError> {
        if index.model_id != self.model || index.terms != self.terms {
            return Err(RetrievalError::Invalid(format!(
                "the session is for model {} but the index is {}'s",
                self.model, index.model_id
            )));
        }
        index.require_entries()
    }

    /// Marks results relevant/irrelevant (names or sha256 prefixes as `Index::find`
    /// takes them), updates the term matrix: one round.
    pub fn add_feedback(
        &mut self,
        index: &Index,
        relevant: &[String],
        irrelevant: &[String],
    ) -> Result<(), RetrievalError> {
        self.check_index(index)?;
        if self.metric != Metric::Hsbd {
            return Err(RetrievalError::Invalid(format!(
                "feedback moves the term matrix, which only the hsbd metric uses; this session ranks by {}",
                self.metric.as_str()
            )));
        }
        if relevant.is_empty() && irrelevant.is_empty() {
            return Err(RetrievalError::Invalid(
                "mark at least one result relevant or irrelevant".into(),
            ));
        }
        let resolve = |names: &[String]| -> Result<Vec<usize>, RetrievalError> {
            names.iter().map(|n| index.find(n)).collect()
        };
        let (rel, irr) = (resolve(relevant)?, resolve(irrelevant)?);
        if let Some(both) = rel.iter().find(|i| irr.contains(i)) {
            return Err(RetrievalError::Invalid(format!(
                "{} is marked both relevant and irrelevant",
                index.entries[*both].input
            )));
        }
        let vectors = |ids: &[usize]| -> Vec<&[f64]> {
            ids.iter()
                .map(|&i| index.entries[i].vector.as_slice())
                .collect()
        };
        let mut retriever = self.retriever()?;
        let moved = retriever.learn(&self.query.vector, &vectors(&rel), &vectors(&irr));
        self.matrix = retriever.matrix().to_vec();
        let shas = |ids: &[usize]| {
            ids.iter()
                .map(|&i| index.entries[i].sha256.clone())
                .collect()
        };
        self.rounds.push(Round {
            relevant: shas(&rel),
            irrelevant: shas(&irr),
            moved: Some(moved),
        });
        Ok(())
    }

    /// The ranked results as one JSON line (the query itself left out).
    pub fn results(&self, index: &Index) -> Result<Value, RetrievalError> {
        self.check_index(index)?;
        let retriever = self.retriever()?;
        let hits = retriever.rank(
            self.metric,
            &self.query.vector,
            index.entries.iter().map(|e| e.vector.as_slice()),
            self.k,
            |i| index.entries[i].sha256 == self.query.input_sha256,
        );
        let mark = |sha: &str| -> Option<&'static str> {
            self.rounds.iter().find_map(|r| {
                if r.relevant.iter().any(|s| s == sha) {
                    Some("relevant")
                } else if r.irrelevant.iter().any(|s| s == sha) {
                    Some("irrelevant")
                } else {
                    None
                }
            })
        };
        let results: Vec<Value> = hits
            .iter()
            .enumerate()
            .map(|(rank, &(i, distance))| {
                let e = &index.entries[i];
                let mut r = json!({
                    "rank": rank + 1,
                    "input": e.input,
                    "input_sha256": e.sha256,
                    "distance": (distance * 1e6).round() / 1e6,
                    "terms": main_terms(&self.terms, &e.vector),
                });
                if let Some(m) = mark(&e.sha256) {
                    r["marked"] = json!(m);
                }
                r
            })
            .collect();
        let mut line = json!({
            "schema": SCHEMA,
            "task": "retrieve",
            "model": self.model,
            "metric": self.metric,
            "round": self.rounds.len(),
            "query": {
                "input": self.query.input,
                "input_sha256": self.query.input_sha256,
                "terms": main_terms(&self.terms, &self.query.vector),
            },
            "indexed": index.entries.len(),
            "k": self.k,
            "results": results,
        });
        let mut notes = Vec::new();
        if let Some(moved) = self.rounds.last().and_then(|r| r.moved) {
            line["term_pairs_moved"] = json!(moved);
            if moved == 0 {
                // The penalty only relates the query's likely terms to terms of the same
                // category at a comparable likelihood (docs/retrieval.md): peaked vectors
                // often give it nothing to move.
                notes.push(
                    "these marks moved no term similarity, so the ranking is unchanged: the marked images hold no term of the query's categories at a likelihood within the session's margin of the query's (mark images that differ from the query in a related term)".to_string(),
                );
            }
        }
        if hits.len() < self.k {
            notes.push(format!(
                "K = {} but only {} other images are indexed: all are returned",
                self.k,
                hits.len()
            ));
        }
        if !notes.is_empty() {
            line["note"] = json!(notes.join("; "));
        }
        Ok(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offline::retrieval::ontology::Ontology;

    fn setup() -> (Index, Retriever) {
        let terms: Vec<String> = ["forest", "crops", "river"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let o = Ontology::parse(
            "[parents]\nforest = \"green\"\ncrops = \"green\"\ngreen = \"land\"\nriver = \"land\"\n",
            "t",
        )
        .unwrap();
        let r = Retriever::new(&terms, &o, None, 0.0, Feedback::default()).unwrap();
        let entry = |name: &str, sha: &str, v: [f64; 3]| Entry {
            input: name.into(),
            sha256: sha.into(),
            vector: v.to_vec(),
        };
        let index = Index {
            model_id: "m@1".into(),
            terms,
            entries: vec![
                entry("q.png", "00000000aa", [0.9, 0.05, 0.05]),
                entry("river.png", "11111111bb", [0.05, 0.05, 0.9]),
                entry("crops.png", "22222222cc", [0.05, 0.9, 0.05]),
            ],
        };
        (index, r)
    }

    #[test]
    fn a_session_round_trips_through_json_and_feedback_reorders_results() {
        let (index, r) = setup();
        let mut s = Session::new("m@1", &r, Metric::Hsbd, 5, &index.entries[0]).unwrap();
        let first = s.results(&index).unwrap();
        assert_eq!(first["results"][0]["input"], "crops.png");
        assert_eq!(
            first["results"].as_array().unwrap().len(),
            2,
            "query left out"
        );
        assert!(first["note"].as_str().unwrap().contains("only 2"));
        for _ in 0..4 {
            s.add_feedback(&index, &["river.png".into()], &["22222222".into()])
                .unwrap();
        }
        let text = serde_json::to_string(&s).unwrap();
        let s = Session::parse(&text, "s.json").unwrap();
        let after = s.results(&index).unwrap();
        assert_eq!(after["round"], 4);
        assert_eq!(after["results"][0]["input"], "river.png");
        assert_eq!(after["results"][0]["marked"], "relevant");
        assert_eq!(after["results"][1]["marked"], "irrelevant");
    }

    #[test]
    fn bad_feedback_and_tampered_files_are_refused_by_name() {
        let (index, r) = setup();
        let mut s = Session::new("m@1", &r, Metric::Hsbd, 5, &index.entries[0]).unwrap();
        let e = s
            .add_feedback(&index, &["nope.png".into()], &[])
            .unwrap_err();
        assert!(e.to_string().contains("nope.png"), "{e}");
        let e = s
            .add_feedback(&index, &["river.png".into()], &["river.png".into()])
            .unwrap_err();
        assert!(e.to_string().contains("both"), "{e}");
        assert!(s.add_feedback(&index, &[], &[]).is_err());
        let mut value = serde_json::to_value(&s).unwrap();
        value["matrix"][0][1] = json!(7.0);
        let e = Session::parse(&value.to_string(), "s.json").unwrap_err();
        assert!(e.to_string().contains("s.json"), "{e}");
        assert!(Session::parse("{}", "s.json").is_err());
        let mut euclid = Session::new("m@1", &r, Metric::Euclidean, 5, &index.entries[0]).unwrap();
        assert!(
            euclid
                .add_feedback(&index, &["river.png".into()], &[])
                .is_err()
        );
        assert!(Session::new("m@1", &r, Metric::Hsbd, 0, &index.entries[0]).is_err());
    }
}

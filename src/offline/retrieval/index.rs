//! The retrieval index: one term likelihood vector per analysed image, read from the
//! result store. Terms are the model's classes (its manifest lists them); a classifier
//! gives its mean class probabilities, a segmenter its class-area fractions.

use serde_json::Value;

use super::RetrievalError;
use crate::offline::store::{Store, StoreError};

/// An indexed image.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub input: String,
    pub sha256: String,
    pub vector: Vec<f64>,
}

/// Every indexed image of one model, each image (by content) once.
#[derive(Debug, Clone)]
pub struct Index {
    pub model_id: String,
    pub terms: Vec<String>,
    pub entries: Vec<Entry>,
}

/// The term vector in a result line: `probabilities` (classify) or `class_fractions`
/// (segment; classes with no pixel are left out of the line, so 0).
pub fn vector_of(line: &Value, terms: &[String]) -> Option<Vec<f64>> {
    let map = line
        .get("probabilities")
        .or_else(|| line.get("class_fractions"))?
        .as_object()?;
    Some(
        terms
            .iter()
            .map(|t| map.get(t).and_then(Value::as_f64).unwrap_or(0.0))
            .collect(),
    )
}

impl Index {
    /// Brings the store's vectors of `model_id` up to date with its results and loads
    /// them. An image analysed several times (other options) counts once: the latest.
    pub fn load(store: &mut Store, model_id: &str, terms: &[String]) -> Result<Index, StoreError> {
        store.sync_term_vectors(model_id, |line| {
            let value: Value = serde_json::from_str(line).ok()?;
            let v = vector_of(&value, terms)?;
            Some(v.iter().map(|x| *x as f32).collect())
        })?;
        let mut rows = store.term_vectors(model_id)?;
        // Latest first, then keep the first of each content hash.
        rows.reverse();
        let mut seen = std::collections::HashSet::new();
        let mut entries: Vec<Entry> = rows
            .into_iter()
            .filter(|r| r.vector.len() == terms.len() && seen.insert(r.input_sha256.clone()))
            .map(|r| Entry {
                input: r.input,
                sha256: r.input_sha256,
                vector: r.vector.iter().map(|x| f64::from(*x)).collect(),
            })
            .collect();
        entries.reverse();
        Ok(Index {
            model_id: model_id.to_owned(),
            terms: terms.to_vec(),
            entries,
        })
    }

    /// Fails with the way to fill it when nothing is indexed.
    pub fn require_entries(&self) -> Result<(), RetrievalError> {
        if self.entries.is_empty() {
            return Err(RetrievalError::EmptyIndex(self.model_id.clone()));
        }
        Ok(())
    }

    /// An entry by its input name as stored, or by its sha256 (a prefix of ≥ 8 hex digits).
    pub fn find(&self, name: &str) -> Result<usize, RetrievalError> {
        if let Some(i) = self.entries.iter().rposition(|e| e.input == name) {
            return Ok(i);
        }
        let lower = name.to_ascii_lowercase();
        if lower.len() >= 8 && lower.chars().all(|c| c.is_ascii_hexdigit()) {
            let hits: Vec<usize> = (0..self.entries.len())
                .filter(|&i| self.entries[i].sha256.starts_with(&lower))
                .collect();
            if let [one] = hits[..] {
                return Ok(one);
            }
            if hits.len() > 1 {
                return Err(RetrievalError::NotIndexed(format!(
                    "{name} (matches {} images; give more digits)",
                    hits.len()
                )));
            }
        }
        Err(RetrievalError::NotIndexed(name.to_owned()))
    }

    /// The entry with this content hash, if indexed.
    pub fn by_sha(&self, sha256: &str) -> Option<usize> {
        self.entries.iter().position(|e| e.sha256 == sha256)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn terms() -> Vec<String> {
        ["a", "b", "c"].iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn vectors_come_from_probabilities_or_fractions_with_missing_terms_zero() {
        let t = terms();
        let line = json!({"probabilities": {"a": 0.7, "b": 0.2, "c": 0.1}});
        assert_eq!(vector_of(&line, &t), Some(vec![0.7, 0.2, 0.1]));
        let line = json!({"class_fractions": {"c": 1.0}});
        assert_eq!(vector_of(&line, &t), Some(vec![0.0, 0.0, 1.0]));
        assert_eq!(vector_of(&json!({"class": "a"}), &t), None);
    }

    #[test]
    fn the_store_index_follows_replaced_results_and_dedupes_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.sqlite")).unwrap();
        for id in ["m@1", "m@2"] {
            store.register_model_id(id);
        }
        let line = |p: f64| json!({"probabilities": {"a": p, "b": 1.0 - p}}).to_string();
        store
            .insert("m@1", "classify", "x.png", "aa11", "{}", &line(0.9))
            .unwrap();
        store
            .insert("m@1", "classify", "y.png", "bb22", "{}", &line(0.2))
            .unwrap();
        // The same bytes under another name and other options: one entry, the latest.
        store
            .insert(
                "m@1",
                "classify",
                "x-copy.png",
                "aa11",
                "{\"s\":1}",
                &line(0.8),
            )
            .unwrap();
        store
            .insert("m@2", "classify", "z.png", "cc33", "{}", &line(0.5))
            .unwrap();
        let index = Index::load(&mut store, "m@1", &terms()).unwrap();
        assert_eq!(index.entries.len(), 2);
        let x = index.by_sha("aa11").unwrap();
        assert_eq!(index.entries[x].input, "x-copy.png");
        assert!((index.entries[x].vector[0] - 0.8).abs() < 1e-6);
        // A result replaced (--force) replaces its vector.
        store
            .insert("m@1", "classify", "y.png", "bb22", "{}", &line(0.4))
            .unwrap();
        let index = Index::load(&mut store, "m@1", &terms()).unwrap();
        assert_eq!(index.entries.len(), 2);
        let y = index.find("y.png").unwrap();
        assert!((index.entries[y].vector[0] - 0.4).abs() < 1e-6);
        assert_eq!(index.find("bb22").ok(), None, "prefixes need 8 digits");
        assert!(matches!(
            index.find("nope.png"),
            Err(RetrievalError::NotIndexed(_))
        ));
        let empty = Index::load(&mut store, "m@9", &terms()).unwrap();
        assert!(
            empty
                .require_entries()
                .unwrap_err()
                .to_string()
                .contains("offline classify")
        );
    }
}

//! The offline stage's embedded store (SQLite via rusqlite, built in): every result with
//! the model id that produced it, so runs resume where they stopped and later steps
//! (retrieval) can query what was analysed.
//!
//! A result is identified by (model id, input sha256, options): the same bytes under
//! another name are not analysed twice, and a new model version or other options
//! (stride, refinement) make a new result.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use crate::infer::Manifest;

#[derive(Debug, thiserror::Error)]
#[error(
    "result store {path}: {source}; check the path is writable (--store) or delete a corrupt file"
)]
pub struct StoreError {
    pub path: PathBuf,
    pub source: rusqlite::Error,
}

/// The StoreError constructor, as a closure for `map_err` (also where the connection is
/// borrowed mutably by a transaction, so `self.err` cannot be called).
fn failed(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError {
        path: path.to_owned(),
        source,
    }
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS models (
    id TEXT PRIMARY KEY,          -- name@sha256-prefix, as in every output
    name TEXT NOT NULL,
    task TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    classes TEXT NOT NULL,        -- JSON array, output order
    manifest TEXT NOT NULL        -- the whole manifest JSON
);
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY,
    model_id TEXT NOT NULL REFERENCES models(id),
    task TEXT NOT NULL,
    input TEXT NOT NULL,          -- path as given, or upload:NAME
    input_sha256 TEXT NOT NULL,
    options TEXT NOT NULL,        -- JSON of the options that change the result
    result TEXT NOT NULL,         -- the JSON line that was printed
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (model_id, input_sha256, options)
);
CREATE INDEX IF NOT EXISTS results_by_input ON results (input);
CREATE TABLE IF NOT EXISTS term_vectors (
    result_id INTEGER PRIMARY KEY, -- results.id it was read from
    model_id TEXT NOT NULL,
    input TEXT NOT NULL,
    input_sha256 TEXT NOT NULL,
    vector BLOB NOT NULL          -- little-endian f32 per term, in the model's class order
);
CREATE INDEX IF NOT EXISTS term_vectors_by_model ON term_vectors (model_id);
";

/// One row of the retrieval index: an analysed input and its term likelihoods.
#[derive(Debug, Clone, PartialEq)]
pub struct TermVector {
    pub result_id: i64,
    pub input: String,
    pub input_sha256: String,
    pub vector: Vec<f32>,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let err = failed(path);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(parent);
        }
        let conn = Connection::open(path).map_err(&err)?;
        // Several processes (CLI runs, the HTTP service) may share one store.
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(&err)?;
        conn.execute_batch(SCHEMA).map_err(&err)?;
        Ok(Store {
            conn,
            path: path.to_owned(),
        })
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        failed(&self.path)(source)
    }

    pub fn register_model(&self, manifest: &Manifest) -> Result<(), StoreError> {
        let classes = serde_json::to_string(&manifest.classes).unwrap_or_default();
        let whole = std::fs::read_to_string(&manifest.path).unwrap_or_default();
        self.conn
            .execute(
                "INSERT OR IGNORE INTO models (id, name, task, sha256, classes, manifest)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    manifest.id(),
                    manifest.name,
                    manifest.task,
                    manifest.sha256,
                    classes,
                    whole
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// A pipeline without a model file (the lesion pipelines): `sha256` the hash of what
    /// defines it, `description` that definition (its parameters), kept as the manifest.
    pub fn register_pipeline(
        &self,
        id: &str,
        name: &str,
        task: &str,
        sha256: &str,
        description: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO models (id, name, task, sha256, classes, manifest)
                 VALUES (?1, ?2, ?3, ?4, '[]', ?5)",
                params![id, name, task, sha256, description.to_string()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The stored result line, if this input was already analysed this way.
    pub fn find(
        &self,
        model_id: &str,
        input_sha256: &str,
        options: &str,
    ) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT result FROM results WHERE model_id = ?1 AND input_sha256 = ?2 AND options = ?3",
                params![model_id, input_sha256, options],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    pub fn insert(
        &self,
        model_id: &str,
        task: &str,
        input: &str,
        input_sha256: &str,
        options: &str,
        result: &str,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO results (model_id, task, input, input_sha256, options, result)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![model_id, task, input, input_sha256, options, result],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Changes whenever a model's results do (a new or replaced row gets a new id):
    /// (largest id, count), for caches of what was read from them.
    pub fn results_version(&self, model_id: &str) -> Result<(i64, i64), StoreError> {
        self.conn
            .query_row(
                "SELECT COALESCE(MAX(id), 0), COUNT(*) FROM results WHERE model_id = ?1",
                params![model_id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .map_err(|e| self.err(e))
    }

    /// Many results of one task in one transaction: (model id, input, input sha256,
    /// result line), options "{}" (imports, benchmarks: 100 000 rows in seconds where
    /// one transaction per row takes minutes).
    pub fn insert_many(
        &mut self,
        task: &str,
        rows: impl Iterator<Item = (String, String, String, String)>,
    ) -> Result<usize, StoreError> {
        let err = failed(&self.path);
        let tx = self.conn.transaction().map_err(&err)?;
        let mut n = 0;
        {
            let mut insert = tx
                .prepare(
                    "INSERT OR REPLACE INTO results (model_id, task, input, input_sha256, options, result)
                     VALUES (?1, ?2, ?3, ?4, '{}', ?5)",
                )
                .map_err(&err)?;
            for (model_id, input, sha, line) in rows {
                insert
                    .execute(params![model_id, task, input, sha, line])
                    .map_err(&err)?;
                n += 1;
            }
        }
        tx.commit().map_err(&err)?;
        Ok(n)
    }

    /// How many results a model has (tests and the summary line).
    pub fn count(&self, model_id: &str) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM results WHERE model_id = ?1",
                params![model_id],
                |row| row.get::<_, i64>(0),
            )
            .map(|n| n.max(0) as u64)
            .map_err(|e| self.err(e))
    }

    /// Brings a model's term vectors up to date with its results: rows of replaced
    /// results go, new results are read with `vector_of` (None: the line holds no
    /// likelihoods, skipped). Returns how many were added. One transaction, so 100 000
    /// new results take seconds, not minutes.
    pub fn sync_term_vectors(
        &mut self,
        model_id: &str,
        vector_of: impl Fn(&str) -> Option<Vec<f32>>,
    ) -> Result<usize, StoreError> {
        let err = failed(&self.path);
        let tx = self.conn.transaction().map_err(&err)?;
        tx.execute(
            "DELETE FROM term_vectors WHERE model_id = ?1
             AND result_id NOT IN (SELECT id FROM results WHERE model_id = ?1)",
            params![model_id],
        )
        .map_err(&err)?;
        let mut added = 0;
        {
            let mut select = tx
                .prepare(
                    "SELECT id, input, input_sha256, result FROM results WHERE model_id = ?1
                     AND id NOT IN (SELECT result_id FROM term_vectors)",
                )
                .map_err(&err)?;
            let mut insert = tx
                .prepare(
                    "INSERT INTO term_vectors (result_id, model_id, input, input_sha256, vector)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(&err)?;
            let mut rows = select.query(params![model_id]).map_err(&err)?;
            while let Some(row) = rows.next().map_err(&err)? {
                let result: String = row.get(3).map_err(&err)?;
                let Some(vector) = vector_of(&result) else {
                    continue;
                };
                let blob: Vec<u8> = vector.iter().flat_map(|v| v.to_le_bytes()).collect();
                insert
                    .execute(params![
                        row.get::<_, i64>(0).map_err(&err)?,
                        model_id,
                        row.get::<_, String>(1).map_err(&err)?,
                        row.get::<_, String>(2).map_err(&err)?,
                        blob
                    ])
                    .map_err(&err)?;
                added += 1;
            }
        }
        tx.commit().map_err(&err)?;
        Ok(added)
    }

    /// A model's term vectors in result order (oldest first).
    pub fn term_vectors(&self, model_id: &str) -> Result<Vec<TermVector>, StoreError> {
        let mut select = self
            .conn
            .prepare(
                "SELECT result_id, input, input_sha256, vector FROM term_vectors
                 WHERE model_id = ?1 ORDER BY result_id",
            )
            .map_err(|e| self.err(e))?;
        let rows = select
            .query_map(params![model_id], |row| {
                let blob: Vec<u8> = row.get(3)?;
                Ok(TermVector {
                    result_id: row.get(0)?,
                    input: row.get(1)?,
                    input_sha256: row.get(2)?,
                    vector: blob
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect(),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// A bare model row, for tests that insert results by hand.
    #[cfg(test)]
    pub(crate) fn register_model_id(&self, id: &str) {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO models (id, name, task, sha256, classes, manifest)
                 VALUES (?1, ?1, 'classify', '', '[]', '{}')",
                params![id],
            )
            .expect("test model row");
    }
}

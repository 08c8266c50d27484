//! The HTTP side of semantic retrieval in `serve-offline`: a query opens a session held
//! in memory; feedback rounds on it move its term matrix and re-rank.
//!
//! - `POST /api/v1/offline/{model}/retrieve` — body `{"query": NAME-or-SHA256, "k": 10,
//!   "metric": "hsbd", "image_weight": 0.5}` (all but `query` optional); answer: the
//!   results line (as `spectrald offline retrieve query` prints it) with `"session"`.
//!   A new image is first analysed with `POST /api/v1/offline/{model}` and then queried
//!   by the `input_sha256` that answer gives.
//! - `POST /api/v1/offline/retrieve/sessions/{id}/feedback` — body `{"relevant": [...],
//!   "irrelevant": [...]}` (names or sha256 prefixes); answer: the new results line.
//! - `GET  /api/v1/offline/retrieve/sessions/{id}` — the current results line and the
//!   marks so far.
//!
//! Sessions live in memory (the newest `MAX_SESSIONS`; the oldest is dropped first) and
//! end with the process: a client that must survive restarts uses the CLI's session file.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::retrieval::index::Index;
use super::retrieval::search::Metric;
use super::retrieval::session::Session;
use super::retrieval::terms::Feedback;
use super::retrieval::{self, RetrievalError};
use super::store::{Store, StoreError};
use crate::infer::{Manifest, ModelError};

/// `Store::results_version`: (largest result id, count) of a model's results.
type ResultsVersion = (i64, i64);

/// Sessions kept at once; each holds a k×k matrix and its marks (a few kB).
pub const MAX_SESSIONS: usize = 1000;

/// Retrieval state of the service: open sessions and, per model, the index as last
/// loaded with the store version it was loaded at.
pub struct Retrieval {
    models_dir: PathBuf,
    store: PathBuf,
    sessions: Mutex<Sessions>,
    indexes: Mutex<HashMap<String, (ResultsVersion, Arc<Index>)>>,
}

#[derive(Default)]
struct Sessions {
    by_id: HashMap<String, Session>,
    order: VecDeque<String>,
}

#[derive(Debug, thiserror::Error)]
enum ApiError {
    #[error(transparent)]
    Retrieval(#[from] RetrievalError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("body: {0}")]
    Body(String),
    #[error(
        "no retrieval session {0}; sessions end when the service restarts or after {MAX_SESSIONS} newer ones: query again"
    )]
    NoSession(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::Retrieval(RetrievalError::NotIndexed(_)) | ApiError::NoSession(_) => {
                StatusCode::NOT_FOUND
            }
            ApiError::Model(ModelError::Missing { .. }) => StatusCode::NOT_FOUND,
            ApiError::Retrieval(RetrievalError::EmptyIndex(_)) => StatusCode::CONFLICT,
            ApiError::Retrieval(RetrievalError::Invalid(_)) | ApiError::Body(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::Retrieval(_) | ApiError::Model(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, Json(json!({"error": self.to_string()}))).into_response()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    query: String,
    #[serde(default = "default_k")]
    k: usize,
    #[serde(default)]
    metric: Option<String>,
    #[serde(default)]
    image_weight: Option<f64>,
}

fn default_k() -> usize {
    10
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    #[serde(default)]
    relevant: Vec<String>,
    #[serde(default)]
    irrelevant: Vec<String>,
}

impl Retrieval {
    pub fn new(models_dir: PathBuf, store: PathBuf) -> Retrieval {
        Retrieval {
            models_dir,
            store,
            sessions: Mutex::default(),
            indexes: Mutex::default(),
        }
    }

    /// The model's index, reloaded only when its results changed since the last load
    /// (100 000 vectors take a few hundred ms to read; the version query, under one).
    fn index(&self, model_id: &str, terms: &[String]) -> Result<Arc<Index>, ApiError> {
        let mut store = Store::open(&self.store)?;
        let version = store.results_version(model_id)?;
        if let Ok(cache) = self.indexes.lock()
            && let Some((v, index)) = cache.get(model_id)
            && *v == version
            && index.terms == terms
        {
            return Ok(index.clone());
        }
        let index = Arc::new(Index::load(&mut store, model_id, terms)?);
        if let Ok(mut cache) = self.indexes.lock() {
            cache.insert(model_id.to_owned(), (version, index.clone()));
        }
        Ok(index)
    }

    fn open(&self, model: &str, request: QueryRequest) -> Result<Value, ApiError> {
        let manifest = Manifest::read(&self.models_dir.join(format!("{model}.json")))?;
        let metric = Metric::parse(request.metric.as_deref().unwrap_or("hsbd"))?;
        let retriever = retrieval::retriever_for(
            &manifest,
            None,
            request.image_weight.unwrap_or(0.5),
            Feedback::default(),
        )?;
        let index = self.index(&manifest.id(), &manifest.classes)?;
        index.require_entries()?;
        let query = index.find(&request.query)?;
        let session = Session::new(
            &manifest.id(),
            &retriever,
            metric,
            request.k,
            &index.entries[query],
        )?;
        let mut line = session.results(&index)?;
        let id = format!("{:016x}", fastrand::u64(..));
        line["session"] = json!(id);
        if let Ok(mut sessions) = self.sessions.lock() {
            if sessions.order.len() >= MAX_SESSIONS
                && let Some(old) = sessions.order.pop_front()
            {
                sessions.by_id.remove(&old);
            }
            sessions.order.push_back(id.clone());
            sessions.by_id.insert(id, session);
        }
        Ok(line)
    }

    fn session(&self, id: &str) -> Result<Session, ApiError> {
        self.sessions
            .lock()
            .ok()
            .and_then(|s| s.by_id.get(id).cloned())
            .ok_or_else(|| ApiError::NoSession(id.to_owned()))
    }

    fn feedback(&self, id: &str, request: FeedbackRequest) -> Result<Value, ApiError> {
        let mut session = self.session(id)?;
        let index = self.index(&session.model, &session.terms)?;
        session.add_feedback(&index, &request.relevant, &request.irrelevant)?;
        let mut line = session.results(&index)?;
        line["session"] = json!(id);
        if let Ok(mut sessions) = self.sessions.lock()
            && let Some(slot) = sessions.by_id.get_mut(id)
        {
            *slot = session;
        }
        Ok(line)
    }

    fn show(&self, id: &str) -> Result<Value, ApiError> {
        let session = self.session(id)?;
        let index = self.index(&session.model, &session.terms)?;
        let mut line = session.results(&index)?;
        line["session"] = json!(id);
        line["rounds"] = json!(session.rounds);
        Ok(line)
    }
}

/// The JSON body, whatever Content-Type the client sent (curl -d sends a form type).
fn parse<T: serde::de::DeserializeOwned>(body: &[u8], shape: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::Body(format!("expected {shape}: {e}")))
}

/// Runs blocking retrieval work (SQLite, ranking) off the async threads.
async fn blocking(work: impl FnOnce() -> Result<Value, ApiError> + Send + 'static) -> Response {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(line)) => Json(line).into_response(),
        Ok(Err(e)) => e.into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": format!("retrieval panicked: {e}")})),
        )
            .into_response(),
    }
}

pub async fn query(
    State(state): State<Arc<Retrieval>>,
    UrlPath(model): UrlPath<String>,
    body: Bytes,
) -> Response {
    if !super::model::valid_model_name(&model) {
        return ApiError::Model(ModelError::Missing {
            path: PathBuf::from(model),
        })
        .into_response();
    }
    blocking(move || {
        let request = parse(
            &body,
            r#"{"query": NAME-or-SHA256, "k": 10, "metric": "hsbd", "image_weight": 0.5}"#,
        )?;
        state.open(&model, request)
    })
    .await
}

pub async fn feedback(
    State(state): State<Arc<Retrieval>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Response {
    blocking(move || {
        let request = parse(&body, r#"{"relevant": [...], "irrelevant": [...]}"#)?;
        state.feedback(&id, request)
    })
    .await
}

pub async fn show(State(state): State<Arc<Retrieval>>, UrlPath(id): UrlPath<String>) -> Response {
    blocking(move || state.show(&id)).await
}

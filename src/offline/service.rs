//! `spectrald serve-offline`: the offline models over HTTP.
//!
//! - `GET  /api/v1/offline/models` — the offline models in the models folder.
//! - `POST /api/v1/offline/{model}` — body: one image (PNG/JPEG/TIFF); answer: the result
//!   line (`spectrald.offline/v1`), also kept in the store. Query: `stride`, `refine`,
//!   `bands` (comma-separated names), `range` (`lo:hi` for 16-bit), and for segmentation
//!   `scales` (e.g. `1,1.5`) and `flip` over the manifest's test-time plan.
//! - `POST /api/v1/offline/{model}/jobs` — body `{"inputs": [...]}` (files, folders, globs
//!   under `--jobs-root`), optionally with the query's options as fields (`"stride"`,
//!   `"refine"`, `"bands"`, `"range"`, `"scales": [1, 1.5]`, `"flip"`); answer 202 with the
//!   job id. Jobs run one after another.
//! - `GET  /api/v1/offline/jobs/{id}` — progress (total, done, skipped, failures).
//! - `GET  /api/v1/offline/jobs/{id}/results` — the result lines so far (NDJSON).
//! - `POST /api/v1/offline/lesion` — body: one dermoscopic image; answer: the lesion
//!   result line, or with `format=png` the lesion mask; the line is also kept in the store
//!   (pipeline id `lesion-METHOD@params-hash`). Query: `method` (otsu|cluster),
//!   `hair_removal` (true|false), `name`. Parameters from `--config` `[offline.lesion]`.
//! - `POST /api/v1/offline/{model}/retrieve`, `POST /api/v1/offline/retrieve/sessions/{id}/feedback`,
//!   `GET /api/v1/offline/retrieve/sessions/{id}` — semantic retrieval with relevance
//!   feedback ([`super::retrieval_api`]).
//! - `GET  /api/v1/offline/stats` — refused (401) requests, jobs by state.
//! - `GET  /healthz` — no token needed.
//!
//! Same rules as the daemon's API: loopback unless a token is set, the bearer token
//! compared in constant time, body and time limits.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::OfflineError;
use super::lesion::{self, LesionParams, Method};
use super::model::{OfflineModel, valid_model_name};
use super::raster::Scale16;
use super::refine::RefineParams;
use super::retrieval_api::{self, Retrieval};
use super::run::{self, Analyzer, Outcome, Progress, RunOptions};
use super::store::Store;
use crate::infer::{ModelsConfig, TestTime};
use crate::signals::Shutdown;
use crate::web::{self, BearerAuth, Limits, WebError, WebServer};

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub token: Option<String>,
    pub models_dir: PathBuf,
    pub models: ModelsConfig,
    pub store: PathBuf,
    /// Folder jobs may read from (None: no folder jobs).
    pub jobs_root: Option<PathBuf>,
    /// Where folder jobs write their result files (one sub-folder per job).
    pub jobs_out: PathBuf,
    pub max_body_bytes: usize,
    pub request_timeout_ms: u64,
    /// Parameters of the lesion pipelines.
    pub lesion: LesionParams,
}

/// A request head (the upload's headers, not its body) has this long to arrive.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Web(#[from] WebError),
    #[error(
        "--listen {0} is reachable from other machines: set SPECTRALD_HTTP_TOKEN (or --token-file), or listen on 127.0.0.1"
    )]
    NeedsToken(SocketAddr),
    #[error("--jobs-root {path}: {source}")]
    JobsRoot {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the job worker: {0}")]
    Worker(std::io::Error),
}

#[derive(Clone)]
struct AppState {
    options: Arc<ServeOptions>,
    models: Arc<ModelPool>,
    jobs: Arc<Mutex<Vec<Arc<Job>>>>,
    job_queue: crossbeam_channel::Sender<Arc<Job>>,
    unauthorized: Arc<AtomicU64>,
    retrieval: Arc<Retrieval>,
}

impl axum::extract::FromRef<AppState> for Arc<Retrieval> {
    fn from_ref(state: &AppState) -> Arc<Retrieval> {
        state.retrieval.clone()
    }
}

/// Loaded models by name; a request takes one (or loads another) and gives it back, so
/// concurrent requests never share a session and idle ones are reused.
#[derive(Default)]
struct ModelPool {
    idle: Mutex<HashMap<String, Vec<OfflineModel>>>,
}

impl ModelPool {
    fn take(&self, options: &ServeOptions, name: &str) -> Result<OfflineModel, OfflineError> {
        let pooled = self
            .idle
            .lock()
            .ok()
            .and_then(|mut idle| idle.get_mut(name).and_then(Vec::pop));
        match pooled {
            Some(model) => Ok(model),
            None => OfflineModel::load(&options.models_dir, name, &options.models),
        }
    }

    /// `take`, with a request's test-time plan over the manifest's; a plan the model cannot
    /// run is refused and the model goes back to the pool.
    fn take_with_plan(
        &self,
        options: &ServeOptions,
        name: &str,
        plan: &PlanRequest,
    ) -> Result<OfflineModel, OfflineError> {
        let mut model = self.take(options, name)?;
        match plan.apply(&mut model) {
            Ok(()) => Ok(model),
            Err(e) => {
                self.give_back(name, model);
                Err(e)
            }
        }
    }

    fn give_back(&self, name: &str, mut model: OfflineModel) {
        // A request may have overridden the test-time plan; the next one starts from the manifest's.
        model.reset_test_time();
        if let Ok(mut idle) = self.idle.lock() {
            idle.entry(name.to_owned()).or_default().push(model);
        }
    }
}

#[derive(Serialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
enum JobState {
    Queued,
    Running,
    Done,
    Failed,
}

#[derive(Serialize)]
struct JobStatus {
    id: u64,
    model: String,
    state: JobState,
    total: usize,
    done: usize,
    skipped: usize,
    failures: Vec<Value>,
    /// A job-level error (model would not load, output folder not writable).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    out_dir: String,
}

struct Job {
    inputs: Vec<PathBuf>,
    options: RunOptions,
    plan: PlanRequest,
    status: Mutex<JobStatus>,
    lines: Mutex<Vec<String>>,
}

impl Job {
    fn update(&self, f: impl FnOnce(&mut JobStatus)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
    }
}

impl Progress for Job {
    fn start(&self, total: usize) {
        self.update(|s| {
            s.total = total;
            s.state = JobState::Running;
        });
    }

    fn advance(&self, input: &Path, outcome: &Result<Outcome, OfflineError>) {
        self.update(|s| match outcome {
            Ok(Outcome::Done(_)) => s.done += 1,
            Ok(Outcome::Skipped(_)) => s.skipped += 1,
            Err(e) => s
                .failures
                .push(json!({"input": input.display().to_string(), "error": e.to_string()})),
        });
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    web::json_error(status, message)
}

/// Starts the server and serves until `shutdown` is requested; a folder job in progress
/// stops between two inputs.
pub fn serve(options: ServeOptions, shutdown: &Shutdown) -> Result<(), ServeError> {
    if !options.listen.ip().is_loopback() && options.token.is_none() {
        return Err(ServeError::NeedsToken(options.listen));
    }
    let mut options = options;
    if let Some(root) = &options.jobs_root {
        options.jobs_root = Some(root.canonicalize().map_err(|source| ServeError::JobsRoot {
            path: root.clone(),
            source,
        })?);
    }
    let (job_tx, job_rx) = crossbeam_channel::unbounded::<Arc<Job>>();
    let retrieval = Arc::new(Retrieval::new(
        options.models_dir.clone(),
        options.store.clone(),
    ));
    let limits = Limits {
        // serve-offline's uploads are large and its requests slow (a whole scene through
        // a model): a few at once is what the CPU can take anyway.
        max_connections: 64,
        max_body_bytes: options.max_body_bytes,
        request_timeout: Duration::from_millis(options.request_timeout_ms),
        header_timeout: HEADER_TIMEOUT,
    };
    let listen = options.listen;
    let state = AppState {
        retrieval,
        options: Arc::new(options),
        models: Arc::new(ModelPool::default()),
        jobs: Arc::default(),
        job_queue: job_tx,
        unauthorized: Arc::default(),
    };
    let worker_state = state.clone();
    let worker_stop = shutdown.flag();
    let worker = std::thread::Builder::new()
        .name("offline-jobs".into())
        .spawn(move || run_jobs(worker_state, job_rx, worker_stop))
        .map_err(ServeError::Worker)?;
    let server = WebServer::start("offline-http", "--listen", listen, limits, |_| {
        router(state)
    })?;
    tracing::info!(address = %server.addr, "offline API listening");
    shutdown.wait();
    server.stop();
    // The job worker sees the stop between inputs.
    let _ = worker.join();
    Ok(())
}

fn router(state: AppState) -> Router {
    let refused = state.unauthorized.clone();
    let auth = BearerAuth::new(state.options.token.as_deref(), move || {
        refused.fetch_add(1, Ordering::Relaxed);
    });
    let api = Router::new()
        .route("/api/v1/offline/models", get(list_models))
        .route("/api/v1/offline/stats", get(stats))
        .route("/api/v1/offline/lesion", post(lesion_upload))
        .route("/api/v1/offline/{model}", post(analyse_upload))
        .route("/api/v1/offline/{model}/jobs", post(submit_job))
        .route("/api/v1/offline/jobs/{id}", get(job_status))
        .route("/api/v1/offline/jobs/{id}/results", get(job_results))
        .route(
            "/api/v1/offline/{model}/retrieve",
            post(retrieval_api::query),
        )
        .route(
            "/api/v1/offline/retrieve/sessions/{id}",
            get(retrieval_api::show),
        )
        .route(
            "/api/v1/offline/retrieve/sessions/{id}/feedback",
            post(retrieval_api::feedback),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            auth,
            web::require_bearer,
        ));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(api)
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "no such route; see /api/v1/offline/models",
            )
        })
        .with_state(state)
}

/// Counters an operator watches: refused requests and jobs by state.
async fn stats(State(state): State<AppState>) -> Response {
    let mut by_state: HashMap<&'static str, usize> = HashMap::new();
    if let Ok(jobs) = state.jobs.lock() {
        for job in jobs.iter() {
            if let Ok(s) = job.status.lock() {
                let name = match s.state {
                    JobState::Queued => "queued",
                    JobState::Running => "running",
                    JobState::Done => "done",
                    JobState::Failed => "failed",
                };
                *by_state.entry(name).or_default() += 1;
            }
        }
    }
    axum::Json(json!({
        "unauthorized_requests": state.unauthorized.load(Ordering::Relaxed),
        "jobs": by_state,
    }))
    .into_response()
}

async fn list_models(State(state): State<AppState>) -> Response {
    let models: Vec<Value> = crate::infer::list_manifests(&state.options.models_dir)
        .into_iter()
        .filter_map(|(_, m)| m.ok())
        .filter(|m| m.task == "classify" || m.task == "segment")
        .map(|m| {
            json!({"name": m.name, "id": m.id(), "task": m.task, "classes": m.classes,
                   "bands": m.bands, "input": m.input.shape})
        })
        .collect();
    axum::Json(json!({ "models": models })).into_response()
}

#[derive(Deserialize, Default)]
struct AnalyseQuery {
    stride: Option<usize>,
    refine: Option<bool>,
    bands: Option<String>,
    range: Option<String>,
    name: Option<String>,
    scales: Option<String>,
    flip: Option<bool>,
}

/// A request's test-time plan over the model's (`scales=1,1.5`, `flip=true|false`).
struct PlanRequest {
    scales: Option<Vec<f64>>,
    flip: Option<bool>,
}

impl PlanRequest {
    /// Scales outside the range any model accepts are refused here, before a model loads.
    fn new(scales: Option<Vec<f64>>, flip: Option<bool>) -> Result<PlanRequest, String> {
        if let Some(problem) = scales.as_deref().and_then(TestTime::scales_problem) {
            return Err(format!("scales: {problem}"));
        }
        Ok(PlanRequest { scales, flip })
    }

    fn parse(scales: Option<&str>, flip: Option<bool>) -> Result<PlanRequest, String> {
        let scales = match scales {
            Some(text) => Some(
                text.split(',')
                    .map(|k| {
                        k.trim().parse::<f64>().map_err(|_| {
                            format!("scales {text:?}: {k:?} is not a number; give e.g. 1,1.5")
                        })
                    })
                    .collect::<Result<Vec<f64>, String>>()?,
            ),
            None => None,
        };
        PlanRequest::new(scales, flip)
    }

    /// `model` with this plan over its manifest's; the reason when it cannot run it.
    fn apply(&self, model: &mut OfflineModel) -> Result<(), OfflineError> {
        model
            .override_test_time(self.scales.clone(), self.flip)
            .map_err(|problem| OfflineError::Unsupported(format!("scales/flip: {problem}")))
    }
}

fn run_options(q: &AnalyseQuery, out_dir: Option<PathBuf>) -> Result<RunOptions, String> {
    let scale16 = match &q.range {
        Some(r) => Some(parse_range(r)?),
        None => None,
    };
    Ok(RunOptions {
        stride: q.stride.filter(|s| *s > 0),
        batch: 16,
        refine: q.refine.unwrap_or(false).then(RefineParams::default),
        bands: q
            .bands
            .as_ref()
            .map(|b| b.split(',').map(|s| s.trim().to_owned()).collect()),
        scale16,
        out_dir,
        force: false,
    })
}

/// `lo:hi` → a fixed 16-bit range.
pub fn parse_range(text: &str) -> Result<Scale16, String> {
    let (lo, hi) = text
        .split_once(':')
        .ok_or_else(|| format!("range {text:?} is not lo:hi, e.g. 0:10000"))?;
    let parse = |v: &str| {
        v.trim()
            .parse::<f32>()
            .map_err(|_| format!("range {text:?}: {v:?} is not a number"))
    };
    let (lo, hi) = (parse(lo)?, parse(hi)?);
    if hi <= lo {
        return Err(format!("range {text:?}: hi must be above lo"));
    }
    Ok(Scale16::Range(lo, hi))
}

fn status_for(e: &OfflineError) -> StatusCode {
    match e {
        OfflineError::Model(crate::infer::ModelError::Missing { .. }) => StatusCode::NOT_FOUND,
        OfflineError::Model(_) | OfflineError::Store(_) | OfflineError::Output { .. } => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

async fn analyse_upload(
    State(state): State<AppState>,
    UrlPath(model): UrlPath<String>,
    Query(query): Query<AnalyseQuery>,
    body: Bytes,
) -> Response {
    if !valid_model_name(&model) {
        return error(StatusCode::NOT_FOUND, format!("no model named {model:?}"));
    }
    if body.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "send the image as the request body",
        );
    }
    let options = match run_options(&query, None) {
        Ok(o) => o,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let plan = match PlanRequest::parse(query.scales.as_deref(), query.flip) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let upload_name = query.name.clone().unwrap_or_else(|| "upload".into());
    let work = move || -> Result<Value, OfflineError> {
        let loaded = state.models.take_with_plan(&state.options, &model, &plan)?;
        let store = Store::open(&state.options.store)?;
        let mut analyzer = Analyzer::new(loaded, Some(store), options)?;
        let input = format!("upload:{upload_name}");
        let outcome = analyzer.analyse_bytes(&body, Path::new(&upload_name), &input, false);
        state.models.give_back(&model, analyzer.model);
        match outcome? {
            Outcome::Done(line) => Ok(line),
            Outcome::Skipped(mut line) => {
                line["from_store"] = json!(true);
                Ok(line)
            }
        }
    };
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(line)) => axum::Json(line).into_response(),
        Ok(Err(e)) => error(status_for(&e), e.to_string()),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("analysis panicked: {e}"),
        ),
    }
}

#[derive(Deserialize, Default)]
struct LesionQuery {
    method: Option<String>,
    hair_removal: Option<bool>,
    format: Option<String>,
    name: Option<String>,
}

/// One dermoscopic image through a lesion pipeline; JSON line or (`format=png`) the mask.
async fn lesion_upload(
    State(state): State<AppState>,
    Query(query): Query<LesionQuery>,
    body: Bytes,
) -> Response {
    if body.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "send the image as the request body",
        );
    }
    let method = match query.method.as_deref().map(Method::parse) {
        None => Method::Cluster,
        Some(Some(m)) => m,
        Some(None) => return error(StatusCode::BAD_REQUEST, "method: use otsu or cluster"),
    };
    let png = match query.format.as_deref() {
        None | Some("json") => false,
        Some("png") => true,
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("format {other:?}: use json or png"),
            );
        }
    };
    let mut params = state.options.lesion.clone();
    if let Some(hair) = query.hair_removal {
        params.hair_removal = hair;
    }
    let name = format!("upload:{}", query.name.unwrap_or_else(|| "upload".into()));
    let store_path = state.options.store.clone();
    let work = move || -> Result<Response, lesion::LesionError> {
        let started = std::time::Instant::now();
        let input = lesion::read_input(&body, Path::new(&name), false)?;
        let seg = lesion::segment(&input.rgb, &name, method, &params, false)?;
        let sha = crate::infer::sha256_hex(&body);
        let mut line = lesion::result_line(&name, &sha, &input, &seg, method, &params);
        // A store that cannot be written loses the record, not the answer.
        let pipeline = lesion::StoredPipeline::new(method, &params);
        if let Err(e) = Store::open(&store_path).and_then(|store| {
            pipeline.register(&store)?;
            pipeline.insert(&store, &mut line, lesion::Source::Upload)
        }) {
            tracing::warn!("lesion result of {name} not stored: {e}");
        }
        if png {
            let mut bytes = Vec::new();
            seg.mask
                .write_to(
                    &mut std::io::Cursor::new(&mut bytes),
                    image::ImageFormat::Png,
                )
                .map_err(|e| {
                    lesion::LesionError::Raster(super::raster::RasterError::Decode {
                        path: name.clone().into(),
                        message: format!("encoding the mask: {e}"),
                    })
                })?;
            return Ok(([(header::CONTENT_TYPE, "image/png")], bytes).into_response());
        }
        line["ms"] = json!((started.elapsed().as_secs_f64() * 1e4).round() / 10.0);
        Ok(axum::Json(line).into_response())
    };
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("lesion segmentation panicked: {e}"),
        ),
    }
}

#[derive(Deserialize)]
struct JobRequest {
    inputs: Vec<String>,
    #[serde(default)]
    stride: Option<usize>,
    #[serde(default)]
    refine: Option<bool>,
    #[serde(default)]
    bands: Option<String>,
    #[serde(default)]
    range: Option<String>,
    #[serde(default)]
    scales: Option<Vec<f64>>,
    #[serde(default)]
    flip: Option<bool>,
}

static NEXT_JOB: AtomicU64 = AtomicU64::new(1);

async fn submit_job(
    State(state): State<AppState>,
    UrlPath(model): UrlPath<String>,
    body: Bytes,
) -> Response {
    let Some(root) = state.options.jobs_root.clone() else {
        return error(
            StatusCode::NOT_FOUND,
            "folder jobs are off; start serve-offline with --jobs-root DIR",
        );
    };
    if !valid_model_name(&model) {
        return error(StatusCode::NOT_FOUND, format!("no model named {model:?}"));
    }
    let request: JobRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("body is not {{\"inputs\": [...]}}: {e}"),
            );
        }
    };
    // Inputs are relative to the jobs root and must stay inside it (no `..`, no links out).
    let mut resolved = Vec::new();
    for input in &request.inputs {
        if Path::new(input).is_absolute() || input.split(['/', '\\']).any(|part| part == "..") {
            return error(
                StatusCode::FORBIDDEN,
                format!("{input}: give paths relative to the jobs root, without .."),
            );
        }
        resolved.push(root.join(input).display().to_string());
    }
    let inputs = match run::expand_inputs(&resolved) {
        Ok(list) => list,
        Err(e) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                e.to_string().replace(&root.display().to_string(), ""),
            );
        }
    };
    if let Some(outside) = inputs.iter().find(|p| {
        p.canonicalize()
            .map(|c| !c.starts_with(&root))
            .unwrap_or(true)
    }) {
        return error(
            StatusCode::FORBIDDEN,
            format!("{} leads outside the jobs root", outside.display()),
        );
    }
    let id = NEXT_JOB.fetch_add(1, Ordering::Relaxed);
    let out_dir = state.options.jobs_out.join(format!("job-{id}"));
    let query = AnalyseQuery {
        stride: request.stride,
        refine: request.refine,
        bands: request.bands,
        range: request.range,
        ..AnalyseQuery::default()
    };
    let plan = match PlanRequest::new(request.scales, request.flip) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let options = match run_options(&query, Some(out_dir.clone())) {
        Ok(o) => o,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let job = Arc::new(Job {
        inputs,
        options,
        plan,
        status: Mutex::new(JobStatus {
            id,
            model,
            state: JobState::Queued,
            total: 0,
            done: 0,
            skipped: 0,
            failures: vec![],
            error: None,
            out_dir: out_dir.display().to_string(),
        }),
        lines: Mutex::default(),
    });
    if let Ok(mut jobs) = state.jobs.lock() {
        jobs.push(job.clone());
    }
    let _ = state.job_queue.send(job);
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({"job": id, "status": format!("/api/v1/offline/jobs/{id}")})),
    )
        .into_response()
}

fn find_job(state: &AppState, id: u64) -> Option<Arc<Job>> {
    let jobs = state.jobs.lock().ok()?;
    jobs.iter()
        .find(|j| j.status.lock().map(|s| s.id == id).unwrap_or(false))
        .cloned()
}

async fn job_status(State(state): State<AppState>, UrlPath(id): UrlPath<u64>) -> Response {
    match find_job(&state, id) {
        Some(job) => match job.status.lock() {
            Ok(status) => axum::Json(&*status).into_response(),
            Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "job status unavailable"),
        },
        None => error(StatusCode::NOT_FOUND, format!("no job {id}")),
    }
}

async fn job_results(State(state): State<AppState>, UrlPath(id): UrlPath<u64>) -> Response {
    match find_job(&state, id) {
        Some(job) => {
            let body = job
                .lines
                .lock()
                .map(|l| l.join("\n") + "\n")
                .unwrap_or_default();
            ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
        }
        None => error(StatusCode::NOT_FOUND, format!("no job {id}")),
    }
}

fn run_jobs(state: AppState, queue: crossbeam_channel::Receiver<Arc<Job>>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(job) = queue.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        let model_name = job
            .status
            .lock()
            .map(|s| s.model.clone())
            .unwrap_or_default();
        let prepared = state
            .models
            .take_with_plan(&state.options, &model_name, &job.plan)
            .and_then(|model| {
                let store = Store::open(&state.options.store)?;
                Analyzer::new(model, Some(store), job.options.clone())
            });
        let mut analyzer = match prepared {
            Ok(a) => a,
            Err(e) => {
                job.update(|s| {
                    s.state = JobState::Failed;
                    s.error = Some(e.to_string());
                });
                continue;
            }
        };
        let stop_flag = || stop.load(Ordering::Relaxed);
        run::run_all(
            &mut analyzer,
            &job.inputs,
            job.as_ref(),
            &stop_flag,
            |line, _| {
                if let Ok(mut lines) = job.lines.lock() {
                    lines.push(line.to_string());
                }
            },
        );
        state.models.give_back(&model_name, analyzer.model);
        job.update(|s| s.state = JobState::Done);
    }
}

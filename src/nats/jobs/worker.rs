//! `offline worker`: pulls jobs one at a time, analyses each exactly as the local command
//! does (same `Analyzer`, own SQLite store, own output folder), publishes the result, and
//! only then acknowledges the job. While a job runs the worker tells the server it is
//! still working on it, so a slow input is not handed to a second worker; a worker that
//! dies stops saying so and the job is redelivered after the ack wait.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind, consumer::pull, message::PublishMessage};
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;
use tokio::runtime::Runtime;

use super::super::NatsError;
use super::{
    INPUTS_BUCKET, JOBS_STREAM, Job, JobAddress, JobOptions, JobResult, WORKERS_CONSUMER,
    ensure_job_streams, existing_replicas, request_error, results_subject,
};
use crate::infer::ModelsConfig;
use crate::offline::refine::RefineParams;
use crate::offline::run::{Analyzer, Outcome, RunOptions};
use crate::offline::service::parse_range;
use crate::offline::store::Store;
use crate::offline::{OfflineModel, Task};

/// A job given up after this many deliveries (each one a worker that died on it).
const MAX_DELIVER: i64 = 5;
/// A job this worker cannot read is handed back this many times (for a newer worker in a
/// mixed fleet) before it answers with an error; below MAX_DELIVER, so it is answered.
const HAND_BACK_UNREADABLE: i64 = 2;

pub struct WorkerOptions {
    /// This worker's name in the result messages (default: host and process id).
    pub name: String,
    pub models: ModelsConfig,
    /// Where result files go, as `--out` of the local command.
    pub out_dir: PathBuf,
    /// The worker's own result store.
    pub store: PathBuf,
    /// How long a job may go without word from its worker before it is redelivered
    /// (set when the shared consumer is created).
    pub ack_wait: Duration,
    /// Stop after this long without a job (None: run until stopped).
    pub idle_exit: Option<Duration>,
}

#[derive(Debug, Default)]
pub struct WorkerReport {
    pub done: usize,
    pub failed: usize,
}

/// Runs jobs until `stop()` (checked between jobs and at least every second) or the idle
/// limit. `on_job` is told each job's outcome.
pub fn run_worker(
    runtime: &Runtime,
    context: &jetstream::Context,
    options: &WorkerOptions,
    stop: &dyn Fn() -> bool,
    on_job: &dyn Fn(&Job, &JobResult),
) -> Result<WorkerReport, NatsError> {
    let consumer = runtime.block_on(workers_consumer(context, options.ack_wait))?;
    let mut analyzers = Analyzers::new(options);
    let mut report = WorkerReport::default();
    let mut idle_since = Instant::now();
    while !stop() {
        if options
            .idle_exit
            .is_some_and(|idle| idle_since.elapsed() > idle)
        {
            break;
        }
        let Some(message) = runtime.block_on(next_job(&consumer))? else {
            continue;
        };
        idle_since = Instant::now();
        let delivered = message.info().map(|i| i.delivered).unwrap_or(1);
        let job = match serde_json::from_slice::<Job>(&message.payload) {
            Ok(job) => job,
            Err(e) => {
                if refuse_unreadable(runtime, context, &message, &e, delivered, &options.name) {
                    report.failed += 1;
                }
                continue;
            }
        };
        tracing::info!(job = %job.id, input = %job.input, delivered, "working on it");
        let result = {
            // Tell the server every third of the ack wait that the job is still being done.
            let heartbeat = runtime.spawn(keep_alive(message.clone(), options.ack_wait / 3));
            let result = run_job(runtime, context, &mut analyzers, &job, &options.name);
            heartbeat.abort();
            result
        };
        if answer(runtime, context, &message, &job.batch, &result) {
            if result.error.is_some() {
                report.failed += 1;
            } else {
                report.done += 1;
            }
            on_job(&job, &result);
        }
    }
    Ok(report)
}

/// Publishes a job's result, then acknowledges the job; true when the result is out. A
/// result that cannot be published leaves the job unacknowledged: it comes back (to this
/// or another worker).
fn answer(
    runtime: &Runtime,
    context: &jetstream::Context,
    message: &jetstream::Message,
    batch: &str,
    result: &JobResult,
) -> bool {
    match runtime.block_on(publish_result(context, batch, result)) {
        Ok(()) => {
            if let Err(e) = runtime.block_on(message.double_ack()) {
                // The result is out; the redelivery's result is dropped as a duplicate.
                tracing::warn!(job = %result.job, "acknowledging the job failed: {e}");
            }
            true
        }
        Err(e) => {
            tracing::warn!(job = %result.job, "{e}; the job will be redelivered");
            hand_back(runtime, message);
            false
        }
    }
}

/// Not acknowledged, offered again a second from now.
fn hand_back(runtime: &Runtime, message: &jetstream::Message) {
    let _ = runtime.block_on(message.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))));
}

/// A job this worker cannot read. Not a job at all: dropped, never redelivered. A job with
/// something this version does not know (an option from a newer `submit`): handed back so
/// a newer worker may take it, then answered with an error result, so the batch finishes
/// and says why instead of running another analysis or waiting forever. True when answered.
fn refuse_unreadable(
    runtime: &Runtime,
    context: &jetstream::Context,
    message: &jetstream::Message,
    error: &serde_json::Error,
    delivered: i64,
    worker: &str,
) -> bool {
    let Ok(address) = serde_json::from_slice::<JobAddress>(&message.payload) else {
        tracing::error!(subject = %message.subject, "malformed job dropped: {error}");
        let _ = runtime.block_on(message.ack_with(AckKind::Term));
        return false;
    };
    let why = format!(
        "this worker (spectrald {}) cannot run the job: {error}; upgrade the workers to the submitter's version",
        env!("CARGO_PKG_VERSION")
    );
    if delivered <= HAND_BACK_UNREADABLE {
        tracing::warn!(job = %address.id, delivered, "{why}; handed back for another worker");
        hand_back(runtime, message);
        return false;
    }
    tracing::error!(job = %address.id, "{why}");
    let result = JobResult {
        job: address.id,
        index: address.index,
        input: address.input,
        line: None,
        error: Some(why),
        worker: worker.to_owned(),
    };
    answer(runtime, context, message, &address.batch, &result)
}

/// The shared durable consumer (created by the first worker, with its ack wait).
async fn workers_consumer(
    context: &jetstream::Context,
    ack_wait: Duration,
) -> Result<jetstream::consumer::Consumer<pull::Config>, NatsError> {
    let replicas = existing_replicas(context).await.unwrap_or(1);
    ensure_job_streams(context, replicas).await?;
    let stream = context
        .get_stream(JOBS_STREAM)
        .await
        .map_err(|e| request_error(JOBS_STREAM)(e.to_string()))?;
    let mut consumer = stream
        .get_or_create_consumer(
            WORKERS_CONSUMER,
            pull::Config {
                durable_name: Some(WORKERS_CONSUMER.into()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait,
                max_deliver: MAX_DELIVER,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| request_error("workers consumer")(e.to_string()))?;
    if let Ok(info) = consumer.info().await
        && info.config.ack_wait != ack_wait
    {
        tracing::info!(
            "the shared consumer keeps the ack wait of {:?} it was created with",
            info.config.ack_wait
        );
    }
    Ok(consumer)
}

/// The next job, or None after a second without one.
async fn next_job(
    consumer: &jetstream::consumer::Consumer<pull::Config>,
) -> Result<Option<jetstream::Message>, NatsError> {
    let failed = request_error("fetching a job");
    let mut batch = match consumer
        .fetch()
        .max_messages(1)
        .expires(Duration::from_secs(1))
        .messages()
        .await
    {
        Ok(batch) => batch,
        Err(e) => {
            // The server is away: the client reconnects; wait a little rather than spin.
            tracing::debug!("{}", failed(e.to_string()));
            tokio::time::sleep(Duration::from_millis(500)).await;
            return Ok(None);
        }
    };
    match batch.next().await {
        Some(Ok(message)) => Ok(Some(message)),
        Some(Err(e)) => {
            tracing::debug!("{}", failed(e.to_string()));
            Ok(None)
        }
        None => Ok(None),
    }
}

async fn keep_alive(message: jetstream::Message, every: Duration) {
    let every = every.max(Duration::from_millis(200));
    loop {
        tokio::time::sleep(every).await;
        if let Err(e) = message.ack_with(AckKind::Progress).await {
            tracing::debug!("progress ack: {e}");
        }
    }
}

/// Fetches the input and analyses it; every failure becomes the result's error line.
fn run_job(
    runtime: &Runtime,
    context: &jetstream::Context,
    analyzers: &mut Analyzers,
    job: &Job,
    worker: &str,
) -> JobResult {
    let outcome = runtime
        .block_on(fetch_object(context, &job.object))
        .and_then(|bytes| analyzers.analyse(job, &bytes));
    let (line, error) = match outcome {
        Ok(line) => (Some(line), None),
        Err(e) => (None, Some(e)),
    };
    JobResult {
        job: job.id.clone(),
        index: job.index,
        input: job.input.clone(),
        line,
        error,
        worker: worker.to_owned(),
    }
}

async fn fetch_object(context: &jetstream::Context, object: &str) -> Result<Vec<u8>, String> {
    let store = context
        .get_object_store(INPUTS_BUCKET)
        .await
        .map_err(|e| format!("the NATS object store {INPUTS_BUCKET} is not there: {e}"))?;
    let mut reader = store.get(object).await.map_err(|e| {
        format!("its content ({object}) is not in the NATS object store (expired?): {e}")
    })?;
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| format!("reading its content from the NATS object store: {e}"))?;
    Ok(bytes)
}

async fn publish_result(
    context: &jetstream::Context,
    batch: &str,
    result: &JobResult,
) -> Result<(), String> {
    let payload = serde_json::to_vec(result).map_err(|e| e.to_string())?;
    let message = PublishMessage::build()
        .payload(payload.into())
        .message_id(result.job.clone());
    context
        .send_publish(results_subject(batch), message)
        .await
        .map_err(|e| format!("publishing the result failed: {e}"))?
        .await
        .map(|_| ())
        .map_err(|e| format!("the results stream did not take the result: {e}"))
}

/// One `Analyzer` per model and options, loaded when a job first needs it.
struct Analyzers<'a> {
    options: &'a WorkerOptions,
    loaded: HashMap<String, Analyzer>,
}

impl<'a> Analyzers<'a> {
    fn new(options: &'a WorkerOptions) -> Analyzers<'a> {
        Analyzers {
            options,
            loaded: HashMap::new(),
        }
    }

    /// The job's result line, as the local command prints it.
    fn analyse(&mut self, job: &Job, bytes: &[u8]) -> Result<serde_json::Value, String> {
        let key = format!(
            "{}\n{}",
            job.model,
            serde_json::to_string(&job.options).unwrap_or_default()
        );
        if !self.loaded.contains_key(&key) {
            let analyzer = self.load(&job.model, &job.options)?;
            self.loaded.insert(key.clone(), analyzer);
        }
        let analyzer = self
            .loaded
            .get_mut(&key)
            .ok_or_else(|| "analyzer vanished".to_owned())?;
        let path = Path::new(&job.input);
        let tiff = crate::offline::raster::is_tiff(path);
        match analyzer.analyse_bytes(bytes, path, &job.input, tiff) {
            Ok(Outcome::Done(line)) => Ok(line),
            Ok(Outcome::Skipped(mut line)) => {
                line["from_store"] = serde_json::Value::Bool(true);
                Ok(line)
            }
            Err(e) => Err(e.to_string()),
        }
    }

    fn load(&self, model: &str, options: &JobOptions) -> Result<Analyzer, String> {
        let models = &self.options.models;
        let mut loaded = OfflineModel::load(&models.dir, model, models)
            .map_err(|e| format!("this worker cannot load model {model}: {e}"))?;
        loaded
            .override_test_time(options.scales.clone(), options.flip)
            .map_err(|e| format!("scales/flip: {e}"))?;
        let scale16 = options
            .range
            .as_deref()
            .map(parse_range)
            .transpose()
            .map_err(|e| format!("range: {e}"))?;
        let run = RunOptions {
            stride: options.stride,
            batch: options
                .batch
                .unwrap_or(if loaded.task == Task::Classify { 16 } else { 1 }),
            refine: options
                .refine
                .map(|(lambda, sigma, iterations)| RefineParams {
                    lambda,
                    sigma,
                    iterations,
                    ..RefineParams::default()
                }),
            bands: options.bands.clone(),
            scale16,
            out_dir: Some(self.options.out_dir.clone()),
            force: false,
        };
        let store = Store::open(&self.options.store).map_err(|e| e.to_string())?;
        Analyzer::new(loaded, Some(store), run).map_err(|e| e.to_string())
    }
}

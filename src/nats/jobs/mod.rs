//! Distributed offline jobs on JetStream (docs/scaling.md):
//!
//! ```text
//! offline submit ──► object store  spectrald_inputs     (the input files, by content hash)
//!                └─► stream SPECTRALD_JOBS   (work queue: one job per input, explicit ack)
//!                └─► KV spectrald_batches    (batch id → model, count)
//! offline worker ×N ─ pulls a job, fetches its object, analyses it like the local command,
//!                     stores the line in its own SQLite store, publishes it, then acks
//!                └─► stream SPECTRALD_RESULTS (Nats-Msg-Id = job id: one result per job)
//! offline results ── reads a batch's results, prints them in input order
//! ```
//! A worker that dies mid-job never acks: the job comes back after the ack wait to another
//! worker, and its result, published under the same message id, is dropped by the stream's
//! duplicate window if the first worker had published it already.

mod results;
mod submit;
mod worker;

use std::time::Duration;

use async_nats::jetstream;
use serde::{Deserialize, Serialize};

use super::NatsError;
use super::config::Retention;
use super::stream::{StreamWanted, ensure_stream};

pub use results::{BatchResults, ResultsOptions, read_results};
pub use submit::{SubmitOptions, SubmitReport, submit};
pub use worker::{WorkerOptions, WorkerReport, run_worker};

pub const JOBS_STREAM: &str = "SPECTRALD_JOBS";
pub const RESULTS_STREAM: &str = "SPECTRALD_RESULTS";
pub const INPUTS_BUCKET: &str = "spectrald_inputs";
pub const BATCHES_BUCKET: &str = "spectrald_batches";
const JOBS_SUBJECT: &str = "spectrald.jobs";
const RESULTS_SUBJECT: &str = "spectrald.results";
/// The durable pull consumer every worker shares: each job goes to one of them.
const WORKERS_CONSUMER: &str = "workers";
/// Results of a job resent this long after the first are still recognised as duplicates;
/// `offline results` also de-duplicates by job id, for anything older.
const RESULTS_DUPLICATE_WINDOW: Duration = Duration::from_secs(3600);
/// Inputs, jobs and results are kept this long (the object store would grow forever).
const KEEP: Duration = Duration::from_secs(7 * 24 * 3600);

/// What the local command would be told on its command line, carried with each job.
/// Unknown fields are refused: an option from a newer `submit` would change the analysis,
/// and a worker that ignored it would return a different result under the same job id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobOptions {
    pub stride: Option<usize>,
    pub batch: Option<usize>,
    /// Contextual-regularization refinement (segmentation): `[lambda, sigma, iterations]`.
    pub refine: Option<(f32, f32, usize)>,
    pub bands: Option<Vec<String>>,
    /// `lo:hi` for 16-bit inputs, as `--range` takes it.
    pub range: Option<String>,
    /// Segmentation: test-time scales and flip over the manifest's plan (`--scales`,
    /// `--flip`). A worker older than these fields ignores them and uses its manifest; from
    /// the version that refuses unknown options on, a worker never ignores an option.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scales: Option<Vec<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flip: Option<bool>,
}

/// One input of a batch, on the work queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// `BATCH.INDEX`: unique, and the result's message id.
    pub id: String,
    pub batch: String,
    pub index: usize,
    pub model: String,
    /// The input as given to `submit` (what the result line calls it).
    pub input: String,
    /// Its object in the inputs bucket (the content's SHA-256).
    pub object: String,
    pub options: JobOptions,
}

/// Enough of a job to answer it: read when the whole job is not understood.
#[derive(Debug, Deserialize)]
struct JobAddress {
    id: String,
    batch: String,
    index: usize,
    input: String,
}

/// One job's outcome on the results stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    pub job: String,
    pub index: usize,
    pub input: String,
    /// The result line, as the local command prints it (`from_store` when the worker's
    /// store already had it).
    pub line: Option<serde_json::Value>,
    /// One line saying why the input failed.
    pub error: Option<String>,
    /// Which worker did it.
    pub worker: String,
}

/// A batch as `submit` recorded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub id: String,
    pub model: String,
    /// Jobs queued (inputs that failed to upload are not among them).
    pub jobs: usize,
    /// (index, input, one-line reason) per input that could not be queued.
    pub not_queued: Vec<(usize, String, String)>,
    pub submitted_unix: u64,
}

/// A batch id: letters, digits, '-' and '_' (it is a subject token).
pub fn valid_batch_id(id: &str) -> bool {
    super::config::is_token(id)
}

fn jobs_subject(batch: &str) -> String {
    format!("{JOBS_SUBJECT}.{batch}")
}

fn results_subject(batch: &str) -> String {
    format!("{RESULTS_SUBJECT}.{batch}")
}

/// Creates (or checks) both streams, so submit, workers and results may start in any order.
async fn ensure_job_streams(
    context: &jetstream::Context,
    replicas: usize,
) -> Result<(), NatsError> {
    ensure_stream(
        context,
        &StreamWanted {
            name: JOBS_STREAM.into(),
            subjects: vec![format!("{JOBS_SUBJECT}.>")],
            replicas,
            retention: Retention::WorkQueue,
            max_age: KEEP,
            duplicate_window: Duration::from_secs(120),
        },
    )
    .await?;
    ensure_stream(
        context,
        &StreamWanted {
            name: RESULTS_STREAM.into(),
            subjects: vec![format!("{RESULTS_SUBJECT}.>")],
            replicas,
            retention: Retention::Limits,
            max_age: KEEP,
            duplicate_window: RESULTS_DUPLICATE_WINDOW,
        },
    )
    .await
}

/// The replica count of an existing stream, so workers and `results` fit what `submit`
/// created without being told.
async fn existing_replicas(context: &jetstream::Context) -> Option<usize> {
    let mut stream = context.get_stream(JOBS_STREAM).await.ok()?;
    Some(stream.info().await.ok()?.config.num_replicas)
}

fn request_error(what: &str) -> impl Fn(String) -> NatsError + '_ {
    move |message| NatsError::Request {
        what: what.to_owned(),
        message,
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_and_results_round_trip_as_json() {
        let job = Job {
            id: "b1.3".into(),
            batch: "b1".into(),
            index: 3,
            model: "satellite-eurosat-lite0".into(),
            input: "scenes/a.tif".into(),
            object: "ab".repeat(32),
            options: JobOptions {
                stride: Some(32),
                refine: Some((1.0, 0.1, 3)),
                ..Default::default()
            },
        };
        let text = serde_json::to_string(&job).expect("json");
        assert_eq!(serde_json::from_str::<Job>(&text).expect("parse"), job);
        assert_eq!(jobs_subject("b1"), "spectrald.jobs.b1");
        assert!(valid_batch_id("2026-11-26_a") && !valid_batch_id("a.b"));
    }

    #[test]
    fn a_test_time_plan_travels_with_the_job_and_old_jobs_still_parse() {
        let options = JobOptions {
            scales: Some(vec![1.0, 1.5]),
            flip: Some(false),
            ..Default::default()
        };
        let text = serde_json::to_string(&options).expect("json");
        assert!(text.contains(r#""scales":[1.0,1.5]"#), "{text}");
        assert_eq!(
            serde_json::from_str::<JobOptions>(&text).expect("parse"),
            options
        );
        // A job from a submitter that predates the plan fields: the worker's manifest plan.
        let old = r#"{"stride":null,"batch":null,"refine":null,"bands":null,"range":null}"#;
        let parsed: JobOptions = serde_json::from_str(old).expect("old job parses");
        assert_eq!((parsed.scales, parsed.flip), (None, None));
        // An option this version does not know (a newer submitter's) is refused, by name,
        // and the job can still be answered.
        let newer = r#"{"id":"b1.0","batch":"b1","index":0,"model":"m","input":"a.png","object":"ab","options":{"stride":null,"tiles":4}}"#;
        let e = serde_json::from_str::<Job>(newer).expect_err("unknown option refused");
        assert!(e.to_string().contains("unknown field `tiles`"), "{e}");
        let address: JobAddress = serde_json::from_str(newer).expect("address");
        assert_eq!((address.id.as_str(), address.index), ("b1.0", 0));
        // Without a plan the JSON is what older workers were sent (so their analyzer keys match).
        assert!(
            !serde_json::to_string(&JobOptions::default())
                .expect("json")
                .contains("scales")
        );
    }
}

//! `offline submit`: each input into the object store (once per content), one job per
//! input on the work queue, and the batch recorded for `offline results`.

use std::path::{Path, PathBuf};

use async_nats::jetstream::{self, kv, message::PublishMessage, object_store};

use super::super::NatsError;
use super::{
    BATCHES_BUCKET, Batch, INPUTS_BUCKET, Job, JobOptions, KEEP, ensure_job_streams, jobs_subject,
    request_error, unix_now,
};

/// Room kept for the chunk headers and the object's metadata message.
const OVERHEAD: u64 = 64 * 1024;

pub struct SubmitOptions {
    pub model: String,
    pub options: JobOptions,
    pub batch: String,
    /// Replicas of the streams and buckets, when they are created now.
    pub replicas: usize,
    /// The input bucket's size limit, when it is created now (None: no limit of its own).
    pub store_max_bytes: Option<u64>,
}

#[derive(Debug, Default)]
pub struct SubmitReport {
    pub jobs: usize,
    pub uploaded_bytes: u64,
    /// Inputs whose content the store already had (not uploaded again).
    pub reused: usize,
    /// (index, input, one-line reason) per input that was not queued.
    pub failed: Vec<(usize, String, String)>,
}

/// Queues one job per input; an input that cannot be read or stored is reported in the
/// report and the rest go on. `progress` is told after each input.
pub async fn submit(
    context: &jetstream::Context,
    inputs: &[PathBuf],
    options: &SubmitOptions,
    progress: &(dyn Fn(&Path, bool) + Sync),
) -> Result<SubmitReport, NatsError> {
    ensure_job_streams(context, options.replicas).await?;
    let store = inputs_bucket(context, options).await?;
    let mut report = SubmitReport::default();
    for input in inputs {
        let index = report.jobs + report.failed.len();
        let queued = queue_one(context, &store, input, index, options, &mut report).await;
        if let Err(reason) = &queued {
            report
                .failed
                .push((index, input.display().to_string(), reason.clone()));
        }
        progress(input, queued.is_ok());
    }
    let batch = Batch {
        id: options.batch.clone(),
        model: options.model.clone(),
        jobs: report.jobs,
        not_queued: report.failed.clone(),
        submitted_unix: unix_now(),
    };
    record_batch(context, &batch, options.replicas).await?;
    Ok(report)
}

/// Uploads (unless already there) and queues one input; `Err` is the line saying why not.
async fn queue_one(
    context: &jetstream::Context,
    store: &object_store::ObjectStore,
    input: &Path,
    index: usize,
    options: &SubmitOptions,
    report: &mut SubmitReport,
) -> Result<(), String> {
    let bytes = tokio::fs::read(input)
        .await
        .map_err(|e| format!("cannot read it: {e}"))?;
    let object = crate::infer::sha256_hex(&bytes);
    let present = store
        .info(&object)
        .await
        .is_ok_and(|info| info.size == bytes.len());
    if present {
        report.reused += 1;
    } else {
        check_room(context, bytes.len() as u64).await?;
        store
            .put(object.as_str(), &mut bytes.as_slice())
            .await
            .map_err(|e| format!("the NATS object store refused it: {e}"))?;
        report.uploaded_bytes += bytes.len() as u64;
    }
    let job = Job {
        id: format!("{}.{index}", options.batch),
        batch: options.batch.clone(),
        index,
        model: options.model.clone(),
        input: input.display().to_string(),
        object,
        options: options.options.clone(),
    };
    let payload = serde_json::to_vec(&job).map_err(|e| e.to_string())?;
    let message = PublishMessage::build()
        .payload(payload.into())
        .message_id(job.id.clone());
    context
        .send_publish(jobs_subject(&options.batch), message)
        .await
        .map_err(|e| format!("queueing the job failed: {e}"))?
        .await
        .map_err(|e| format!("the jobs stream did not take the job: {e}"))?;
    report.jobs += 1;
    Ok(())
}

/// Refuses an input the server would refuse half-way (the bucket discards new chunks when
/// full, and a half-stored object would hold its space): checked against the bucket's and
/// the account's storage limits before uploading.
async fn check_room(context: &jetstream::Context, size: u64) -> Result<(), String> {
    let need = size + size / 512 + OVERHEAD;
    let mb = |b: u64| format!("{:.1} MB", b as f64 / 1e6);
    if let Ok(mut stream) = context.get_stream(format!("OBJ_{INPUTS_BUCKET}")).await
        && let Ok(info) = stream.info().await
        && info.config.max_bytes > 0
    {
        let left = (info.config.max_bytes as u64).saturating_sub(info.state.bytes);
        if need > left {
            return Err(format!(
                "{} does not fit the NATS object store {INPUTS_BUCKET} ({} left of its {} limit); \
                 wait for old inputs to expire, or raise the bucket's max_bytes",
                mb(size),
                mb(left),
                mb(info.config.max_bytes as u64)
            ));
        }
    }
    if let Ok(account) = context.query_account().await
        && let Some(max) = account.limits.max_storage.filter(|m| *m > 0)
    {
        let left = (max as u64).saturating_sub(account.storage);
        if need > left {
            return Err(format!(
                "{} does not fit the NATS server's JetStream storage ({} left of {}); \
                 raise the server's max_file_store or the account's limit",
                mb(size),
                mb(left),
                mb(max as u64)
            ));
        }
    }
    Ok(())
}

async fn inputs_bucket(
    context: &jetstream::Context,
    options: &SubmitOptions,
) -> Result<object_store::ObjectStore, NatsError> {
    if let Ok(store) = context.get_object_store(INPUTS_BUCKET).await {
        return Ok(store);
    }
    context
        .create_object_store(object_store::Config {
            bucket: INPUTS_BUCKET.into(),
            description: Some("spectrald offline inputs, by SHA-256 of their content".into()),
            max_age: KEEP,
            max_bytes: options.store_max_bytes.map_or(-1, |b| b as i64),
            num_replicas: options.replicas,
            ..Default::default()
        })
        .await
        .map_err(|e| request_error("object store")(e.to_string()))
}

/// The batch's record in the batches bucket (created when missing).
pub(super) async fn batches_bucket(
    context: &jetstream::Context,
    replicas: usize,
) -> Result<kv::Store, NatsError> {
    if let Ok(store) = context.get_key_value(BATCHES_BUCKET).await {
        return Ok(store);
    }
    context
        .create_key_value(kv::Config {
            bucket: BATCHES_BUCKET.into(),
            description: "spectrald offline batches: id → model and job count".into(),
            max_age: KEEP,
            num_replicas: replicas,
            ..Default::default()
        })
        .await
        .map_err(|e| request_error("batches bucket")(e.to_string()))
}

async fn record_batch(
    context: &jetstream::Context,
    batch: &Batch,
    replicas: usize,
) -> Result<(), NatsError> {
    let store = batches_bucket(context, replicas).await?;
    let value = serde_json::to_vec(batch).map_err(|e| request_error("batch")(e.to_string()))?;
    store
        .put(&batch.id, value.into())
        .await
        .map(|_| ())
        .map_err(|e| request_error("batches bucket")(e.to_string()))
}

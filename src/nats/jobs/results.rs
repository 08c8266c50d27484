//! `offline results`: a batch's results from the results stream, one per job (the stream
//! drops resent ones by message id; anything older than its window is dropped here by job
//! id), in input order, so the printout is the local command's.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull};
use futures_util::StreamExt;

use super::super::NatsError;
use super::submit::batches_bucket;
use super::{Batch, JobResult, RESULTS_STREAM, existing_replicas, request_error, results_subject};

pub struct ResultsOptions {
    /// None: the most recently submitted batch.
    pub batch: Option<String>,
    /// Wait until every job has its result (or `stop()`).
    pub follow: bool,
}

#[derive(Debug)]
pub struct BatchResults {
    pub batch: Batch,
    /// One per finished job, in input order.
    pub results: Vec<JobResult>,
}

impl BatchResults {
    /// Jobs without a result yet.
    pub fn unfinished(&self) -> usize {
        self.batch.jobs.saturating_sub(self.results.len())
    }
}

/// Reads a batch's results; `progress(done, total)` after each new one.
pub async fn read_results(
    context: &jetstream::Context,
    options: &ResultsOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<BatchResults, NatsError> {
    let batch = find_batch(context, options, stop).await?;
    let stream = context
        .get_stream(RESULTS_STREAM)
        .await
        .map_err(|e| request_error(RESULTS_STREAM)(e.to_string()))?;
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: results_subject(&batch.id),
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(|e| request_error("results consumer")(e.to_string()))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| request_error("results")(e.to_string()))?;
    let mut found: BTreeMap<usize, JobResult> = BTreeMap::new();
    progress(0, batch.jobs);
    while found.len() < batch.jobs && !stop() {
        match tokio::time::timeout(Duration::from_millis(500), messages.next()).await {
            Ok(Some(Ok(message))) => {
                match serde_json::from_slice::<JobResult>(&message.payload) {
                    Ok(result) => {
                        found.entry(result.index).or_insert(result);
                        progress(found.len(), batch.jobs);
                    }
                    Err(e) => {
                        tracing::warn!(subject = %message.subject, "malformed result skipped: {e}")
                    }
                }
                let caught_up = message.info().map(|i| i.pending == 0).unwrap_or(false);
                if caught_up && !options.follow {
                    break;
                }
            }
            Ok(Some(Err(e))) => tracing::debug!("results: {e}"),
            Ok(None) => break,
            // Nothing new for a while: without --follow that is all there is.
            Err(_) if !options.follow => break,
            Err(_) => {}
        }
    }
    Ok(BatchResults {
        batch,
        results: found.into_values().collect(),
    })
}

/// The named batch (waiting for it with `follow`), or the newest one.
async fn find_batch(
    context: &jetstream::Context,
    options: &ResultsOptions,
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<Batch, NatsError> {
    let replicas = existing_replicas(context).await.unwrap_or(1);
    let store = batches_bucket(context, replicas).await?;
    let failed = request_error("batches bucket");
    loop {
        let found = match &options.batch {
            Some(id) => match store.get(id).await.map_err(|e| failed(e.to_string()))? {
                Some(value) => Some(parse(&value)?),
                None => None,
            },
            None => newest(&store).await?,
        };
        if let Some(batch) = found {
            return Ok(batch);
        }
        if !options.follow || stop() {
            let what = options
                .batch
                .as_deref()
                .map_or("no batch".to_owned(), |id| format!("no batch {id}"));
            return Err(NatsError::Request {
                what: "offline results".into(),
                message: format!(
                    "{what} in the {} bucket (never submitted, or expired after 7 days); \
                     `spectrald offline submit` prints the batch id",
                    super::BATCHES_BUCKET
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn parse(value: &[u8]) -> Result<Batch, NatsError> {
    serde_json::from_slice(value).map_err(|e| request_error("batch record")(e.to_string()))
}

async fn newest(store: &jetstream::kv::Store) -> Result<Option<Batch>, NatsError> {
    let failed = request_error("batches bucket");
    let mut keys = store.keys().await.map_err(|e| failed(e.to_string()))?;
    let mut newest: Option<Batch> = None;
    while let Some(key) = keys.next().await {
        let key = key.map_err(|e| failed(e.to_string()))?;
        if let Some(value) = store.get(&key).await.map_err(|e| failed(e.to_string()))? {
            let batch = parse(&value)?;
            if newest
                .as_ref()
                .is_none_or(|n| batch.submitted_unix >= n.submitted_unix)
            {
                newest = Some(batch);
            }
        }
    }
    Ok(newest)
}

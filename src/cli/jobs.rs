//! `spectrald offline submit | worker | results`: offline jobs spread over many machines
//! through NATS JetStream (src/nats/jobs/, docs/scaling.md).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;

use spectrald::nats::jobs::{
    self, BatchResults, JobOptions, ResultsOptions, SubmitOptions, WorkerOptions,
};
use spectrald::nats::{Credentials, connect};
use spectrald::offline::run;
use spectrald::signals::Shutdown;

use super::common::{
    BackendArgs, EXIT_PARTIAL, RasterArgs, RefineArgs, ScaleArgs, bar, exit_code, write_stdout,
};

#[derive(Args)]
pub struct Server {
    /// The server: nats://host:4222, or several comma-separated (a cluster). Credentials
    /// come from SPECTRALD_NATS_TOKEN, SPECTRALD_NATS_USER + SPECTRALD_NATS_PASSWORD,
    /// SPECTRALD_NATS_NKEY_SEED and SPECTRALD_NATS_CA.
    #[arg(long = "nats", env = "SPECTRALD_NATS_URL", value_name = "URL")]
    url: String,
}

impl Server {
    /// A runtime for the client and a JetStream context on it; an unreachable server is an
    /// error here (a command, unlike the daemon, has nothing else to do).
    fn connect(
        &self,
        who: &str,
    ) -> Result<(tokio::runtime::Runtime, async_nats::jetstream::Context)> {
        let runtime = spectrald::nats::runtime("nats")?;
        let client = runtime.block_on(connect(
            &self.url,
            &Credentials::from_env(),
            who,
            None,
            true,
        ))?;
        let context = {
            let _inside = runtime.enter();
            async_nats::jetstream::new(client)
        };
        Ok((runtime, context))
    }
}

#[derive(Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    server: Server,
    /// Name for this batch (letters, digits, '-', '_'); default: the time and a random tag.
    /// `offline results` takes it.
    #[arg(long)]
    batch_id: Option<String>,
    /// Tile stride for scenes larger than the model input (classification).
    #[arg(long)]
    stride: Option<usize>,
    /// Tiles per inference call (classification; default 16).
    #[arg(long)]
    batch: Option<usize>,
    #[command(flatten)]
    refine: RefineArgs,
    #[command(flatten)]
    raster: RasterArgs,
    #[command(flatten)]
    scales: ScaleArgs,
    /// Replicas of the job streams and buckets when this submit creates them (a cluster).
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// Size limit of the input bucket when this submit creates it (default: none of its own).
    #[arg(long)]
    store_max_mb: Option<u64>,
    /// The model the workers run (its manifest models/NAME.json on every worker).
    model: String,
    /// Files, folders (searched recursively) or glob patterns.
    #[arg(required = true)]
    inputs: Vec<String>,
}

#[derive(Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    server: Server,
    #[command(flatten)]
    backend: BackendArgs,
    /// Folder for the result files (class maps, labels, overlays).
    #[arg(long, default_value = "offline-out")]
    out: PathBuf,
    /// This worker's result store (SQLite); default OUT/results.sqlite.
    #[arg(long)]
    store: Option<PathBuf>,
    /// A job without word from its worker this long goes to another worker (set by the
    /// first worker that creates the shared consumer).
    #[arg(long, default_value_t = 60)]
    ack_wait_s: u64,
    /// Exit after this many seconds without a job (default: run until stopped).
    #[arg(long)]
    idle_exit_s: Option<u64>,
    /// Name in the results (default: host name and process id).
    #[arg(long)]
    name: Option<String>,
}

#[derive(Args)]
pub struct ResultsArgs {
    #[command(flatten)]
    server: Server,
    /// The batch (`offline submit` printed it); default: the newest.
    #[arg(long)]
    batch_id: Option<String>,
    /// Wait until every job of the batch has its result.
    #[arg(long)]
    follow: bool,
}

fn batch_id() -> String {
    // 2026-11-26T12:00:00Z → 20261126T120000Z-3fa2
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let stamp: String = now.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    format!("{stamp}-{:04x}", fastrand::u16(..))
}

pub fn submit(args: SubmitArgs) -> Result<ExitCode> {
    let batch = args.batch_id.clone().unwrap_or_else(batch_id);
    if !jobs::valid_batch_id(&batch) {
        bail!("--batch-id {batch:?}: use letters, digits, '-' and '_' only");
    }
    // Checked here, so a malformed range or scale is not found by every worker, job by job.
    args.raster.scale16()?;
    args.scales.check_range()?;
    if !(1..=5).contains(&args.replicas) {
        bail!(
            "--replicas {}: JetStream keeps 1 to 5 replicas",
            args.replicas
        );
    }
    let inputs = run::expand_inputs(&args.inputs)?;
    let options = SubmitOptions {
        model: args.model.clone(),
        options: JobOptions {
            stride: args.stride,
            batch: args.batch,
            refine: args
                .refine
                .params()
                .map(|p| (p.lambda, p.sigma, p.iterations)),
            bands: args.raster.bands.clone(),
            range: args.raster.range.clone(),
            scales: args.scales.scales.clone(),
            flip: args.scales.flip,
        },
        batch: batch.clone(),
        replicas: args.replicas,
        store_max_bytes: args.store_max_mb.map(|mb| mb * 1_000_000),
    };
    let (runtime, context) = args.server.connect("spectrald offline submit")?;
    let progress = bar(inputs.len(), "inputs");
    let report = runtime.block_on(jobs::submit(
        &context,
        &inputs,
        &options,
        &|input: &Path, ok| {
            if !ok {
                progress.suspend(|| tracing::warn!("not queued: {}", input.display()));
            }
            progress.inc(1);
        },
    ))?;
    progress.finish_and_clear();
    write_stdout(&format!("{batch}\n"))?;
    eprintln!(
        "batch {batch}: {} jobs for {} queued ({:.1} MB uploaded, {} inputs already in the store), {} not queued",
        report.jobs,
        args.model,
        report.uploaded_bytes as f64 / 1e6,
        report.reused,
        report.failed.len()
    );
    for (_, input, reason) in &report.failed {
        eprintln!("not queued: {input}: {reason}");
    }
    eprintln!(
        "results: spectrald offline results --nats {} --batch-id {batch} --follow",
        spectrald::nats::shown_url(&args.server.url)
    );
    Ok(exit_code(report.failed.is_empty()))
}

pub fn worker(args: WorkerArgs) -> Result<ExitCode> {
    let shutdown = Shutdown::on_signals()?;
    let name = args.name.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_else(|_| "worker".into());
        format!("{}-{}", host.trim(), std::process::id())
    });
    let options = WorkerOptions {
        name: name.clone(),
        models: args.backend.models_config(),
        store: args
            .store
            .clone()
            .unwrap_or_else(|| args.out.join("results.sqlite")),
        out_dir: args.out.clone(),
        ack_wait: Duration::from_secs(args.ack_wait_s.max(1)),
        idle_exit: args.idle_exit_s.map(Duration::from_secs),
    };
    let (runtime, context) = args.server.connect(&format!("spectrald worker {name}"))?;
    tracing::info!(worker = %name, server = %spectrald::nats::shown_url(&args.server.url), "worker waiting for jobs");
    let report = jobs::run_worker(
        &runtime,
        &context,
        &options,
        &|| shutdown.requested(),
        &|job, result| match &result.error {
            None => tracing::info!(job = %job.id, input = %job.input, "done"),
            Some(e) => tracing::warn!(job = %job.id, input = %job.input, "failed: {e}"),
        },
    )?;
    eprintln!(
        "worker {name}: {} jobs done, {} failed",
        report.done, report.failed
    );
    Ok(ExitCode::SUCCESS)
}

pub fn results(args: ResultsArgs) -> Result<ExitCode> {
    let shutdown = Shutdown::on_signals()?;
    let (runtime, context) = args.server.connect("spectrald offline results")?;
    let progress = bar(0, "results");
    if !args.follow {
        progress.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let found = runtime.block_on(jobs::read_results(
        &context,
        &ResultsOptions {
            batch: args.batch_id.clone(),
            follow: args.follow,
        },
        &|done, total| {
            progress.set_length(total as u64);
            progress.set_position(done as u64);
        },
        &|| shutdown.requested(),
    ))?;
    progress.finish_and_clear();
    print_results(&found)
}

/// Prints as the local command does: result lines on stdout in input order, one line per
/// failed input on stderr, a summary, and its exit codes.
fn print_results(found: &BatchResults) -> Result<ExitCode> {
    let mut out = String::new();
    let mut failed: Vec<(usize, &str, &str)> = Vec::new();
    for r in &found.results {
        match (&r.line, &r.error) {
            (Some(line), _) => out += &format!("{line}\n"),
            (None, error) => {
                failed.push((r.index, &r.input, error.as_deref().unwrap_or("no result")))
            }
        }
    }
    for (index, input, reason) in &found.batch.not_queued {
        failed.push((*index, input, reason));
    }
    failed.sort_by_key(|f| f.0);
    write_stdout(&out)?;
    let batch = &found.batch;
    eprintln!(
        "batch {} ({}): {} results, {} failed, {} not finished",
        batch.id,
        batch.model,
        found.results.len() - failed.len() + batch.not_queued.len(),
        failed.len(),
        found.unfinished()
    );
    for (_, input, reason) in &failed {
        eprintln!("failed: {input}: {reason}");
    }
    if found.unfinished() > 0 {
        eprintln!("not finished yet; --follow waits for them");
        return Ok(ExitCode::from(EXIT_PARTIAL));
    }
    Ok(exit_code(failed.is_empty()))
}

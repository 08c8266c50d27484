//! `spectrald offline …` and `spectrald serve-offline`: the command-line side of the
//! offline stage (src/offline/).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::ProgressBar;

use spectrald::config::Config;
use spectrald::http::HTTP_TOKEN_ENV;
use spectrald::offline::evaluate::{self, Report};
use spectrald::offline::lesion::LesionParams;
use spectrald::offline::refine::RefineParams;
use spectrald::offline::run::{self, Analyzer, Outcome, Progress, RunOptions};
use spectrald::offline::segment;
use spectrald::offline::service::{self, ServeOptions};
use spectrald::offline::store::Store;
use spectrald::offline::{OfflineError, OfflineModel, Task};
use spectrald::signals::Shutdown;

use super::common::{BackendArgs, EXIT_PARTIAL, RasterArgs, RefineArgs, ScaleArgs, bar, exit_code};

#[derive(Subcommand)]
pub enum OfflineCommand {
    /// Classify images or tile GeoTIFF scenes into a class map (satellite models).
    Classify {
        #[command(flatten)]
        common: Common,
        /// Tile stride in pixels for scenes larger than the model input (default: the
        /// input size, i.e. tiles side by side).
        #[arg(long)]
        stride: Option<usize>,
        /// Tiles per inference call.
        #[arg(long, default_value_t = 16)]
        batch: usize,
        /// Files, folders (searched recursively) or glob patterns.
        #[arg(required = true)]
        inputs: Vec<String>,
    },
    /// Segment images into class label maps and colour overlays.
    Segment {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        refine: RefineArgs,
        #[command(flatten)]
        scales: ScaleArgs,
        /// Files, folders (searched recursively) or glob patterns.
        #[arg(required = true)]
        inputs: Vec<String>,
    },
    /// Score a model on a labelled folder: metrics table, confusion matrix CSV and PNG.
    Evaluate {
        #[arg(long, value_enum)]
        task: TaskArg,
        #[arg(long)]
        model: String,
        #[command(flatten)]
        backend: BackendArgs,
        /// Only the items this CSV lists (column `file` or `image`), e.g. a model's held-out split.
        #[arg(long)]
        split: Option<PathBuf>,
        /// Also score the contextual-regularization refinement of the same network outputs.
        #[command(flatten)]
        refine: RefineArgs,
        #[command(flatten)]
        scales: ScaleArgs,
        /// Folder for confusion.csv, confusion.png and metrics.json.
        #[arg(long, default_value = "offline-out/evaluate")]
        out: PathBuf,
        /// The labelled folder (docs/offline.md for the layouts).
        dataset: PathBuf,
    },
    /// Dermoscopic lesion segmentation: DullRazor hair removal, Otsu or colour clustering.
    Lesion {
        #[command(subcommand)]
        command: super::lesion::LesionCommand,
    },
    /// Semantic image retrieval over analysed images, with relevance feedback.
    Retrieve {
        #[command(subcommand)]
        command: super::retrieve::RetrieveCommand,
    },
    /// Queue classify/segment jobs on NATS JetStream for any number of workers; prints the
    /// batch id (docs/scaling.md).
    Submit(super::jobs::SubmitArgs),
    /// Run queued jobs: pull, analyse as the local command does, publish the result, ack.
    Worker(super::jobs::WorkerArgs),
    /// Print a batch's results in input order, as the local command would.
    Results(super::jobs::ResultsArgs),
}

#[derive(Clone, Copy, ValueEnum)]
pub enum TaskArg {
    Classify,
    Segment,
}

#[derive(Args)]
pub struct Common {
    /// Model name (its manifest models/NAME.json); `spectrald models` lists them.
    #[arg(long)]
    model: String,
    #[command(flatten)]
    backend: BackendArgs,
    /// Folder for the result files (class maps, labels, overlays).
    #[arg(long, default_value = "offline-out")]
    out: PathBuf,
    /// Result store (SQLite); default OUT/results.sqlite. Inputs already in it are skipped.
    #[arg(long)]
    store: Option<PathBuf>,
    /// Analyse every input again, even those the store has.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    raster: RasterArgs,
}

#[derive(Args)]
pub struct ServeArgs {
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: std::net::SocketAddr,
    #[command(flatten)]
    backend: BackendArgs,
    #[arg(long, default_value = "offline-out/results.sqlite")]
    store: PathBuf,
    /// Folder that folder jobs may read (inputs are given relative to it); no jobs without it.
    #[arg(long)]
    jobs_root: Option<PathBuf>,
    /// Where folder jobs write their files (one job-N folder each).
    #[arg(long, default_value = "offline-out/jobs")]
    jobs_out: PathBuf,
    /// Largest upload accepted.
    #[arg(long, default_value_t = 64)]
    max_upload_mb: usize,
    /// A file holding the bearer token (else SPECTRALD_HTTP_TOKEN; required off loopback).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// A config file whose [offline.lesion] section sets the lesion parameters.
    #[arg(long)]
    config: Option<PathBuf>,
}

fn load_model(backend: &BackendArgs, name: &str, want: Task) -> Result<OfflineModel> {
    let config = backend.models_config();
    let model = OfflineModel::load(&config.dir, name, &config)?;
    if model.task != want {
        bail!(
            "model {name} is a {} model; use `spectrald offline {}`",
            model.task.as_str(),
            model.task.as_str()
        );
    }
    Ok(model)
}

struct BarProgress(ProgressBar);

impl Progress for BarProgress {
    fn start(&self, total: usize) {
        self.0.set_length(total as u64);
    }

    fn advance(&self, input: &Path, outcome: &Result<Outcome, OfflineError>) {
        if let Err(e) = outcome {
            self.0
                .suspend(|| tracing::warn!("skipped {}: {e}", input.display()));
        }
        self.0.inc(1);
    }
}

pub fn run(command: OfflineCommand) -> Result<ExitCode> {
    match command {
        OfflineCommand::Lesion { command } => super::lesion::run(command),
        OfflineCommand::Retrieve { command } => super::retrieve::run(command),
        OfflineCommand::Submit(args) => super::jobs::submit(args),
        OfflineCommand::Worker(args) => super::jobs::worker(args),
        OfflineCommand::Results(args) => super::jobs::results(args),
        OfflineCommand::Classify {
            common,
            stride,
            batch,
            inputs,
        } => {
            let model = load_model(&common.backend, &common.model, Task::Classify)?;
            analyse(common, model, stride, batch, None, &inputs)
        }
        OfflineCommand::Segment {
            common,
            refine,
            scales,
            inputs,
        } => {
            let mut model = load_model(&common.backend, &common.model, Task::Segment)?;
            scales.apply(&mut model)?;
            analyse(common, model, None, 1, refine.params(), &inputs)
        }
        OfflineCommand::Evaluate {
            task,
            model,
            backend,
            split,
            refine,
            scales,
            out,
            dataset,
        } => {
            let task = match task {
                TaskArg::Classify => Task::Classify,
                TaskArg::Segment => Task::Segment,
            };
            let mut model = load_model(&backend, &model, task)?;
            scales.apply(&mut model)?;
            evaluate_command(model, split.as_deref(), refine.params(), &out, &dataset)
        }
    }
}

fn analyse(
    common: Common,
    model: OfflineModel,
    stride: Option<usize>,
    batch: usize,
    refine: Option<RefineParams>,
    inputs: &[String],
) -> Result<ExitCode> {
    let shutdown = Shutdown::on_signals()?;
    let inputs = run::expand_inputs(inputs)?;
    let scale16 = common.raster.scale16()?;
    let store_path = common
        .store
        .clone()
        .unwrap_or_else(|| common.out.join("results.sqlite"));
    let store = Store::open(&store_path)?;
    let options = RunOptions {
        stride,
        batch,
        refine,
        bands: common.raster.bands.clone(),
        scale16,
        out_dir: Some(common.out.clone()),
        force: common.force,
    };
    let mut analyzer = Analyzer::new(model, Some(store), options)?;
    let progress = BarProgress(bar(inputs.len(), "images"));
    let stdout = std::io::stdout();
    let mut write_error = None;
    let summary = run::run_all(
        &mut analyzer,
        &inputs,
        &progress,
        &|| shutdown.requested(),
        |line, stored| {
            let mut line = line.clone();
            if stored {
                line["from_store"] = serde_json::Value::Bool(true);
            }
            if let Err(e) = writeln!(stdout.lock(), "{line}") {
                write_error.get_or_insert(e);
            }
        },
    );
    progress.0.finish_and_clear();
    if let Some(e) = write_error {
        return Err(e).context("writing results to stdout");
    }
    eprintln!(
        "{}: {} analysed, {} already in {} (skipped), {} failed; files in {}",
        analyzer.model_id(),
        summary.done,
        summary.skipped,
        store_path.display(),
        summary.failed.len(),
        common.out.display()
    );
    for (input, error) in &summary.failed {
        eprintln!("failed: {input}: {error}");
    }
    if shutdown.requested() {
        eprintln!("stopped early; run the same command again to go on where it stopped");
        return Ok(ExitCode::from(EXIT_PARTIAL));
    }
    Ok(exit_code(summary.failed.is_empty()))
}

fn evaluate_command(
    mut model: OfflineModel,
    split: Option<&Path>,
    refine: Option<RefineParams>,
    out: &Path,
    dataset: &Path,
) -> Result<ExitCode> {
    let items = evaluate::load_items(dataset, model.task, split)?;
    let progress = bar(items.len(), "items");
    let report = evaluate::evaluate(&mut model, &items, refine.as_ref(), &|| progress.inc(1))?;
    progress.finish_and_clear();
    write_report(&report, &model, out)?;
    print!("{}", evaluate::table(&report));
    std::io::stdout().flush().context("writing to stdout")?;
    eprintln!(
        "wrote {}/{{confusion.csv,confusion.png,metrics.json}}",
        out.display()
    );
    Ok(exit_code(report.failed.is_empty()))
}

fn write_report(report: &Report, model: &OfflineModel, out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let palette = segment::palette(&model.manifest().colors, report.classes.len());
    let mut matrices = vec![("confusion", &report.confusion)];
    if let Some(refined) = &report.confusion_refined {
        matrices.push(("confusion-refined", refined));
    }
    for (name, matrix) in matrices {
        let csv = out.join(format!("{name}.csv"));
        matrix
            .write_csv(&csv, &report.classes)
            .with_context(|| format!("writing {}", csv.display()))?;
        let png = out.join(format!("{name}.png"));
        matrix
            .render_png(&palette)
            .save(&png)
            .with_context(|| format!("writing {}", png.display()))?;
    }
    let json = out.join("metrics.json");
    std::fs::write(&json, serde_json::to_string_pretty(report)? + "\n")
        .with_context(|| format!("writing {}", json.display()))?;
    Ok(())
}

pub fn serve(args: ServeArgs) -> Result<ExitCode> {
    let token = match &args.token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("--token-file {}", path.display()))?
                .trim()
                .to_owned(),
        ),
        None => std::env::var(HTTP_TOKEN_ENV).ok(),
    }
    .filter(|t| !t.is_empty());
    let options = ServeOptions {
        listen: args.listen,
        token,
        models_dir: args.backend.models_dir.clone(),
        models: args.backend.models_config(),
        store: args.store,
        jobs_root: args.jobs_root,
        jobs_out: args.jobs_out,
        max_body_bytes: args.max_upload_mb.max(1) * 1024 * 1024,
        request_timeout_ms: 120_000,
        lesion: match &args.config {
            Some(path) => Config::load_offline(path)?.lesion,
            None => LesionParams::default(),
        },
    };
    let shutdown = Shutdown::on_signals()?;
    service::serve(options, &shutdown)?;
    Ok(ExitCode::SUCCESS)
}

//! `spectrald offline retrieve index|query|feedback|evaluate|evaluate-vectors`: semantic retrieval with
//! relevance feedback (src/offline/retrieval/) from the command line. Library errors
//! become one line here.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::json;

use spectrald::infer::Manifest;
use spectrald::offline::evaluate as dataset;
use spectrald::offline::retrieval::evaluate::{self, Labelled, Report};
use spectrald::offline::retrieval::index::{Index, vector_of};
use spectrald::offline::retrieval::ontology::Ontology;
use spectrald::offline::retrieval::search::{Metric, Retriever};
use spectrald::offline::retrieval::session::Session;
use spectrald::offline::retrieval::terms::Feedback;
use spectrald::offline::retrieval::{self, default_ontology};
use spectrald::offline::run::{Analyzer, Outcome, RunOptions};
use spectrald::offline::store::Store;
use spectrald::offline::{OfflineModel, Task};

use super::common::{BackendArgs, bar, exit_code};

#[derive(Subcommand)]
pub enum RetrieveCommand {
    /// Bring the retrieval index up to date with the store and say what it holds.
    Index {
        #[command(flatten)]
        target: Target,
    },
    /// Rank the indexed images by likeness to a query image (an indexed name, a sha256
    /// prefix, or an image file, analysed first if new). Starts a feedback session.
    Query {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        terms: TermArgs,
        /// Results to return.
        #[arg(short, long, default_value_t = 10)]
        k: usize,
        /// hsbd (the paper's, feedback-aware), euclidean or cosine.
        #[arg(long, default_value = "hsbd")]
        metric: String,
        /// Write the session here for `retrieve feedback`.
        #[arg(long)]
        session: Option<PathBuf>,
        query: String,
    },
    /// One relevance-feedback round on a saved session: mark results, get the new ranking.
    Feedback {
        /// The session file `retrieve query --session` wrote (updated in place).
        #[arg(long)]
        session: PathBuf,
        /// Result store the session's index lives in.
        #[arg(long, default_value = "offline-out/results.sqlite")]
        store: PathBuf,
        /// Results the user found like the query (names or sha256 prefixes, comma-separated).
        #[arg(long, value_delimiter = ',')]
        relevant: Vec<String>,
        /// Results the user found unlike the query.
        #[arg(long, value_delimiter = ',')]
        irrelevant: Vec<String>,
    },
    /// Simulated feedback rounds on a labelled folder: NDCG@K per round, with Euclidean,
    /// cosine and Rocchio baselines on the same vectors.
    Evaluate {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        terms: TermArgs,
        /// Images per label drawn into the searched set (0: all). The paper searched 72.
        #[arg(long, default_value_t = 10)]
        per_class: usize,
        /// Only the images this CSV lists (column `file` or `image`): the model's held-out
        /// split (models/NAME-heldout.csv), so retrieval is not scored on training images.
        #[arg(long)]
        split: Option<PathBuf>,
        #[command(flatten)]
        trial: TrialArgs,
        /// A labelled folder as `offline evaluate --task classify` reads it.
        dataset: PathBuf,
    },
    /// The same simulated feedback rounds on term vectors you bring (a CSV of
    /// `input,label,TERM…` rows: expert annotations or another annotator's likelihoods),
    /// ranked with the ontology alone (no model, so no visual signatures).
    EvaluateVectors {
        /// Hierarchy of the CSV's terms (their categories are what feedback works within).
        #[arg(long)]
        ontology: PathBuf,
        /// Hierarchy of the labels, for grade 1 (same category); default: --ontology.
        #[arg(long)]
        label_ontology: Option<PathBuf>,
        #[command(flatten)]
        feedback: FeedbackArgs,
        #[command(flatten)]
        trial: TrialArgs,
        /// The vectors CSV (header `input,label,` then the term names).
        vectors: PathBuf,
    },
}

/// How the simulated sessions of `evaluate` and `evaluate-vectors` run.
#[derive(Args)]
pub struct TrialArgs {
    /// Query images (spread over the labels).
    #[arg(long, default_value_t = 10)]
    queries: usize,
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Relevant and irrelevant marks per round (each).
    #[arg(long, default_value_t = 3)]
    marks: usize,
    /// Results shown per round; NDCG is reported for K = 1..this.
    #[arg(short, long, default_value_t = 25)]
    k: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Folder for metrics.json and ndcg.csv (default offline-out/retrieve-evaluate, or
    /// offline-out/retrieve-evaluate-vectors for evaluate-vectors, so one run does not
    /// overwrite the other's figures).
    #[arg(long)]
    out: Option<PathBuf>,
}

impl TrialArgs {
    fn settings(&self) -> evaluate::Settings {
        evaluate::Settings {
            k: self.k,
            rounds: self.rounds,
            marks: self.marks,
            queries: self.queries,
            seed: self.seed,
        }
    }

    fn out_or(&self, default: &str) -> PathBuf {
        self.out.clone().unwrap_or_else(|| PathBuf::from(default))
    }
}

#[derive(Args)]
pub struct Target {
    /// Model whose results are indexed (models/NAME.json; its classes are the terms).
    #[arg(long)]
    model: String,
    #[command(flatten)]
    backend: BackendArgs,
    /// Result store (SQLite) holding what `offline classify`/`segment` analysed.
    #[arg(long, default_value = "offline-out/results.sqlite")]
    store: PathBuf,
}

#[derive(Args)]
pub struct TermArgs {
    /// Term hierarchy (TOML); default the file the model manifest names ("ontology"), else models/NAME.ontology.toml.
    #[arg(long)]
    ontology: Option<PathBuf>,
    /// Weight of the image-based term dissimilarity (signatures) against the ontological
    /// one: the paper mixes ½ + ½; 0 uses the ontology alone.
    #[arg(long, default_value_t = 0.5)]
    image_weight: f64,
    #[command(flatten)]
    feedback: FeedbackArgs,
}

/// The penalty algorithm's settings.
#[derive(Args)]
pub struct FeedbackArgs {
    /// Feedback penalty ρ.
    #[arg(long, default_value_t = Feedback::default().rho)]
    rho: f64,
    /// A query term takes part in feedback when its likelihood exceeds τ.
    #[arg(long, default_value_t = Feedback::default().tau)]
    tau: f64,
    /// Likelihoods within this margin are "comparable".
    #[arg(long, default_value_t = Feedback::default().margin)]
    margin: f64,
}

impl FeedbackArgs {
    fn settings(&self) -> Result<Feedback> {
        for (name, v) in [
            ("--rho", self.rho),
            ("--tau", self.tau),
            ("--margin", self.margin),
        ] {
            if !(0.0..=1.0).contains(&v) {
                bail!("{name} {v}: must lie in [0, 1]");
            }
        }
        Ok(Feedback {
            rho: self.rho,
            tau: self.tau,
            margin: self.margin,
        })
    }
}

impl TermArgs {
    fn retriever(&self, manifest: &Manifest) -> Result<Retriever> {
        Ok(retrieval::retriever_for(
            manifest,
            self.ontology.as_deref(),
            self.image_weight,
            self.feedback.settings()?,
        )?)
    }
}

impl Target {
    fn manifest(&self) -> Result<Manifest> {
        let path = self.backend.models_dir.join(format!("{}.json", self.model));
        Ok(Manifest::read(&path)?)
    }

    fn open(&self) -> Result<(Manifest, Store, Index)> {
        let manifest = self.manifest()?;
        let mut store = Store::open(&self.store)?;
        let index = Index::load(&mut store, &manifest.id(), &manifest.classes)?;
        Ok((manifest, store, index))
    }

    fn analyzer(&self, store: Store) -> Result<Analyzer> {
        let config = self.backend.models_config();
        let model = OfflineModel::load(&config.dir, &self.model, &config)?;
        Ok(Analyzer::new(
            model,
            Some(store),
            RunOptions {
                batch: 16,
                ..RunOptions::default()
            },
        )?)
    }
}

pub fn run(command: RetrieveCommand) -> Result<ExitCode> {
    match command {
        RetrieveCommand::Index { target } => index_command(&target),
        RetrieveCommand::Query {
            target,
            terms,
            k,
            metric,
            session,
            query,
        } => query_command(&target, &terms, k, &metric, session.as_deref(), &query),
        RetrieveCommand::Feedback {
            session,
            store,
            relevant,
            irrelevant,
        } => feedback_command(&session, &store, &relevant, &irrelevant),
        RetrieveCommand::Evaluate {
            target,
            terms,
            per_class,
            split,
            trial,
            dataset,
        } => evaluate_command(
            &target,
            &terms,
            per_class,
            split.as_deref(),
            &trial,
            &dataset,
        ),
        RetrieveCommand::EvaluateVectors {
            ontology,
            label_ontology,
            feedback,
            trial,
            vectors,
        } => evaluate_vectors_command(
            &ontology,
            label_ontology.as_deref(),
            &feedback,
            &trial,
            &vectors,
        ),
    }
}

fn index_command(target: &Target) -> Result<ExitCode> {
    let (manifest, _, index) = target.open()?;
    println!(
        "{}",
        json!({
            "model": manifest.id(),
            "store": target.store,
            "indexed": index.entries.len(),
            "terms": manifest.classes,
        })
    );
    if index.entries.is_empty() {
        eprintln!("{}", index.require_entries().unwrap_err());
    }
    Ok(ExitCode::SUCCESS)
}

fn query_command(
    target: &Target,
    terms: &TermArgs,
    k: usize,
    metric: &str,
    session: Option<&Path>,
    query: &str,
) -> Result<ExitCode> {
    let metric = Metric::parse(metric)?;
    let (manifest, store, mut index) = target.open()?;
    let retriever = terms.retriever(&manifest)?;
    let position = match index.find(query) {
        Ok(i) => i,
        Err(_) if Path::new(query).is_file() => {
            // A new image: analyse it into the store, then it is indexed too.
            let mut analyzer = target.analyzer(store)?;
            let line = match analyzer.analyse_file(Path::new(query))? {
                Outcome::Done(line) | Outcome::Skipped(line) => line,
            };
            let sha = line["input_sha256"].as_str().unwrap_or_default().to_owned();
            let mut store = analyzer.store.take().context("result store")?;
            index = Index::load(&mut store, &manifest.id(), &manifest.classes)?;
            index
                .by_sha(&sha)
                .with_context(|| format!("{query} was analysed but gave no term likelihoods"))?
        }
        Err(e) => return Err(e.into()),
    };
    index.require_entries()?;
    let s = Session::new(
        &manifest.id(),
        &retriever,
        metric,
        k,
        &index.entries[position],
    )?;
    print_line(&s.results(&index)?)?;
    if let Some(path) = session {
        save_session(&s, path)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn feedback_command(
    session: &Path,
    store: &Path,
    relevant: &[String],
    irrelevant: &[String],
) -> Result<ExitCode> {
    let text = std::fs::read_to_string(session).with_context(|| {
        format!(
            "session {}: cannot read it; `retrieve query --session FILE` writes one",
            session.display()
        )
    })?;
    let mut s = Session::parse(&text, &session.display().to_string())?;
    let mut store = Store::open(store)?;
    let index = Index::load(&mut store, &s.model, &s.terms)?;
    s.add_feedback(&index, relevant, irrelevant)?;
    print_line(&s.results(&index)?)?;
    save_session(&s, session)?;
    Ok(ExitCode::SUCCESS)
}

fn print_line(line: &serde_json::Value) -> Result<()> {
    writeln!(std::io::stdout().lock(), "{line}").context("writing to stdout")
}

fn save_session(session: &Session, path: &Path) -> Result<()> {
    // Written beside and renamed: an interrupted write never leaves half a session.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(session)? + "\n")
        .and_then(|_| std::fs::rename(&tmp, path))
        .with_context(|| format!("writing session {}", path.display()))
}

fn evaluate_command(
    target: &Target,
    terms: &TermArgs,
    per_class: usize,
    split: Option<&Path>,
    trial: &TrialArgs,
    data: &Path,
) -> Result<ExitCode> {
    let settings = trial.settings();
    let manifest = target.manifest()?;
    if manifest.task != Task::Classify.as_str() {
        bail!(
            "retrieve evaluate needs a classify model with labelled images; {} is a {} model",
            manifest.name,
            manifest.task
        );
    }
    let retriever = terms.retriever(&manifest)?;
    let ontology_path = terms
        .ontology
        .clone()
        .unwrap_or_else(|| default_ontology(&manifest));
    let ontology = Ontology::read(&ontology_path)?;
    if split.is_none() {
        warn_without_split(&target.backend.models_dir, &manifest.name, data);
    }
    let labelled = dataset::load_items(data, Task::Classify, split)?
        .into_iter()
        .filter_map(|item| match item.truth {
            dataset::Truth::Class(label) => Some((item.image, label)),
            dataset::Truth::LabelMap(_) => None,
        })
        .collect();
    let chosen = evaluate::sample_per_label(labelled, per_class, settings.seed);
    let mut analyzer = target.analyzer(Store::open(&target.store)?)?;
    let progress = bar(chosen.len(), "images");
    let mut items = Vec::with_capacity(chosen.len());
    let mut failed = 0;
    for (path, label) in chosen {
        progress.inc(1);
        let vector = match analyzer.analyse_file(&path) {
            Ok(Outcome::Done(line) | Outcome::Skipped(line)) => vector_of(&line, &manifest.classes),
            Err(e) => {
                progress.suspend(|| eprintln!("skipped {}: {e}", path.display()));
                failed += 1;
                continue;
            }
        };
        if let Some(vector) = vector {
            items.push(Labelled {
                input: path.display().to_string(),
                label,
                vector,
            });
        }
    }
    progress.finish_and_clear();
    let category = |label: &str| ontology.category(label).ok();
    let report = evaluate::evaluate(&items, &retriever, category, settings)?;
    publish_report(&report, &trial.out_or("offline-out/retrieve-evaluate"))?;
    Ok(exit_code(failed == 0))
}

/// Without --split every image in the folder is searched, the model's training images
/// included, and the figures read high: say so, naming the held-out list when the models
/// folder has one for this model (models/PREFIX-heldout.csv, PREFIX a start of its name).
fn warn_without_split(models_dir: &Path, model: &str, data: &Path) {
    let heldout = std::fs::read_dir(models_dir)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix("-heldout.csv"))
                .is_some_and(|prefix| model.starts_with(prefix))
        })
        .max_by_key(|path| path.as_os_str().len());
    let hint = match heldout {
        Some(path) => format!("pass --split {}", path.display()),
        None => "pass --split with the images the model was not trained on".to_string(),
    };
    eprintln!(
        "warning: no --split: every image in {} is searched, {model}'s training images included, so \
         NDCG reads high; {hint}",
        data.display()
    );
}

fn evaluate_vectors_command(
    ontology: &Path,
    label_ontology: Option<&Path>,
    feedback: &FeedbackArgs,
    trial: &TrialArgs,
    vectors: &Path,
) -> Result<ExitCode> {
    let data = retrieval::vectors::read(vectors)?;
    let terms = Ontology::read(ontology)?;
    let retriever = Retriever::new(&data.terms, &terms, None, 0.0, feedback.settings()?)
        .with_context(|| {
            format!(
                "the terms of {} (its header) against the ontology {}",
                vectors.display(),
                ontology.display()
            )
        })?;
    let labels = match label_ontology {
        Some(path) => Ontology::read(path)?,
        None => terms,
    };
    let category = |label: &str| labels.category(label).ok();
    if data.items.iter().all(|i| category(&i.label).is_none()) {
        eprintln!(
            "warning: no label of {} is in the label ontology, so no image gets grade 1 (same category); pass --label-ontology FILE with the labels' hierarchy",
            vectors.display()
        );
    }
    let report = evaluate::evaluate(&data.items, &retriever, category, trial.settings())?;
    publish_report(
        &report,
        &trial.out_or("offline-out/retrieve-evaluate-vectors"),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// The table on stdout, metrics.json and ndcg.csv in `out`.
fn publish_report(report: &Report, out: &Path) -> Result<()> {
    write_report(report, out)?;
    print!("{}", table(report));
    std::io::stdout().flush().context("writing to stdout")?;
    eprintln!("wrote {}/{{metrics.json,ndcg.csv}}", out.display());
    Ok(())
}

fn table(report: &Report) -> String {
    let ks: Vec<usize> = [1, 5, 10, 25]
        .into_iter()
        .filter(|&k| k < report.k)
        .chain([report.k])
        .collect();
    let mut out = format!(
        "{} images, {} queries; graded relevance 2 same label, 1 same category, 0 other\n{:<22} {:>5} {:>9}",
        report.images,
        report.queries.len(),
        "method",
        "round",
        "min@1..K"
    );
    for k in &ks {
        out += &format!(" {:>8}", format!("NDCG@{k}"));
    }
    out += "   moved\n";
    for c in &report.curves {
        out += &format!("{:<22} {:>5} {:>9.3}", c.method, c.round, c.min());
        for &k in &ks {
            out += &format!(" {:>8.3}", c.at(k));
        }
        if c.term_feedback && c.round > 0 {
            out += &format!(" {:>7.2}", c.term_pairs_moved);
        }
        out += "\n";
    }
    out += "moved: term-pair updates a feedback round made, mean per query (docs/retrieval.md)\n";
    if report.curves.iter().any(|c| c.bound) {
        out += "term-group bound: the other predicted-term groups ordered by their mean grade, the labels\n\
                as an oracle: an estimate of the most a term matrix can reach (single-label vectors)\n";
    }
    out
}

fn write_report(report: &Report, out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let json = out.join("metrics.json");
    std::fs::write(&json, serde_json::to_string_pretty(report)? + "\n")
        .with_context(|| format!("writing {}", json.display()))?;
    let mut csv = String::from("method,round,k,ndcg\n");
    for c in &report.curves {
        for (k, v) in c.ndcg.iter().enumerate() {
            csv += &format!("{},{},{},{v:.6}\n", c.method, c.round, k + 1);
        }
    }
    let path = out.join("ndcg.csv");
    std::fs::write(&path, csv).with_context(|| format!("writing {}", path.display()))
}

//! `spectrald offline lesion segment|evaluate`: the dermoscopic lesion pipelines
//! (src/offline/lesion/) from the command line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use spectrald::config::Config;
use spectrald::offline::lesion::dataset::{self, Item, Variant};
use spectrald::offline::lesion::{self, LesionParams, Method, Segmentation};
use spectrald::offline::run;
use spectrald::offline::store::Store;
use spectrald::signals::Shutdown;

use super::common::{EXIT_PARTIAL, bar, exit_code};

#[derive(Subcommand)]
pub enum LesionCommand {
    /// Segment the lesion in dermoscopic images: one JSON line each, mask and overlay PNGs.
    Segment {
        #[command(flatten)]
        settings: Settings,
        #[arg(long, value_enum, default_value_t = MethodArg::Cluster)]
        method: MethodArg,
        /// Folder for the mask and overlay PNGs.
        #[arg(long, default_value = "offline-out/lesion")]
        out: PathBuf,
        /// Result store (SQLite) the lines also go to, beside the other offline results;
        /// inputs it already holds for the same pipeline and parameters are not segmented
        /// again.
        #[arg(long, default_value = "offline-out/results.sqlite")]
        store: PathBuf,
        /// Segment every input again, even those the store has.
        #[arg(long)]
        force: bool,
        /// Write the lines and PNGs only, no store (nothing is reused either).
        #[arg(long, conflicts_with = "force")]
        no_store: bool,
        /// Files, folders (searched recursively) or glob patterns.
        #[arg(required = true)]
        inputs: Vec<String>,
    },
    /// Score the pipelines on images/ + masks/: the paper's table (TP FP FN TN, precision,
    /// recall, F1, accuracy; global and per-image mean) and CSV files.
    Evaluate {
        #[command(flatten)]
        settings: Settings,
        /// Which pipelines: otsu, cluster or all.
        #[arg(long, value_enum, default_value_t = MethodsArg::All)]
        method: MethodsArg,
        /// Score on the original images, the hair-removed ones, or both (the paper's
        /// datasets 1 and 2).
        #[arg(long, value_enum, default_value_t = HairArg::Both)]
        hair: HairArg,
        /// Also print the paper-style table (TP FP FN TN per image) of every pipeline.
        #[arg(long)]
        per_image: bool,
        /// Folder for per-image.csv, summary.csv and metrics.json.
        #[arg(long, default_value = "offline-out/lesion-evaluate")]
        out: PathBuf,
        /// Images to score at once (default: the number of cores).
        #[arg(long)]
        threads: Option<usize>,
        /// The dataset folder: images/ and masks/ (docs/lesion.md).
        dataset: PathBuf,
    },
}

#[derive(Args)]
pub struct Settings {
    /// A config file whose [offline.lesion] section sets the parameters (default: the
    /// paper's values; the shipped config.toml lists every key with its default).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Skip DullRazor hair removal (segment only; evaluate has --hair).
    #[arg(long)]
    no_hair_removal: bool,
    /// Write every intermediate mask (hair, frame M0, Otsu, tolerance, M1, M2, clusters)
    /// here as PNGs, NAME.STEP.png.
    #[arg(long)]
    debug_dir: Option<PathBuf>,
}

impl Settings {
    fn params(&self) -> Result<LesionParams> {
        let mut params = match &self.config {
            Some(path) => Config::load_offline(path)?.lesion,
            None => LesionParams::default(),
        };
        if self.no_hair_removal {
            params.hair_removal = false;
        }
        Ok(params)
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum MethodArg {
    Otsu,
    Cluster,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum MethodsArg {
    Otsu,
    Cluster,
    All,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum HairArg {
    On,
    Off,
    Both,
}

pub fn run(command: LesionCommand) -> Result<ExitCode> {
    match command {
        LesionCommand::Segment {
            settings,
            method,
            out,
            store,
            force,
            no_store,
            inputs,
        } => {
            let method = match method {
                MethodArg::Otsu => Method::Otsu,
                MethodArg::Cluster => Method::Cluster,
            };
            let store = (!no_store).then_some(store);
            segment_command(&settings, method, &out, store.as_deref(), force, &inputs)
        }
        LesionCommand::Evaluate {
            settings,
            method,
            hair,
            per_image,
            out,
            threads,
            dataset,
        } => {
            let methods = match method {
                MethodsArg::Otsu => vec![Method::Otsu],
                MethodsArg::Cluster => vec![Method::Cluster],
                MethodsArg::All => vec![Method::Otsu, Method::Cluster],
            };
            let hair = match hair {
                HairArg::On => vec![true],
                HairArg::Off => vec![false],
                HairArg::Both => vec![false, true],
            };
            let variants: Vec<Variant> = methods
                .iter()
                .flat_map(|&method| {
                    hair.iter().map(move |&hair_removal| Variant {
                        method,
                        hair_removal,
                    })
                })
                .collect();
            let threads = threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            evaluate_command(&settings, &variants, per_image, &out, threads, &dataset)
        }
    }
}

fn save(image: &image::DynamicImage, path: &Path) -> Result<String> {
    image
        .save(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path.display().to_string())
}

fn write_steps(dir: &Path, stem: &str, seg: &Segmentation, tag: &str) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (step, picture) in seg.steps.pictures() {
        save(&picture, &dir.join(format!("{stem}{tag}.{step}.png")))?;
    }
    Ok(())
}

/// Where segment results are kept, and whether stored ones are redone.
struct Stored {
    store: Store,
    path: PathBuf,
    /// Segment every input again: --force, or --debug-dir (it asks for the intermediate
    /// pictures, which the store does not keep).
    force: bool,
}

impl Stored {
    /// The store's line for this image under `pipeline`, if it can serve as it is.
    fn reuse(
        &self,
        pipeline: &lesion::StoredPipeline,
        sha: &str,
        input: &Path,
        out: &Path,
    ) -> Result<Option<serde_json::Value>> {
        if self.force {
            return Ok(None);
        }
        let known = self
            .store
            .find(&pipeline.id, sha, lesion::Source::File.options())?;
        Ok(known.and_then(|l| reusable(&l, input, out)))
    }
}

fn segment_command(
    settings: &Settings,
    method: Method,
    out: &Path,
    store: Option<&Path>,
    force: bool,
    inputs: &[String],
) -> Result<ExitCode> {
    let params = settings.params()?;
    // Opened after the parameters are checked: a bad config creates no store.
    let stored = store
        .map(|path| -> Result<Stored> {
            Ok(Stored {
                store: Store::open(path)?,
                path: path.to_owned(),
                force: force || settings.debug_dir.is_some(),
            })
        })
        .transpose()?;
    let shutdown = Shutdown::on_signals()?;
    let inputs = run::expand_inputs(inputs)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let pipeline = lesion::StoredPipeline::new(method, &params);
    // As for each line below: a store that fails loses the record, not the results.
    if let Some(stored) = &stored
        && let Err(e) = pipeline.register(&stored.store)
    {
        tracing::warn!(
            "{} not registered in {}: {e}",
            pipeline.id,
            stored.path.display()
        );
    }
    let progress = bar(inputs.len(), "images");
    let mut failed = Vec::new();
    let (mut done, mut skipped) = (0, 0);
    for input in &inputs {
        if shutdown.requested() {
            break;
        }
        let result = std::fs::read(input)
            .with_context(|| format!("reading {}", input.display()))
            .and_then(|bytes| {
                let sha = spectrald::infer::sha256_hex(&bytes);
                if let Some(stored) = &stored
                    && let Some(line) = stored.reuse(&pipeline, &sha, input, out)?
                {
                    return Ok((line, true));
                }
                let mut line = segment_one(
                    input,
                    &bytes,
                    &sha,
                    method,
                    &params,
                    out,
                    settings.debug_dir.as_deref(),
                )?;
                // The masks are written: a store that fails loses the record, not the line.
                if let Some(stored) = &stored
                    && let Err(e) = pipeline.insert(&stored.store, &mut line, lesion::Source::File)
                {
                    progress.suspend(|| tracing::warn!("{} not stored: {e}", input.display()));
                }
                Ok((line, false))
            });
        match result {
            Ok((line, from_store)) => {
                if from_store {
                    skipped += 1;
                } else {
                    done += 1;
                }
                progress
                    .suspend(|| writeln!(std::io::stdout().lock(), "{line}"))
                    .context("writing results to stdout")?;
            }
            Err(e) => {
                let message = format!("{e:#}");
                progress.suspend(|| tracing::warn!("skipped {}: {message}", input.display()));
                failed.push((input.display().to_string(), message));
            }
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    let kept = match &stored {
        Some(stored) => format!("{skipped} already in {} (skipped)", stored.path.display()),
        None => "no store".to_string(),
    };
    eprintln!(
        "{}: {done} segmented, {kept}, {} failed; masks in {}",
        pipeline.id,
        failed.len(),
        out.display()
    );
    for (input, error) in &failed {
        eprintln!("failed: {input}: {error}");
    }
    if shutdown.requested() {
        eprintln!("stopped early");
        return Ok(ExitCode::from(EXIT_PARTIAL));
    }
    Ok(exit_code(failed.is_empty()))
}

/// A stored line that serves this input as it is: the same path, and its mask and overlay
/// still in `out`. Anything else (the same image under another name, another --out, files
/// deleted) is segmented again.
fn reusable(stored: &str, input: &Path, out: &Path) -> Option<serde_json::Value> {
    let mut line: serde_json::Value = serde_json::from_str(stored).ok()?;
    let outputs = line["outputs"].as_array()?;
    let in_out = |f: &serde_json::Value| {
        f.as_str()
            .map(Path::new)
            .is_some_and(|p| p.starts_with(out) && p.is_file())
    };
    if line["input"] != input.display().to_string()
        || outputs.is_empty()
        || !outputs.iter().all(in_out)
    {
        return None;
    }
    line["from_store"] = json!(true);
    Some(line)
}

fn segment_one(
    path: &Path,
    bytes: &[u8],
    sha: &str,
    method: Method,
    params: &LesionParams,
    out: &Path,
    debug_dir: Option<&Path>,
) -> Result<serde_json::Value> {
    let started = Instant::now();
    let name = path.display().to_string();
    let input = lesion::read_input(bytes, path, spectrald::offline::raster::is_tiff(path))?;
    let seg = lesion::segment(&input.rgb, &name, method, params, debug_dir.is_some())?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    let mask = save(
        &image::DynamicImage::ImageLuma8(seg.mask.clone()),
        &out.join(format!("{stem}.lesion.png")),
    )?;
    let overlay = save(
        &image::DynamicImage::ImageRgb8(lesion::overlay(&input.rgb, &seg.mask, None)),
        &out.join(format!("{stem}.overlay.png")),
    )?;
    if let Some(dir) = debug_dir {
        write_steps(dir, &stem, &seg, "")?;
    }
    let mut line = lesion::result_line(&name, sha, &input, &seg, method, params);
    line["outputs"] = json!([mask, overlay]);
    line["ms"] = json!((started.elapsed().as_secs_f64() * 1e4).round() / 10.0);
    Ok(line)
}

fn evaluate_command(
    settings: &Settings,
    variants: &[Variant],
    per_image: bool,
    out: &Path,
    threads: usize,
    dataset_dir: &Path,
) -> Result<ExitCode> {
    let params = settings.params()?;
    let (items, missing) = dataset::load_items(dataset_dir)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let progress = bar(items.len(), "images");
    let debug_dir = settings.debug_dir.clone();
    let debug_errors = std::sync::Mutex::new(Vec::new());
    let on_masks = |item: &Item,
                    rgb: &image::RgbImage,
                    truth: &image::GrayImage,
                    results: &[(Variant, Segmentation)]| {
        let Some(dir) = &debug_dir else { return };
        for (variant, seg) in results {
            let tag = format!(".{}-{}", variant.method.as_str(), variant.images());
            let overlay = lesion::overlay(rgb, &seg.mask, Some(truth));
            let written = write_steps(dir, &item.name, seg, &tag).and_then(|()| {
                save(
                    &image::DynamicImage::ImageRgb8(overlay),
                    &dir.join(format!("{}{tag}.overlay.png", item.name)),
                )
            });
            if let Err(e) = written
                && let Ok(mut errors) = debug_errors.lock()
            {
                errors.push(format!("{e:#}"));
            }
        }
    };
    let tick = || progress.inc(1);
    let run = dataset::Settings {
        variants,
        params: &params,
        threads,
        keep_steps: debug_dir.is_some(),
        on_masks: &on_masks,
        progress: &tick,
    };
    let report = dataset::evaluate(dataset_dir, &items, missing, &run);
    progress.finish_and_clear();
    if let Some(e) = debug_errors
        .into_inner()
        .ok()
        .and_then(|e| e.into_iter().next())
    {
        anyhow::bail!("--debug-dir: {e}");
    }
    let write = |name: &str, text: String| -> Result<()> {
        let path = out.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    };
    write("per-image.csv", dataset::per_image_csv(&report))?;
    write("summary.csv", dataset::summary_csv(&report))?;
    write(
        "metrics.json",
        serde_json::to_string_pretty(&report)? + "\n",
    )?;
    let mut stdout = std::io::stdout().lock();
    if per_image {
        for v in &report.variants {
            writeln!(stdout, "{}", dataset::paper_table(v))?;
        }
    }
    write!(stdout, "{}", dataset::summary_table(&report))?;
    stdout.flush().context("writing to stdout")?;
    eprintln!(
        "global: counts summed over all images (the paper's TOT row); mean: the mean of per-image scores"
    );
    eprintln!(
        "wrote {}/{{per-image.csv,summary.csv,metrics.json}}",
        out.display()
    );
    for (image, error) in &report.failed {
        eprintln!("failed: {image}: {error}");
    }
    Ok(exit_code(report.failed.is_empty()))
}

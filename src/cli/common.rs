//! What the commands share: exit codes, progress bars, the model/backend flags, stdout.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use spectrald::infer::{BackendKind, ModelsConfig, TestTime};
use spectrald::offline::model::OfflineModel;
use spectrald::offline::refine::RefineParams;

/// Exit code when some inputs failed and the rest were analysed.
pub const EXIT_PARTIAL: u8 = 3;

/// Success when every input went through, else the partial-success code.
pub fn exit_code(all_ok: bool) -> ExitCode {
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_PARTIAL)
    }
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn bar(total: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{bar:30}} {{pos}}/{{len}} {what} {{per_sec}} ETA {{eta}} {{msg}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Where the models are and how they run, for the offline commands.
#[derive(Args)]
pub struct BackendArgs {
    /// Folder with the model manifests and ONNX files.
    #[arg(long, default_value = "models")]
    pub models_dir: PathBuf,
    /// Inference backend: auto (ONNX Runtime if its library loads, else tract), ort, tract.
    #[arg(long, value_enum, default_value = "auto")]
    backend: BackendKind,
    /// Threads per model session.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

impl BackendArgs {
    pub fn models_config(&self) -> ModelsConfig {
        ModelsConfig {
            dir: self.models_dir.clone(),
            backend: self.backend,
            threads: self.threads.max(1),
            ..ModelsConfig::default()
        }
    }
}

/// Prints to stdout; a reader that went away (`| head`) is not an error.
pub fn write_stdout(text: &str) -> Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("writing to stdout"),
        _ => Ok(()),
    }
}

/// The contextual-regularization refinement flags (`offline segment`, `evaluate`, `submit`).
#[derive(Args)]
pub struct RefineArgs {
    /// Refine the class probabilities with the contextual-regularization energy.
    #[arg(long)]
    refine: bool,
    /// λ of the refinement (weight of the neighbour term).
    #[arg(long, default_value_t = RefineParams::default().lambda)]
    refine_lambda: f32,
    /// σ of the colour affinity (RGB in [0,1]).
    #[arg(long, default_value_t = RefineParams::default().sigma)]
    refine_sigma: f32,
    /// Reweighted least-squares iterations of the refinement.
    #[arg(long, default_value_t = RefineParams::default().iterations)]
    refine_iterations: usize,
}

impl RefineArgs {
    pub fn params(&self) -> Option<RefineParams> {
        self.refine.then(|| RefineParams {
            lambda: self.refine_lambda,
            sigma: self.refine_sigma,
            iterations: self.refine_iterations,
            ..RefineParams::default()
        })
    }
}

/// Test-time scales of a segmentation model (`offline segment`, `evaluate`).
#[derive(Args)]
pub struct ScaleArgs {
    /// Test-time scales, e.g. 1,1.5: one pass per scale (the image resized to k times the
    /// model input, cut into model-sized tiles when k > 1), probabilities averaged.
    /// Default: the model manifest's `test_time` (else 1).
    #[arg(long, value_delimiter = ',')]
    pub scales: Option<Vec<f64>>,
    /// Also average every scale over the mirrored image (`--flip=false` turns a
    /// manifest's flip off). Default: the manifest's.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub flip: Option<bool>,
}

impl ScaleArgs {
    /// The model's test-time plan with these flags over it; an unusable plan, or flags
    /// given for a classifier, is an error naming the flag.
    pub fn apply(&self, model: &mut OfflineModel) -> Result<()> {
        model
            .override_test_time(self.scales.clone(), self.flip)
            .map_err(|problem| anyhow::anyhow!("--scales/--flip: {problem}"))
    }

    /// The check that needs no model (`offline submit`: the workers load it).
    pub fn check_range(&self) -> Result<()> {
        match self.scales.as_deref().and_then(TestTime::scales_problem) {
            Some(problem) => anyhow::bail!("--scales: {problem}"),
            None => Ok(()),
        }
    }
}

/// How an input's bands are read (`offline classify|segment`, `offline submit`).
#[derive(Args)]
pub struct RasterArgs {
    /// Names of the input's bands in order, e.g. red,green,blue,nir (default: by count;
    /// 4-band TIFFs are taken as red,green,blue,nir).
    #[arg(long, value_delimiter = ',')]
    pub bands: Option<Vec<String>>,
    /// How 16-bit samples map to [0,1]: lo:hi (e.g. 0:10000 for reflectance x 10000);
    /// default a per-image 2-98 % stretch.
    #[arg(long)]
    pub range: Option<String>,
}

impl RasterArgs {
    /// `--range` parsed (None: the per-image stretch); a malformed one is an error naming it.
    pub fn scale16(&self) -> Result<Option<spectrald::offline::raster::Scale16>> {
        self.range
            .as_deref()
            .map(|r| {
                spectrald::offline::service::parse_range(r)
                    .map_err(anyhow::Error::msg)
                    .context("--range")
            })
            .transpose()
    }
}

//! An offline model: a daemon model (manifest + backend) whose manifest also names its
//! task, classes and input bands, checked against the graph's output shape.

use std::path::Path;

use fast_image_resize::Resizer;
use fast_image_resize::images::{TypedImage, TypedImageRef};
use fast_image_resize::pixels::F32;
use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions};

use crate::infer::ModelsConfig;
use crate::infer::{InferError, Manifest, Model, ModelError, TestTime};

use super::OfflineError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Classify,
    Segment,
}

impl Task {
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Classify => "classify",
            Task::Segment => "segment",
        }
    }
}

pub struct OfflineModel {
    pub model: Model,
    pub task: Task,
    /// Input channels, height, width.
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// Segmentation: the test-time scales and flip (the manifest's, or one whole-image
    /// pass; `--scales/--flip`, an HTTP request or a NATS job can override it).
    pub test_time: TestTime,
    resizer: Resizer,
}

impl OfflineModel {
    /// Loads `dir/NAME.json` with its ONNX file and checks that the manifest describes an
    /// offline model whose graph agrees with it (classes vs output size, bands vs input).
    pub fn load(
        dir: &Path,
        name: &str,
        config: &ModelsConfig,
    ) -> Result<OfflineModel, OfflineError> {
        let model = Model::load(dir, name, config)?;
        let m = &model.manifest;
        let bad = |message: String| {
            OfflineError::Model(ModelError::BadManifest {
                path: m.path.clone(),
                message,
            })
        };
        let task = match m.task.as_str() {
            "classify" => Task::Classify,
            "segment" => Task::Segment,
            other => {
                return Err(bad(format!(
                    "task \"{other}\" is not an offline task (classify or segment); `spectrald models` lists what each model does"
                )));
            }
        };
        let shape = &m.input.shape;
        let (channels, height, width) = (shape[1] as usize, shape[2] as usize, shape[3] as usize);
        if shape[1..].iter().any(|d| *d <= 0) {
            return Err(bad(format!(
                "input shape {shape:?} must be fixed apart from the batch"
            )));
        }
        if m.bands.len() != channels {
            return Err(bad(format!(
                "lists {} bands ({}) for an input of {channels} channels",
                m.bands.len(),
                m.bands.join(", ")
            )));
        }
        let out = &m.outputs[0].shape;
        let want: Vec<i64> = match task {
            Task::Classify => vec![-1, m.classes.len() as i64],
            Task::Segment => vec![-1, m.classes.len() as i64, height as i64, width as i64],
        };
        if m.classes.is_empty() || *out != want {
            return Err(bad(format!(
                "{} classes need output shape {want:?}, the manifest says {out:?}",
                m.classes.len()
            )));
        }
        if let Some(plan) = &m.test_time {
            let problem = if task != Task::Segment {
                Some("test_time is for segment models; remove it from the manifest".to_owned())
            } else {
                plan.problem_for((width, height), m.classes.len())
                    .map(|p| format!("test_time.scales: {p}"))
            };
            if let Some(problem) = problem {
                return Err(bad(problem));
            }
        }
        let test_time = m.test_time.clone().unwrap_or_default();
        Ok(OfflineModel {
            model,
            task,
            channels,
            height,
            width,
            test_time,
            resizer: Resizer::new(),
        })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.model.manifest
    }

    /// The test-time plan asked for at run time (CLI flags, an HTTP request, a NATS job)
    /// over the manifest's: `scales` and `flip` replace its parts when given. Refused, with
    /// the reason, for a classifier or a plan this model cannot run.
    pub fn override_test_time(
        &mut self,
        scales: Option<Vec<f64>>,
        flip: Option<bool>,
    ) -> Result<(), String> {
        if scales.is_none() && flip.is_none() {
            return Ok(());
        }
        if self.task != Task::Segment {
            return Err(format!(
                "test-time scales and flip are for segmentation models; this is a {} model",
                self.task.as_str()
            ));
        }
        let plan = TestTime {
            scales: scales.unwrap_or_else(|| self.test_time.scales.clone()),
            flip: flip.unwrap_or(self.test_time.flip),
        };
        if let Some(problem) = plan.problem_for((self.width, self.height), self.classes().len()) {
            return Err(problem);
        }
        self.test_time = plan;
        Ok(())
    }

    /// The manifest's test-time plan again (a pooled model after a request overrode it).
    pub fn reset_test_time(&mut self) {
        self.test_time = self.model.manifest.test_time.clone().unwrap_or_default();
    }

    pub fn classes(&self) -> &[String] {
        &self.model.manifest.classes
    }

    /// Runs `batch` items of CHW input; returns the first output (probabilities).
    pub fn run(&mut self, input: &[f32], batch: usize) -> Result<Vec<f32>, InferError> {
        let mut outputs = self.model.infer(input, batch)?;
        Ok(outputs.swap_remove(0))
    }

    /// Bilinear resize of one plane (Pillow's BILINEAR convolution, as in training).
    pub fn resize_plane(
        &mut self,
        plane: &[f32],
        (w, h): (usize, usize),
        (new_w, new_h): (usize, usize),
    ) -> Result<Vec<f32>, OfflineError> {
        if (w, h) == (new_w, new_h) {
            return Ok(plane.to_vec());
        }
        resize_plane(&mut self.resizer, plane, (w, h), (new_w, new_h))
    }
}

pub fn resize_plane(
    resizer: &mut Resizer,
    plane: &[f32],
    (w, h): (usize, usize),
    (new_w, new_h): (usize, usize),
) -> Result<Vec<f32>, OfflineError> {
    let pixels: Vec<F32> = plane.iter().copied().map(F32::new).collect();
    let fail = |e: String| OfflineError::Resize(e);
    let src = TypedImageRef::new(w as u32, h as u32, &pixels).map_err(|e| fail(e.to_string()))?;
    let mut dst = TypedImage::<F32>::new(new_w as u32, new_h as u32);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    resizer
        .resize_typed(&src, &mut dst, &options)
        .map_err(|e| fail(e.to_string()))?;
    Ok(dst.pixels().iter().map(|p| p.0).collect())
}

/// A model name from a URL: a plain file stem, never a path.
pub(crate) fn valid_model_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !name.starts_with('.')
}

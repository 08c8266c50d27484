//! The JSON manifest that travels with every ONNX model.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ModelError;

/// One tensor: name and shape, -1 for the dynamic batch axis (and, on size-free
/// detectors, for the axes [`Manifest::sized`] fills in).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<i64>,
    /// Detector heads: one row per cell of a grid of this stride over the input, so the
    /// second axis is (height / stride) × (width / stride).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stride: Option<u32>,
}

impl TensorSpec {
    /// The concrete shape for `batch` items (the dynamic batch axis filled in).
    pub fn shape_for_batch(&self, batch: usize) -> Vec<usize> {
        std::iter::once(batch)
            .chain(self.shape.iter().skip(1).map(|d| (*d).max(1) as usize))
            .collect()
    }

    /// Values per batch item (product of the non-batch dimensions).
    pub fn item_len(&self) -> usize {
        self.shape
            .iter()
            .skip(1)
            .map(|d| (*d).max(1) as usize)
            .product()
    }
}

/// Test-time averaging of a segmentation model: one pass per scale (the image resized to
/// `k` times the model input and cut into model-sized tiles), each also mirrored when
/// `flip` is set; the passes' class probabilities are averaged.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TestTime {
    pub scales: Vec<f64>,
    #[serde(default)]
    pub flip: bool,
}

impl Default for TestTime {
    fn default() -> TestTime {
        TestTime {
            scales: vec![1.0],
            flip: false,
        }
    }
}

impl TestTime {
    /// The largest scale accepted: a pass at scale k runs about (2k - 1)² tiles.
    pub const MAX_SCALE: f64 = 8.0;
    /// The largest class-probability buffer one pass may hold (classes × scaled width ×
    /// scaled height × 4 bytes), so a plan cannot exhaust memory on a large model.
    pub const MAX_PASS_BYTES: usize = 1 << 30;

    /// The size a pass at scale `k` resizes the image to: `k` times the model input.
    pub fn scaled_size(k: f64, (width, height): (usize, usize)) -> (usize, usize) {
        (
            ((width as f64 * k).round() as usize).max(width),
            ((height as f64 * k).round() as usize).max(height),
        )
    }

    /// Why the scales cannot be used, if they cannot.
    pub fn problem(&self) -> Option<String> {
        Self::scales_problem(&self.scales)
    }

    /// Why these scales cannot be used by any model (the check that needs no model, e.g.
    /// before a job is queued), if they cannot.
    pub fn scales_problem(scales: &[f64]) -> Option<String> {
        if scales.is_empty() {
            return Some("no scales; give at least one, e.g. 1 (the whole image)".into());
        }
        scales
            .iter()
            .find(|k| !(1.0..=Self::MAX_SCALE).contains(*k))
            .map(|k| {
                format!(
                    "test-time scale {k} is outside 1..={}; 1 is the whole image at the model input, larger scales are tiled",
                    Self::MAX_SCALE
                )
            })
    }

    /// `problem`, or a pass too large for a model of `input` size (width, height) and
    /// `classes` outputs.
    pub fn problem_for(&self, input: (usize, usize), classes: usize) -> Option<String> {
        self.problem().or_else(|| {
            let largest = self.scales.iter().copied().fold(1.0, f64::max);
            let (w, h) = Self::scaled_size(largest, input);
            let bytes = classes.saturating_mul(w).saturating_mul(h).saturating_mul(4);
            (bytes > Self::MAX_PASS_BYTES).then(|| {
                format!(
                    "test-time scale {largest} needs {} MiB of class probabilities per pass for this {}x{} model with {classes} classes (limit {} MiB); use a smaller scale",
                    bytes >> 20,
                    input.0,
                    input.1,
                    Self::MAX_PASS_BYTES >> 20
                )
            })
        })
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Manifest {
    pub name: String,
    /// "boundary" or "landmark".
    pub task: String,
    pub version: String,
    /// ONNX file, relative to the manifest.
    pub file: PathBuf,
    pub sha256: String,
    pub input: TensorSpec,
    pub outputs: Vec<TensorSpec>,
    /// Free-form facts the daemon does not interpret (training data, metrics, card, licence).
    #[serde(default)]
    pub preprocessing: serde_json::Value,
    #[serde(default)]
    pub training: serde_json::Value,
    #[serde(default)]
    pub metrics: serde_json::Value,
    #[serde(default)]
    pub card: Option<String>,
    /// Offline models: their classes' term hierarchy for retrieval, relative to the
    /// manifest (absent: `NAME.ontology.toml`); models with the same classes share one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ontology: Option<PathBuf>,
    #[serde(default)]
    pub licence: Option<String>,
    /// Offline models: one name per output class, in output order.
    #[serde(default)]
    pub classes: Vec<String>,
    /// Offline segmentation models: an RGB colour per class for overlays.
    #[serde(default)]
    pub colors: Vec<[u8; 3]>,
    /// Offline models: the input bands by name, in input channel order (e.g. red, green,
    /// blue); the offline stage picks these from an input's bands by name.
    #[serde(default)]
    pub bands: Vec<String>,
    /// Offline imagery models: the ground pixel size (metres) they were trained at.
    #[serde(default)]
    pub ground_sample_distance_m: Option<f64>,
    /// Offline segmentation models: the test-time scales and flip the model's figures were
    /// measured with (absent: one pass of the whole image at the input size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_time: Option<TestTime>,
    /// Where the manifest was read from (set on load).
    #[serde(skip)]
    pub path: PathBuf,
}

impl Manifest {
    pub fn read(path: &Path) -> Result<Manifest, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|_| ModelError::Missing {
            path: path.to_owned(),
        })?;
        let mut manifest: Manifest =
            serde_json::from_str(&text).map_err(|e| ModelError::BadManifest {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
        manifest.path = path.to_owned();
        let bad = |message: String| ModelError::BadManifest {
            path: path.to_owned(),
            message,
        };
        if manifest.outputs.is_empty() {
            return Err(bad("lists no outputs".into()));
        }
        if let Some(problem) = manifest.test_time.as_ref().and_then(TestTime::problem) {
            return Err(bad(format!(
                "test_time.scales: {problem} (edit the manifest or rerun models/train/segment_test_time.py)"
            )));
        }
        if manifest.input.shape.len() != 4 || manifest.input.shape[0] != -1 {
            return Err(bad(format!(
                "input shape {:?} is not [-1, C, H, W] (dynamic batch first)",
                manifest.input.shape
            )));
        }
        Ok(manifest)
    }

    /// The manifest of a size-free model run at `height × width`: the input's spatial axes
    /// and each strided output's row count filled in.
    pub fn sized(mut self, height: u32, width: u32) -> Manifest {
        if let [_, _, h, w] = self.input.shape.as_mut_slice() {
            (*h, *w) = (height as i64, width as i64);
        }
        for output in &mut self.outputs {
            if let Some(stride) = output.stride.filter(|s| *s > 0)
                && output.shape.len() >= 2
            {
                output.shape[1] = ((height / stride) * (width / stride)) as i64;
            }
        }
        self
    }

    pub fn onnx_path(&self) -> PathBuf {
        self.path
            .parent()
            .unwrap_or(Path::new("."))
            .join(&self.file)
    }

    /// Short id for outputs and logs: name and the first 12 hex digits of the sha256.
    pub fn id(&self) -> String {
        format!(
            "{}@{}",
            self.name,
            &self.sha256[..self.sha256.len().min(12)]
        )
    }

    pub fn verify_checksum(&self) -> Result<(), ModelError> {
        let path = self.onnx_path();
        let bytes = std::fs::read(&path).map_err(|_| ModelError::Missing { path: path.clone() })?;
        let got = sha256_hex(&bytes);
        if !got.eq_ignore_ascii_case(&self.sha256) {
            return Err(ModelError::Checksum {
                path,
                got,
                want: self.sha256.clone(),
            });
        }
        Ok(())
    }

    /// Compares a graph's inputs/outputs with the manifest: names always, shapes where the
    /// backend knows them (`None`: unknown before optimisation). Dynamic dims are -1.
    pub fn check_graph(
        &self,
        inputs: &[GraphTensor],
        outputs: &[GraphTensor],
    ) -> Result<(), ModelError> {
        let path = self.onnx_path();
        let mismatch = |what: String, got: String, want: String| ModelError::GraphMismatch {
            path: path.clone(),
            what,
            got,
            want,
        };
        let want_outputs: Vec<&TensorSpec> = self.outputs.iter().collect();
        for (kind, got, want) in [
            ("input", inputs, vec![&self.input]),
            ("output", outputs, want_outputs),
        ] {
            let got_names: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
            let want_names: Vec<&str> = want.iter().map(|w| w.name.as_str()).collect();
            if got_names != want_names {
                return Err(mismatch(
                    format!("{kind} names"),
                    got_names.join(", "),
                    want_names.join(", "),
                ));
            }
            for (g, w) in got.iter().zip(&want) {
                // A dynamic graph dim (-1) agrees with any manifest dim: the graph leaves it
                // to run time, where `Model::infer` checks every output's size.
                let agrees = |shape: &Vec<i64>| {
                    shape.len() == w.shape.len()
                        && shape.iter().zip(&w.shape).all(|(g, m)| g == m || *g == -1)
                };
                if let Some(shape) = &g.1
                    && !agrees(shape)
                {
                    return Err(mismatch(
                        format!("{kind} {} shape", g.0),
                        format!("{shape:?}"),
                        format!("{:?}", w.shape),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A graph input or output as a backend reports it: name and, if known, shape.
pub type GraphTensor = (String, Option<Vec<i64>>);

/// The SHA-256 of `bytes` as lowercase hex: how manifests, the result store and job
/// objects name content.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every manifest in `dir`, sorted by name, with its load result.
pub fn list_manifests(dir: &Path) -> Vec<(PathBuf, Result<Manifest, ModelError>)> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            // Other JSON beside the models (metrics files) is not a manifest: a manifest
            // names its ONNX file.
            let names_a_model = || {
                std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                    .is_none_or(|v| v.get("file").is_some())
            };
            if path.extension().is_some_and(|e| e == "json") && names_a_model() {
                let result = Manifest::read(&path);
                out.push((path, result));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

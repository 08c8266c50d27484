//! Model manifests and the inference backends behind one trait.
//!
//! A model is an ONNX file plus a JSON manifest beside it (`models/NAME.json`) naming its
//! input and outputs with shapes, its preprocessing, version, sha256 and model card. Both
//! are validated when the model is loaded: a missing file, a changed file (sha256) or a graph
//! whose inputs/outputs disagree with the manifest is a startup error naming the file.

mod config;
mod manifest;
mod ort_backend;
#[cfg(feature = "tract")]
mod tract_backend;

use std::path::{Path, PathBuf};

pub use config::{BackendKind, Device, ModelsConfig};
pub use manifest::sha256_hex;
pub use manifest::{Manifest, TensorSpec, TestTime, list_manifests};

/// Which model version produced a result: the manifest's name and the ONNX file's sha256.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ModelId {
    pub name: String,
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model manifest {path} not found; run `spectrald models` to list what is installed")]
    Missing { path: PathBuf },
    #[error("model manifest {path}: {message}")]
    BadManifest { path: PathBuf, message: String },
    #[error(
        "model file {path}: sha256 is {got}, the manifest says {want}; the file changed or is corrupt, re-export it or update the manifest"
    )]
    Checksum {
        path: PathBuf,
        got: String,
        want: String,
    },
    #[error("model file {path}: {what} is {got}, the manifest says {want}")]
    GraphMismatch {
        path: PathBuf,
        what: String,
        got: String,
        want: String,
    },
    #[error("model file {path}: {backend} could not load it: {message}")]
    Load {
        path: PathBuf,
        backend: &'static str,
        message: String,
    },
    #[error("ONNX Runtime is not available: {0}")]
    OrtUnavailable(String),
    #[error(
        "models.device = \"{device}\": {message}; point models.ort_library (or ORT_DYLIB_PATH) at the libonnxruntime.so of the onnxruntime-gpu wheel, or set device = \"cpu\""
    )]
    DeviceUnavailable {
        device: &'static str,
        message: String,
    },
    #[error(
        "backend \"tract\" was not compiled in; rebuild with `--features tract` or use backend = \"ort\""
    )]
    TractNotBuilt,
}

#[derive(Debug, thiserror::Error)]
pub enum InferError {
    #[error("{model}: {backend} failed: {message}")]
    Backend {
        model: String,
        backend: &'static str,
        message: String,
    },
    #[error("{model}: output {output} has {got} values, expected {want}")]
    OutputSize {
        model: String,
        output: String,
        got: usize,
        want: usize,
    },
    #[error(
        "{model}: output {output} is not finite (NaN or infinity); the input was probably corrupt"
    )]
    NotFinite { model: String, output: String },
    #[error("{model}: input has {got} values, expected {want} for a batch of {batch}")]
    InputSize {
        model: String,
        got: usize,
        want: usize,
        batch: usize,
    },
}

/// Runs one loaded ONNX graph. Outputs come back flattened, in manifest order.
pub trait Backend: Send {
    fn run(&mut self, input: &[f32], batch: usize) -> Result<Vec<Vec<f32>>, String>;
    fn name(&self) -> &'static str;
}

/// A validated model: its manifest and a backend session.
pub struct Model {
    pub manifest: Manifest,
    backend: Box<dyn Backend>,
}

impl Model {
    /// Loads `dir/NAME.json` and the ONNX file it names, checks sha256 and the graph's
    /// input/output names and shapes, and opens it with the configured backend.
    pub fn load(dir: &Path, name: &str, config: &ModelsConfig) -> Result<Model, ModelError> {
        Model::open(Manifest::read(&dir.join(format!("{name}.json")))?, config)
    }

    /// Opens the model a manifest (already read, perhaps [`Manifest::sized`]) describes.
    pub fn open(manifest: Manifest, config: &ModelsConfig) -> Result<Model, ModelError> {
        manifest.verify_checksum()?;
        let kind = resolve_backend(config)?;
        let backend: Box<dyn Backend> = match kind {
            BackendKind::Ort => Box::new(ort_backend::OrtBackend::open(&manifest, config)?),
            BackendKind::Tract => open_tract(&manifest)?,
            BackendKind::Auto => unreachable!("resolve_backend never returns Auto"),
        };
        Ok(Model { manifest, backend })
    }

    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// The length of one item of the input (1x128x128).
    pub fn input_len(&self) -> usize {
        self.manifest.input.item_len()
    }

    /// Runs a batch; checks the output sizes and that every value is finite.
    pub fn infer(&mut self, input: &[f32], batch: usize) -> Result<Vec<Vec<f32>>, InferError> {
        let model = || self.manifest.name.clone();
        let want = self.input_len() * batch;
        if input.len() != want {
            return Err(InferError::InputSize {
                model: model(),
                got: input.len(),
                want,
                batch,
            });
        }
        let outputs = self
            .backend
            .run(input, batch)
            .map_err(|message| InferError::Backend {
                model: model(),
                backend: self.backend.name(),
                message,
            })?;
        for (spec, values) in self.manifest.outputs.iter().zip(&outputs) {
            let want = spec.item_len() * batch;
            if values.len() != want {
                return Err(InferError::OutputSize {
                    model: model(),
                    output: spec.name.clone(),
                    got: values.len(),
                    want,
                });
            }
            if values.iter().any(|v| !v.is_finite()) {
                return Err(InferError::NotFinite {
                    model: model(),
                    output: spec.name.clone(),
                });
            }
        }
        Ok(outputs)
    }
}

#[cfg(feature = "tract")]
fn open_tract(manifest: &Manifest) -> Result<Box<dyn Backend>, ModelError> {
    Ok(Box::new(tract_backend::TractBackend::open(manifest)?))
}

#[cfg(not(feature = "tract"))]
fn open_tract(_: &Manifest) -> Result<Box<dyn Backend>, ModelError> {
    Err(ModelError::TractNotBuilt)
}

/// `auto` → ORT when its library loads, else tract; logs which and why (once).
pub fn resolve_backend(config: &ModelsConfig) -> Result<BackendKind, ModelError> {
    match config.backend {
        BackendKind::Ort => {
            ort_backend::ensure_initialized(config.ort_library.as_deref())?;
            Ok(BackendKind::Ort)
        }
        BackendKind::Tract => {
            if cfg!(feature = "tract") {
                Ok(BackendKind::Tract)
            } else {
                Err(ModelError::TractNotBuilt)
            }
        }
        BackendKind::Auto => match ort_backend::ensure_initialized(config.ort_library.as_deref()) {
            Ok(path) => {
                log_once(&format!(
                    "backend auto: using ONNX Runtime from {}",
                    path.display()
                ));
                Ok(BackendKind::Ort)
            }
            // A GPU was asked for: running on the CPU instead would hide the mistake.
            Err(e) if cfg!(feature = "tract") && config.device == Device::Cpu => {
                log_once(&format!(
                    "backend auto: using tract (pure Rust) because {e}"
                ));
                Ok(BackendKind::Tract)
            }
            Err(e) => Err(e),
        },
    }
}

fn log_once(message: &str) {
    static LOGGED: std::sync::Once = std::sync::Once::new();
    LOGGED.call_once(|| tracing::info!("{message}"));
}

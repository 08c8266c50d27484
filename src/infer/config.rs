//! `[models]`: which models run, on which backend and device, with which batching. The
//! inference layer owns these settings; `config` only collects them from the file.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::invalid::Invalid;

/// Which inference backend runs the models (config `models.backend`, `--backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// ONNX Runtime when its library is found, else tract (the log says which and why).
    #[default]
    Auto,
    Ort,
    Tract,
}

/// Upper bounds of the batching settings: beyond them a batch only adds latency.
const MAX_BATCH: usize = 256;
const MAX_BATCH_WAIT_MS: u64 = 1000;

/// Where ONNX Runtime runs the models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Device {
    #[default]
    Cpu,
    /// ONNX Runtime's CUDA execution provider (needs onnxruntime-gpu's library).
    Cuda,
    /// TensorRT, with CUDA for what TensorRT cannot run (needs TensorRT installed too).
    Tensorrt,
}

impl Device {
    pub fn as_str(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Cuda => "cuda",
            Device::Tensorrt => "tensorrt",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// Folder with the `*.onnx` files and their `*.json` manifests.
    pub dir: PathBuf,
    /// Manifest name (without `.json`) of the face detector.
    pub detector: String,
    /// Manifest names of the two DMSL models.
    pub boundary: String,
    pub landmark: String,
    pub backend: BackendKind,
    /// CPU, or a GPU through ONNX Runtime's execution providers.
    pub device: Device,
    /// Which GPU (CUDA device number) when `device` is not "cpu".
    pub gpu_id: u32,
    /// Threads per model session (intra-op).
    pub threads: usize,
    /// Most frames (from any camera) per model call; each brings one image per spectrum.
    pub max_batch: usize,
    /// How long an inference stage waits for a batch to fill; 0: only frames already queued.
    pub max_wait_ms: u64,
    /// ONNX Runtime shared library; empty: `ORT_DYLIB_PATH`, then `.cache/onnxruntime/`.
    pub ort_library: Option<PathBuf>,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        ModelsConfig {
            dir: PathBuf::from("models"),
            detector: "face-yunet-2023mar".into(),
            boundary: "dmsl-boundary-lite".into(),
            landmark: "dmsl-landmark-lite".into(),
            backend: BackendKind::Auto,
            device: Device::Cpu,
            gpu_id: 0,
            threads: 1,
            max_batch: 1,
            max_wait_ms: 0,
            ort_library: None,
        }
    }
}

impl ModelsConfig {
    /// Checks the section; the field names are relative to `[models]`.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.threads == 0 {
            return Err(Invalid::new("threads", "must be at least 1"));
        }
        if self.device != Device::Cpu && self.backend == BackendKind::Tract {
            return Err(Invalid::new(
                "device",
                format!(
                    "\"{}\" needs ONNX Runtime; set backend = \"ort\" (tract runs on the CPU only)",
                    self.device.as_str()
                ),
            ));
        }
        if !(1..=MAX_BATCH).contains(&self.max_batch) {
            return Err(Invalid::new(
                "max_batch",
                format!("must be 1 to {MAX_BATCH} frames, got {}", self.max_batch),
            ));
        }
        if self.max_wait_ms > MAX_BATCH_WAIT_MS {
            return Err(Invalid::new(
                "max_wait_ms",
                format!(
                    "must be at most {MAX_BATCH_WAIT_MS} ms (a frame waits that long for its batch), got {}",
                    self.max_wait_ms
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(ModelsConfig::default().validate(), Ok(()));
    }

    #[test]
    fn zero_threads_and_batches_out_of_range_are_refused() {
        let bad = |c: ModelsConfig| c.validate().unwrap_err().field;
        assert_eq!(
            bad(ModelsConfig {
                threads: 0,
                ..Default::default()
            }),
            "threads"
        );
        assert_eq!(
            bad(ModelsConfig {
                max_batch: 0,
                ..Default::default()
            }),
            "max_batch"
        );
        assert_eq!(
            bad(ModelsConfig {
                max_batch: 257,
                ..Default::default()
            }),
            "max_batch"
        );
        assert_eq!(
            bad(ModelsConfig {
                max_wait_ms: 1001,
                ..Default::default()
            }),
            "max_wait_ms"
        );
    }

    #[test]
    fn a_gpu_with_tract_is_refused_with_the_fix() {
        let e = ModelsConfig {
            device: Device::Cuda,
            backend: BackendKind::Tract,
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.field, "device");
        assert!(e.message.contains("backend = \"ort\""), "{e}");
    }
}

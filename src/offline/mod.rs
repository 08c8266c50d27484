//! The offline stage: ONNX models over stored imagery, beside the live pipeline.
//!
//! | module       | what it owns                                                          |
//! |--------------|-----------------------------------------------------------------------|
//! | [`raster`]   | reading PNG/JPEG/TIFF into [0, 1] band planes, band selection by name  |
//! | [`geotiff`]  | georeference tags: read from scenes, written on class maps            |
//! | [`model`]    | an offline model: manifest task/classes/bands checked against the graph |
//! | [`classify`] | scene classification, tiling large scenes into model-sized patches     |
//! | [`segment`]  | semantic segmentation, label and overlay pictures                      |
//! | [`refine`]   | contextual-regularization refinement of probability maps              |
//! | [`metrics`]  | confusion matrix, pixel/mean accuracy, mean/fw IU, precision/recall   |
//! | [`evaluate`] | scoring a model on a labelled folder                                  |
//! | [`store`]    | the SQLite result store (resume; the retrieval index's term vectors)  |
//! | [`retrieval`] | semantic retrieval: ontology, signatures, HSBD, feedback, NDCG      |
//! | [`retrieval_api`] | retrieval sessions over HTTP (in `serve-offline`)              |
//! | [`run`]      | many inputs: expansion, skipping stored results, failures, progress   |
//! | [`service`]  | `serve-offline`: the HTTP API with single images and folder jobs      |

pub mod classify;
pub mod evaluate;
pub mod geotiff;
pub mod lesion;
pub mod metrics;
pub mod model;
pub mod multiscale;
pub mod raster;
pub mod refine;
pub mod retrieval;
pub mod retrieval_api;
pub mod run;
pub mod segment;
pub mod service;
pub mod store;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use model::{OfflineModel, Task};

use crate::invalid::Invalid;

/// `[offline]`: settings of the offline commands (`spectrald offline … --config FILE`).
/// The daemon ignores them but checks them, so one file can serve both.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OfflineConfig {
    /// The dermoscopic lesion pipelines (docs/lesion.md).
    pub lesion: lesion::LesionParams,
}

impl OfflineConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        self.lesion.validate().map_err(|e| e.within("lesion"))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error(transparent)]
    Model(#[from] crate::infer::ModelError),
    #[error(transparent)]
    Infer(#[from] crate::infer::InferError),
    #[error(transparent)]
    Raster(#[from] raster::RasterError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    GeoTiff(#[from] geotiff::WriteError),
    #[error(
        "{path}: {width}x{height} is smaller than the model input {need_w}x{need_h}; use a larger image or a model with a smaller input"
    )]
    TooSmall {
        path: PathBuf,
        width: usize,
        height: usize,
        need_w: usize,
        need_h: usize,
    },
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Input(String),
    #[error("{path}: cannot write: {message}")]
    Output { path: PathBuf, message: String },
    #[error("resize failed: {0}")]
    Resize(String),
    #[error("dataset {path}: {message}")]
    Dataset { path: PathBuf, message: String },
}

//! The detector and the two DMSL models as the inference stages hold them: loaded, checked
//! against their task, warmed up once, and tagged with the id that goes into every record.
//! The same path serves startup and hot-swap, so a model that would fail at startup is
//! refused at swap.

use std::sync::Arc;

use fast_image_resize::Resizer;

use super::batch::Batching;
use crate::detect::{DetectorConfig, Heads};
use crate::dmsl::LANDMARK_COUNT;
use crate::infer::ModelId;
use crate::infer::ModelsConfig;
use crate::infer::{InferError, Model, ModelError};

#[derive(Debug, thiserror::Error)]
pub enum StageModelError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("model {model} ({path}) is not a DMSL {task} model: it needs an output named {output}")]
    WrongTask {
        model: String,
        path: String,
        task: &'static str,
        output: &'static str,
    },
    #[error(
        "model {model} ({path}) is not a YuNet face detector: it has no output {output}; set models.detector to a detector manifest (models/face-yunet-2023mar.json)"
    )]
    NotADetector {
        model: String,
        path: String,
        output: String,
    },
    #[error("model {model} failed its warm-up run: {source}")]
    WarmUp { model: String, source: InferError },
    #[error(
        "model {model}: output {output} holds {got} values per image, a DMSL {task} model has {want}"
    )]
    OutputShape {
        model: String,
        task: &'static str,
        output: &'static str,
        got: usize,
        want: usize,
    },
}

/// The face detector, sized to `[detector]`'s input, with its settings.
pub struct DetectorModel {
    pub model: Model,
    pub id: Arc<ModelId>,
    pub heads: Heads,
    pub config: DetectorConfig,
    pub batching: Batching,
    /// Scales frames to the detector input (reused buffers).
    pub resizer: Resizer,
}

/// The boundary model with the positions of its outputs.
pub struct BoundaryModel {
    pub model: Model,
    pub id: Arc<ModelId>,
    pub boxes: usize,
    pub mask: Option<usize>,
    /// Travels with the model so a reload that changes it takes effect like a swap.
    pub batching: Batching,
}

/// The landmark model with the position of its output.
pub struct LandmarkModel {
    pub model: Model,
    pub id: Arc<ModelId>,
    pub landmarks: usize,
    pub batching: Batching,
}

fn output_index(
    model: &Model,
    task: &'static str,
    output: &'static str,
) -> Result<usize, StageModelError> {
    model
        .manifest
        .outputs
        .iter()
        .position(|o| o.name == output)
        .ok_or_else(|| StageModelError::WrongTask {
            model: model.manifest.name.clone(),
            path: model.manifest.path.display().to_string(),
            task,
            output,
        })
}

fn id_of(model: &Model) -> Arc<ModelId> {
    Arc::new(ModelId {
        name: model.manifest.name.clone(),
        sha256: model.manifest.sha256.clone(),
    })
}

/// Runs one blank image through the model: the first run allocates and optimises (so the
/// first real frame after a swap is not slow), and a model whose graph does not match its
/// manifest fails here instead of on a frame.
fn warm_up(model: &mut Model) -> Result<Vec<Vec<f32>>, StageModelError> {
    let input = vec![0.0; model.input_len()];
    model
        .infer(&input, 1)
        .map_err(|source| StageModelError::WarmUp {
            model: model.manifest.name.clone(),
            source,
        })
}

fn check_len(
    model: &Model,
    task: &'static str,
    output: &'static str,
    got: usize,
    want: usize,
) -> Result<(), StageModelError> {
    if got == want {
        Ok(())
    } else {
        Err(StageModelError::OutputShape {
            model: model.manifest.name.clone(),
            task,
            output,
            got,
            want,
        })
    }
}

impl DetectorModel {
    pub fn load(
        name: &str,
        config: &ModelsConfig,
        detector: &DetectorConfig,
    ) -> Result<Self, StageModelError> {
        let manifest = crate::infer::Manifest::read(&config.dir.join(format!("{name}.json")))?
            .sized(detector.model_size().1, detector.model_size().0);
        let names: Vec<&str> = manifest.outputs.iter().map(|o| o.name.as_str()).collect();
        let heads = Heads::find(&names).map_err(|output| StageModelError::NotADetector {
            model: manifest.name.clone(),
            path: manifest.path.display().to_string(),
            output,
        })?;
        let mut model = Model::open(manifest, config)?;
        warm_up(&mut model)?;
        Ok(DetectorModel {
            id: id_of(&model),
            model,
            heads,
            config: detector.clone(),
            batching: Batching::from_config(config),
            resizer: Resizer::new(),
        })
    }
}

impl BoundaryModel {
    pub fn load(name: &str, config: &ModelsConfig) -> Result<Self, StageModelError> {
        let mut model = Model::load(&config.dir, name, config)?;
        let boxes = output_index(&model, "boundary", "box")?;
        let mask = output_index(&model, "boundary", "mask").ok();
        let outputs = warm_up(&mut model)?;
        check_len(&model, "boundary", "box", outputs[boxes].len(), 4)?;
        Ok(BoundaryModel {
            id: id_of(&model),
            model,
            boxes,
            mask,
            batching: Batching::from_config(config),
        })
    }
}

impl LandmarkModel {
    pub fn load(name: &str, config: &ModelsConfig) -> Result<Self, StageModelError> {
        let mut model = Model::load(&config.dir, name, config)?;
        let landmarks = output_index(&model, "landmark", "landmarks")?;
        let outputs = warm_up(&mut model)?;
        check_len(
            &model,
            "landmark",
            "landmarks",
            outputs[landmarks].len(),
            LANDMARK_COUNT * 2,
        )?;
        Ok(LandmarkModel {
            id: id_of(&model),
            model,
            landmarks,
            batching: Batching::from_config(config),
        })
    }
}

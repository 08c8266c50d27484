//! tract: pure-Rust ONNX inference. Zero setup (no shared library), about half ORT's speed;
//! the fallback when ONNX Runtime is absent and an independent cross-check of it in tests.

use std::collections::HashMap;
use std::sync::Arc;

use tract_onnx::prelude::*;

use super::manifest::GraphTensor;
use super::{Backend, Manifest, ModelError, TensorSpec};

type Plan = Arc<TypedRunnableModel>;

pub struct TractBackend {
    /// The parsed graph; a plan is optimised per batch size on first use (tract specialises
    /// shapes at optimisation time) and kept.
    model: InferenceModel,
    plans: HashMap<usize, Plan>,
    input_spec: TensorSpec,
    path: std::path::PathBuf,
}

impl TractBackend {
    pub fn open(manifest: &Manifest) -> Result<TractBackend, ModelError> {
        let path = manifest.onnx_path();
        let load = |message: String| ModelError::Load {
            path: path.clone(),
            backend: "tract",
            message,
        };
        let model = tract_onnx::onnx()
            .model_for_path(&path)
            .map_err(|e| load(e.to_string()))?;
        // ONNX tensor names are the outlet labels; shapes are checked per optimised plan.
        let names = |outlets: &[OutletId]| -> Vec<GraphTensor> {
            outlets
                .iter()
                .map(|o| {
                    (
                        model
                            .outlet_label(*o)
                            .unwrap_or(&model.node(o.node).name)
                            .to_string(),
                        None,
                    )
                })
                .collect()
        };
        let inputs = names(model.input_outlets().map_err(|e| load(e.to_string()))?);
        let outputs = names(model.output_outlets().map_err(|e| load(e.to_string()))?);
        manifest.check_graph(&inputs, &outputs)?;
        let mut backend = TractBackend {
            model,
            plans: HashMap::new(),
            input_spec: manifest.input.clone(),
            path: path.clone(),
        };
        // Optimise batch 1 now so a graph tract cannot run fails at startup, not mid-stream.
        backend.plan(1).map_err(load)?;
        Ok(backend)
    }

    fn plan(&mut self, batch: usize) -> Result<Plan, String> {
        if let Some(plan) = self.plans.get(&batch) {
            return Ok(plan.clone());
        }
        let shape = self.input_spec.shape_for_batch(batch);
        let plan = self
            .model
            .clone()
            .with_input_fact(0, f32::fact(&shape).into())
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        self.plans.insert(batch, plan.clone());
        Ok(plan)
    }
}

impl Backend for TractBackend {
    fn run(&mut self, input: &[f32], batch: usize) -> Result<Vec<Vec<f32>>, String> {
        let plan = self.plan(batch)?;
        let shape = self.input_spec.shape_for_batch(batch);
        let tensor = Tensor::from_shape(&shape, input).map_err(|e| e.to_string())?;
        let results = plan.run(tvec!(tensor.into())).map_err(|e| e.to_string())?;
        results
            .iter()
            .map(|t| {
                t.to_plain_array_view::<f32>()
                    .map(|a| a.iter().copied().collect())
                    .map_err(|e| e.to_string())
            })
            .collect()
    }

    fn name(&self) -> &'static str {
        "tract"
    }
}

//! ONNX Runtime through the `ort` crate, loading `libonnxruntime.so` at run time.
//!
//! The library comes from PyPI's `onnxruntime` wheel (the README's setup puts it in
//! `.cache/onnxruntime/lib/`), or from `ORT_DYLIB_PATH`, or from `models.ort_library`.
//! Intra-op spinning is off: on a 2-core box spinning threads steal the other stages' CPU.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::ep;
use ort::session::Session;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::value::TensorRef;

use super::manifest::GraphTensor;
use super::{Backend, Manifest, ModelError, TensorSpec};
use super::{Device, ModelsConfig};

static ENVIRONMENT: OnceLock<Result<(Environment, PathBuf), String>> = OnceLock::new();

/// Where to look for the library, in order.
fn candidates(configured: Option<&Path>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = configured {
        out.push(p.to_owned());
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        out.push(PathBuf::from(p));
    }
    let mut roots = vec![PathBuf::from(".")];
    // target/<profile>/spectrald → the checkout it was built in.
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).take(4).map(Path::to_path_buf));
    }
    for root in roots {
        let dir = root.join(".cache/onnxruntime/lib");
        if let Ok(entries) = std::fs::read_dir(&dir) {
            let mut libs: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("libonnxruntime.so"))
                })
                .collect();
            libs.sort();
            out.extend(libs);
        }
    }
    out
}

/// Loads the library once per process; later calls return the same answer.
pub fn ensure_initialized(configured: Option<&Path>) -> Result<PathBuf, ModelError> {
    let result = ENVIRONMENT.get_or_init(|| {
        let tried = candidates(configured);
        let Some(path) = tried.iter().find(|p| p.is_file()).cloned() else {
            return Err("no libonnxruntime.so found (looked at models.ort_library, ORT_DYLIB_PATH and .cache/onnxruntime/lib); run `scripts/setup.sh` or set ORT_DYLIB_PATH".to_string());
        };
        // ort reports a library it cannot use by panicking in some versions: contain it.
        let loaded = std::panic::catch_unwind(|| ort::init_from(&path).map_err(|e| e.to_string()).and_then(|b| b.with_name("spectrald").build().map_err(|e| e.to_string())));
        match loaded {
            Ok(Ok(env)) => Ok((env, path)),
            Ok(Err(e)) => Err(format!("{}: {e}", path.display())),
            Err(_) => Err(format!("{}: the library could not be loaded (wrong version? spectrald needs ONNX Runtime 1.31)", path.display())),
        }
    });
    match result {
        Ok((_, path)) => Ok(path.clone()),
        Err(e) => Err(ModelError::OrtUnavailable(e.clone())),
    }
}

pub struct OrtBackend {
    session: Session,
    input: String,
    outputs: Vec<String>,
    input_spec: TensorSpec,
}

impl OrtBackend {
    pub fn open(manifest: &Manifest, config: &ModelsConfig) -> Result<OrtBackend, ModelError> {
        let path = manifest.onnx_path();
        let load = |message: String| ModelError::Load {
            path: path.clone(),
            backend: "ort",
            message,
        };
        let env = match ENVIRONMENT.get() {
            Some(Ok((env, _))) => env,
            _ => return Err(ModelError::OrtUnavailable("not initialised".into())),
        };
        let builder = Session::builder(env)
            .and_then(|b| {
                b.with_optimization_level(GraphOptimizationLevel::Level3)
                    .map_err(Into::into)
            })
            .map_err(|e| load(e.to_string()))?;
        let builder = with_device(builder, config.device, config.gpu_id)?;
        let session = builder
            .with_intra_threads(config.threads)
            .map_err(Into::into)
            .and_then(|b| b.with_inter_threads(1).map_err(Into::into))
            .and_then(|b| b.with_intra_op_spinning(false).map_err(Into::into))
            .and_then(|mut b| b.commit_from_file(&path))
            .map_err(|e| load(e.to_string()))?;
        let describe = |outlets: &[ort::value::Outlet]| -> Vec<GraphTensor> {
            outlets
                .iter()
                .map(|o| {
                    (
                        o.name().to_string(),
                        o.dtype()
                            .tensor_shape()
                            .map(|s| s.iter().map(|d| if *d < 0 { -1 } else { *d }).collect()),
                    )
                })
                .collect()
        };
        manifest.check_graph(&describe(session.inputs()), &describe(session.outputs()))?;
        Ok(OrtBackend {
            input: manifest.input.name.clone(),
            outputs: manifest.outputs.iter().map(|o| o.name.clone()).collect(),
            input_spec: manifest.input.clone(),
            session,
        })
    }
}

/// Registers the GPU execution providers `device` asks for. Failing to register one is an
/// error, not a silent fall back to the CPU: a GPU box running on its CPU is a mistake the
/// operator must see.
fn with_device(
    builder: SessionBuilder,
    device: Device,
    gpu_id: u32,
) -> Result<SessionBuilder, ModelError> {
    let gpu_id = i32::try_from(gpu_id).unwrap_or(i32::MAX);
    let cuda = || {
        ep::CUDA::default()
            .with_device_id(gpu_id)
            .build()
            .error_on_failure()
    };
    let providers = match device {
        Device::Cpu => return Ok(builder),
        Device::Cuda => vec![cuda()],
        // TensorRT first; CUDA runs the nodes TensorRT cannot take.
        Device::Tensorrt => vec![
            ep::TensorRT::default()
                .with_device_id(gpu_id)
                .build()
                .error_on_failure(),
            cuda(),
        ],
    };
    builder
        .with_execution_providers(providers)
        .map_err(|e| ModelError::DeviceUnavailable {
            device: device.as_str(),
            message: e.to_string().trim_end_matches('.').to_owned(),
        })
}

impl Backend for OrtBackend {
    fn run(&mut self, input: &[f32], batch: usize) -> Result<Vec<Vec<f32>>, String> {
        let shape = self.input_spec.shape_for_batch(batch);
        let tensor = TensorRef::from_array_view((shape, input)).map_err(|e| e.to_string())?;
        let results = self
            .session
            .run(ort::inputs![self.input.as_str() => tensor])
            .map_err(|e| e.to_string())?;
        let mut out = Vec::with_capacity(self.outputs.len());
        for name in &self.outputs {
            let value = results
                .get(name)
                .ok_or_else(|| format!("output {name} missing from the results"))?;
            let (_, data) = value
                .try_extract_tensor::<f32>()
                .map_err(|e| e.to_string())?;
            out.push(data.to_vec());
        }
        Ok(out)
    }

    fn name(&self) -> &'static str {
        "ort"
    }
}

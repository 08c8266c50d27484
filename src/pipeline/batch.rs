//! Dynamic batching for the inference stages (detector, boundary, landmark).
//!
//! The inference stages serve every camera, so frames waiting in their queue may come from
//! different cameras; they go through the model in one call, up to `max_frames` frames (each
//! brings its items: one image per healthy spectrum for the detector, one crop per face for
//! the DMSL models; a frame without faces brings none). With `max_wait` zero a stage never waits for a batch
//! to fill: it takes what is already queued, so batches grow only when the stage is behind
//! and a lone frame is never delayed. A positive `max_wait` trades that latency for fuller
//! batches (GPUs, where one call of 32 costs little more than one of 2).
//!
//! A batch that fails is run again frame by frame, so one corrupt frame fails only itself.

use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use crate::frame::{Frame, Spectrum};
use crate::infer::Model;
use crate::infer::ModelsConfig;
use crate::stage::Stage;
use crate::telemetry::Events;

/// How an inference stage groups frames into one model call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// Most frames per model call (at least 1).
    pub max_frames: usize,
    /// How long to wait for more frames once one is there (zero: only take queued ones).
    pub max_wait: Duration,
}

impl Batching {
    pub fn from_config(config: &ModelsConfig) -> Batching {
        Batching {
            max_frames: config.max_batch.max(1),
            max_wait: Duration::from_millis(config.max_wait_ms),
        }
    }
}

/// Fills `batch` with the next frames: blocks for the first, then takes more as `policy`
/// allows. False when the input has closed and nothing is left.
pub fn next_batch(rx: &Receiver<Frame>, policy: Batching, batch: &mut Vec<Frame>) -> bool {
    batch.clear();
    match rx.recv() {
        Ok(frame) => batch.push(frame),
        Err(_) => return false,
    }
    let deadline = Instant::now() + policy.max_wait;
    while batch.len() < policy.max_frames {
        let next = match rx.try_recv() {
            Ok(frame) => Some(frame),
            Err(_) if policy.max_wait.is_zero() => None,
            Err(_) => rx.recv_deadline(deadline).ok(),
        };
        match next {
            Some(frame) => batch.push(frame),
            None => break,
        }
    }
    true
}

/// One model input of a frame: an image of a spectrum (detector) or one of its faces.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Item {
    pub spectrum: Spectrum,
    /// The face, for the per-face models.
    pub face: Option<usize>,
    /// Source → model input scale (detector inputs; 1 otherwise).
    pub scale: f32,
}

/// The outputs of one model call, and the (frame index, item) each input belongs to.
pub struct BatchOutput {
    pub items: Vec<(usize, Item)>,
    pub outputs: Vec<Vec<f32>>,
}

impl BatchOutput {
    /// Input `i`'s values of output `output`.
    pub fn item(&self, output: usize, i: usize) -> &[f32] {
        let values = &self.outputs[output];
        let len = values.len() / self.items.len();
        &values[i * len..(i + 1) * len]
    }
}

/// What an inference stage's model gives the batching: its inputs per frame.
pub trait Inputs {
    /// Appends `frame`'s inputs to `input`, one model input each, and names them.
    fn fill(&mut self, frame: &mut Frame, input: &mut Vec<f32>) -> Vec<Item>;
    fn model_mut(&mut self) -> &mut Model;
}

/// Runs the model on the inputs of every healthy spectrum of `frames` as one batch.
/// `input` is the stage's reusable buffer. A frame whose inference failed carries the error
/// in the results of its spectra and is counted; it still goes on.
pub fn infer_frames<M: Inputs>(
    stage: Stage,
    frames: &mut [Frame],
    model: &mut M,
    input: &mut Vec<f32>,
    events: &Events,
) -> Vec<BatchOutput> {
    let mut items = Vec::with_capacity(frames.len() * 2);
    input.clear();
    for (index, frame) in frames.iter_mut().enumerate() {
        let start = input.len();
        for item in model.fill(frame, input) {
            items.push((index, item));
        }
        super::faults::poison_input(stage, frame.sequence, &mut input[start..]);
    }
    if items.is_empty() {
        return Vec::new();
    }
    let name = model.model_mut().manifest.name.clone();
    events.observe_batch(&name, items.len());
    match model.model_mut().infer(input, items.len()) {
        Ok(outputs) => vec![BatchOutput { items, outputs }],
        Err(e) if frames.len() > 1 => {
            tracing::debug!(
                stage = stage.as_str(),
                frames = frames.len(),
                "batch failed ({e}); running its frames one by one"
            );
            let mut out = Vec::new();
            for index in 0..frames.len() {
                for mut single in
                    infer_frames(stage, &mut frames[index..=index], model, input, events)
                {
                    single.items.iter_mut().for_each(|(i, _)| *i = index);
                    out.push(single);
                }
            }
            out
        }
        Err(e) => {
            let frame = &mut frames[0];
            events.inference_failed(&frame.camera, &name, &e.to_string());
            for (_, item) in &items {
                if let Some(r) = frame.result_mut(item.spectrum) {
                    r.error = Some(format!("inference_failed: {e}"));
                }
            }
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn frame(sequence: u64) -> Frame {
        Frame::new(Arc::from("cam"), sequence, None, None)
    }

    fn sequences(batch: &[Frame]) -> Vec<u64> {
        batch.iter().map(|f| f.sequence).collect()
    }

    #[test]
    fn without_a_wait_a_batch_is_what_is_already_queued() {
        let (tx, rx) = crossbeam_channel::bounded(16);
        for s in 0..5 {
            tx.send(frame(s)).unwrap();
        }
        let policy = Batching {
            max_frames: 3,
            max_wait: Duration::ZERO,
        };
        let mut batch = Vec::new();
        assert!(next_batch(&rx, policy, &mut batch));
        assert_eq!(sequences(&batch), [0, 1, 2]);
        assert!(next_batch(&rx, policy, &mut batch));
        assert_eq!(sequences(&batch), [3, 4], "a partial batch runs at once");
        drop(tx);
        assert!(!next_batch(&rx, policy, &mut batch), "closed and empty");
    }

    #[test]
    fn with_a_wait_late_frames_join_the_batch_until_the_deadline() {
        let (tx, rx) = crossbeam_channel::bounded(16);
        tx.send(frame(0)).unwrap();
        let late = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            // Well inside the deadline; the next one well after it.
            tx.send(frame(1)).unwrap();
            std::thread::sleep(Duration::from_millis(2500));
            tx.send(frame(2)).unwrap();
        });
        let policy = Batching {
            max_frames: 8,
            max_wait: Duration::from_millis(1000),
        };
        let mut batch = Vec::new();
        assert!(next_batch(&rx, policy, &mut batch));
        assert_eq!(sequences(&batch), [0, 1], "frame 2 came after the deadline");
        assert!(next_batch(&rx, policy, &mut batch));
        assert_eq!(sequences(&batch), [2]);
        late.join().unwrap();
    }

    #[test]
    fn batching_of_one_takes_frames_one_at_a_time() {
        let (tx, rx) = crossbeam_channel::bounded(4);
        tx.send(frame(0)).unwrap();
        tx.send(frame(1)).unwrap();
        let mut batch = Vec::new();
        let one = Batching::from_config(&ModelsConfig::default());
        assert_eq!(one.max_frames, 1);
        assert!(next_batch(&rx, one, &mut batch));
        assert_eq!(sequences(&batch), [0]);
    }
}

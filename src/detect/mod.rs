//! Face detection: YuNet (OpenCV Zoo, MIT) finds every face of a frame, with a score, a box
//! and five keypoints, before the DMSL models look at each face on its own.
//!
//! The model (`models/face-yunet-2023mar.onnx`, size-free: `models/train/yunet_dynamic.py`)
//! takes BGR 0-255 at `[detector] input_width × input_height` (multiples of 32). The frame is
//! scaled to fit (aspect kept), placed top-left and padded black, so a detection maps back by
//! dividing by the scale. [`decode`] turns the three stride heads into detections exactly as
//! OpenCV's `FaceDetectorYN` does (checked against it in the tests); `models/train/detector.py`
//! is the same code for the Python side.

mod config;
mod decode;
mod input;

pub use config::{DetectorConfig, ThermalDetection};
pub use decode::{Detection, Heads, decode, iou, nms};
pub use input::{gray_input, rgb_input};

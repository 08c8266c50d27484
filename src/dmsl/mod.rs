//! The DMSL steps around the two models (paper: Keong et al., "Multi-spectral Facial
//! Landmark Detection"): each detected face cropped to the 128x128 input (`crop.rs`; the
//! whole-frame letterbox in `preprocess.rs`), the black-out of everything outside the
//! predicted face boundary, mapping outputs back to source pixels, and NME.
//!
//! The definitions mirror `models/train/dmsl_preprocess.py` exactly: the models are trained
//! on what this module produces (`tests/preprocess_parity.rs` checks it).

mod crop;
mod landmarks;
mod preprocess;

pub use crop::{CENTRE_SHIFT, CROP_SCALE, FaceCrop};
pub use landmarks::{LANDMARK_COUNT, landmark_mask, nme};
pub use preprocess::{
    BLACKOUT_MARGIN, CANVAS, Letterbox, blackout, box_score, gray_from_rgb8, gray_from_thermal,
    letterbox,
};

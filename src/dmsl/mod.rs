//! The DMSL steps around the two models (paper: Keong et al., "Multi-spectral Facial
//! Landmark Detection"): preprocessing to the 128x128 input, the black-out of everything
//! outside the predicted face boundary, mapping outputs back to source pixels, and NME.
//!
//! The definitions mirror `models/train/dmsl_preprocess.py` exactly: the models are trained
//! on what this module produces (`tests/preprocess_parity.rs` checks it).

mod landmarks;
mod preprocess;

pub use landmarks::{LANDMARK_COUNT, landmark_mask, nme};
pub use preprocess::{
    BLACKOUT_MARGIN, CANVAS, Letterbox, blackout, box_score, gray_from_rgb8, gray_from_thermal,
    letterbox,
};

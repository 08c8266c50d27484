//! Shapes shared by every layer: the face box of the models, the registration and the
//! thermal readings. It sits at the bottom so that none of them has to import another
//! to agree on what a box is.

use serde::Serialize;

/// A box in some coordinate system: normalised [0, 1] canvas or source pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BoundingBox {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

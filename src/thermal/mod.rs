//! Thermal imaging: what raw 16-bit values mean and how they are shown.
//!
//! * [`radiometry`]: raw counts (Planck) or centi-kelvin → °C, and back.
//! * [`agc`]: raw values → the model's [0, 1] input (fixed raw or °C range, percentile,
//!   histogram equalization).
//! * [`palette`]: [0, 1] → colour (iron, rainbow, white-hot) for overlays.
//! * [`face`]: temperature statistics inside a face box and at the inner eye corners.

pub mod agc;
pub mod face;
pub mod palette;
pub mod radiometry;

pub use radiometry::{Converter, Radiometry};

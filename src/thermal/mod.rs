//! Thermal imaging: what raw 16-bit values mean and how they are shown.
//!
//! * [`radiometry`]: raw counts (Planck) or centi-kelvin → °C, and back.
//! * [`agc`]: raw values → the model's [0, 1] input (fixed raw or °C range, percentile,
//!   histogram equalization).
//! * [`palette`]: [0, 1] → colour (iron, rainbow, white-hot) for overlays.
//! * [`face`]: temperature statistics inside a face box and at the inner eye corners.
//! * `config`: the `[thermal]` section and a camera's `radiometry` table.

pub mod agc;
mod config;
pub mod face;
pub mod palette;
pub mod radiometry;

pub use config::{RadiometryConfig, ThermalConfig, ThermalNormalization, ThermalUnits};
pub use radiometry::{Converter, Radiometry};

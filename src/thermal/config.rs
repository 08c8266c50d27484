//! `[thermal]` and a camera's `[cameras.radiometry]`: how raw thermal values become the
//! model's input and what they mean in °C. Owned by the thermal layer.

use serde::{Deserialize, Serialize};

use super::radiometry::{ObjectOverrides, PlanckConstants, Radiometry};
use crate::invalid::Invalid;

/// How raw thermal values become the model's [0, 1] input.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum ThermalNormalization {
    /// Fixed range of raw values: `low` maps to 0, `high` to 1.
    Fixed { low: f32, high: f32 },
    /// Automatic gain per frame between two percentiles of its values.
    Percentile { low: f32, high: f32 },
    /// Fixed temperature range in °C (needs radiometric frames): a face always looks the same.
    FixedCelsius { low_c: f32, high_c: f32 },
    /// Histogram equalization per frame.
    Equalize,
}

impl Default for ThermalNormalization {
    fn default() -> Self {
        ThermalNormalization::Percentile {
            low: 1.0,
            high: 99.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThermalConfig {
    pub normalization: ThermalNormalization,
}

/// What the thermal values of a camera mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ThermalUnits {
    /// As the source says: FLIR files carry Planck constants, a recorded session its
    /// `radiometry.json`; live streams have none unless configured.
    #[default]
    Auto,
    /// TLinear: centi-kelvin.
    Centikelvin,
    /// Raw counts with the Planck constants in `planck`.
    Planck,
    /// Not radiometric: no temperatures.
    None,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RadiometryConfig {
    pub units: ThermalUnits,
    /// Required for `units = "planck"` (the camera's R1, R2, B, F, O).
    pub planck: Option<PlanckConstants>,
    /// Overrides of the scene (emissivity, distance_m, reflected_c, atmospheric_c,
    /// humidity); unset fields keep the file's values or the skin defaults.
    pub object: ObjectOverrides,
}

impl RadiometryConfig {
    /// True when [`RadiometryConfig::resolve`] returns the source's radiometry unchanged.
    pub fn is_passthrough(&self) -> bool {
        self.units == ThermalUnits::Auto && self.object == ObjectOverrides::default()
    }

    /// What a frame's values mean, given what its source said.
    pub fn resolve(&self, from_source: Option<&Radiometry>) -> Option<Radiometry> {
        let base = match self.units {
            ThermalUnits::Auto => from_source.copied(),
            ThermalUnits::Centikelvin => Some(Radiometry::Centikelvin),
            ThermalUnits::Planck => self.planck.map(|planck| Radiometry::Planck {
                planck,
                atmosphere: Default::default(),
                object: Default::default(),
            }),
            ThermalUnits::None => None,
        };
        base.map(|r| r.with_overrides(&self.object))
    }
}

impl ThermalConfig {
    /// Checks `[thermal]`: ranges that are ranges.
    pub fn validate(&self) -> Result<(), Invalid> {
        let message = match self.normalization {
            ThermalNormalization::Fixed { low, high }
                if high.partial_cmp(&low) != Some(std::cmp::Ordering::Greater) =>
            {
                format!("fixed range needs high > low, got low={low} high={high}")
            }
            ThermalNormalization::FixedCelsius { low_c, high_c }
                if high_c.partial_cmp(&low_c) != Some(std::cmp::Ordering::Greater) =>
            {
                format!("fixed_celsius needs high_c > low_c, got low_c={low_c} high_c={high_c}")
            }
            ThermalNormalization::Percentile { low, high }
                if !(0.0 <= low && low < high && high <= 100.0) =>
            {
                format!("percentiles need 0 <= low < high <= 100, got low={low} high={high}")
            }
            _ => return Ok(()),
        };
        Err(Invalid::new("normalization", message))
    }
}

impl RadiometryConfig {
    /// Checks a camera's `radiometry` table: Planck units need their constants, and the
    /// object parameters must be physical.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.units == ThermalUnits::Planck && self.planck.is_none() {
            return Err(Invalid::new(
                "planck",
                "units = \"planck\" needs the camera's constants: planck = { r1 = …, r2 = …, b = …, f = …, o = … }",
            ));
        }
        if let Some(r) = self.resolve(None)
            && let Err(e) = r.validate()
        {
            return Err(Invalid::new("", e.to_string()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_must_be_ranges() {
        assert_eq!(ThermalConfig::default().validate(), Ok(()));
        for normalization in [
            ThermalNormalization::Fixed {
                low: 10.0,
                high: 10.0,
            },
            ThermalNormalization::FixedCelsius {
                low_c: 40.0,
                high_c: 25.0,
            },
            ThermalNormalization::Percentile {
                low: 5.0,
                high: 101.0,
            },
            ThermalNormalization::Percentile {
                low: f32::NAN,
                high: 99.0,
            },
        ] {
            let e = ThermalConfig { normalization }.validate().unwrap_err();
            assert_eq!(e.field, "normalization", "{normalization:?}");
        }
    }

    #[test]
    fn planck_units_need_the_constants() {
        assert_eq!(RadiometryConfig::default().validate(), Ok(()));
        let e = RadiometryConfig {
            units: ThermalUnits::Planck,
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.field, "planck");
    }
}

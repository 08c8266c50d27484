//! `[pairing]`: how visible and thermal frames are matched, owned by the pair stage.

use serde::{Deserialize, Serialize};

use crate::invalid::Invalid;

/// What happens to a frame that found no partner of the other spectrum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Unmatched {
    /// Run it through the models on its own (single-spectrum output).
    #[default]
    ProcessAlone,
    /// Drop it (counted as `unmatched`).
    Drop,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PairingConfig {
    /// Largest |visible - thermal| capture-time difference that still makes a pair.
    pub tolerance_ms: f64,
    /// Added to thermal timestamps before matching (the thermal clock's offset).
    pub thermal_offset_ms: f64,
    pub unmatched: Unmatched,
    /// A visible frame waits at most this long (wall clock) for its thermal partner when
    /// the thermal stream has gone quiet; then it goes on alone or is dropped.
    pub max_wait_ms: u64,
}

impl Default for PairingConfig {
    fn default() -> Self {
        PairingConfig {
            tolerance_ms: 20.0,
            thermal_offset_ms: 0.0,
            unmatched: Unmatched::ProcessAlone,
            max_wait_ms: 500,
        }
    }
}

impl PairingConfig {
    /// Checks `[pairing]`.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.tolerance_ms.is_nan() || self.tolerance_ms < 0.0 {
            return Err(Invalid::new(
                "tolerance_ms",
                format!("must be >= 0, got {}", self.tolerance_ms),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_negative_or_nan_tolerance_is_refused() {
        assert_eq!(PairingConfig::default().validate(), Ok(()));
        for tolerance_ms in [-1.0, f64::NAN] {
            let e = PairingConfig {
                tolerance_ms,
                ..Default::default()
            }
            .validate()
            .unwrap_err();
            assert_eq!(e.field, "tolerance_ms");
        }
    }
}

//! Thermal values → model input range.
//!
//! A radiometric camera delivers 16-bit values (raw counts, or centi-kelvin in "TLinear"
//! mode). The model wants [0, 1]; the physical values stay with the frame for the output.
//! Planck conversion of raw counts to °C comes with the live-capture sources.

use crate::config::ThermalNormalization;

/// The (low, high) raw values that map to 0 and 1 for this frame.
pub fn normalization_range(values: &[u16], normalization: ThermalNormalization) -> (f32, f32) {
    match normalization {
        ThermalNormalization::Fixed { low, high } => (low, high),
        ThermalNormalization::Percentile { low, high } => percentile_range(values, low, high),
    }
}

/// Nearest-rank percentiles over a 65536-bin histogram (linear time, no sort); the high end
/// is kept at least one count above the low end so a flat frame does not divide by zero.
pub fn percentile_range(values: &[u16], low_pct: f32, high_pct: f32) -> (f32, f32) {
    if values.is_empty() {
        return (0.0, 1.0);
    }
    let mut histogram = vec![0u32; 1 << 16];
    for &v in values {
        histogram[v as usize] += 1;
    }
    let n = values.len();
    let rank =
        |pct: f32| -> usize { ((pct as f64 / 100.0 * (n - 1) as f64).round() as usize).min(n - 1) };
    let value_at = |wanted: usize| -> f32 {
        let mut seen = 0usize;
        for (value, count) in histogram.iter().enumerate() {
            seen += *count as usize;
            if seen > wanted {
                return value as f32;
            }
        }
        u16::MAX as f32
    };
    let low = value_at(rank(low_pct));
    let high = value_at(rank(high_pct)).max(low + 1.0);
    (low, high)
}

/// Centi-kelvin (TLinear) → degrees Celsius.
pub fn centikelvin_to_celsius(value: u16) -> f32 {
    value as f32 / 100.0 - 273.15
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_match_nearest_rank() {
        let values: Vec<u16> = (0..=100).map(|v| v * 10).collect();
        assert_eq!(percentile_range(&values, 1.0, 99.0), (10.0, 990.0));
        assert_eq!(percentile_range(&[7, 7, 7], 1.0, 99.0), (7.0, 8.0));
    }

    #[test]
    fn centikelvin_converts() {
        assert!((centikelvin_to_celsius(30715) - 34.0).abs() < 1e-3);
    }
}

//! Automatic gain control: raw thermal values → the model's [0, 1] input.
//!
//! Fixed ranges keep a calibrated look (a face at 34 °C is always the same grey), percentile
//! stretching adapts to the scene, histogram equalization spreads a low-contrast scene over
//! the whole range (the paper's thermal inputs look like this).

use super::ThermalNormalization;
use crate::thermal::radiometry::Converter;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AgcError {
    #[error(
        "thermal.normalization = fixed_celsius needs temperatures, but this camera's thermal frames have no radiometry; set [cameras.radiometry] or use mode = \"percentile\""
    )]
    NoRadiometry,
}

/// Maps every value to [0, 1] according to `normalization`.
pub fn normalize(
    values: &[u16],
    normalization: ThermalNormalization,
    converter: Option<&Converter>,
) -> Result<Vec<f32>, AgcError> {
    let (low, high) = match normalization {
        ThermalNormalization::Fixed { low, high } => (low, high),
        ThermalNormalization::Percentile { low, high } => percentile_range(values, low, high),
        ThermalNormalization::FixedCelsius { low_c, high_c } => {
            let c = converter.ok_or(AgcError::NoRadiometry)?;
            (
                c.raw_for(low_c as f64) as f32,
                c.raw_for(high_c as f64) as f32,
            )
        }
        ThermalNormalization::Equalize => return Ok(equalize(values)),
    };
    let span = high - low;
    Ok(values
        .iter()
        .map(|&v| ((v as f32 - low) / span).clamp(0.0, 1.0))
        .collect())
}

fn histogram(values: &[u16]) -> Vec<u32> {
    let mut histogram = vec![0u32; 1 << 16];
    for &v in values {
        histogram[v as usize] += 1;
    }
    histogram
}

/// Nearest-rank percentiles over a 65536-bin histogram (linear time, no sort); the high end
/// is kept at least one count above the low end so a flat frame does not divide by zero.
pub fn percentile_range(values: &[u16], low_pct: f32, high_pct: f32) -> (f32, f32) {
    if values.is_empty() {
        return (0.0, 1.0);
    }
    let histogram = histogram(values);
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

/// Histogram equalization: each value maps to the fraction of pixels below it (midpoint
/// rank), so the output histogram is as flat as the input's ties allow.
pub fn equalize(values: &[u16]) -> Vec<f32> {
    if values.is_empty() {
        return Vec::new();
    }
    let histogram = histogram(values);
    let n = values.len() as f32;
    let mut below = 0u32;
    let mut level = vec![0f32; 1 << 16];
    for (value, &count) in histogram.iter().enumerate() {
        if count > 0 {
            level[value] = (below as f32 + count as f32 / 2.0) / n;
            below += count;
        }
    }
    values.iter().map(|&v| level[v as usize]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::thermal::Radiometry;

    #[test]
    fn percentiles_match_nearest_rank() {
        let values: Vec<u16> = (0..=100).map(|v| v * 10).collect();
        assert_eq!(percentile_range(&values, 1.0, 99.0), (10.0, 990.0));
        assert_eq!(percentile_range(&[7, 7, 7], 1.0, 99.0), (7.0, 8.0));
    }

    #[test]
    fn equalization_flattens_a_skewed_histogram() {
        // 90 % of pixels at 100, the rest spread: equalized output is monotonic, spans (0, 1).
        let mut values = vec![100u16; 90];
        values.extend(200..210);
        let out = equalize(&values);
        assert!((out[0] - 0.45).abs() < 1e-6);
        assert!(out[90] > out[0] && out[99] > out[98]);
        assert!(out[99] < 1.0);
    }

    #[test]
    fn fixed_celsius_maps_the_range_ends() {
        let c = Radiometry::Centikelvin.converter();
        let norm = ThermalNormalization::FixedCelsius {
            low_c: 20.0,
            high_c: 40.0,
        };
        let out = normalize(&[29315, 30315, 31315], norm, Some(&c)).expect("radiometric");
        assert!(
            (out[0]).abs() < 1e-4 && (out[1] - 0.5).abs() < 1e-4 && (out[2] - 1.0).abs() < 1e-4
        );
        assert_eq!(normalize(&[1], norm, None), Err(AgcError::NoRadiometry));
    }
}

//! False-colour palettes for thermal overlays.
//!
//! Each palette is a few control colours interpolated linearly, the way camera vendors
//! define theirs (the iron/"ironbow" stops follow FLIR's look: black → indigo → magenta →
//! orange → yellow → white). Hand-written because no maintained crate ships thermal palettes.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Palette {
    #[default]
    Iron,
    Rainbow,
    WhiteHot,
}

const IRON: &[[u8; 3]] = &[
    [0, 0, 0],
    [32, 0, 96],
    [112, 0, 144],
    [192, 32, 96],
    [232, 96, 16],
    [252, 176, 0],
    [255, 232, 96],
    [255, 255, 255],
];
const RAINBOW: &[[u8; 3]] = &[
    [0, 0, 128],
    [0, 0, 255],
    [0, 255, 255],
    [0, 255, 0],
    [255, 255, 0],
    [255, 128, 0],
    [255, 0, 0],
];
const WHITE_HOT: &[[u8; 3]] = &[[0, 0, 0], [255, 255, 255]];

impl Palette {
    fn stops(self) -> &'static [[u8; 3]] {
        match self {
            Palette::Iron => IRON,
            Palette::Rainbow => RAINBOW,
            Palette::WhiteHot => WHITE_HOT,
        }
    }

    /// The colour of `level` in [0, 1] (clamped; NaN shows as the cold end).
    pub fn color(self, level: f32) -> [u8; 3] {
        let stops = self.stops();
        let level = if level.is_nan() {
            0.0
        } else {
            level.clamp(0.0, 1.0)
        };
        let position = level * (stops.len() - 1) as f32;
        let i = (position.floor() as usize).min(stops.len() - 2);
        let t = position - i as f32;
        let (a, b) = (stops[i], stops[i + 1]);
        std::array::from_fn(|c| (a[c] as f32 + (b[c] as f32 - a[c] as f32) * t).round() as u8)
    }

    /// Colours a whole image of levels into packed RGB8.
    pub fn colorize(self, levels: &[f32]) -> Vec<u8> {
        levels.iter().flat_map(|&l| self.color(l)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn palettes_run_cold_to_hot() {
        assert_eq!(Palette::WhiteHot.color(0.0), [0, 0, 0]);
        assert_eq!(Palette::WhiteHot.color(1.0), [255, 255, 255]);
        assert_eq!(Palette::WhiteHot.color(0.5), [128, 128, 128]);
        assert_eq!(Palette::Iron.color(1.0), [255, 255, 255]);
        assert_eq!(Palette::Rainbow.color(1.0), [255, 0, 0]);
        assert_eq!(Palette::Rainbow.color(f32::NAN), [0, 0, 128]);
        // Brightness grows monotonically along the iron palette.
        let luma = |c: [u8; 3]| c[0] as u32 * 3 + c[1] as u32 * 6 + c[2] as u32;
        let levels: Vec<u32> = (0..=20)
            .map(|i| luma(Palette::Iron.color(i as f32 / 20.0)))
            .collect();
        assert!(levels.windows(2).all(|w| w[1] >= w[0]), "{levels:?}");
    }
}

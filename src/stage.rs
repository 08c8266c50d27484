//! The pipeline's stages by name: one enum instead of strings repeated in the queues'
//! config, the latency record, the heartbeat and the metrics.

use std::fmt;
use std::str::FromStr;

/// Every stage in pipeline order; each has an input queue named after it (config
/// `queues.stage.NAME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    Pair,
    Preprocess,
    Detect,
    Crop,
    Boundary,
    Blackout,
    Landmark,
    Postprocess,
    Sink,
}

impl Stage {
    pub const ALL: [Stage; 9] = [
        Stage::Pair,
        Stage::Preprocess,
        Stage::Detect,
        Stage::Crop,
        Stage::Boundary,
        Stage::Blackout,
        Stage::Landmark,
        Stage::Postprocess,
        Stage::Sink,
    ];

    /// The stages a frame records its latency through: all but the sink, which publishes it.
    pub const TIMED: &'static [Stage] = match Stage::ALL.split_last() {
        Some((_, before_sink)) => before_sink,
        None => &[],
    };

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Pair => "pair",
            Stage::Preprocess => "preprocess",
            Stage::Detect => "detect",
            Stage::Crop => "crop",
            Stage::Boundary => "boundary",
            Stage::Blackout => "blackout",
            Stage::Landmark => "landmark",
            Stage::Postprocess => "postprocess",
            Stage::Sink => "sink",
        }
    }

    /// Position in [`Stage::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The names, comma-separated, for error messages.
    pub fn names() -> String {
        Stage::ALL.map(Stage::as_str).join(", ")
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Stage {
    type Err = String;

    fn from_str(name: &str) -> Result<Stage, String> {
        Stage::ALL
            .into_iter()
            .find(|s| s.as_str() == name)
            .ok_or_else(|| format!("no such stage; use one of {}", Stage::names()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_order_is_the_pipeline_order() {
        for (i, stage) in Stage::ALL.into_iter().enumerate() {
            assert_eq!(stage.index(), i);
            assert_eq!(stage.as_str().parse::<Stage>(), Ok(stage));
        }
        assert_eq!(Stage::TIMED, &Stage::ALL[..8]);
        assert!(
            "detector"
                .parse::<Stage>()
                .unwrap_err()
                .contains("pair, preprocess")
        );
    }
}

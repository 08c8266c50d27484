//! Fault injection for the reliability tests (see RELIABILITY.md): faults that cannot be
//! produced from outside on demand — a wedged stage, a NaN reaching a model — are switched
//! on for one frame by the `SPECTRALD_FAULTS` environment variable. Unset (always, in
//! production) nothing here does anything beyond one relaxed check per frame.
//!
//! ```text
//! SPECTRALD_FAULTS="nan_input:boundary@5,stall:landmark@3:4000"
//!   nan_input:STAGE@SEQ       frame SEQ's model input in STAGE gets a NaN (the model's
//!                             output check must catch it)
//!   stall:STAGE@SEQ:MS        STAGE sleeps MS milliseconds on frame SEQ (a wedged stage)
//! ```
//! STAGE is `boundary` or `landmark`; SEQ a sequence number of any camera.

use std::sync::OnceLock;
use std::time::Duration;

use crate::stage::Stage;

pub const FAULTS_ENV: &str = "SPECTRALD_FAULTS";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Fault {
    NanInput {
        stage: Stage,
        sequence: u64,
    },
    Stall {
        stage: Stage,
        sequence: u64,
        ms: u64,
    },
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error(
    "{FAULTS_ENV}: cannot read {entry:?}; expected nan_input:STAGE@SEQ or stall:STAGE@SEQ:MS with STAGE boundary or landmark (unset it outside tests)"
)]
pub struct FaultsError {
    entry: String,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Faults {
    faults: Vec<Fault>,
}

static ACTIVE: OnceLock<Faults> = OnceLock::new();

impl Faults {
    pub fn parse(text: &str) -> Result<Faults, FaultsError> {
        let faults = text
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|entry| {
                parse_entry(entry).ok_or_else(|| FaultsError {
                    entry: entry.to_owned(),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Faults { faults })
    }

    /// Reads `SPECTRALD_FAULTS` once; the daemon calls this at start so a typo is an error
    /// before anything runs.
    pub fn from_env() -> Result<&'static Faults, FaultsError> {
        if let Some(active) = ACTIVE.get() {
            return Ok(active);
        }
        let parsed = match std::env::var(FAULTS_ENV) {
            Ok(text) => Faults::parse(&text)?,
            Err(_) => Faults::default(),
        };
        if !parsed.faults.is_empty() {
            tracing::warn!("fault injection on ({FAULTS_ENV}): {parsed:?}");
        }
        Ok(ACTIVE.get_or_init(|| parsed))
    }

    fn active() -> &'static Faults {
        static NONE: Faults = Faults { faults: Vec::new() };
        ACTIVE.get().unwrap_or(&NONE)
    }
}

fn parse_entry(entry: &str) -> Option<Fault> {
    let (kind, rest) = entry.split_once(':')?;
    let (stage, rest) = rest.split_once('@')?;
    let stage = match stage {
        "boundary" => Stage::Boundary,
        "landmark" => Stage::Landmark,
        _ => return None,
    };
    match kind {
        "nan_input" => Some(Fault::NanInput {
            stage,
            sequence: rest.parse().ok()?,
        }),
        "stall" => {
            let (sequence, ms) = rest.split_once(':')?;
            Some(Fault::Stall {
                stage,
                sequence: sequence.parse().ok()?,
                ms: ms.parse().ok()?,
            })
        }
        _ => None,
    }
}

/// Puts a NaN into `input` if a fault asks for it at this stage and frame.
pub fn poison_input(stage: Stage, sequence: u64, input: &mut [f32]) {
    let hit = Faults::active().faults.iter().any(
        |f| matches!(f, Fault::NanInput { stage: s, sequence: q } if *s == stage && *q == sequence),
    );
    if hit && let Some(first) = input.first_mut() {
        *first = f32::NAN;
    }
}

/// Sleeps if a fault asks this stage to stall on this frame.
pub fn stall(stage: Stage, sequence: u64) {
    for f in &Faults::active().faults {
        if let Fault::Stall {
            stage: s,
            sequence: q,
            ms,
        } = f
            && *s == stage
            && *q == sequence
        {
            std::thread::sleep(Duration::from_millis(*ms));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_and_typos_are_named() {
        let faults = Faults::parse("nan_input:boundary@5, stall:landmark@3:4000").expect("parse");
        assert_eq!(
            faults.faults,
            vec![
                Fault::NanInput {
                    stage: Stage::Boundary,
                    sequence: 5
                },
                Fault::Stall {
                    stage: Stage::Landmark,
                    sequence: 3,
                    ms: 4000
                }
            ]
        );
        assert_eq!(Faults::parse("").expect("empty"), Faults::default());
        for bad in [
            "nan_input:sink@1",
            "stall:landmark@3",
            "nan:boundary@1",
            "x",
        ] {
            let e = Faults::parse(bad).expect_err(bad);
            assert!(e.to_string().contains(bad), "{e}");
        }
    }
}

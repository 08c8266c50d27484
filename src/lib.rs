//! spectrald: paired visible + thermal frames in, 68 facial landmarks per face out.
//!
//! Where things live (the README's module map repeats this table):
//!
//! | module        | what it owns                                                              |
//! |---------------|---------------------------------------------------------------------------|
//! | [`config`]    | the typed, strict TOML configuration and its validation                   |
//! | [`frame`]     | the data that flows: `SpectrumFrame` (one image), `Frame` (a pair)         |
//! | [`source`]    | where frames come from: replay, FLIR files, GStreamer, cameras, recording  |
//! | [`pair`]      | matching visible and thermal frames by capture time                        |
//! | [`thermal`]   | raw counts / centi-kelvin → °C (Planck), AGC, palettes, face temperature    |
//! | [`render`]    | overlay pictures: visible + thermal palette, boxes and landmarks           |
//! | [`registration`] | thermal ↔ visible homography, fitted by `spectrald calibrate`           |
//! | [`dmsl`]      | the DMSL steps: preprocessing, black-out, output mapping, NME               |
//! | [`evaluate`]  | NME of the whole pipeline on a labelled (300-W layout) folder              |
//! | [`infer`]     | model manifests and the inference backends (ONNX Runtime, tract)           |
//! | [`pipeline`]  | stage threads, bounded queues with their full-queue policy, shutdown       |
//! | [`publish`]   | sinks and the versioned output schema (`spectrald.landmarks/v1`)          |
//! | [`telemetry`] | logging setup and the named events / counters every stage reports to      |

pub mod config;
pub mod dmsl;
pub mod evaluate;
pub mod frame;
pub mod http;
pub mod infer;
pub mod offline;
pub mod pair;
pub mod pipeline;
pub mod publish;
pub mod registration;
pub mod render;
pub mod service;
pub mod source;
pub mod telemetry;
pub mod thermal;

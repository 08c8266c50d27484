//! spectrald: paired visible + thermal frames in, 68 facial landmarks per face out.
//!
//! The module map, with what each module owns and how they layer, is
//! `docs/architecture.md`; the imports only point down that map (`scripts/module_cycles.py`
//! checks there is no cycle).

// Shared vocabulary at the bottom.
pub mod backoff;
pub mod geometry;
pub mod invalid;
pub mod signals;
pub mod stage;

// Components, each owning its config section.
pub mod detect;
pub mod dmsl;
pub mod flir;
pub mod frame;
pub mod http;
pub mod infer;
pub mod nats;
pub mod offline;
pub mod pair;
pub mod publish;
pub mod queue;
pub mod registration;
pub mod render;
pub mod source;
pub mod telemetry;
pub mod thermal;
pub mod track;
pub mod web;

// What puts them together.
pub mod config;
pub mod evaluate;
pub mod pipeline;
pub mod service;

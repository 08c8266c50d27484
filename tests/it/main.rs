//! The scenario tests, as one test binary (one link instead of one per file; the shared
//! helpers in `common` compile once). Each module is named for the scenario it proves.
//! Run one area with `cargo test --release --test it MODULE`, e.g. `--test it mqtt_broker`.

mod common;

mod bad_setup_fails_early_with_a_clear_message;
mod batching;
mod corrupt_frame_is_skipped_and_counted;
mod crop_parity;
mod drop_oldest_keeps_newest_under_slow_consumer;
mod evaluate_scores_a_labelled_folder;
mod faces_move_cross_and_leave;
mod fault_injection;
mod flir_radiometry;
mod fuzz_parsers;
mod gstreamer_sources;
mod http_api;
mod landmarks_map_back_to_source_pixels;
mod live_page_in_chromium;
mod mqtt_broker;
mod nats_jetstream;
mod offline_cli;
mod offline_http;
mod offline_jobs_nats;
mod offline_lesion;
mod offline_retrieve;
mod offline_segment;
mod ort_and_tract_agree;
mod output_matches_json_schema;
mod preprocess_parity;
mod record_and_calibrate;
mod reload_and_hot_swap;
mod replay_is_lossless;
mod sigterm_drains_pipeline;
mod thermal_cli_reads_flir_files;
mod thermal_frame_late_beyond_tolerance_is_counted;
mod thermal_tiff_frames_replay;

//! Where frames come from. Every source kind implements [`Source`]: it produces
//! [`SpectrumFrame`]s in capture order per spectrum and stops when its input ends or the
//! shared stop flag is set.
//!
//! | file          | source                                                              |
//! |---------------|---------------------------------------------------------------------|
//! | `replay.rs`   | a recorded session folder (both spectra)                            |
//! | `flir.rs`     | FLIR `.fff` / `.seq` / R-JPEG files (thermal; R-JPEGs also as pairs) |
//! | `gst.rs`      | GStreamer pipelines and URIs (RTSP, files, v4l2src), feature `gstreamer` |
//! | `camera.rs`   | live cameras through nokhwa, feature `camera`                       |
//! | `live.rs`     | the reconnect / stall supervisor every live stream runs under       |
//! | `record.rs`   | writes frames back out as a replayable session (`spectrald record`) |
//! | `config.rs`   | `[[cameras]]`: a camera's source, streams, reconnect, radiometry    |

#[cfg(feature = "camera")]
pub mod camera;
mod config;
pub mod flir;
#[cfg(feature = "gstreamer")]
pub mod gst;
pub mod live;
pub mod record;
pub mod replay;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

pub use config::{
    AtEos, CameraConfig, ReconnectConfig, SourceConfig, StreamConfig, validate_cameras,
};

use crate::frame::{Spectrum, SpectrumFrame};
use crate::queue::QueueSender;
use crate::telemetry::Events;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("replay session {path}: {message}")]
    Session { path: String, message: String },
    #[error("{what}: {message}")]
    Open { what: String, message: String },
}

/// A producer of frames for one camera.
pub trait Source: Send {
    /// Sends frames until the input ends, `stop` is set, or the pipeline closes.
    /// Per-frame problems are counted in `events` and skipped; only problems that make
    /// the whole source unusable return an error.
    fn run(
        self: Box<Self>,
        out: QueueSender<SpectrumFrame>,
        stop: Arc<AtomicBool>,
        events: Arc<Events>,
    ) -> Result<(), SourceError>;
}

/// A source with a name for its thread.
pub type NamedSource = (String, Box<dyn Source>);

/// Sleeps until a frame captured `since_first_us` after the first one is due, playing at
/// `speed` × recorded pace from `started` (0 = as fast as possible: no wait).
fn pace(started: std::time::Instant, since_first_us: i64, speed: f64) {
    if speed > 0.0 {
        let due = std::time::Duration::from_secs_f64(since_first_us as f64 / 1e6 / speed);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
}

/// Opens every source of a camera.
pub fn open_camera(camera: &CameraConfig) -> Result<Vec<NamedSource>, SourceError> {
    let mut sources: Vec<NamedSource> = Vec::new();
    match &camera.source {
        Some(SourceConfig::Replay {
            path,
            speed,
            looped,
        }) => {
            let replay = replay::ReplaySource::open(&camera.id, path, *speed, *looped)?;
            sources.push((camera.id.clone(), Box::new(replay)));
        }
        Some(SourceConfig::Flir {
            path,
            speed,
            looped,
        }) => {
            let fallback = camera.radiometry.resolve(None);
            let flir = flir::FlirPairSource::open(&camera.id, path, *speed, *looped, fallback)?;
            sources.push((camera.id.clone(), Box::new(flir)));
        }
        None => {}
    }
    for (spectrum, stream) in [
        (Spectrum::Visible, &camera.visible),
        (Spectrum::Thermal, &camera.thermal),
    ] {
        if let Some(stream) = stream {
            let name = format!("{}-{}", camera.id, spectrum);
            sources.push((name, open_stream(camera, spectrum, stream)?));
        }
    }
    Ok(sources)
}

/// Deeper checks than config validation, for `check-config`: GStreamer pipelines parse.
pub fn check_camera(camera: &CameraConfig) -> Result<(), SourceError> {
    for (spectrum, stream) in [
        (Spectrum::Visible, &camera.visible),
        (Spectrum::Thermal, &camera.thermal),
    ] {
        #[cfg(feature = "gstreamer")]
        if let Some(StreamConfig::Gstreamer {
            pipeline,
            uri,
            sync,
            ..
        }) = stream
        {
            let line = gst::launch_line(pipeline.as_deref(), uri.as_deref(), spectrum, *sync);
            gst::check_launch_line(&line).map_err(|message| SourceError::Open {
                what: format!("camera {} {spectrum} gstreamer", camera.id),
                message,
            })?;
        }
        let _ = (spectrum, stream);
    }
    Ok(())
}

fn open_stream(
    camera: &CameraConfig,
    spectrum: Spectrum,
    stream: &StreamConfig,
) -> Result<Box<dyn Source>, SourceError> {
    #[cfg(not(all(feature = "gstreamer", feature = "camera")))]
    let not_built = |feature: &str| SourceError::Open {
        what: format!("camera {} {spectrum}", camera.id),
        message: format!(
            "this build has no `{feature}` feature; rebuild with --features {feature}"
        ),
    };
    match stream {
        StreamConfig::Flir {
            path,
            speed,
            looped,
        } => {
            let fallback = camera.radiometry.resolve(None);
            Ok(Box::new(flir::FlirFileSource::open(
                &camera.id, path, *speed, *looped, fallback,
            )?))
        }
        #[cfg(feature = "gstreamer")]
        StreamConfig::Gstreamer {
            pipeline,
            uri,
            sync,
            at_eos,
        } => {
            let line = gst::launch_line(pipeline.as_deref(), uri.as_deref(), spectrum, *sync);
            let shown = uri.clone().or_else(|| pipeline.clone()).unwrap_or_default();
            let at_end = match at_eos {
                AtEos::Reconnect => live::AtEnd::Reconnect,
                AtEos::End => live::AtEnd::Stop,
            };
            Ok(Box::new(live::LiveSource::new(
                &camera.id,
                spectrum,
                Box::new(gst::GstConnector::new(shown, line, spectrum)),
                camera.reconnect,
                at_end,
            )))
        }
        #[cfg(not(feature = "gstreamer"))]
        StreamConfig::Gstreamer { .. } => Err(not_built("gstreamer")),
        #[cfg(feature = "camera")]
        StreamConfig::Camera {
            device,
            width,
            height,
            fps,
        } => Ok(Box::new(live::LiveSource::new(
            &camera.id,
            spectrum,
            Box::new(camera::CameraConnector::new(device, *width, *height, *fps)),
            camera.reconnect,
            live::AtEnd::Reconnect,
        ))),
        #[cfg(not(feature = "camera"))]
        StreamConfig::Camera { .. } => Err(not_built("camera")),
    }
}

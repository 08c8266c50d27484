//! GStreamer streams: any pipeline description or URI, ending in our appsink.
//!
//! The configured pipeline is completed with
//! `! videoconvert ! video/x-raw,format=RGB|GRAY16_LE ! appsink name=spectrald_sink`, so
//! it may produce any raw or decoded video (`v4l2src`, `rtspsrc ! decodebin`,
//! `filesrc ! decodebin`, `videotestsrc`). Thermal streams ask for `GRAY16_LE` (radiometric
//! Y16 survives unchanged; 8-bit sources are widened). Pulls never block forever: the
//! appsink is polled with `try_pull_sample(timeout)` and the bus is checked for errors and
//! end of stream before every pull (an erroring pipeline would otherwise hang
//! `pull_sample`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;

use super::live::{Captured, Connector, LiveStream, StreamError};
use crate::frame::{Pixels, Spectrum};

const SINK_NAME: &str = "spectrald_sink";

/// Builds the full launch line for a configured pipeline or URI.
pub fn launch_line(
    pipeline: Option<&str>,
    uri: Option<&str>,
    spectrum: Spectrum,
    sync: bool,
) -> String {
    let head = match (pipeline, uri) {
        (Some(p), _) => p.trim().trim_end_matches('!').trim().to_owned(),
        (None, Some(uri)) => format!("uridecodebin uri=\"{}\"", uri.replace('"', "%22")),
        (None, None) => String::new(),
    };
    let format = match spectrum {
        Spectrum::Visible => "RGB",
        Spectrum::Thermal => "GRAY16_LE",
    };
    format!(
        "{head} ! videoconvert ! video/x-raw,format={format} ! appsink name={SINK_NAME} max-buffers=4 sync={sync}"
    )
}

fn init() -> Result<(), StreamError> {
    gst::init().map_err(|e| StreamError::Permanent(format!("GStreamer does not start: {e}; install gstreamer1.0-plugins-base (scripts/setup.sh does)")))
}

/// Parses a launch line without starting it (for `check-config`).
pub fn check_launch_line(line: &str) -> Result<(), String> {
    init().map_err(|e| e.to_string())?;
    gst::parse::launch(line)
        .map(|_| ())
        .map_err(|e| format!("pipeline does not parse: {e}"))
}

pub struct GstConnector {
    /// What the user configured (for messages).
    shown: String,
    line: String,
    spectrum: Spectrum,
}

impl GstConnector {
    pub fn new(shown: String, line: String, spectrum: Spectrum) -> GstConnector {
        GstConnector {
            shown,
            line,
            spectrum,
        }
    }
}

impl Connector for GstConnector {
    fn describe(&self) -> String {
        format!("gstreamer {}", self.shown)
    }

    fn connect(&mut self) -> Result<Box<dyn LiveStream>, StreamError> {
        init()?;
        let element = gst::parse::launch(&self.line).map_err(|e| {
            let hint = if e.to_string().contains("could not link") {
                "caps mismatch: the source's output cannot become raw video; "
            } else {
                ""
            };
            StreamError::Permanent(format!(
                "pipeline does not parse: {e}; {hint}check the `pipeline` string with gst-launch-1.0"
            ))
        })?;
        let pipeline = element
            .downcast::<gst::Pipeline>()
            .map_err(|_| StreamError::Permanent("the description is not a pipeline".into()))?;
        let appsink = pipeline
            .by_name(SINK_NAME)
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .ok_or_else(|| StreamError::Permanent(format!("no appsink named {SINK_NAME}")))?;
        let bus = pipeline
            .bus()
            .ok_or_else(|| StreamError::Permanent("pipeline has no bus".into()))?;
        let stream = GstStream {
            pipeline,
            appsink,
            bus,
            spectrum: self.spectrum,
        };
        if let Err(e) = stream.pipeline.set_state(gst::State::Playing) {
            // The bus usually says why (no such file, connection refused, 404).
            let why = stream.bus_error().unwrap_or_else(|| e.to_string());
            return Err(StreamError::Failed(format!("does not start: {why}")));
        }
        Ok(Box::new(stream))
    }
}

struct GstStream {
    pipeline: gst::Pipeline,
    appsink: gst_app::AppSink,
    bus: gst::Bus,
    spectrum: Spectrum,
}

impl Drop for GstStream {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn describe_error(err: &gst::message::Error) -> String {
    let source = err
        .src()
        .map(|s| s.path_string().to_string())
        .unwrap_or_default();
    let hint = if err.error().matches(gst::CoreError::Negotiation)
        || err.error().matches(gst::StreamError::Format)
        || err.debug().is_some_and(|d| d.contains("not-negotiated"))
    {
        "; caps mismatch: the source's format cannot become raw video (check the pipeline's caps)"
    } else {
        ""
    };
    format!("{source}: {}{hint}", err.error())
}

impl GstStream {
    /// An error message waiting on the bus, if any.
    fn bus_error(&self) -> Option<String> {
        let msg = self.bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(200),
            &[gst::MessageType::Error],
        )?;
        match msg.view() {
            gst::MessageView::Error(err) => Some(describe_error(err)),
            _ => None,
        }
    }

    /// Capture time of a buffer as Unix microseconds: now minus how long ago, on the
    /// pipeline clock, the buffer's running time was.
    fn wall_time_us(&self, sample: &gst::Sample) -> i64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        let age_us = (|| {
            let pts = sample.buffer()?.pts()?;
            let segment = sample.segment()?.downcast_ref::<gst::ClockTime>()?;
            let running = segment.to_running_time(pts)?;
            let clock_now = self.pipeline.clock()?.time();
            let base = self.pipeline.base_time()?;
            Some(clock_now.nseconds() as i64 / 1000 - (base + running).nseconds() as i64 / 1000)
        })();
        // Negative ages are a source clock running ahead (kept: that is the skew the pairing
        // offset corrects); ages beyond 10 s mean an unsynchronised file racing ahead of the
        // clock, where "now" is the best capture time there is.
        now - age_us.filter(|a| a.abs() < 10_000_000).unwrap_or(0)
    }

    fn convert(&self, sample: &gst::Sample) -> Result<Captured, StreamError> {
        let caps = sample
            .caps()
            .ok_or_else(|| StreamError::Failed("sample without caps".into()))?;
        let info = gst_video::VideoInfo::from_caps(caps)
            .map_err(|e| StreamError::Failed(format!("caps {caps} are not raw video: {e}")))?;
        let buffer = sample
            .buffer()
            .ok_or_else(|| StreamError::Failed("sample without buffer".into()))?;
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info)
            .map_err(|e| StreamError::Failed(format!("cannot map buffer: {e}")))?;
        let (w, h) = (info.width() as usize, info.height() as usize);
        let stride = frame.plane_stride()[0] as usize;
        let data = frame
            .plane_data(0)
            .map_err(|e| StreamError::Failed(format!("cannot read plane: {e}")))?;
        let row_bytes = match self.spectrum {
            Spectrum::Visible => w * 3,
            Spectrum::Thermal => w * 2,
        };
        if data.len() < stride * (h.saturating_sub(1)) + row_bytes {
            return Err(StreamError::Failed(format!(
                "buffer of {} bytes is too small for {w}x{h}",
                data.len()
            )));
        }
        let rows = (0..h).flat_map(|y| &data[y * stride..y * stride + row_bytes]);
        let pixels = match self.spectrum {
            Spectrum::Visible => Pixels::Rgb8(rows.copied().collect()),
            Spectrum::Thermal => {
                let bytes: Vec<u8> = rows.copied().collect();
                Pixels::Gray16(
                    bytes
                        .chunks_exact(2)
                        .map(|b| u16::from_le_bytes([b[0], b[1]]))
                        .collect(),
                )
            }
        };
        Ok(Captured {
            width: w as u32,
            height: h as u32,
            pixels,
            captured_us: self.wall_time_us(sample),
        })
    }
}

impl LiveStream for GstStream {
    fn next_image(&mut self, timeout: Duration) -> Result<Option<Captured>, StreamError> {
        while let Some(msg) = self
            .bus
            .pop_filtered(&[gst::MessageType::Error, gst::MessageType::Eos])
        {
            match msg.view() {
                gst::MessageView::Error(err) => {
                    return Err(StreamError::Failed(describe_error(err)));
                }
                gst::MessageView::Eos(_) => {
                    return Err(StreamError::Ended("the pipeline sent EOS".into()));
                }
                _ => {}
            }
        }
        let timeout = gst::ClockTime::from_nseconds(timeout.as_nanos() as u64);
        match self.appsink.try_pull_sample(timeout) {
            Some(sample) => self.convert(&sample).map(Some),
            None if self.appsink.is_eos() => {
                Err(StreamError::Ended("the pipeline sent EOS".into()))
            }
            None => Ok(None),
        }
    }
}

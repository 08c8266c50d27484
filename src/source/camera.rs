//! Live cameras through nokhwa (V4L2 on Linux, AVFoundation, MediaFoundation), by index or
//! by (part of) the name the system gives them.
//!
//! nokhwa decodes to 8-bit RGB, which suits visible cameras. Radiometric Y16 thermal heads
//! (Boson, Lepton) are read through the GStreamer source instead
//! (`v4l2src device=/dev/videoN ! video/x-raw,format=GRAY16_LE`), because nokhwa has no
//! 16-bit grey format; config validation says so.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nokhwa::pixel_format::RgbFormat;
use nokhwa::utils::{
    ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType,
    Resolution,
};

use super::live::{Captured, Connector, LiveStream, StreamError};
use crate::frame::Pixels;

/// The cameras the system reports, as "index: name" lines for messages.
pub fn list_devices() -> Vec<String> {
    match nokhwa::query(ApiBackend::Auto) {
        Ok(devices) => devices
            .iter()
            .map(|d| format!("{}: {}", d.index(), d.human_name()))
            .collect(),
        Err(_) => Vec::new(),
    }
}

pub struct CameraConnector {
    /// An index ("0") or part of a device name ("FLIR Duo").
    device: String,
    format: Option<(u32, u32, u32)>,
}

impl CameraConnector {
    pub fn new(device: &str, width: Option<u32>, height: Option<u32>, fps: Option<u32>) -> Self {
        let format = match (width, height) {
            (Some(w), Some(h)) => Some((w, h, fps.unwrap_or(30))),
            _ => None,
        };
        CameraConnector {
            device: device.to_owned(),
            format,
        }
    }

    fn find(&self) -> Result<CameraIndex, StreamError> {
        let devices = nokhwa::query(ApiBackend::Auto).unwrap_or_default();
        let found = devices.iter().find(|d| {
            d.index().as_string() == self.device
                || d.human_name()
                    .to_lowercase()
                    .contains(&self.device.to_lowercase())
        });
        match found {
            Some(d) => Ok(d.index().clone()),
            None => {
                let listed: Vec<String> = devices
                    .iter()
                    .map(|d| format!("{}: {}", d.index(), d.human_name()))
                    .collect();
                // Worth retrying: a camera that is plugged back in comes back.
                Err(StreamError::Failed(format!(
                    "camera {:?} not found; devices found: {}",
                    self.device,
                    if listed.is_empty() {
                        "none".to_owned()
                    } else {
                        listed.join(", ")
                    }
                )))
            }
        }
    }
}

impl Connector for CameraConnector {
    fn describe(&self) -> String {
        format!("camera {}", self.device)
    }

    fn connect(&mut self) -> Result<Box<dyn LiveStream>, StreamError> {
        let index = self.find()?;
        let requested = match self.format {
            // Closest to the asked size and rate; MJPEG first (most USB cameras), nokhwa
            // falls back to what the camera offers and decodes either to RGB.
            Some((w, h, fps)) => RequestedFormat::new::<RgbFormat>(RequestedFormatType::Closest(
                CameraFormat::new(Resolution::new(w, h), FrameFormat::MJPEG, fps),
            )),
            None => {
                RequestedFormat::new::<RgbFormat>(RequestedFormatType::AbsoluteHighestFrameRate)
            }
        };
        let mut camera = nokhwa::Camera::new(index, requested)
            .map_err(|e| StreamError::Failed(format!("cannot open: {e}")))?;
        camera
            .open_stream()
            .map_err(|e| StreamError::Failed(format!("cannot start streaming: {e}")))?;
        Ok(Box::new(CameraStream { camera }))
    }
}

struct CameraStream {
    camera: nokhwa::Camera,
}

impl LiveStream for CameraStream {
    // nokhwa's frame() blocks until the next frame; the timeout cannot be passed down, but
    // an unplugged camera makes it return an error, which triggers the reconnect.
    fn next_image(&mut self, _timeout: Duration) -> Result<Option<Captured>, StreamError> {
        let buffer = self
            .camera
            .frame()
            .map_err(|e| StreamError::Failed(format!("capture failed: {e}")))?;
        let captured_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        let image = buffer
            .decode_image::<RgbFormat>()
            .map_err(|e| StreamError::Failed(format!("cannot decode frame: {e}")))?;
        Ok(Some(Captured {
            width: image.width(),
            height: image.height(),
            pixels: Pixels::Rgb8(image.into_raw()),
            captured_us,
        }))
    }
}

impl Drop for CameraStream {
    fn drop(&mut self) {
        let _ = self.camera.stop_stream();
    }
}

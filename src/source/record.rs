//! `spectrald record`: any camera's sources → a session folder in the replay format, so
//! that whatever a live camera did can be replayed exactly (every live bug becomes a
//! replay test).
//!
//! Visible frames are written as PNG (lossless, unlike re-encoding to JPEG), thermal frames
//! as 16-bit PNG with their raw values, and the thermal radiometry as `radiometry.json`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;

use super::CameraConfig;
use super::replay::{MANIFEST, MANIFEST_HEADER, RADIOMETRY};
use super::{SourceError, open_camera};
use crate::frame::{Pixels, Spectrum, SpectrumFrame};
use crate::queue::queue;
use crate::queue::{QueueConfig, WhenFull};
use crate::telemetry::Events;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("{0} already holds a recording (manifest.csv); choose an empty or new folder")]
    NotEmpty(String),
    #[error(transparent)]
    Source(#[from] SourceError),
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> RecordError {
    RecordError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Writes one session folder.
pub struct SessionWriter {
    dir: PathBuf,
    manifest: csv::Writer<File>,
    written: [u64; 2],
    radiometry_written: bool,
}

impl SessionWriter {
    pub fn create(dir: &Path) -> Result<SessionWriter, RecordError> {
        if dir.join(MANIFEST).exists() {
            return Err(RecordError::NotEmpty(dir.display().to_string()));
        }
        for sub in ["visible", "thermal"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(|e| io_error(&dir.join(sub), e))?;
        }
        let path = dir.join(MANIFEST);
        let mut manifest = csv::Writer::from_path(&path).map_err(|e| io_error(&path, e))?;
        manifest
            .write_record(MANIFEST_HEADER)
            .map_err(|e| io_error(&path, e))?;
        Ok(SessionWriter {
            dir: dir.to_owned(),
            manifest,
            written: [0, 0],
            radiometry_written: false,
        })
    }

    pub fn write(&mut self, frame: &SpectrumFrame) -> Result<(), RecordError> {
        let n = self.written[frame.spectrum as usize];
        let relative = format!("{}/{:06}.png", frame.spectrum, n);
        let path = self.dir.join(&relative);
        let saved = match (&*frame.pixels, frame.spectrum) {
            (Pixels::Rgb8(rgb), Spectrum::Visible) => {
                image::RgbImage::from_raw(frame.width, frame.height, rgb.clone())
                    .ok_or("pixel buffer does not match the frame size")
                    .map(|img| img.save(&path).map_err(|e| e.to_string()))
            }
            (Pixels::Gray16(values), Spectrum::Thermal) => {
                image::ImageBuffer::<image::Luma<u16>, _>::from_raw(
                    frame.width,
                    frame.height,
                    values.clone(),
                )
                .ok_or("pixel buffer does not match the frame size")
                .map(|img| img.save(&path).map_err(|e| e.to_string()))
            }
            _ => Err("pixel format does not match the spectrum"),
        };
        match saved {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(io_error(&path, e)),
            Err(e) => return Err(io_error(&path, e)),
        }
        if let (Some(r), false) = (&frame.radiometry, self.radiometry_written) {
            let path = self.dir.join(RADIOMETRY);
            let json = serde_json::to_string_pretty(&**r).map_err(|e| io_error(&path, e))?;
            std::fs::write(&path, json + "\n").map_err(|e| io_error(&path, e))?;
            self.radiometry_written = true;
        }
        let manifest_path = self.dir.join(MANIFEST);
        self.manifest
            .write_record([
                frame.spectrum.as_str(),
                &frame.captured_us.to_string(),
                &relative,
            ])
            .and_then(|_| self.manifest.flush().map_err(csv::Error::from))
            .map_err(|e| io_error(&manifest_path, e))?;
        self.written[frame.spectrum as usize] += 1;
        Ok(())
    }

    /// Frames written so far: (visible, thermal).
    pub fn written(&self) -> (u64, u64) {
        (self.written[0], self.written[1])
    }
}

/// When a recording ends (whichever comes first; `None` = no limit).
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    pub duration: Option<Duration>,
    pub frames: Option<u64>,
}

/// Records `camera` into `out` until the limits, the end of its sources, or `stop`.
pub fn record(
    camera: &CameraConfig,
    out: &Path,
    limits: Limits,
    stop: Arc<AtomicBool>,
    events: Arc<Events>,
) -> Result<(u64, u64), RecordError> {
    let mut writer = SessionWriter::create(out)?;
    let sources = open_camera(camera)?;
    let (tx, rx) = queue::<SpectrumFrame>(
        &QueueConfig {
            capacity: 32,
            // Recording files stays lossless unless the camera says otherwise.
            when_full: camera.source_queue_policy(WhenFull::Block),
        },
        events.clone(),
    );
    let mut threads = Vec::new();
    for (name, source) in sources {
        let (tx, stop, events) = (tx.clone(), stop.clone(), events.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("record-{name}"))
            .spawn(move || {
                if let Err(e) = source.run(tx, stop, events) {
                    tracing::error!(source = %name, "source stopped: {e}");
                }
            })
            .map_err(|e| io_error(out, e))?;
        threads.push(spawned);
    }
    drop(tx);
    let started = Instant::now();
    let mut result = Ok(());
    loop {
        let (v, t) = writer.written();
        let done = limits.frames.is_some_and(|n| v + t >= n)
            || limits.duration.is_some_and(|d| started.elapsed() >= d);
        if done {
            stop.store(true, Ordering::Relaxed);
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(frame) if !done => {
                if let Err(e) = writer.write(&frame) {
                    result = Err(e);
                    stop.store(true, Ordering::Relaxed);
                }
            }
            Ok(_) => {} // past the limit: drain what the sources still send
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    for thread in threads {
        let _ = thread.join();
    }
    result.map(|()| writer.written())
}

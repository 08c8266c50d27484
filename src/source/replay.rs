//! Replays a recorded session folder.
//!
//! Layout (docs/sources.md, "Replay format"):
//! ```text
//! session/
//!   manifest.csv        spectrum,timestamp_us,file   (one row per frame, any order)
//!   visible/…           8-bit RGB or grey PNG/JPEG
//!   thermal/…           16-bit grey PNG or TIFF with raw radiometric values
//! ```
//! Rows are replayed in timestamp order (ties: visible first). A frame that cannot be read
//! is counted (`frame_dropped{reason=decode_failed}`) and skipped; the replay goes on.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use image::DynamicImage;

use super::{Source, SourceError};
use crate::frame::{Pixels, Spectrum, SpectrumFrame};
use crate::queue::QueueSender;
use crate::telemetry::{DropReason, Events};
use crate::thermal::Radiometry;

pub const MANIFEST: &str = "manifest.csv";
/// Optional: what the thermal values mean (`{"units": "centikelvin"}` or Planck constants).
pub const RADIOMETRY: &str = "radiometry.json";
pub const MANIFEST_HEADER: [&str; 3] = ["spectrum", "timestamp_us", "file"];

/// One manifest row.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub spectrum: Spectrum,
    pub timestamp_us: i64,
    pub file: PathBuf,
}

/// Reads and checks `dir/manifest.csv`; returns the rows sorted by time.
pub fn read_manifest(dir: &Path) -> Result<Vec<Entry>, SourceError> {
    let path = dir.join(MANIFEST);
    let fail = |message: String| SourceError::Session {
        path: dir.display().to_string(),
        message,
    };
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_path(&path).map_err(|e| fail(format!("{MANIFEST}: {e}; a session needs a manifest.csv with columns spectrum,timestamp_us,file")))?;
    let headers = reader
        .headers()
        .map_err(|e| fail(format!("{MANIFEST}: {e}")))?
        .clone();
    if headers.iter().collect::<Vec<_>>() != MANIFEST_HEADER {
        return Err(fail(format!(
            "{MANIFEST}: header is {:?}, expected spectrum,timestamp_us,file",
            headers.iter().collect::<Vec<_>>()
        )));
    }
    let mut entries = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record.map_err(|e| fail(format!("{MANIFEST} line {line}: {e}")))?;
        let spectrum = match record.get(0) {
            Some("visible") => Spectrum::Visible,
            Some("thermal") => Spectrum::Thermal,
            other => {
                return Err(fail(format!(
                    "{MANIFEST} line {line}: spectrum {other:?} is neither \"visible\" nor \"thermal\""
                )));
            }
        };
        let timestamp_us = record
            .get(1)
            .and_then(|t| t.parse::<i64>().ok())
            .ok_or_else(|| {
                fail(format!(
                    "{MANIFEST} line {line}: timestamp_us {:?} is not an integer (microseconds)",
                    record.get(1).unwrap_or("")
                ))
            })?;
        let file = record
            .get(2)
            .filter(|f| !f.is_empty())
            .ok_or_else(|| fail(format!("{MANIFEST} line {line}: file is empty")))?;
        let file = PathBuf::from(file);
        if file.is_absolute()
            || file
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(fail(format!(
                "{MANIFEST} line {line}: file {file:?} must be a relative path inside the session"
            )));
        }
        entries.push(Entry {
            spectrum,
            timestamp_us,
            file,
        });
    }
    if entries.is_empty() {
        return Err(fail(format!("{MANIFEST} lists no frames")));
    }
    let out_of_order = entries
        .windows(2)
        .filter(|w| w[0].spectrum == w[1].spectrum && w[1].timestamp_us < w[0].timestamp_us)
        .count();
    if out_of_order > 0 {
        tracing::warn!(session = %dir.display(), rows = out_of_order, "manifest rows are out of time order; replaying them sorted by timestamp_us");
    }
    entries.sort_by_key(|e| (e.timestamp_us, e.spectrum));
    Ok(entries)
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{path}: {message}")]
    Unreadable { path: String, message: String },
    #[error("{path}: {spectrum} frames must be {want}, this one is {got:?}")]
    WrongKind {
        path: String,
        spectrum: Spectrum,
        want: &'static str,
        got: image::ColorType,
    },
}

/// Decodes one frame file into the pixel layout its spectrum needs.
pub fn decode(path: &Path, spectrum: Spectrum) -> Result<(u32, u32, Pixels), DecodeError> {
    let shown = path.display().to_string();
    let image = image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| DecodeError::Unreadable {
            path: shown.clone(),
            message: e.to_string(),
        })?
        .decode()
        .map_err(|e| DecodeError::Unreadable {
            path: shown.clone(),
            message: e.to_string(),
        })?;
    let (w, h) = (image.width(), image.height());
    match (spectrum, image) {
        (Spectrum::Visible, DynamicImage::ImageRgb8(rgb)) => {
            Ok((w, h, Pixels::Rgb8(rgb.into_raw())))
        }
        (
            Spectrum::Visible,
            img @ (DynamicImage::ImageLuma8(_)
            | DynamicImage::ImageRgba8(_)
            | DynamicImage::ImageLumaA8(_)),
        ) => Ok((w, h, Pixels::Rgb8(img.to_rgb8().into_raw()))),
        (Spectrum::Thermal, DynamicImage::ImageLuma16(gray)) => {
            Ok((w, h, Pixels::Gray16(gray.into_raw())))
        }
        (Spectrum::Visible, other) => Err(DecodeError::WrongKind {
            path: shown,
            spectrum,
            want: "8-bit RGB or grey",
            got: other.color(),
        }),
        (Spectrum::Thermal, other) => Err(DecodeError::WrongKind {
            path: shown,
            spectrum,
            want: "16-bit grey with raw radiometric values (PNG or TIFF)",
            got: other.color(),
        }),
    }
}

/// Reads `dir/radiometry.json` if the session has one.
pub fn read_radiometry(dir: &Path) -> Result<Option<Radiometry>, SourceError> {
    let path = dir.join(RADIOMETRY);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(SourceError::Session {
                path: dir.display().to_string(),
                message: format!("{RADIOMETRY}: {e}"),
            });
        }
    };
    let radiometry: Radiometry = serde_json::from_str(&text).map_err(|e| SourceError::Session {
        path: dir.display().to_string(),
        message: format!("{RADIOMETRY}: {e}; see docs/sources.md, \"Replay format\""),
    })?;
    radiometry.validate().map_err(|e| SourceError::Session {
        path: dir.display().to_string(),
        message: format!("{RADIOMETRY}: {e}"),
    })?;
    Ok(Some(radiometry))
}

pub struct ReplaySource {
    camera: Arc<str>,
    dir: PathBuf,
    entries: Vec<Entry>,
    radiometry: Option<Arc<Radiometry>>,
    speed: f64,
    looped: bool,
}

impl ReplaySource {
    pub fn open(
        camera: &str,
        dir: &Path,
        speed: f64,
        looped: bool,
    ) -> Result<ReplaySource, SourceError> {
        let entries = read_manifest(dir)?;
        let radiometry = read_radiometry(dir)?.map(Arc::new);
        Ok(ReplaySource {
            camera: camera.into(),
            dir: dir.to_owned(),
            entries,
            radiometry,
            speed,
            looped,
        })
    }

    pub fn frame_count(&self) -> usize {
        self.entries.len()
    }
}

impl Source for ReplaySource {
    fn run(
        self: Box<Self>,
        out: QueueSender<SpectrumFrame>,
        stop: Arc<AtomicBool>,
        events: Arc<Events>,
    ) -> Result<(), SourceError> {
        let first = self.entries.first().map_or(0, |e| e.timestamp_us);
        let last = self.entries.last().map_or(0, |e| e.timestamp_us);
        // A loop restarts one median frame interval after the last frame, so time keeps going.
        let period = (last - first) + median_interval(&self.entries);
        let started = Instant::now();
        let mut lap = 0i64;
        loop {
            for entry in &self.entries {
                if stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                let timestamp_us = entry.timestamp_us + lap * period;
                super::pace(started, timestamp_us - first, self.speed);
                events.frame_received(&self.camera, entry.spectrum.as_str());
                let path = self.dir.join(&entry.file);
                let (width, height, pixels) = match decode(&path, entry.spectrum) {
                    Ok(decoded) => decoded,
                    Err(e) => {
                        events.frame_dropped(
                            &self.camera,
                            DropReason::DecodeFailed,
                            1,
                            &e.to_string(),
                        );
                        continue;
                    }
                };
                let frame = SpectrumFrame {
                    camera: self.camera.clone(),
                    spectrum: entry.spectrum,
                    captured_us: timestamp_us,
                    width,
                    height,
                    pixels: Arc::new(pixels),
                    origin: path.display().to_string().into(),
                    received: Instant::now(),
                    radiometry: match entry.spectrum {
                        Spectrum::Thermal => self.radiometry.clone(),
                        Spectrum::Visible => None,
                    },
                    registration: None,
                };
                if out.send(frame).is_err() {
                    return Ok(()); // pipeline closed: shutting down
                }
            }
            if !self.looped {
                return Ok(());
            }
            lap += 1;
        }
    }
}

fn median_interval(entries: &[Entry]) -> i64 {
    let mut gaps: Vec<i64> = entries
        .iter()
        .filter(|e| e.spectrum == Spectrum::Visible)
        .map(|e| e.timestamp_us)
        .collect::<Vec<_>>()
        .windows(2)
        .map(|w| w[1] - w[0])
        .collect();
    gaps.sort_unstable();
    gaps.get(gaps.len() / 2).copied().unwrap_or(33_333).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(manifest: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(MANIFEST), manifest).expect("write manifest");
        dir
    }

    #[test]
    fn manifest_rows_are_sorted_by_time() {
        let dir = session(
            "spectrum,timestamp_us,file\nthermal,200,t/1.png\nvisible,100,v/1.png\nvisible,50,v/0.png\n",
        );
        let entries = read_manifest(dir.path()).expect("manifest");
        let times: Vec<i64> = entries.iter().map(|e| e.timestamp_us).collect();
        assert_eq!(times, vec![50, 100, 200]);
    }

    #[test]
    fn manifest_errors_name_the_line() {
        let dir = session("spectrum,timestamp_us,file\nvisible,abc,v/0.png\n");
        let err = read_manifest(dir.path())
            .expect_err("bad timestamp")
            .to_string();
        assert!(
            err.contains("line 2") && err.contains("timestamp_us"),
            "{err}"
        );
        let dir = session("spectrum,timestamp_us,file\ninfrared,1,v/0.png\n");
        assert!(
            read_manifest(dir.path())
                .expect_err("bad spectrum")
                .to_string()
                .contains("infrared")
        );
        let dir = session("spectrum,timestamp_us,file\nvisible,1,../etc/passwd\n");
        assert!(
            read_manifest(dir.path())
                .expect_err("escape")
                .to_string()
                .contains("relative path inside")
        );
    }
}

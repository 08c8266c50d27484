//! FLIR radiometric files as sources (the formats are `crate::flir`'s):
//! - [`FlirFileSource`]: a `.seq`, `.fff` or R-JPEG, or a folder of `.fff`/R-JPEG files, as
//!   a thermal stream (`[cameras.thermal] kind = "flir"`);
//! - [`FlirPairSource`]: R-JPEGs (or FFF frames with an embedded photo) as visible + thermal
//!   pairs (`source = { kind = "flir", … }`): both images of a file share its capture time
//!   (pair skew 0), the thermal one brings its radiometry and, from the file's
//!   picture-in-picture record, its registration onto the photo.
//!
//! A folder is replayed in capture-time order (the camera clock in each file; the file name
//! where a file has none). A file that does not read is counted (`decode_failed`) and the
//! rest go on.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::{Source, SourceError};
use crate::flir::{self, FffError, FlirImage};
use crate::frame::{Pixels, Spectrum, SpectrumFrame};
use crate::queue::QueueSender;
use crate::registration::Homography;
use crate::telemetry::{DropReason, Events};
use crate::thermal::radiometry::Radiometry;

/// The files a FLIR path names: the file itself, or a folder's `.fff`, `.jpg`, `.jpeg`
/// (any case), by name.
fn list_files(path: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let fail = |message: String| SourceError::Open {
        what: format!("flir {}", path.display()),
        message,
    };
    if path.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    if !path.is_dir() {
        return Err(fail("no such file or folder; check the path".into()));
    }
    let wanted = |p: &Path| {
        p.extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| ["fff", "jpg", "jpeg"].contains(&x.to_ascii_lowercase().as_str()))
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| fail(e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| wanted(p))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(fail(
            "the folder holds no .fff or radiometric .jpg files".into(),
        ));
    }
    Ok(files)
}

/// Frame timing of a replayed FLIR file series: the camera clock when it increases, else
/// one frame interval after the previous frame; laps of a loop continue the timeline.
#[derive(Default)]
struct Timeline {
    first_us: Option<i64>,
    first_camera_us: Option<i64>,
    previous_us: Option<i64>,
    interval_us: i64,
    lap_shift: i64,
}

impl Timeline {
    fn captured(&mut self, frame: &flir::FffFrame) -> (i64, i64) {
        self.interval_us = 1_000_000 / frame.frame_rate.unwrap_or(30).max(1) as i64;
        if let Some(t) = frame.captured_us {
            self.first_camera_us.get_or_insert(t);
        }
        let mut captured = frame.captured_us.unwrap_or(0) + self.lap_shift;
        if self.previous_us.is_some_and(|p| captured <= p) || frame.captured_us.is_none() {
            captured = self.previous_us.map_or(0, |p| p + self.interval_us);
        }
        self.previous_us = Some(captured);
        let first = *self.first_us.get_or_insert(captured);
        (captured, captured - first)
    }

    fn next_lap(&mut self) {
        if let (Some(previous), Some(first)) = (self.previous_us, self.first_camera_us) {
            self.lap_shift = previous + self.interval_us - first;
        }
    }
}

/// The files a FLIR source plays and how: what both sources share.
struct FlirFiles {
    camera: Arc<str>,
    files: Vec<PathBuf>,
    speed: f64,
    looped: bool,
    /// Used when a frame has no camera info (the camera's configured constants). Object
    /// overrides are applied downstream, by the pair stage, like for every source.
    fallback: Option<Radiometry>,
}

/// A playback's start and timeline: a frame is stamped, and waited for, only once it is
/// known to be sent.
struct Clock {
    started: Instant,
    timeline: Timeline,
    speed: f64,
}

impl Clock {
    /// The frame's capture time, after waiting until it is due.
    fn stamp(&mut self, frame: &flir::FffFrame) -> i64 {
        let (captured, since_first) = self.timeline.captured(frame);
        super::pace(self.started, since_first, self.speed);
        captured
    }
}

impl FlirFiles {
    /// Plays the files in order (again and again when looped): a file that does not read
    /// is counted and skipped, each frame is counted as `spectra` images received, one
    /// that does not decode is counted as dropped, and every other one goes to `emit`
    /// (which stamps it with the clock and sends it; false: the pipeline is gone).
    fn play(
        &self,
        spectra: &[Spectrum],
        stop: &AtomicBool,
        events: &Events,
        mut emit: impl FnMut(&Path, FlirImage, Radiometry, &mut Clock) -> bool,
    ) -> Result<(), SourceError> {
        let mut clock = Clock {
            started: Instant::now(),
            timeline: Timeline::default(),
            speed: self.speed,
        };
        loop {
            for file in &self.files {
                let frames = match flir::frames(file) {
                    Ok(frames) => frames,
                    Err(e) => {
                        events.source_failed(&self.camera, "thermal", &e.to_string());
                        continue;
                    }
                };
                for image in frames {
                    if stop.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                    let Some((image, radiometry)) =
                        accept(image, self.fallback, &self.camera, spectra, events)
                    else {
                        continue;
                    };
                    if !emit(file, image, radiometry, &mut clock) {
                        return Ok(());
                    }
                }
            }
            if !self.looped {
                return Ok(());
            }
            clock.timeline.next_lap();
        }
    }
}

/// Replays FLIR files as a thermal stream.
pub struct FlirFileSource(FlirFiles);

impl FlirFileSource {
    pub fn open(
        camera: &str,
        path: &Path,
        speed: f64,
        looped: bool,
        fallback: Option<Radiometry>,
    ) -> Result<FlirFileSource, SourceError> {
        Ok(FlirFileSource(FlirFiles {
            camera: camera.into(),
            files: list_files(path)?,
            speed,
            looped,
            fallback,
        }))
    }
}

/// Counts one image received and, when `image` failed, its drop; the good image and its
/// radiometry otherwise.
fn accept(
    image: Result<FlirImage, flir::FlirError>,
    fallback: Option<Radiometry>,
    camera: &str,
    spectra: &[Spectrum],
    events: &Events,
) -> Option<(FlirImage, Radiometry)> {
    for s in spectra {
        events.frame_received(camera, s.as_str());
    }
    let dropped = |detail: String| {
        events.frame_dropped(
            camera,
            DropReason::DecodeFailed,
            spectra.len() as u64,
            &detail,
        )
    };
    let image = match image {
        Ok(image) => image,
        Err(e) => {
            dropped(e.to_string());
            return None;
        }
    };
    let Some(radiometry) = image.frame.radiometry.or(fallback) else {
        dropped(format!("{}: {}", image.origin, FffError::NoCameraInfo));
        return None;
    };
    Some((image, radiometry))
}

fn thermal_frame(
    camera: &Arc<str>,
    image: &FlirImage,
    counts: Vec<u16>,
    captured_us: i64,
    radiometry: Radiometry,
) -> SpectrumFrame {
    SpectrumFrame {
        camera: camera.clone(),
        spectrum: Spectrum::Thermal,
        captured_us,
        width: image.frame.width,
        height: image.frame.height,
        pixels: Arc::new(Pixels::Gray16(counts)),
        origin: image.origin.as_str().into(),
        received: Instant::now(),
        radiometry: Some(Arc::new(radiometry)),
        registration: None,
    }
}

impl Source for FlirFileSource {
    fn run(
        self: Box<Self>,
        out: QueueSender<SpectrumFrame>,
        stop: Arc<AtomicBool>,
        events: Arc<Events>,
    ) -> Result<(), SourceError> {
        let files = &self.0;
        files.play(
            &[Spectrum::Thermal],
            &stop,
            &events,
            |_, mut image, radiometry, clock| {
                let captured = clock.stamp(&image.frame);
                let counts = std::mem::take(&mut image.frame.counts);
                out.send(thermal_frame(
                    &files.camera,
                    &image,
                    counts,
                    captured,
                    radiometry,
                ))
                .is_ok()
            },
        )
    }
}

/// Replays R-JPEGs (or FFF frames with an embedded photo) as visible + thermal pairs, the
/// files in capture-time order.
pub struct FlirPairSource(FlirFiles);

impl FlirPairSource {
    pub fn open(
        camera: &str,
        path: &Path,
        speed: f64,
        looped: bool,
        fallback: Option<Radiometry>,
    ) -> Result<FlirPairSource, SourceError> {
        let mut files: Vec<(Option<i64>, PathBuf)> = list_files(path)?
            .into_iter()
            .map(|f| (capture_time(&f), f))
            .collect();
        // Camera clock first; files without one keep their name order after those with one
        // (a stable sort on the time, None last).
        files.sort_by_key(|(t, _)| (t.is_none(), t.unwrap_or(0)));
        Ok(FlirPairSource(FlirFiles {
            camera: camera.into(),
            files: files.into_iter().map(|(_, f)| f).collect(),
            speed,
            looped,
            fallback,
        }))
    }
}

/// A file's capture time (its first frame's camera clock), if it reads.
fn capture_time(path: &Path) -> Option<i64> {
    flir::frames(path).ok()?.next()?.ok()?.frame.captured_us
}

impl Source for FlirPairSource {
    fn run(
        self: Box<Self>,
        out: QueueSender<SpectrumFrame>,
        stop: Arc<AtomicBool>,
        events: Arc<Events>,
    ) -> Result<(), SourceError> {
        let files = &self.0;
        let spectra = [Spectrum::Visible, Spectrum::Thermal];
        files.play(&spectra, &stop, &events, |file, mut image, radiometry, clock| {
            let visible = match image.decode_visible(file) {
                Ok(Some(v)) => v,
                Ok(None) => {
                    let detail = format!(
                        "{}: no visible photo in the file; use it as [cameras.thermal] kind = \"flir\"",
                        image.origin
                    );
                    events.frame_dropped(
                        &files.camera,
                        DropReason::DecodeFailed,
                        2,
                        &detail,
                    );
                    return true;
                }
                Err(e) => {
                    events.frame_dropped(
                        &files.camera,
                        DropReason::DecodeFailed,
                        2,
                        &e.to_string(),
                    );
                    return true;
                }
            };
            let captured = clock.stamp(&image.frame);
            let (vw, vh, rgb) = visible;
            let registration = image
                .frame
                .pip
                .and_then(|p| {
                    p.thermal_to_visible(image.frame.width, image.frame.height, vw, vh)
                })
                .and_then(|rows| Homography::new(rows).ok())
                .map(Arc::new);
            let counts = std::mem::take(&mut image.frame.counts);
            let mut thermal =
                thermal_frame(&files.camera, &image, counts, captured, radiometry);
            thermal.registration = registration;
            let visible = SpectrumFrame {
                camera: files.camera.clone(),
                spectrum: Spectrum::Visible,
                captured_us: captured,
                width: vw,
                height: vh,
                pixels: Arc::new(Pixels::Rgb8(rgb)),
                origin: image.origin.as_str().into(),
                received: Instant::now(),
                radiometry: None,
                registration: None,
            };
            out.send(visible).is_ok() && out.send(thermal).is_ok()
        })
    }
}

//! A camera's settings (`[[cameras]]`): where its frames come from (a recorded session,
//! GStreamer, nokhwa, FLIR files), how live streams reconnect, its radiometry and
//! registration. Owned by the sources; `config` only collects the list.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::invalid::Invalid;
use crate::queue::WhenFull;
use crate::registration::Homography;
use crate::thermal::RadiometryConfig;

/// A source of both spectra of a camera.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceConfig {
    /// FLIR radiometric JPEGs (R-JPEG): a `.jpg`, or a folder of them replayed in capture
    /// order; each file is a visible + thermal pair (docs/flir.md).
    Flir {
        path: PathBuf,
        #[serde(default)]
        speed: f64,
        #[serde(default, rename = "loop")]
        looped: bool,
    },
    /// A recorded session folder (see docs/sources.md, "Replay format").
    Replay {
        path: PathBuf,
        /// 1.0 = recorded pace, 2.0 = twice as fast, 0 = as fast as possible.
        #[serde(default)]
        speed: f64,
        /// Start again at the end (timestamps keep increasing).
        #[serde(default, rename = "loop")]
        looped: bool,
    },
}

/// What a GStreamer stream does when its pipeline reaches end of stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AtEos {
    /// Reconnect (RTSP servers and cameras that come back).
    #[default]
    Reconnect,
    /// The stream is over (files, test sources with num-buffers).
    End,
}

/// A source of one spectrum (`[cameras.visible]` / `[cameras.thermal]`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StreamConfig {
    /// A GStreamer pipeline (`pipeline`) or a URI (`uri`, e.g. rtsp://…); spectrald adds
    /// the conversion and the appsink at the end.
    Gstreamer {
        #[serde(default)]
        pipeline: Option<String>,
        #[serde(default)]
        uri: Option<String>,
        /// Pace by the pipeline clock (true for files played at recorded speed).
        #[serde(default)]
        sync: bool,
        #[serde(default)]
        at_eos: AtEos,
    },
    /// A camera through nokhwa: `device` is an index ("0") or part of its name.
    Camera {
        device: String,
        #[serde(default)]
        width: Option<u32>,
        #[serde(default)]
        height: Option<u32>,
        #[serde(default)]
        fps: Option<u32>,
    },
    /// FLIR radiometric `.seq`/`.fff`/R-JPEG file, or a folder of `.fff`/R-JPEG files
    /// (thermal only).
    Flir {
        path: PathBuf,
        #[serde(default)]
        speed: f64,
        #[serde(default, rename = "loop")]
        looped: bool,
    },
}

impl StreamConfig {
    /// Live streams reconnect and default their queue to `drop_oldest`.
    pub fn is_live(&self) -> bool {
        !matches!(self, StreamConfig::Flir { .. })
    }
}

/// Reconnect and stall detection for live streams.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReconnectConfig {
    /// First backoff; doubles per failed attempt up to `max_backoff_ms` (with jitter).
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// 0 = keep trying forever.
    pub max_attempts: u32,
    /// A stream that delivered nothing this long after connecting has stalled.
    pub first_frame_timeout_ms: u64,
    /// Stalled when no frame came for this many frame intervals …
    pub stall_intervals: f64,
    /// … but never sooner than this.
    pub min_stall_ms: u64,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        ReconnectConfig {
            initial_backoff_ms: 500,
            max_backoff_ms: 30_000,
            max_attempts: 0,
            first_frame_timeout_ms: 10_000,
            stall_intervals: 10.0,
            min_stall_ms: 1_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    pub id: String,
    /// Both spectra from one source (a recorded session) …
    #[serde(default)]
    pub source: Option<SourceConfig>,
    /// … or each spectrum from its own stream.
    #[serde(default)]
    pub visible: Option<StreamConfig>,
    #[serde(default)]
    pub thermal: Option<StreamConfig>,
    #[serde(default)]
    pub radiometry: RadiometryConfig,
    /// Thermal → visible pixel homography (row-major 3×3), from `spectrald calibrate`.
    #[serde(default)]
    pub homography: Option<[[f64; 3]; 3]>,
    #[serde(default)]
    pub reconnect: ReconnectConfig,
    /// The policy of this camera's source queue; default `drop_oldest` for live streams
    /// (latency stays bounded), `block` for files (nothing lost).
    #[serde(default)]
    pub when_full: Option<WhenFull>,
}

impl CameraConfig {
    /// A camera replaying a recorded session.
    pub fn replay(id: &str, path: PathBuf, speed: f64, looped: bool) -> CameraConfig {
        CameraConfig {
            id: id.to_owned(),
            source: Some(SourceConfig::Replay {
                path,
                speed,
                looped,
            }),
            visible: None,
            thermal: None,
            radiometry: RadiometryConfig::default(),
            homography: None,
            reconnect: ReconnectConfig::default(),
            when_full: None,
        }
    }

    pub fn has_live_streams(&self) -> bool {
        [&self.visible, &self.thermal]
            .into_iter()
            .flatten()
            .any(StreamConfig::is_live)
    }

    /// The policy of this camera's source → pair queue: the camera's own `when_full`, else
    /// `drop_oldest` for live streams and `for_files` for recorded input.
    pub fn source_queue_policy(&self, for_files: WhenFull) -> WhenFull {
        self.when_full.unwrap_or(if self.has_live_streams() {
            WhenFull::DropOldest
        } else {
            for_files
        })
    }
}

impl StreamConfig {
    /// Checks one `[cameras.visible]` / `[cameras.thermal]` table.
    fn validate(&self, spectrum: &str) -> Result<(), Invalid> {
        match self {
            StreamConfig::Gstreamer { pipeline, uri, .. }
                if pipeline.is_some() == uri.is_some() =>
            {
                Err(Invalid::new("", "give exactly one of `pipeline` or `uri`"))
            }
            StreamConfig::Camera { .. } if spectrum == "thermal" => Err(Invalid::new(
                "",
                "nokhwa cameras deliver 8-bit RGB only; read radiometric Y16 thermal cameras with kind = \"gstreamer\", pipeline = \"v4l2src device=/dev/videoN ! video/x-raw,format=GRAY16_LE\"",
            )),
            StreamConfig::Flir { .. } if spectrum == "visible" => Err(Invalid::new(
                "",
                "FLIR radiometric files are thermal; use them as [cameras.thermal]",
            )),
            StreamConfig::Flir { path, .. } if !path.exists() => Err(Invalid::new(
                "path",
                format!(
                    "{} does not exist; give a .seq/.fff/R-JPEG file or a folder of .fff/.jpg files",
                    path.display()
                ),
            )),
            StreamConfig::Flir { speed, .. } if speed.is_nan() || *speed < 0.0 => {
                Err(Invalid::new("speed", format!("must be >= 0, got {speed}")))
            }
            _ => Ok(()),
        }
    }
}

impl ReconnectConfig {
    /// Checks `[cameras.reconnect]`.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.initial_backoff_ms == 0 || self.max_backoff_ms < self.initial_backoff_ms {
            return Err(Invalid::new(
                "",
                "need 0 < initial_backoff_ms <= max_backoff_ms",
            ));
        }
        if self.stall_intervals.is_nan() || self.stall_intervals < 1.0 {
            return Err(Invalid::new(
                "stall_intervals",
                format!("must be >= 1, got {}", self.stall_intervals),
            ));
        }
        Ok(())
    }
}

impl CameraConfig {
    /// Checks one camera; field names are relative to its `[[cameras]]` table.
    pub fn validate(&self) -> Result<(), Invalid> {
        let id_ok = !self.id.is_empty()
            && self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !id_ok {
            return Err(Invalid::new(
                "id",
                format!("{:?}: use letters, digits, '-' and '_' only", self.id),
            ));
        }
        // A recorded source's pace: 1 = as recorded, 0 = as fast as possible.
        let check_speed = |speed: f64| {
            if speed.is_nan() || speed < 0.0 {
                return Err(Invalid::new(
                    "source.speed",
                    format!("must be >= 0 (0 = as fast as possible), got {speed}"),
                ));
            }
            Ok(())
        };
        if let Some(SourceConfig::Flir { path, speed, .. }) = &self.source {
            check_speed(*speed)?;
            if !path.exists() {
                return Err(Invalid::new(
                    "source.path",
                    format!(
                        "{} does not exist; give a radiometric .jpg or a folder of them",
                        path.display()
                    ),
                ));
            }
        }
        if let Some(SourceConfig::Replay { path, speed, .. }) = &self.source {
            check_speed(*speed)?;
            if !path.is_dir() {
                return Err(Invalid::new(
                    "source.path",
                    format!(
                        "{} is not a folder; record a session or fix the path",
                        path.display()
                    ),
                ));
            }
        }
        let has_streams = self.visible.is_some() || self.thermal.is_some();
        if self.source.is_some() && has_streams {
            return Err(Invalid::new(
                "",
                "give either `source` (a recorded session) or `visible`/`thermal` streams, not both",
            ));
        }
        if self.source.is_none() && !has_streams {
            return Err(Invalid::new(
                "",
                "no input: add `source = { kind = \"replay\", … }` or a [cameras.visible] / [cameras.thermal] stream",
            ));
        }
        for (spectrum, stream) in [("visible", &self.visible), ("thermal", &self.thermal)] {
            if let Some(stream) = stream {
                stream.validate(spectrum).map_err(|e| e.within(spectrum))?;
            }
        }
        self.radiometry
            .validate()
            .map_err(|e| e.within("radiometry"))?;
        if let Some(h) = self.homography
            && Homography::new(h).is_err()
        {
            return Err(Invalid::new(
                "homography",
                "not invertible; run `spectrald calibrate` to compute one",
            ));
        }
        self.reconnect.validate().map_err(|e| e.within("reconnect"))
    }
}

/// Checks the camera list: at least one camera, each valid, ids unique. Field names are
/// relative to `cameras`.
pub fn validate_cameras(cameras: &[CameraConfig]) -> Result<(), Invalid> {
    if cameras.is_empty() {
        return Err(Invalid::new(
            "",
            "no camera configured; add a [[cameras]] table (see config.toml)",
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, camera) in cameras.iter().enumerate() {
        let at = format!("[{i}]");
        camera.validate().map_err(|e| e.within(&at))?;
        if !seen.insert(camera.id.as_str()) {
            return Err(Invalid::new(
                format!("{at}.id"),
                format!("{:?} is used twice; camera ids must be unique", camera.id),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/session-pexels")
    }

    fn gst(pipeline: Option<&str>, uri: Option<&str>) -> StreamConfig {
        StreamConfig::Gstreamer {
            pipeline: pipeline.map(Into::into),
            uri: uri.map(Into::into),
            sync: false,
            at_eos: AtEos::Reconnect,
        }
    }

    fn streams(visible: Option<StreamConfig>, thermal: Option<StreamConfig>) -> CameraConfig {
        CameraConfig {
            source: None,
            visible,
            thermal,
            ..CameraConfig::replay("door", session(), 0.0, false)
        }
    }

    #[test]
    fn the_bundled_session_is_a_valid_camera() {
        assert_eq!(
            validate_cameras(&[CameraConfig::replay("a", session(), 1.0, false)]),
            Ok(())
        );
    }

    #[test]
    fn camera_list_problems_name_the_camera() {
        assert_eq!(validate_cameras(&[]).unwrap_err().field, "");
        let twice = [
            CameraConfig::replay("a", session(), 0.0, false),
            CameraConfig::replay("a", session(), 0.0, false),
        ];
        let e = validate_cameras(&twice).unwrap_err();
        assert_eq!(e.field, "[1].id");
        assert!(e.message.contains("used twice"));
        let bad_id = [CameraConfig::replay("front door", session(), 0.0, false)];
        assert_eq!(validate_cameras(&bad_id).unwrap_err().field, "[0].id");
    }

    #[test]
    fn a_replay_needs_a_folder_and_a_sane_speed() {
        let missing = CameraConfig::replay("a", "/nonexistent/session".into(), 0.0, false);
        assert_eq!(missing.validate().unwrap_err().field, "source.path");
        let backwards = CameraConfig::replay("a", session(), -1.0, false);
        assert_eq!(backwards.validate().unwrap_err().field, "source.speed");
    }

    #[test]
    fn streams_are_checked_per_spectrum() {
        assert_eq!(
            streams(Some(gst(Some("videotestsrc"), None)), None).validate(),
            Ok(())
        );
        let both = streams(Some(gst(Some("videotestsrc"), Some("rtsp://x"))), None);
        assert_eq!(both.validate().unwrap_err().field, "visible");
        let nokhwa_thermal = streams(
            None,
            Some(StreamConfig::Camera {
                device: "0".into(),
                width: None,
                height: None,
                fps: None,
            }),
        );
        let e = nokhwa_thermal.validate().unwrap_err();
        assert_eq!(e.field, "thermal");
        assert!(e.message.contains("GRAY16_LE"));
        let flir_visible = streams(
            Some(StreamConfig::Flir {
                path: session(),
                speed: 0.0,
                looped: false,
            }),
            None,
        );
        assert_eq!(flir_visible.validate().unwrap_err().field, "visible");
        assert_eq!(streams(None, None).validate().unwrap_err().field, "");
        let mut mixed = streams(Some(gst(Some("videotestsrc"), None)), None);
        mixed.source = CameraConfig::replay("door", session(), 0.0, false).source;
        assert!(mixed.validate().unwrap_err().message.contains("not both"));
    }

    #[test]
    fn reconnect_and_homography_must_make_sense() {
        let mut camera = CameraConfig::replay("a", session(), 0.0, false);
        camera.reconnect.initial_backoff_ms = 0;
        assert_eq!(camera.validate().unwrap_err().field, "reconnect");
        camera.reconnect = ReconnectConfig {
            stall_intervals: 0.5,
            ..Default::default()
        };
        assert_eq!(
            camera.validate().unwrap_err().field,
            "reconnect.stall_intervals"
        );
        camera.reconnect = ReconnectConfig::default();
        camera.homography = Some([[0.0; 3]; 3]);
        assert_eq!(camera.validate().unwrap_err().field, "homography");
    }
}

//! Face tracks: each face gets a `track_id` that stays the same while that face stays in
//! view and is new for a new face.
//!
//! Per camera and spectrum, each live track predicts where its box is now (constant velocity
//! from its last two sightings); detections are assigned to tracks by the Hungarian method
//! on their overlap (IoU) with those predictions, so two faces that cross keep their own ids.
//! A pair with IoU ≥ `iou_threshold` is a match; failing that, a face whose centre is within
//! `max_jump` face sizes of the prediction (a fast face at a low frame rate, or a track seen
//! once, with no velocity yet) may still continue it, but every overlap match outranks such a
//! jump. An unmatched detection starts a new track; a track not seen for `max_age_ms` of
//! capture time ends, and its id is never reused in this run of the daemon.

use std::collections::HashMap;

use pathfinding::kuhn_munkres::kuhn_munkres;
use pathfinding::matrix::Matrix;
use serde::{Deserialize, Serialize};

use crate::detect::iou;
use crate::geometry::BoundingBox;
use crate::invalid::Invalid;

/// `[tracking]`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrackingConfig {
    /// A detection continues a track when its box overlaps the track's predicted box at
    /// least this much (IoU).
    pub iou_threshold: f32,
    /// Without that overlap, a face may continue a track whose predicted centre is at most
    /// this many face sizes (√(w·h)) away, if the sizes agree within a factor of 1.5.
    pub max_jump: f32,
    /// A track unseen for this long (capture time) has left; a face seen again later is new.
    pub max_age_ms: u64,
}

impl Default for TrackingConfig {
    fn default() -> Self {
        TrackingConfig {
            iou_threshold: 0.3,
            max_jump: 1.0,
            max_age_ms: 1_000,
        }
    }
}

impl TrackingConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        if !(self.iou_threshold > 0.0 && self.iou_threshold <= 1.0) {
            return Err(Invalid::new(
                "iou_threshold",
                format!("{}: must be above 0 and at most 1", self.iou_threshold),
            ));
        }
        if !(self.max_jump >= 0.0 && self.max_jump.is_finite()) {
            return Err(Invalid::new(
                "max_jump",
                format!("{}: must be >= 0 (0: overlap only)", self.max_jump),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct Track {
    id: u64,
    face: BoundingBox,
    seen_us: i64,
    /// Centre motion in pixels per microsecond, from the last two sightings.
    velocity: [f32; 2],
}

impl Track {
    fn predicted(&self, now_us: i64) -> BoundingBox {
        let dt = (now_us - self.seen_us).max(0) as f32;
        BoundingBox {
            x: self.face.x + self.velocity[0] * dt,
            y: self.face.y + self.velocity[1] * dt,
            ..self.face
        }
    }
}

/// The tracks of one image stream (a camera's visible or thermal faces).
#[derive(Debug, Default)]
pub struct Tracker {
    tracks: Vec<Track>,
}

/// How well a face continues a predicted track box, as an integer weight for the assignment
/// (the solver wants an ordered number type); 0: it does not. Overlap matches weigh
/// 1 000 000 + IoU · 1 000 000, jumps less than 1 000 000 (closer is heavier), so any
/// overlap match outranks any jump.
fn weight(face: BoundingBox, predicted: BoundingBox, config: &TrackingConfig) -> i64 {
    let overlap = iou(face, predicted);
    if overlap >= config.iou_threshold {
        return 1_000_000 + (overlap * 1_000_000.0).round() as i64;
    }
    let size = |b: BoundingBox| (b.w * b.h).max(0.0).sqrt();
    let (a, b) = (size(face), size(predicted));
    if a <= 0.0 || b <= 0.0 || a.max(b) > 1.5 * a.min(b) {
        return 0;
    }
    let centre = |b: BoundingBox| [b.x + b.w / 2.0, b.y + b.h / 2.0];
    let (p, q) = (centre(face), centre(predicted));
    let jump = (p[0] - q[0]).hypot(p[1] - q[1]) / a.max(b);
    if jump <= config.max_jump {
        (999_999.0 * (1.0 - jump / (config.max_jump + 1e-6))).max(1.0) as i64
    } else {
        0
    }
}

impl Tracker {
    /// Assigns an id to each of `faces` (seen at `captured_us`), new ids from `next_id`.
    pub fn update(
        &mut self,
        faces: &[BoundingBox],
        captured_us: i64,
        config: &TrackingConfig,
        next_id: &mut u64,
    ) -> Vec<u64> {
        let max_age = config.max_age_ms as i64 * 1000;
        self.tracks
            .retain(|t| captured_us - t.seen_us <= max_age && captured_us >= t.seen_us);
        let weights: Vec<Vec<i64>> = faces
            .iter()
            .map(|f| {
                self.tracks
                    .iter()
                    .map(|t| weight(*f, t.predicted(captured_us), config))
                    .collect()
            })
            .collect();
        let matched = assign(&weights);
        let mut ids = Vec::with_capacity(faces.len());
        for (i, face) in faces.iter().enumerate() {
            match matched[i] {
                Some(t) => {
                    let track = &mut self.tracks[t];
                    let dt = (captured_us - track.seen_us).max(1) as f32;
                    let centre = |b: &BoundingBox| [b.x + b.w / 2.0, b.y + b.h / 2.0];
                    let (now, before) = (centre(face), centre(&track.face));
                    track.velocity = [(now[0] - before[0]) / dt, (now[1] - before[1]) / dt];
                    track.face = *face;
                    track.seen_us = captured_us;
                    ids.push(track.id);
                }
                None => {
                    let id = *next_id;
                    *next_id += 1;
                    self.tracks.push(Track {
                        id,
                        face: *face,
                        seen_us: captured_us,
                        velocity: [0.0, 0.0],
                    });
                    ids.push(id);
                }
            }
        }
        ids
    }
}

/// For each face, the track it continues: the assignment of greatest total weight, keeping
/// only pairs of positive weight.
fn assign(weights: &[Vec<i64>]) -> Vec<Option<usize>> {
    let faces = weights.len();
    let tracks = weights.first().map_or(0, Vec::len);
    let mut out = vec![None; faces];
    if faces == 0 || tracks == 0 {
        return out;
    }
    let w = |f: usize, t: usize| weights[f][t];
    // kuhn_munkres needs no more rows than columns.
    if faces <= tracks {
        let m = Matrix::from_fn(faces, tracks, |(f, t)| w(f, t));
        let (_, to_track) = kuhn_munkres(&m);
        for (f, &t) in to_track.iter().enumerate() {
            out[f] = (w(f, t) > 0).then_some(t);
        }
    } else {
        let m = Matrix::from_fn(tracks, faces, |(t, f)| w(f, t));
        let (_, to_face) = kuhn_munkres(&m);
        for (t, &f) in to_face.iter().enumerate() {
            if w(f, t) > 0 {
                out[f] = Some(t);
            }
        }
    }
    out
}

/// The trackers of every camera and spectrum, with one id counter per camera (a face's
/// thermal twin registered from the visible frame carries the visible id).
#[derive(Debug, Default)]
pub struct Tracks {
    cameras: HashMap<String, CameraTracks>,
}

#[derive(Debug, Default)]
struct CameraTracks {
    next_id: u64,
    streams: [Tracker; 2],
}

impl Tracks {
    /// Ids for `faces` of `camera`'s stream `stream` (0 visible, 1 thermal).
    pub fn update(
        &mut self,
        camera: &str,
        stream: usize,
        faces: &[BoundingBox],
        captured_us: i64,
        config: &TrackingConfig,
    ) -> Vec<u64> {
        let entry = match self.cameras.get_mut(camera) {
            Some(entry) => entry,
            None => self.cameras.entry(camera.to_owned()).or_default(),
        };
        let CameraTracks { next_id, streams } = entry;
        streams[stream.min(1)].update(faces, captured_us, config, next_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(x: f32, y: f32) -> BoundingBox {
        BoundingBox {
            x,
            y,
            w: 40.0,
            h: 40.0,
        }
    }

    const FRAME_US: i64 = 100_000;

    fn run(frames: &[Vec<BoundingBox>]) -> Vec<Vec<u64>> {
        let (mut tracker, mut next) = (Tracker::default(), 0);
        let config = TrackingConfig::default();
        frames
            .iter()
            .enumerate()
            .map(|(i, faces)| tracker.update(faces, i as i64 * FRAME_US, &config, &mut next))
            .collect()
    }

    #[test]
    fn a_moving_face_keeps_its_id_and_a_new_one_gets_a_new_id() {
        let ids = run(&[
            vec![face(0.0, 0.0)],
            vec![face(8.0, 0.0)],
            vec![face(16.0, 0.0), face(200.0, 0.0)],
            vec![face(24.0, 0.0), face(200.0, 0.0)],
        ]);
        assert_eq!(ids, vec![vec![0], vec![0], vec![0, 1], vec![0, 1]]);
    }

    #[test]
    fn two_faces_that_cross_keep_their_ids() {
        // A moves right, B moves left, 16 px per frame; they overlap in the middle frames,
        // where the constant-velocity prediction tells them apart.
        let frames: Vec<Vec<BoundingBox>> = (0..8)
            .map(|i| {
                let step = 16.0 * i as f32;
                vec![face(step, 0.0), face(112.0 - step, 4.0)]
            })
            .collect();
        let ids = run(&frames);
        for (i, frame) in ids.iter().enumerate() {
            assert_eq!(frame, &vec![0, 1], "frame {i}");
        }
    }

    #[test]
    fn a_face_gone_longer_than_max_age_comes_back_as_new() {
        let config = TrackingConfig {
            max_age_ms: 250,
            ..Default::default()
        };
        let (mut tracker, mut next) = (Tracker::default(), 0);
        assert_eq!(
            tracker.update(&[face(0.0, 0.0)], 0, &config, &mut next),
            vec![0]
        );
        assert_eq!(
            tracker.update(&[], 100_000, &config, &mut next),
            Vec::<u64>::new()
        );
        assert_eq!(
            tracker.update(&[face(0.0, 0.0)], 200_000, &config, &mut next),
            vec![0],
            "back within max_age"
        );
        assert_eq!(
            tracker.update(&[face(0.0, 0.0)], 600_000, &config, &mut next),
            vec![1],
            "gone for 400 ms"
        );
    }

    #[test]
    fn more_faces_than_tracks_and_more_tracks_than_faces() {
        let ids = run(&[
            vec![face(0.0, 0.0), face(100.0, 0.0), face(200.0, 0.0)],
            vec![face(100.0, 0.0)],
            vec![
                face(0.0, 0.0),
                face(100.0, 0.0),
                face(200.0, 0.0),
                face(300.0, 0.0),
            ],
        ]);
        assert_eq!(ids, vec![vec![0, 1, 2], vec![1], vec![0, 1, 2, 3]]);
    }

    #[test]
    fn ids_are_per_camera_and_shared_by_its_streams() {
        let mut tracks = Tracks::default();
        let config = TrackingConfig::default();
        assert_eq!(
            tracks.update("a", 0, &[face(0.0, 0.0)], 0, &config),
            vec![0]
        );
        assert_eq!(
            tracks.update("a", 1, &[face(0.0, 0.0)], 0, &config),
            vec![1]
        );
        assert_eq!(
            tracks.update("b", 0, &[face(0.0, 0.0)], 0, &config),
            vec![0]
        );
    }

    #[test]
    fn a_fast_face_seen_once_continues_its_track_by_a_jump() {
        // 40 px face moving 36 px per frame: no overlap with its first sighting (IoU 0.05),
        // but its centre is within one face size; a second face far away is new.
        let ids = run(&[
            vec![face(0.0, 0.0)],
            vec![face(36.0, 0.0), face(300.0, 0.0)],
            vec![face(72.0, 0.0), face(300.0, 0.0)],
        ]);
        assert_eq!(ids, vec![vec![0], vec![0, 1], vec![0, 1]]);
        // Overlap only (max_jump 0): the jump is a new track.
        let config = TrackingConfig {
            max_jump: 0.0,
            ..Default::default()
        };
        let (mut tracker, mut next) = (Tracker::default(), 0);
        tracker.update(&[face(0.0, 0.0)], 0, &config, &mut next);
        assert_eq!(
            tracker.update(&[face(36.0, 0.0)], FRAME_US, &config, &mut next),
            vec![1]
        );
    }
}

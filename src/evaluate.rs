//! `spectrald evaluate`: NME of the whole daemon pipeline on a labelled folder.
//!
//! The folder has the 300-W layout of `../shared/data/faces-300w-dev`: `images/NAME.jpg`
//! (or .png) and `landmarks/NAME.pts` (iBUG 68 points, 1-based). Every image becomes a
//! visible-only frame of a temporary replay session (symlinks, nothing copied), the real
//! pipeline runs it — detector, crops, both DMSL models — and the face it found for the
//! labelled one is scored with the paper's NME (eq. 3). The labelled face is the detected
//! face whose box overlaps the labelled landmarks' box most (IoU ≥ 0.25); when there is
//! none, the detector missed it (counted, and a failure).
//! `--held-out` keeps the faces that `models/train/faces.py` holds out of training (the
//! SHA-1 of the source photo id in the last 2 of 20 buckets), so the numbers are comparable.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use sha1::{Digest, Sha1};

use crate::config::Config;
use crate::detect::iou;
use crate::dmsl::nme;
use crate::geometry::BoundingBox;
use crate::pipeline::{Pipeline, PipelineError};
use crate::publish::record::faces_of;
use crate::publish::{Outgoing, Sink, SinkError};
use crate::source::CameraConfig;
use crate::telemetry::Events;

#[derive(Debug, thiserror::Error)]
pub enum EvaluateError {
    #[error("{path}: {message}")]
    Data { path: PathBuf, message: String },
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("temporary session: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Evaluation {
    pub faces: usize,
    /// Over the faces found (detected, with landmarks).
    pub nme_mean: f64,
    pub nme_median: f64,
    /// Share of all faces with NME above 0.1, or not found (a common "failure" threshold).
    pub failure_rate: f64,
    /// The same at 0.08, the threshold of the 300-W protocol's CED curves.
    pub failure_rate_008: f64,
    /// Area under the cumulative error curve up to NME 0.08, normalised to [0, 1].
    pub auc_008: f64,
    /// Faces without landmarks: the detector missed them, or the pipeline failed.
    pub missing: usize,
    /// Of those, the ones the detector did not find.
    pub missed_detections: usize,
    pub per_face: BTreeMap<String, f64>,
}

/// Reads a 68-point iBUG `.pts` file into 0-based pixel-centre coordinates.
pub fn read_pts(path: &Path) -> Result<Vec<[f32; 2]>, EvaluateError> {
    let bad = |message: String| EvaluateError::Data {
        path: path.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let body = match (text.find('{'), text.rfind('}')) {
        (Some(a), Some(b)) if a < b => &text[a + 1..b],
        _ => text.as_str(),
    };
    let values: Vec<f32> = body
        .split_whitespace()
        .map(|v| {
            v.parse::<f32>()
                .map_err(|_| bad(format!("{v:?} is not a number")))
        })
        .collect::<Result<_, _>>()?;
    if values.len() != 136 {
        return Err(bad(format!(
            "expected 68 points (136 numbers), found {} numbers",
            values.len()
        )));
    }
    Ok(values
        .chunks_exact(2)
        .map(|p| [p[0] - 1.0, p[1] - 1.0])
        .collect())
}

/// The training split rule of models/train/faces.py.
pub fn is_held_out(name: &str) -> bool {
    let photo = if name.starts_with("afw_") || name.starts_with("helen_") {
        match name.rsplit_once('_') {
            Some((stem, n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => stem,
            _ => name,
        }
    } else {
        name
    };
    Sha1::digest(photo.as_bytes())[0] % 20 >= 18
}

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<String>>>);

impl Sink for Collect {
    fn name(&self) -> String {
        "evaluate".into()
    }
    fn publish(&mut self, message: &Outgoing<'_>) -> Result<(), SinkError> {
        let line = message.line;
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(line.to_owned());
        Ok(())
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// One labelled face: its name (the `.pts` stem), image and 68 true points.
struct LabelledFace {
    name: String,
    image: PathBuf,
    truth: Vec<[f32; 2]>,
}

/// Runs the pipeline of `config` (its models, queues, backend) over the labelled folder.
pub fn evaluate(
    dir: &Path,
    mut config: Config,
    held_out: bool,
    limit: usize,
) -> Result<Evaluation, EvaluateError> {
    let faces = labelled_faces(dir, held_out, limit)?;
    let session = replay_session(&faces)?;
    config.cameras = vec![CameraConfig::replay(
        "evaluate",
        session.path().to_owned(),
        0.0,
        false,
    )];
    let lines = run_pipeline(&config)?;
    Ok(score(&faces, &lines))
}

/// The faces of a 300-W-layout folder, sorted by name, optionally only the held-out ones.
fn labelled_faces(
    dir: &Path,
    held_out: bool,
    limit: usize,
) -> Result<Vec<LabelledFace>, EvaluateError> {
    let (images, marks) = (dir.join("images"), dir.join("landmarks"));
    if !images.is_dir() || !marks.is_dir() {
        return Err(EvaluateError::Data {
            path: dir.to_owned(),
            message: "needs images/ and landmarks/ folders (300-W layout)".into(),
        });
    }
    let mut names: Vec<String> = std::fs::read_dir(&marks)?
        .flatten()
        .filter_map(|e| {
            e.path()
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .filter(|_| e.path().extension().is_some_and(|x| x == "pts"))
        })
        .collect();
    names.sort();
    names.retain(|n| !held_out || is_held_out(n));
    if limit > 0 {
        names.truncate(limit);
    }
    let mut faces = Vec::with_capacity(names.len());
    for name in names {
        let Some(image) = ["jpg", "png", "jpeg"]
            .iter()
            .map(|x| images.join(format!("{name}.{x}")))
            .find(|p| p.is_file())
        else {
            return Err(EvaluateError::Data {
                path: images.join(&name),
                message: "no image for this .pts file".into(),
            });
        };
        let truth = read_pts(&marks.join(format!("{name}.pts")))?;
        faces.push(LabelledFace { name, image, truth });
    }
    Ok(faces)
}

/// A temporary replay session with one visible frame per face (symlinks, nothing copied);
/// frame i is face i, so a record's sequence number names its face.
fn replay_session(faces: &[LabelledFace]) -> Result<tempfile::TempDir, EvaluateError> {
    let session = tempfile::tempdir()?;
    std::fs::create_dir(session.path().join("visible"))?;
    let mut manifest = String::from("spectrum,timestamp_us,file\n");
    for (i, face) in faces.iter().enumerate() {
        let extension = face
            .image
            .extension()
            .map_or("jpg".into(), |x| x.to_string_lossy());
        let link = format!("visible/{i:06}.{extension}");
        std::os::unix::fs::symlink(
            std::path::absolute(&face.image)?,
            session.path().join(&link),
        )?;
        manifest.push_str(&format!("visible,{},{link}\n", i as i64 * 100_000));
    }
    std::fs::write(session.path().join("manifest.csv"), manifest)?;
    Ok(session)
}

/// Runs the real pipeline to the end and returns the records it published.
fn run_pipeline(config: &Config) -> Result<Vec<String>, EvaluateError> {
    let sink = Collect::default();
    let pipeline = Pipeline::start(
        config,
        vec![("evaluate".to_owned(), Box::new(sink.clone()))],
        Arc::new(Events::new()),
        Arc::new(AtomicBool::new(false)),
    )?;
    pipeline.wait();
    let lines = sink.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok(lines)
}

/// The box around the labelled landmarks.
fn landmark_box(points: &[[f32; 2]]) -> BoundingBox {
    let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for p in points {
        (x0, y0, x1, y1) = (x0.min(p[0]), y0.min(p[1]), x1.max(p[0]), y1.max(p[1]));
    }
    BoundingBox {
        x: x0,
        y: y0,
        w: x1 - x0,
        h: y1 - y0,
    }
}

/// Least overlap between a detected face's box and the labelled landmarks' box for the
/// detection to be that face (the detector's box also covers the forehead: a perfect match
/// has IoU ≈ 0.65).
const MATCH_IOU: f32 = 0.25;

/// NME per face from the records; a face without landmarks counts as missing.
fn score(faces: &[LabelledFace], lines: &[String]) -> Evaluation {
    let mut per_face = BTreeMap::new();
    let mut seen = vec![false; faces.len()];
    let mut missed_detections = 0;
    for line in lines {
        let Ok(record) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let Some((index, face)) = record["sequence"]
            .as_u64()
            .and_then(|s| Some((s as usize, faces.get(s as usize)?)))
        else {
            continue;
        };
        seen[index] = true;
        let truth_box = landmark_box(&face.truth);
        let found = faces_of(&record, "visible")
            .into_iter()
            .map(|f| (iou(f.face_box, truth_box), f))
            .filter(|(overlap, _)| *overlap >= MATCH_IOU)
            .max_by(|a, b| a.0.total_cmp(&b.0));
        let Some((_, found)) = found else {
            missed_detections += 1;
            continue;
        };
        if let Some(v) = found.landmarks.and_then(|p| nme(&p, &face.truth)) {
            per_face.insert(face.name.clone(), v);
        }
    }
    let unpublished = seen.iter().filter(|s| !**s).count();
    let missing = faces.len() - per_face.len();
    let mut values: Vec<f64> = per_face.values().copied().collect();
    values.sort_by(f64::total_cmp);
    let n = values.len().max(1) as f64;
    let total = faces.len().max(1) as f64;
    let share_over =
        |limit: f64| (values.iter().filter(|v| **v > limit).count() + missing) as f64 / total;
    Evaluation {
        faces: faces.len(),
        nme_mean: values.iter().sum::<f64>() / n,
        nme_median: values.get(values.len() / 2).copied().unwrap_or(f64::NAN),
        failure_rate: share_over(0.1),
        failure_rate_008: share_over(0.08),
        auc_008: auc(&values, faces.len(), 0.08),
        missing,
        missed_detections: missed_detections + unpublished,
        per_face,
    }
}

/// Area under the cumulative error distribution from 0 to `limit` (faces without
/// landmarks never count as below), normalised so a perfect method scores 1.
fn auc(sorted: &[f64], faces: usize, limit: f64) -> f64 {
    if faces == 0 {
        return 0.0;
    }
    // ∫₀^limit share(NME ≤ t) dt = Σ over faces below limit of (limit − NME), / faces.
    let area: f64 = sorted
        .iter()
        .take_while(|v| **v <= limit)
        .map(|v| limit - v)
        .sum();
    area / faces as f64 / limit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_out_rule_groups_faces_of_one_photo() {
        assert_eq!(
            is_held_out("afw_1051618982_1"),
            is_held_out("afw_1051618982_2")
        );
        let names: Vec<String> = (0..2000).map(|i| format!("lfpw_image_{i:04}")).collect();
        let share = names.iter().filter(|n| is_held_out(n)).count() as f64 / names.len() as f64;
        assert!(
            (0.05..0.15).contains(&share),
            "about 10 % held out: {share}"
        );
    }

    #[test]
    fn pts_files_are_read_as_zero_based() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.pts");
        let body: String = (0..68).map(|i| format!("{} 2\n", i + 1)).collect();
        std::fs::write(&path, format!("version: 1\nn_points: 68\n{{\n{body}}}\n")).expect("write");
        let pts = read_pts(&path).expect("pts");
        assert_eq!(pts[0], [0.0, 1.0]);
        std::fs::write(&path, "{\n1 2\n}\n").expect("write");
        assert!(
            read_pts(&path)
                .expect_err("short")
                .to_string()
                .contains("68 points")
        );
    }

    #[test]
    fn auc_of_perfect_and_missing_faces() {
        assert_eq!(auc(&[0.0, 0.0], 2, 0.08), 1.0);
        assert!((auc(&[0.04], 2, 0.08) - 0.25).abs() < 1e-12);
        assert_eq!(auc(&[0.1], 1, 0.08), 0.0);
    }
}

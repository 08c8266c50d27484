//! Scoring an offline model on a labelled folder.
//!
//! Classification folders: `labels.csv` with `file` and `class` columns, or one
//! sub-folder per class (named as the model's classes). Segmentation folders: `files.csv`
//! with `image` and `label` columns, or `images/` + `labels/` with the same file stems;
//! labels are class-index PNGs, values outside the model's classes (void) are ignored.
//! `--split FILE` (a CSV with a `file` or `image` column) restricts the items, so a
//! model's held-out list can be scored exactly.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::infer::TestTime;

use super::OfflineError;
use super::classify;
use super::metrics::{ClassificationScores, Confusion, SegmentationScores};
use super::model::{OfflineModel, Task};
use super::raster::{self, Scale16};
use super::refine::RefineParams;
use super::segment;

/// One labelled item: an image and its class or its label map.
#[derive(Debug, Clone)]
pub struct Item {
    pub image: PathBuf,
    pub truth: Truth,
}

#[derive(Debug, Clone)]
pub enum Truth {
    Class(String),
    LabelMap(PathBuf),
}

fn dataset_err(path: &Path, message: impl Into<String>) -> OfflineError {
    OfflineError::Dataset {
        path: path.to_owned(),
        message: message.into(),
    }
}

fn read_csv(path: &Path) -> Result<Vec<csv::StringRecord>, OfflineError> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| dataset_err(path, e.to_string()))?;
    let headers = reader
        .headers()
        .map_err(|e| dataset_err(path, e.to_string()))?
        .clone();
    let mut rows = vec![headers];
    for row in reader.records() {
        rows.push(row.map_err(|e| dataset_err(path, e.to_string()))?);
    }
    Ok(rows)
}

fn column(rows: &[csv::StringRecord], names: &[&str], path: &Path) -> Result<usize, OfflineError> {
    rows[0]
        .iter()
        .position(|h| names.contains(&h))
        .ok_or_else(|| dataset_err(path, format!("needs a column named {}", names.join(" or "))))
}

/// The values of columns `a` and `b` in every row of a CSV with a header.
fn csv_pairs(path: &Path, a: &str, b: &str) -> Result<Vec<(String, String)>, OfflineError> {
    let rows = read_csv(path)?;
    let (a, b) = (column(&rows, &[a], path)?, column(&rows, &[b], path)?);
    Ok(rows[1..]
        .iter()
        .map(|r| (r[a].to_string(), r[b].to_string()))
        .collect())
}

/// The items of a dataset folder for `task`, restricted to `split` if given.
pub fn load_items(dir: &Path, task: Task, split: Option<&Path>) -> Result<Vec<Item>, OfflineError> {
    if !dir.is_dir() {
        return Err(dataset_err(dir, "not a folder"));
    }
    let mut items = match task {
        Task::Classify => classification_items(dir)?,
        Task::Segment => segmentation_items(dir)?,
    };
    if let Some(split) = split {
        let rows = read_csv(split)?;
        let col = column(&rows, &["file", "image"], split)?;
        let keep: HashSet<PathBuf> = rows[1..].iter().map(|r| dir.join(&r[col])).collect();
        items.retain(|item| keep.contains(&item.image));
        if items.len() != keep.len() {
            return Err(dataset_err(
                split,
                format!(
                    "lists {} items, {} of them are in {}",
                    keep.len(),
                    items.len(),
                    dir.display()
                ),
            ));
        }
    }
    if items.is_empty() {
        return Err(dataset_err(dir, "has no labelled items"));
    }
    Ok(items)
}

fn classification_items(dir: &Path) -> Result<Vec<Item>, OfflineError> {
    let labels = dir.join("labels.csv");
    if labels.is_file() {
        return Ok(csv_pairs(&labels, "file", "class")?
            .into_iter()
            .map(|(file, class)| Item {
                image: dir.join(file),
                truth: Truth::Class(class),
            })
            .collect());
    }
    let mut items = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| dataset_err(dir, e.to_string()))?;
    let mut class_dirs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    class_dirs.sort();
    for class_dir in class_dirs {
        let class = class_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for image in super::run::expand_inputs(&[class_dir.display().to_string()])? {
            items.push(Item {
                image,
                truth: Truth::Class(class.clone()),
            });
        }
    }
    Ok(items)
}

fn segmentation_items(dir: &Path) -> Result<Vec<Item>, OfflineError> {
    let files = dir.join("files.csv");
    if files.is_file() {
        return Ok(csv_pairs(&files, "image", "label")?
            .into_iter()
            .map(|(image, label)| Item {
                image: dir.join(image),
                truth: Truth::LabelMap(dir.join(label)),
            })
            .collect());
    }
    let (images, labels) = (dir.join("images"), dir.join("labels"));
    if !images.is_dir() || !labels.is_dir() {
        return Err(dataset_err(
            dir,
            "needs files.csv or images/ and labels/ folders",
        ));
    }
    let mut items = Vec::new();
    for image in super::run::expand_inputs(&[images.display().to_string()])? {
        let stem = image
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let label = labels.join(format!("{stem}.png"));
        if !label.is_file() {
            return Err(dataset_err(
                dir,
                format!("{} has no label {}", image.display(), label.display()),
            ));
        }
        items.push(Item {
            image,
            truth: Truth::LabelMap(label),
        });
    }
    Ok(items)
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub model: String,
    pub task: &'static str,
    pub items: usize,
    /// Items that could not be scored, with why.
    pub failed: Vec<(String, String)>,
    pub classes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classification: Option<ClassificationScores>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segmentation: Option<SegmentationScores>,
    /// Segmentation with contextual-regularization refinement (same network outputs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segmentation_refined: Option<SegmentationScores>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refine: Option<RefineParams>,
    /// Segmentation: the test-time scales and flip the figures were measured with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_time: Option<TestTime>,
    #[serde(skip)]
    pub confusion: Confusion,
    #[serde(skip)]
    pub confusion_refined: Option<Confusion>,
}

/// Scores `model` on `items`; `tick` is called after each item (progress).
pub fn evaluate(
    model: &mut OfflineModel,
    items: &[Item],
    refine: Option<&RefineParams>,
    tick: &dyn Fn(),
) -> Result<Report, OfflineError> {
    let classes = model.classes().to_vec();
    let task = model.task;
    let mut confusion = Confusion::new(classes.len());
    let mut refined = refine.map(|_| Confusion::new(classes.len()));
    let mut failed = Vec::new();
    if task == Task::Classify {
        // Every truth class must be one of the model's: a typo would silently score 0.
        let known: HashSet<&String> = classes.iter().collect();
        for item in items {
            if let Truth::Class(c) = &item.truth
                && !known.contains(c)
            {
                return Err(dataset_err(
                    &item.image,
                    format!(
                        "class \"{c}\" is not one of the model's classes: {}",
                        classes.join(", ")
                    ),
                ));
            }
        }
    }
    for item in items {
        let scored = match (&item.truth, task) {
            (Truth::Class(c), Task::Classify) => {
                score_class(model, item, c, &classes, &mut confusion)
            }
            (Truth::LabelMap(l), Task::Segment) => {
                score_map(model, item, l, &mut confusion, refine.zip(refined.as_mut()))
            }
            _ => Err(dataset_err(
                &item.image,
                "label kind does not match the task",
            )),
        };
        if let Err(e) = scored {
            failed.push((item.image.display().to_string(), e.to_string()));
        }
        tick();
    }
    Ok(Report {
        model: model.manifest().id(),
        task: task.as_str(),
        items: items.len() - failed.len(),
        failed,
        classes,
        classification: (task == Task::Classify).then(|| confusion.classification_scores()),
        segmentation: (task == Task::Segment).then(|| confusion.segmentation_scores()),
        segmentation_refined: refined.as_ref().map(|c| c.segmentation_scores()),
        refine: refine.copied(),
        test_time: (task == Task::Segment).then(|| model.test_time.clone()),
        confusion,
        confusion_refined: refined,
    })
}

fn score_class(
    model: &mut OfflineModel,
    item: &Item,
    truth: &str,
    classes: &[String],
    confusion: &mut Confusion,
) -> Result<(), OfflineError> {
    let raster = raster::read(&item.image, None, Scale16::Percentile)?;
    let result = classify::classify(model, &raster, &item.image, None, 1)?;
    let t = classes
        .iter()
        .position(|c| c == truth)
        .unwrap_or(usize::MAX);
    confusion.add(t, result.top_class());
    Ok(())
}

fn score_map(
    model: &mut OfflineModel,
    item: &Item,
    label: &Path,
    confusion: &mut Confusion,
    refined: Option<(&RefineParams, &mut Confusion)>,
) -> Result<(), OfflineError> {
    let raster = raster::read(&item.image, None, Scale16::Percentile)?;
    let truth = image::open(label)
        .map_err(|e| dataset_err(label, e.to_string()))?
        .into_luma8();
    if (truth.width() as usize, truth.height() as usize) != (raster.width, raster.height) {
        return Err(dataset_err(
            label,
            format!(
                "label is {}x{}, its image {}x{}; labels must have the image's size",
                truth.width(),
                truth.height(),
                raster.width,
                raster.height
            ),
        ));
    }
    let classes = model.classes().len();
    let n = raster.width * raster.height;
    let mut probs = segment::probabilities(model, &raster, &item.image)?;
    let add = |confusion: &mut Confusion, labels: &[u8]| {
        for (t, p) in truth.as_raw().iter().zip(labels) {
            confusion.add(*t as usize, *p as usize);
        }
    };
    add(confusion, &segment::argmax_labels(&probs, classes, n));
    if let Some((params, refined)) = refined {
        segment::refine_probabilities(&mut probs, classes, model, &raster, &item.image, params)?;
        add(refined, &segment::argmax_labels(&probs, classes, n));
    }
    Ok(())
}

/// The report as a fixed-width table (what `offline evaluate` prints).
pub fn table(report: &Report) -> String {
    let mut out = format!(
        "model {}  task {}  items {}",
        report.model, report.task, report.items
    );
    if !report.failed.is_empty() {
        out += &format!("  failed {}", report.failed.len());
    }
    if let Some(t) = &report.test_time {
        let scales: Vec<String> = t.scales.iter().map(|k| k.to_string()).collect();
        out += &format!(
            "  scales {}{}",
            scales.join(","),
            if t.flip { " + flip" } else { "" }
        );
    }
    out += "\n";
    let pct = |v: f64| format!("{:6.2}", v * 100.0);
    let opt = |v: Option<f64>| v.map(pct).unwrap_or_else(|| "     -".into());
    if let Some(c) = &report.classification {
        out += &format!(
            "accuracy {} %\n\n{:<24} {:>9} {:>9}\n",
            pct(c.accuracy),
            "class",
            "precision",
            "recall"
        );
        for (i, name) in report.classes.iter().enumerate() {
            out += &format!(
                "{name:<24} {:>9} {:>9}\n",
                opt(c.precision[i]),
                opt(c.recall[i])
            );
        }
    }
    let mut segs = vec![];
    if let Some(s) = &report.segmentation {
        segs.push(("network", s));
    }
    if let Some(s) = &report.segmentation_refined {
        segs.push(("+ CR refinement", s));
    }
    if !segs.is_empty() {
        out += &format!(
            "{:<18} {:>9} {:>9} {:>9} {:>9}\n",
            "", "pixel-acc", "mean-acc", "mean-IU", "fw-IU"
        );
        for (label, s) in &segs {
            out += &format!(
                "{label:<18} {:>9} {:>9} {:>9} {:>9}\n",
                pct(s.pixel_accuracy),
                pct(s.mean_accuracy),
                pct(s.mean_iu),
                pct(s.frequency_weighted_iu)
            );
        }
        out += &format!("\n{:<18}", "IU per class");
        for (label, _) in &segs {
            out += &format!(" {label:>16}");
        }
        out += "\n";
        for (i, name) in report.classes.iter().enumerate() {
            out += &format!("{name:<18}");
            for (_, s) in &segs {
                out += &format!(" {:>16}", opt(s.per_class_iu[i]));
            }
            out += "\n";
        }
    }
    for (input, error) in &report.failed {
        out += &format!("failed: {input}: {error}\n");
    }
    out
}

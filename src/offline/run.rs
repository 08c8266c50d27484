//! Running an offline model over many inputs: expand files/folders/globs, skip what the
//! store already has, analyse the rest one by one, write the result files, report
//! progress, and collect the failures instead of stopping at the first bad file.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use serde_json::{Value, json};

use crate::infer::TestTime;

use super::OfflineError;
use super::classify::{self, Classification};
use super::geotiff;
use super::model::{OfflineModel, Task};
use super::raster::{self, Raster, Scale16};
use super::refine::RefineParams;
use super::segment::{self, Segmentation};
use super::store::Store;

/// Output lines carry this schema name (docs/offline.md).
pub const SCHEMA: &str = "spectrald.offline/v1";

const IMAGE_EXTENSIONS: [&str; 5] = ["png", "jpg", "jpeg", "tif", "tiff"];

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Tile stride for scenes larger than the model input (default: the patch size).
    pub stride: Option<usize>,
    /// Tiles per inference call.
    pub batch: usize,
    /// Contextual-regularization refinement of segmentation maps.
    pub refine: Option<RefineParams>,
    /// Names of the input's bands in order (default: by band count).
    pub bands: Option<Vec<String>>,
    pub scale16: Option<Scale16>,
    /// Where result files go; None: JSON only.
    pub out_dir: Option<PathBuf>,
    /// Analyse again even when the store has a result.
    pub force: bool,
}

impl RunOptions {
    /// The options that change a result, as the store's key (stable JSON). A segmentation
    /// model's test-time plan is part of it unless it is the single whole-image pass (so
    /// results stored before plans existed still match).
    pub fn key(&self, task: Task, test_time: &TestTime) -> String {
        let scale = match self.scale16.unwrap_or(Scale16::Percentile) {
            Scale16::Range(lo, hi) => format!("{lo}:{hi}"),
            Scale16::Percentile => "p2-p98".into(),
        };
        match task {
            Task::Classify => json!({"stride": self.stride, "bands": self.bands, "scale16": scale}),
            Task::Segment if *test_time != TestTime::default() => json!({
                "refine": self.refine, "bands": self.bands, "scale16": scale, "test_time": test_time
            }),
            Task::Segment => json!({"refine": self.refine, "bands": self.bands, "scale16": scale}),
        }
        .to_string()
    }
}

/// What happened to one input.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Analysed now; the result line.
    Done(Value),
    /// The store already had it; the stored line.
    Skipped(Value),
}

/// One model with its store and options; analyses inputs one at a time.
pub struct Analyzer {
    pub model: OfflineModel,
    pub store: Option<Store>,
    pub options: RunOptions,
    used_names: HashSet<String>,
}

impl Analyzer {
    pub fn new(
        model: OfflineModel,
        store: Option<Store>,
        options: RunOptions,
    ) -> Result<Analyzer, OfflineError> {
        if let Some(store) = &store {
            store.register_model(model.manifest())?;
        }
        if let Some(dir) = &options.out_dir {
            std::fs::create_dir_all(dir).map_err(|source| OfflineError::Output {
                path: dir.clone(),
                message: source.to_string(),
            })?;
        }
        Ok(Analyzer {
            model,
            store,
            options,
            used_names: HashSet::new(),
        })
    }

    pub fn model_id(&self) -> String {
        self.model.manifest().id()
    }

    /// Analyses one file.
    pub fn analyse_file(&mut self, path: &Path) -> Result<Outcome, OfflineError> {
        let bytes = std::fs::read(path).map_err(|source| raster::RasterError::Io {
            path: path.to_owned(),
            source,
        })?;
        let tiff = raster::is_tiff(path);
        self.analyse_bytes(&bytes, path, &path.display().to_string(), tiff)
    }

    /// Analyses an image in memory; `path` names it in errors and output files, `input`
    /// is what the store and the result line call it.
    pub fn analyse_bytes(
        &mut self,
        bytes: &[u8],
        path: &Path,
        input: &str,
        tiff: bool,
    ) -> Result<Outcome, OfflineError> {
        let sha = crate::infer::sha256_hex(bytes);
        let task = self.model.task;
        let key = self.options.key(task, &self.model.test_time);
        let model_id = self.model_id();
        if !self.options.force
            && let Some(store) = &self.store
            && let Some(line) = store.find(&model_id, &sha, &key)?
        {
            let value = serde_json::from_str(&line).unwrap_or(Value::String(line));
            return Ok(Outcome::Skipped(value));
        }
        let started = Instant::now();
        let raster = raster::read_bytes(
            bytes,
            path,
            tiff,
            self.options.bands.as_deref(),
            self.options.scale16.unwrap_or(Scale16::Percentile),
        )?;
        let mut line = json!({
            "schema": SCHEMA,
            "task": task.as_str(),
            "model": model_id,
            "input": input,
            "input_sha256": sha,
            "width": raster.width,
            "height": raster.height,
            "bands": raster.band_names,
            "bit_depth": raster.bit_depth,
        });
        let stem = self.output_stem(path, &sha);
        let outputs = match task {
            Task::Classify => {
                let result = classify::classify(
                    &mut self.model,
                    &raster,
                    path,
                    self.options.stride,
                    self.options.batch,
                )?;
                self.describe_classification(&mut line, &result, &raster);
                self.write_classification(&stem, &result, &raster)?
            }
            Task::Segment => {
                let result =
                    segment::segment(&mut self.model, &raster, path, self.options.refine.as_ref())?;
                self.describe_segmentation(&mut line, &result);
                self.write_segmentation(&stem, &result, &raster)?
            }
        };
        line["outputs"] = json!(outputs);
        line["ms"] = json!((started.elapsed().as_secs_f64() * 1e4).round() / 10.0);
        if let Some(store) = &self.store {
            store.insert(
                &model_id,
                task.as_str(),
                input,
                &sha,
                &key,
                &line.to_string(),
            )?;
        }
        Ok(Outcome::Done(line))
    }

    fn output_stem(&mut self, path: &Path, sha: &str) -> Option<PathBuf> {
        let dir = self.options.out_dir.as_ref()?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "upload".into());
        // Two inputs with the same file name (in different folders) get distinct outputs.
        let name = if self.used_names.insert(stem.clone()) {
            stem
        } else {
            format!("{stem}-{}", &sha[..8])
        };
        Some(dir.join(name))
    }

    fn describe_classification(&self, line: &mut Value, result: &Classification, raster: &Raster) {
        let classes = self.model.classes();
        let top = result.top_class();
        line["class"] = json!(classes[top]);
        line["probabilities"] = classes
            .iter()
            .zip(&result.mean_probabilities)
            .map(|(c, p)| (c.clone(), json!((f64::from(*p) * 1e4).round() / 1e4)))
            .collect::<serde_json::Map<_, _>>()
            .into();
        if result.grid.len() > 1 {
            let counts = result.class_counts();
            line["tiles"] = json!({
                "cols": result.grid.cols,
                "rows": result.grid.rows,
                "patch": result.grid.patch,
                "stride": result.grid.stride,
                "uncovered_right": result.grid.uncovered_right,
                "uncovered_bottom": result.grid.uncovered_bottom,
                "counts": classes.iter().zip(counts).filter(|(_, n)| *n > 0)
                    .map(|(c, n)| (c.clone(), json!(n))).collect::<serde_json::Map<_, _>>(),
            });
        }
        if raster.is_tiff {
            line["georeferenced"] = json!(raster.georef.is_some());
            if raster.georef.is_none() {
                line["note"] =
                    json!("no georeference tags: the class map is written as a plain TIFF");
            }
            if let Some((x, y)) = raster.georef.as_ref().and_then(|g| g.model_xy(0.0, 0.0)) {
                line["origin"] = json!([x, y]);
            }
            let pixel = raster.georef.as_ref().and_then(|g| g.pixel_size_m());
            if let (Some(pixel), Some(trained)) =
                (pixel, self.model.manifest().ground_sample_distance_m)
            {
                line["pixel_size_m"] = json!(pixel);
                // Scene classes depend on scale: a 5 m scene in 64-pixel tiles shows a
                // quarter of the ground a 10 m training patch did.
                if !(0.67..=1.5).contains(&(pixel / trained)) {
                    line["warnings"] = json!([format!(
                        "pixels are {pixel} m, the model was trained on {trained} m: resample the scene (e.g. gdalwarp -tr {trained} {trained}) for reliable classes"
                    )]);
                }
            }
        }
    }

    fn write_classification(
        &self,
        stem: &Option<PathBuf>,
        result: &Classification,
        raster: &Raster,
    ) -> Result<Vec<String>, OfflineError> {
        let Some(stem) = stem else { return Ok(vec![]) };
        if result.grid.len() <= 1 {
            return Ok(vec![]);
        }
        let manifest = self.model.manifest();
        let palette = segment::palette(&manifest.colors, manifest.classes.len());
        let (cols, rows) = (result.grid.cols, result.grid.rows);
        let tif = with_suffix(stem, "classes.tif");
        let georef = raster
            .georef
            .as_ref()
            .map(|g| g.for_grid(result.grid.stride));
        geotiff::write_class_map(&tif, cols, rows, &result.tiles, georef.as_ref())?;
        // The colour map is scaled up so a small grid is visible; cells stay sharp.
        let scale = (256 / cols.max(rows)).max(1) as u32;
        let colours = segment::colour_labels(&result.tiles, cols, rows, &palette);
        let big = image::imageops::resize(
            &colours,
            cols as u32 * scale,
            rows as u32 * scale,
            image::imageops::FilterType::Nearest,
        );
        let png = with_suffix(stem, "classes.png");
        save_png(&big, &png)?;
        let legend = with_suffix(stem, "legend.svg");
        write_legend(
            &legend,
            &png,
            big.dimensions(),
            &manifest.classes,
            &palette,
            &result.class_counts(),
        )?;
        Ok([tif, png, legend]
            .iter()
            .map(|p| p.display().to_string())
            .collect())
    }

    fn describe_segmentation(&self, line: &mut Value, result: &Segmentation) {
        let classes = self.model.classes();
        line["class_fractions"] = classes
            .iter()
            .zip(&result.summary.class_fractions)
            .filter(|(_, f)| **f > 0.0)
            .map(|(c, f)| (c.clone(), json!((f64::from(*f) * 1e4).round() / 1e4)))
            .collect::<serde_json::Map<_, _>>()
            .into();
        line["refined"] = json!(result.summary.refined);
        line["scales"] = json!(result.summary.scales);
        line["flip"] = json!(result.summary.flip);
    }

    fn write_segmentation(
        &self,
        stem: &Option<PathBuf>,
        result: &Segmentation,
        raster: &Raster,
    ) -> Result<Vec<String>, OfflineError> {
        let Some(stem) = stem else { return Ok(vec![]) };
        let manifest = self.model.manifest();
        let palette = segment::palette(&manifest.colors, manifest.classes.len());
        let labels = with_suffix(stem, "labels.png");
        let gray = image::GrayImage::from_raw(
            result.width as u32,
            result.height as u32,
            result.labels.clone(),
        )
        .ok_or_else(|| OfflineError::Output {
            path: labels.clone(),
            message: "label buffer size".into(),
        })?;
        save_png(&gray, &labels)?;
        let overlay = with_suffix(stem, "overlay.png");
        save_png(
            &segment::overlay(raster, &result.labels, &palette),
            &overlay,
        )?;
        Ok([labels, overlay]
            .iter()
            .map(|p| p.display().to_string())
            .collect())
    }
}

fn with_suffix(stem: &Path, suffix: &str) -> PathBuf {
    let mut name = stem.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

fn save_png<P, C>(image: &image::ImageBuffer<P, C>, path: &Path) -> Result<(), OfflineError>
where
    P: image::PixelWithColorType,
    [P::Subpixel]: image::EncodableLayout,
    C: std::ops::Deref<Target = [P::Subpixel]>,
{
    image.save(path).map_err(|e| OfflineError::Output {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// An SVG that shows the class map with a legend of class names, colours and tile counts
/// (SVG because it carries text without a font dependency; any browser opens it).
fn write_legend(
    path: &Path,
    png: &Path,
    (w, h): (u32, u32),
    classes: &[String],
    palette: &[[u8; 3]],
    counts: &[usize],
) -> Result<(), OfflineError> {
    let png_name = png
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let row = 20;
    let height = h.max(classes.len() as u32 * row + 10);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"13\">\n<image href=\"{}\" width=\"{w}\" height=\"{h}\" style=\"image-rendering:pixelated\"/>\n",
        w + 260,
        xml_escape(&png_name)
    );
    for (i, name) in classes.iter().enumerate() {
        let [r, g, b] = palette[i];
        let y = 5 + i as u32 * row;
        svg += &format!(
            "<rect x=\"{}\" y=\"{y}\" width=\"14\" height=\"14\" fill=\"rgb({r},{g},{b})\" stroke=\"black\"/><text x=\"{}\" y=\"{}\">{} ({} tiles)</text>\n",
            w + 10,
            w + 30,
            y + 12,
            xml_escape(name),
            counts[i]
        );
    }
    svg += "</svg>\n";
    std::fs::write(path, svg).map_err(|e| OfflineError::Output {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Files, folders (recursively, image extensions only) and glob patterns → sorted,
/// de-duplicated file list. A pattern or path that matches nothing is an error.
pub fn expand_inputs(args: &[String]) -> Result<Vec<PathBuf>, OfflineError> {
    let mut out = Vec::new();
    for arg in args {
        let path = PathBuf::from(arg);
        if path.is_dir() {
            collect_dir(&path, &mut out).map_err(|source| raster::RasterError::Io {
                path: path.clone(),
                source,
            })?;
        } else if path.is_file() {
            out.push(path);
        } else if arg.contains(['*', '?', '[']) {
            let matches: Vec<PathBuf> = glob::glob(arg)
                .map_err(|e| OfflineError::Input(format!("pattern {arg}: {e}")))?
                .flatten()
                .filter(|p| p.is_file())
                .collect();
            if matches.is_empty() {
                return Err(OfflineError::Input(format!(
                    "pattern {arg} matches no files"
                )));
            }
            out.extend(matches);
        } else {
            return Err(OfflineError::Input(format!(
                "{arg}: no such file or folder"
            )));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn collect_dir(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_dir(&path, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        {
            out.push(path);
        }
    }
    Ok(())
}

/// Where a run stands; the CLI draws it as a progress bar, the HTTP job serves it.
pub trait Progress {
    fn start(&self, total: usize);
    fn advance(&self, input: &Path, outcome: &Result<Outcome, OfflineError>);
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct RunSummary {
    pub done: usize,
    pub skipped: usize,
    /// (input, one-line error) per failed input.
    pub failed: Vec<(String, String)>,
}

/// Analyses every input; `on_line` gets each new or stored result line in input order.
pub fn run_all(
    analyzer: &mut Analyzer,
    inputs: &[PathBuf],
    progress: &dyn Progress,
    stop: &dyn Fn() -> bool,
    mut on_line: impl FnMut(&Value, bool),
) -> RunSummary {
    progress.start(inputs.len());
    let mut summary = RunSummary::default();
    for input in inputs {
        if stop() {
            break;
        }
        let outcome = analyzer.analyse_file(input);
        progress.advance(input, &outcome);
        match &outcome {
            Ok(Outcome::Done(line)) => {
                summary.done += 1;
                on_line(line, false);
            }
            Ok(Outcome::Skipped(line)) => {
                summary.skipped += 1;
                on_line(line, true);
            }
            Err(e) => summary
                .failed
                .push((input.display().to_string(), e.to_string())),
        }
    }
    summary
}

//! `spectrald thermal info|export`: what a FLIR file (`.jpg` R-JPEG, `.fff`, `.seq`) holds,
//! and its temperatures as a float32 TIFF, its visible photo and a palette rendering,
//! without running a pipeline.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use spectrald::flir::{self, FlirImage, FrameInfo};
use spectrald::thermal::palette::Palette;
use spectrald::thermal::radiometry::ObjectOverrides;

use super::common::{exit_code, write_stdout};

#[derive(Subcommand)]
pub enum ThermalCommand {
    /// Camera, sizes, raw type, Planck and object parameters, capture time, temperatures.
    Info(InfoArgs),
    /// °C as a float32 TIFF, the visible photo, a palette rendering.
    Export(ExportArgs),
}

/// Which frames of a file: a number, or `all`.
#[derive(Clone, Copy, Debug)]
pub enum FrameChoice {
    One(usize),
    All,
}

impl std::str::FromStr for FrameChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "all" {
            return Ok(FrameChoice::All);
        }
        s.parse()
            .map(FrameChoice::One)
            .map_err(|_| format!("{s:?} is neither a frame number nor \"all\""))
    }
}

#[derive(Args)]
pub struct InfoArgs {
    /// A radiometric JPEG, `.fff` or `.seq`.
    file: PathBuf,
    /// Frame of a `.seq` (0-based), or `all`.
    #[arg(long, default_value = "0")]
    frame: FrameChoice,
    /// One JSON object per frame instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct ExportArgs {
    /// A radiometric JPEG, `.fff` or `.seq`.
    file: PathBuf,
    /// Write °C per pixel here (single-channel float32 TIFF).
    #[arg(long)]
    celsius: Option<PathBuf>,
    /// Write the visible photo here (format from the extension: .png, .jpg).
    #[arg(long)]
    visible: Option<PathBuf>,
    /// Write a false-colour rendering here (PNG), stretched from the coldest to the hottest pixel.
    #[arg(long)]
    png: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "iron")]
    palette: Palette,
    /// Frame of a `.seq` (0-based), or `all` (file names get -NNNNNN before the extension).
    #[arg(long, default_value = "0")]
    frame: FrameChoice,
    #[command(flatten)]
    object: ObjectArgs,
}

/// The scene as the operator knows it, over what the camera wrote.
#[derive(Args)]
struct ObjectArgs {
    /// Emissivity of the object (0 < ε ≤ 1).
    #[arg(long)]
    emissivity: Option<f64>,
    /// Distance to the object in metres.
    #[arg(long)]
    distance: Option<f64>,
    /// Reflected apparent temperature, °C.
    #[arg(long)]
    reflected: Option<f64>,
    /// Atmospheric temperature, °C.
    #[arg(long)]
    atmospheric: Option<f64>,
    /// Relative humidity, 0…1.
    #[arg(long)]
    humidity: Option<f64>,
}

impl ObjectArgs {
    fn overrides(&self) -> ObjectOverrides {
        ObjectOverrides {
            emissivity: self.emissivity,
            distance_m: self.distance,
            reflected_c: self.reflected,
            atmospheric_c: self.atmospheric,
            humidity: self.humidity,
        }
    }
}

pub fn run(command: ThermalCommand) -> Result<ExitCode> {
    match command {
        ThermalCommand::Info(args) => info(&args),
        ThermalCommand::Export(args) => export(&args),
    }
}

/// Calls `each` with every chosen frame; a frame that does not decode is reported on stderr
/// and the rest go on. Returns whether every frame went through.
fn for_frames(
    path: &Path,
    choice: FrameChoice,
    mut each: impl FnMut(usize, &FlirImage) -> Result<()>,
) -> Result<bool> {
    match choice {
        FrameChoice::One(n) => {
            let image = flir::read_frame_of(path, n)?;
            each(n, &image)?;
            Ok(true)
        }
        FrameChoice::All => {
            let mut all_ok = true;
            for (n, image) in flir::frames(path)?.enumerate() {
                // One frame's failure is reported and the rest go on.
                if let Err(e) = image.map_err(anyhow::Error::from).and_then(|i| each(n, &i)) {
                    eprintln!(
                        "spectrald: frame {n}: {}",
                        format!("{e:#}").replace('\n', " ")
                    );
                    all_ok = false;
                }
            }
            Ok(all_ok)
        }
    }
}

fn info(args: &InfoArgs) -> Result<ExitCode> {
    let kind = file_kind(&args.file)?;
    let frames = flir::frame_count(&args.file)?;
    let all_ok = for_frames(&args.file, args.frame, |n, image| {
        let info = FrameInfo::of(image, &args.file, kind, frames, n);
        if args.json {
            write_stdout(&format!("{}\n", serde_json::to_string(&info)?))
        } else {
            write_stdout(&describe(&info))
        }
    })?;
    Ok(exit_code(all_ok))
}

fn file_kind(path: &Path) -> Result<flir::FileKind> {
    use std::io::Read;
    let mut magic = [0u8; 4];
    let got = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut magic))
        .with_context(|| format!("reading {}", path.display()))?;
    match flir::kind_of(&magic[..got]) {
        Some(kind) => Ok(kind),
        None => bail!(
            "{}: neither a radiometric JPEG nor an FFF/SEQ file",
            path.display()
        ),
    }
}

/// The text form of `thermal info`: one "key: value" line per fact.
fn describe(info: &FrameInfo) -> String {
    let mut out = String::new();
    let mut line = |key: &str, value: String| out.push_str(&format!("{key:<18} {value}\n"));
    line(
        "file",
        format!("{} (frame {} of {})", info.file, info.frame, info.frames),
    );
    line("kind", format!("{:?}", info.kind).to_lowercase());
    line("camera", info.camera.clone());
    line(
        "captured",
        info.captured.clone().unwrap_or_else(|| "unknown".into()),
    );
    let t = &info.thermal;
    line(
        "thermal",
        format!(
            "{}x{}, raw {:?} ({}…{})",
            t.width, t.height, t.raw_type, t.raw_min, t.raw_max
        ),
    );
    line(
        "temperature",
        t.temperature
            .map_or("unknown (no camera info)".into(), |s| {
                format!(
                    "{:.2} … {:.2} °C, mean {:.2} °C",
                    s.min_c, s.max_c, s.mean_c
                )
            }),
    );
    line(
        "visible",
        info.visible.as_ref().map_or("none".into(), |v| {
            format!("{}x{} ({})", v.width, v.height, v.source)
        }),
    );
    use spectrald::thermal::radiometry::Radiometry;
    match &info.radiometry {
        Some(Radiometry::Planck {
            planck: p,
            atmosphere: a,
            object: o,
        }) => {
            line(
                "planck",
                // The file stores f32: print them as such (0.95, not 0.949999988).
                format!(
                    "R1 {} R2 {} B {} F {} O {}",
                    p.r1 as f32, p.r2 as f32, p.b as f32, p.f as f32, p.o as f32
                ),
            );
            line(
                "atmosphere",
                format!(
                    "α1 {} α2 {} β1 {} β2 {} X {}",
                    a.alpha1 as f32, a.alpha2 as f32, a.beta1 as f32, a.beta2 as f32, a.x as f32
                ),
            );
            line(
                "object",
                format!(
                    "emissivity {} distance {:.2} m reflected {:.2} °C atmospheric {:.2} °C humidity {:.2}",
                    o.emissivity as f32, o.distance_m, o.reflected_c, o.atmospheric_c, o.humidity
                ),
            );
            line(
                "window",
                format!(
                    "{:.2} °C, transmission {}",
                    o.window_c, o.window_transmission as f32
                ),
            );
        }
        Some(Radiometry::Centikelvin) => line("radiometry", "centikelvin".into()),
        None => line("radiometry", "none (no camera info record)".into()),
    }
    if let Some(p) = &info.picture_in_picture {
        line(
            "picture-in-picture",
            format!(
                "Real2IR {} offset ({}, {}) thermal crop x {}…{} y {}…{}",
                p.real2ir as f32, p.offset_x, p.offset_y, p.pip_x1, p.pip_x2, p.pip_y1, p.pip_y2
            ),
        );
    }
    out.push('\n');
    out
}

fn export(args: &ExportArgs) -> Result<ExitCode> {
    if args.celsius.is_none() && args.visible.is_none() && args.png.is_none() {
        bail!("nothing to export: give --celsius OUT.tiff, --visible OUT.png and/or --png OUT.png");
    }
    let overrides = args.object.overrides();
    let all = matches!(args.frame, FrameChoice::All);
    let name = |path: &Path, n: usize| {
        if all {
            numbered(path, n)
        } else {
            path.to_owned()
        }
    };
    let all_ok = for_frames(&args.file, args.frame, |n, image| {
        if args.celsius.is_some() || args.png.is_some() {
            let celsius = flir::celsius_image(image, &overrides)?;
            if let Some(out) = &args.celsius {
                flir::write_celsius_tiff(&name(out, n), &celsius)?;
            }
            if let Some(out) = &args.png {
                let out = name(out, n);
                flir::render(&celsius, args.palette)
                    .save(&out)
                    .with_context(|| format!("writing {}", out.display()))?;
            }
        }
        if let Some(out) = &args.visible {
            let out = name(out, n);
            let Some((w, h, rgb)) = image.decode_visible(&args.file)? else {
                bail!("{}: frame {n} has no visible photo", args.file.display());
            };
            image::RgbImage::from_raw(w, h, rgb)
                .context("the decoded photo has the wrong size")?
                .save(&out)
                .with_context(|| format!("writing {}", out.display()))?;
        }
        Ok(())
    })?;
    Ok(exit_code(all_ok))
}

/// `out.tiff` → `out-000012.tiff` for frame 12.
fn numbered(path: &Path, n: usize) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(x) => format!("{stem}-{n:06}.{}", x.to_string_lossy()),
        None => format!("{stem}-{n:06}"),
    };
    path.with_file_name(name)
}

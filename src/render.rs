//! Overlay pictures: the visible frame and the thermal frame (in a palette) side by side,
//! with every face's box, track id and 68 landmarks drawn on, for people to look at
//! (`spectrald overlay`, the HTTP snapshot).

use image::{Rgb, RgbImage, imageops};
use imageproc::drawing::{draw_filled_circle_mut, draw_hollow_rect_mut};
use imageproc::rect::Rect;

use crate::frame::{Pixels, Spectrum};
use crate::geometry::BoundingBox;
use crate::thermal::ThermalNormalization;
use crate::thermal::palette::Palette;

const POINT: Rgb<u8> = Rgb([255, 40, 40]);
const CANTHUS: Rgb<u8> = Rgb([0, 200, 255]);
/// Box colours, one per track (by id), so a face keeps its colour from frame to frame.
const TRACK_COLOURS: [Rgb<u8>; 6] = [
    Rgb([0, 255, 0]),
    Rgb([255, 200, 0]),
    Rgb([255, 0, 255]),
    Rgb([0, 160, 255]),
    Rgb([255, 120, 60]),
    Rgb([160, 255, 160]),
];

/// The colour a track's box is drawn in.
pub fn track_colour(track_id: u64) -> Rgb<u8> {
    TRACK_COLOURS[track_id as usize % TRACK_COLOURS.len()]
}

/// One face to draw (source pixel coordinates).
#[derive(Debug, Clone, PartialEq)]
pub struct FaceMarks {
    pub face_box: BoundingBox,
    pub landmarks: Option<Vec<[f32; 2]>>,
    pub track_id: Option<u64>,
}

/// What to draw on one spectrum's image: every face.
#[derive(Debug, Default, Clone)]
pub struct Marks {
    pub faces: Vec<FaceMarks>,
}

/// 3x5 bitmaps of the digits 0-9 (rows top to bottom, 3 bits each): the track ids are
/// drawn without a font file (imageproc's text drawing needs one).
const DIGITS: [[u8; 5]; 10] = [
    [7, 5, 5, 5, 7],
    [2, 6, 2, 2, 7],
    [7, 1, 7, 4, 7],
    [7, 1, 7, 1, 7],
    [5, 5, 7, 1, 1],
    [7, 4, 7, 1, 7],
    [7, 4, 7, 5, 7],
    [7, 1, 1, 1, 1],
    [7, 5, 7, 5, 7],
    [7, 5, 7, 1, 7],
];

/// Writes `number` at (x, y) (top-left), each bitmap pixel `cell` image pixels wide, on a
/// dark backing so it reads on any frame.
fn draw_number(image: &mut RgbImage, number: u64, x: i32, y: i32, cell: i32, colour: Rgb<u8>) {
    let text = number.to_string();
    let width = text.len() as i32 * 4 * cell + cell;
    let backing = Rect::at(x, y).of_size(width.max(1) as u32, (7 * cell) as u32);
    imageproc::drawing::draw_filled_rect_mut(image, backing, Rgb([0, 0, 0]));
    for (i, ch) in text.bytes().enumerate() {
        let glyph = DIGITS[(ch - b'0') as usize % 10];
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..3 {
                if bits & (4 >> col) != 0 {
                    let px = x + cell + (i as i32 * 4 + col) * cell;
                    let py = y + cell + row as i32 * cell;
                    let cell_rect = Rect::at(px, py).of_size(cell as u32, cell as u32);
                    imageproc::drawing::draw_filled_rect_mut(image, cell_rect, colour);
                }
            }
        }
    }
}

/// Raw thermal values shown through a palette, stretched between the 1st and 99th
/// percentile of the frame.
pub fn thermal_view(values: &[u16], width: u32, height: u32, palette: Palette) -> Option<RgbImage> {
    let stretch = ThermalNormalization::Percentile {
        low: 1.0,
        high: 99.0,
    };
    // Percentile AGC needs no radiometry, so this cannot fail.
    let levels = crate::thermal::agc::normalize(values, stretch, None).ok()?;
    RgbImage::from_raw(width, height, palette.colorize(&levels))
}

fn draw(image: &mut RgbImage, marks: &Marks, scale: f32) {
    let radius = (image.width().max(image.height()) / 240).max(1) as i32;
    for face in &marks.faces {
        let colour = track_colour(face.track_id.unwrap_or(0));
        let b = face.face_box;
        let (x, y) = ((b.x * scale).round() as i32, (b.y * scale).round() as i32);
        let (w, h) = (
            (b.w * scale).round().max(1.0) as u32,
            (b.h * scale).round().max(1.0) as u32,
        );
        draw_hollow_rect_mut(image, Rect::at(x, y).of_size(w, h), colour);
        draw_hollow_rect_mut(
            image,
            Rect::at(x + 1, y + 1).of_size(w.saturating_sub(2).max(1), h.saturating_sub(2).max(1)),
            colour,
        );
        if let Some(points) = &face.landmarks {
            for (i, p) in points.iter().enumerate() {
                let colour = if crate::thermal::face::INNER_CANTHI.contains(&i) {
                    CANTHUS
                } else {
                    POINT
                };
                let centre = (((p[0] + 0.5) * scale) as i32, ((p[1] + 0.5) * scale) as i32);
                draw_filled_circle_mut(image, centre, radius, colour);
            }
        }
        if let Some(id) = face.track_id {
            let cell = (image.height() as i32 / 120).max(2);
            draw_number(image, id, x, (y - 7 * cell).max(0), cell, colour);
        }
    }
}

/// Side by side at the visible image's height (the thermal view is scaled to it).
pub fn side_by_side(
    visible: Option<(RgbImage, Marks)>,
    thermal: Option<(RgbImage, Marks)>,
) -> Option<RgbImage> {
    let height = visible
        .as_ref()
        .or(thermal.as_ref())
        .map(|(img, _)| img.height())?;
    let mut panels = Vec::new();
    for (image, marks) in [visible, thermal].into_iter().flatten() {
        let scale = height as f32 / image.height() as f32;
        let mut panel = if image.height() == height {
            image
        } else {
            let width = (image.width() as f32 * scale).round().max(1.0) as u32;
            imageops::resize(&image, width, height, imageops::FilterType::Nearest)
        };
        draw(&mut panel, &marks, scale);
        panels.push(panel);
    }
    let width = panels.iter().map(|p| p.width()).sum::<u32>() + 4 * (panels.len() as u32 - 1);
    let mut out = RgbImage::new(width, height);
    let mut x = 0i64;
    for panel in panels {
        imageops::replace(&mut out, &panel, x, 0);
        x += panel.width() as i64 + 4;
    }
    Some(out)
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Session(#[from] crate::source::SourceError),
    #[error("{path}: {message}")]
    Io { path: String, message: String },
}

fn marks_of(record: &serde_json::Value, spectrum: &str) -> Marks {
    Marks {
        faces: crate::publish::record::faces_of(record, spectrum)
            .into_iter()
            .map(|f| FaceMarks {
                face_box: f.face_box,
                landmarks: f.landmarks,
                track_id: f.track_id,
            })
            .collect(),
    }
}

/// Draws every record of `records` (JSON lines from a replay of `session`) into
/// `out/CAMERA-SEQUENCE.png`; returns how many pictures it wrote.
pub fn render_session(
    session: &std::path::Path,
    records: &std::path::Path,
    out: &std::path::Path,
    palette: Palette,
) -> Result<usize, RenderError> {
    use crate::frame::{Pixels, Spectrum};
    let io = |path: &std::path::Path, e: &dyn std::fmt::Display| RenderError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let entries = crate::source::replay::read_manifest(session)?;
    let text = std::fs::read_to_string(records).map_err(|e| io(records, &e))?;
    std::fs::create_dir_all(out).map_err(|e| io(out, &e))?;
    let mut written = 0;
    for (n, line) in text.lines().enumerate() {
        let record: serde_json::Value =
            serde_json::from_str(line).map_err(|e| io(records, &format!("line {}: {e}", n + 1)))?;
        let mut views = [None, None];
        for spectrum in Spectrum::ALL {
            let Some(t) = record["spectra"][spectrum.as_str()]["captured_us"].as_i64() else {
                continue;
            };
            let Some(entry) = entries
                .iter()
                .find(|e| e.spectrum == spectrum && e.timestamp_us == t)
            else {
                continue;
            };
            let path = session.join(&entry.file);
            let (w, h, pixels) =
                crate::source::replay::decode(&path, spectrum).map_err(|e| io(&path, &e))?;
            let image = match pixels {
                Pixels::Rgb8(rgb) => RgbImage::from_raw(w, h, rgb),
                Pixels::Gray16(values) => thermal_view(&values, w, h, palette),
            };
            views[spectrum as usize] = image.map(|img| (img, marks_of(&record, spectrum.as_str())));
        }
        let [visible, thermal] = views;
        let Some(picture) = side_by_side(visible, thermal) else {
            continue;
        };
        let name = format!(
            "{}-{:06}.png",
            record["camera"].as_str().unwrap_or("camera"),
            record["sequence"].as_u64().unwrap_or(n as u64)
        );
        let path = out.join(name);
        picture.save(&path).map_err(|e| io(&path, &e))?;
        written += 1;
    }
    Ok(written)
}

/// One spectrum of a frame as an RGB picture: visible as captured, thermal in the iron
/// palette.
fn spectrum_image(frame: &crate::frame::Frame, spectrum: Spectrum) -> Option<RgbImage> {
    let image = frame.image(spectrum)?;
    match &*image.pixels {
        Pixels::Rgb8(rgb) => RgbImage::from_raw(image.width, image.height, rgb.clone()),
        Pixels::Gray16(values) => thermal_view(values, image.width, image.height, Palette::Iron),
    }
}

fn encode_png(image: &RgbImage) -> Option<Vec<u8>> {
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).ok()?;
    Some(out.into_inner())
}

/// The frame's image of one spectrum as PNG, without drawings (the live page draws).
pub fn spectrum_png(frame: &crate::frame::Frame, spectrum: Spectrum) -> Option<Vec<u8>> {
    encode_png(&spectrum_image(frame, spectrum)?)
}

/// Both spectra side by side with every face's box, track id and landmarks drawn, as PNG.
pub fn snapshot_png(frame: &crate::frame::Frame) -> Option<Vec<u8>> {
    let panel = |spectrum| {
        let image = spectrum_image(frame, spectrum)?;
        let faces = frame.result(spectrum).map_or(&[][..], |r| &r.faces);
        let marks = Marks {
            faces: faces
                .iter()
                .map(|f| FaceMarks {
                    face_box: f.detection.face_box,
                    landmarks: f.landmarks.clone(),
                    track_id: f.track_id,
                })
                .collect(),
        };
        Some((image, marks))
    };
    encode_png(&side_by_side(
        panel(Spectrum::Visible),
        panel(Spectrum::Thermal),
    )?)
}

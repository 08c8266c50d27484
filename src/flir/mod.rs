//! FLIR radiometric files: single frames (`.fff`), sequences (`.seq`: FFF frames back to
//! back, as FLIR Duo Pro R, Tau and ResearchIR record them) and radiometric JPEGs (R-JPEG:
//! a visible JPEG carrying an FFF block, as the E/T/Exx series, AX8, FLIR ONE and FLIR-core
//! drones write them). One R-JPEG is a visible + thermal pair: the raw thermal counts with
//! their Planck constants, the embedded visible photo, and where the thermal image sits on it.
//!
//! | file         | what                                                               |
//! |--------------|--------------------------------------------------------------------|
//! | `fff.rs`     | the FFF container: records, raw counts (big/little-endian, PNG, TIFF), camera info, embedded photo, picture-in-picture |
//! | `rjpeg.rs`   | the FLIR APP1 segments of a JPEG, reassembled into the FFF block   |
//! | `export.rs`  | a frame's summary, °C image, float32 TIFF and palette rendering    |
//!
//! The sources (`source::flir`) and `spectrald thermal info|export` read files through
//! [`frames`].

mod export;
mod fff;
mod rjpeg;

use std::path::{Path, PathBuf};

pub use export::{
    CelsiusImage, ExportError, FrameInfo, TemperatureSpan, celsius_image, radiometry_of, render,
    span, write_celsius_tiff,
};
pub use fff::{
    EmbeddedImage, FffError, FffFrame, PictureInPicture, RawType, frame_len, parse_fff, read_frame,
};
pub use rjpeg::{RjpegError, extract_fff, is_jpeg};

#[derive(Debug, thiserror::Error)]
pub enum FlirError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Rjpeg { path: PathBuf, source: RjpegError },
    #[error("{path}: {source}")]
    Fff { path: PathBuf, source: FffError },
    #[error("{path}: the visible photo cannot be decoded: {message}")]
    Visible { path: PathBuf, message: String },
    #[error("{path}: frame {frame} does not exist; the file has {frames}")]
    NoSuchFrame {
        path: PathBuf,
        frame: usize,
        frames: usize,
    },
}

/// What a FLIR file is, by its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// A radiometric JPEG.
    Rjpeg,
    /// One or more FFF frames back to back (`.fff`, `.seq`).
    Fff,
}

/// One radiometric frame of a file, with its visible photo when the file has one.
#[derive(Debug, Clone)]
pub struct FlirImage {
    pub frame: FffFrame,
    /// The photo's encoded bytes: the embedded photo (record 0x0e) when present, else, for
    /// an R-JPEG, the JPEG itself.
    pub visible: Option<Vec<u8>>,
    /// `file#frame`, for messages and records.
    pub origin: String,
}

impl FlirImage {
    /// The visible photo as 8-bit RGB (width, height, pixels), if there is one.
    pub fn decode_visible(&self, path: &Path) -> Result<Option<(u32, u32, Vec<u8>)>, FlirError> {
        let Some(bytes) = &self.visible else {
            return Ok(None);
        };
        let image = image::load_from_memory(bytes).map_err(|e| FlirError::Visible {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let rgb = image.to_rgb8();
        Ok(Some((rgb.width(), rgb.height(), rgb.into_raw())))
    }
}

/// The kind of `data`: an R-JPEG or FFF frames; `None` for anything else.
pub fn kind_of(data: &[u8]) -> Option<FileKind> {
    if is_jpeg(data) {
        Some(FileKind::Rjpeg)
    } else if data.starts_with(b"FFF") || data.starts_with(b"AFF") {
        Some(FileKind::Fff)
    } else {
        None
    }
}

/// The frames of a FLIR file, read as they are needed (a `.seq` recording may be far
/// larger than memory): an R-JPEG or `.fff` has one, a `.seq` all of its frames. A frame
/// that does not decode comes as its error; a file whose structure is broken (an R-JPEG
/// missing a segment, a truncated FFF directory) ends with that error.
pub struct Frames {
    path: PathBuf,
    state: FramesState,
    index: usize,
}

enum FramesState {
    One(Option<Box<Result<FlirImage, FlirError>>>),
    Stream(std::io::BufReader<std::fs::File>),
    Done,
}

/// Opens a FLIR file for [`Frames`]; an unreadable file or one that is neither an R-JPEG nor
/// FFF is an error here.
pub fn frames(path: &Path) -> Result<Frames, FlirError> {
    use std::io::Read;
    let io = |source| FlirError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut magic = [0u8; 4];
    let got = file.read(&mut magic).map_err(io)?;
    let state = match kind_of(&magic[..got]) {
        Some(FileKind::Rjpeg) => {
            let mut data = magic[..got].to_vec();
            file.read_to_end(&mut data).map_err(io)?;
            FramesState::One(Some(Box::new(read_rjpeg(path, &data))))
        }
        Some(FileKind::Fff) => {
            let mut reader = std::io::BufReader::new(file);
            std::io::Seek::seek(&mut reader, std::io::SeekFrom::Start(0)).map_err(io)?;
            FramesState::Stream(reader)
        }
        None => {
            return Err(FlirError::Fff {
                path: path.to_owned(),
                source: FffError::NotFff(String::from_utf8_lossy(&magic[..got]).into_owned()),
            });
        }
    };
    Ok(Frames {
        path: path.to_owned(),
        state,
        index: 0,
    })
}

impl Iterator for Frames {
    type Item = Result<FlirImage, FlirError>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = match &mut self.state {
            FramesState::One(one) => one.take().map(|b| *b),
            FramesState::Stream(reader) => {
                let fff_error = |source| FlirError::Fff {
                    path: self.path.clone(),
                    source,
                };
                match read_frame(reader) {
                    Ok(None) => None,
                    Ok(Some(bytes)) => {
                        let origin = format!("{}#{}", self.path.display(), self.index);
                        Some(parse_fff(&bytes).map_err(fff_error).map(|frame| {
                            let visible = frame.embedded.as_ref().map(|e| e.bytes.clone());
                            FlirImage {
                                frame,
                                visible,
                                origin,
                            }
                        }))
                    }
                    // A broken directory or a short read leaves no way to find the next
                    // frame: this error ends the file.
                    Err(e) => {
                        self.state = FramesState::Done;
                        Some(Err(fff_error(e)))
                    }
                }
            }
            FramesState::Done => None,
        };
        if item.is_none() {
            self.state = FramesState::Done;
        }
        self.index += 1;
        item
    }
}

/// An R-JPEG's one frame, its photo the embedded one or else the JPEG itself.
fn read_rjpeg(path: &Path, data: &[u8]) -> Result<FlirImage, FlirError> {
    let fff = extract_fff(data).map_err(|source| FlirError::Rjpeg {
        path: path.to_owned(),
        source,
    })?;
    let frame = parse_fff(&fff).map_err(|source| FlirError::Fff {
        path: path.to_owned(),
        source,
    })?;
    let visible = match &frame.embedded {
        Some(e) if !e.bytes.is_empty() => Some(e.bytes.clone()),
        _ => Some(data.to_vec()),
    };
    Ok(FlirImage {
        frame,
        visible,
        origin: format!("{}#0", path.display()),
    })
}

/// Frame `frame` of a file (0 for an R-JPEG or `.fff`).
pub fn read_frame_of(path: &Path, frame: usize) -> Result<FlirImage, FlirError> {
    let mut seen = 0;
    for (i, item) in frames(path)?.enumerate() {
        if i == frame {
            return item;
        }
        seen = i + 1;
    }
    Err(FlirError::NoSuchFrame {
        path: path.to_owned(),
        frame,
        frames: seen,
    })
}

/// How many frames a file holds, without decoding them (1 for an R-JPEG).
pub fn frame_count(path: &Path) -> Result<usize, FlirError> {
    let io = |source| FlirError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut reader = std::io::BufReader::new(file);
    let mut magic = [0u8; 4];
    let got = std::io::Read::read(&mut reader, &mut magic).map_err(io)?;
    if kind_of(&magic[..got]) != Some(FileKind::Fff) {
        return Ok(1);
    }
    std::io::Seek::seek(&mut reader, std::io::SeekFrom::Start(0)).map_err(io)?;
    let mut count = 0;
    loop {
        match read_frame(&mut reader) {
            Ok(Some(_)) => count += 1,
            Ok(None) => return Ok(count),
            // What follows a broken frame cannot be found: count what can be read.
            Err(_) => return Ok(count.max(1)),
        }
    }
}

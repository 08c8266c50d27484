//! FLIR radiometric files: single frames (`.fff`, also the payload of radiometric JPEGs)
//! and sequences (`.seq`, FFF frames back to back, as FLIR Duo Pro R, Tau and ResearchIR
//! record them).
//!
//! Layout, from ExifTool's FLIR.pm documentation (hand-written: no maintained Rust crate
//! reads FFF):
//! ```text
//! FFF header (64 bytes)   "FFF\0", creator[16], version u32 @0x14, record directory
//!                         offset u32 @0x18, record count u32 @0x1c. Byte order: the
//!                         version reads 100…200 in the file's order.
//! record directory        32-byte entries: type u16, subtype u16, version u32, index u32,
//!                         offset u32, length u32, … (offsets from the FFF start)
//! record 0x01 RawData     u16 byte-order mark (2 in the record's order), width u16 @2,
//!                         height u16 @4, pixels from @0x20 (subtype 1 BE, 2 LE, 3 PNG)
//! record 0x20 CameraInfo  emissivity f32 @0x20, distance @0x24, reflected K @0x28,
//!                         atmosphere K @0x2c, window K @0x30, window τ @0x34, humidity
//!                         @0x3c, Planck R1 @0x58 B @0x5c F @0x60, atmospheric α1 α2 β1 β2
//!                         X @0x70…0x80, model char[32] @0xd4, capture time (s, ms) @0x384,
//!                         Planck O i32 @0x308 R2 f32 @0x30c, frame rate u16 @0x464
//! ```

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::{Source, SourceError};
use crate::frame::{Pixels, Spectrum, SpectrumFrame};
use crate::queue::QueueSender;
use crate::telemetry::{DropReason, Events};
use crate::thermal::radiometry::{
    AtmosphereConstants, ObjectParameters, PlanckConstants, Radiometry,
};

const HEADER_LEN: usize = 64;
const RECORD_LEN: usize = 32;
/// Far above any FLIR frame (a 1280×1024 radiometric frame with its embedded visible JPEG
/// is a few MB): a header claiming more is corrupt, and trusting it would allocate it.
const MAX_FRAME_BYTES: usize = 64 << 20;
const RECORD_RAW_DATA: u16 = 0x01;
const RECORD_CAMERA_INFO: u16 = 0x20;
const KELVIN: f64 = 273.15;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FffError {
    #[error("not an FFF frame (magic {0:?}, expected \"FFF\")")]
    NotFff(String),
    #[error("truncated: {what} needs bytes {start}..{end}, the frame has {len}")]
    Truncated {
        what: &'static str,
        start: usize,
        end: usize,
        len: usize,
    },
    #[error(
        "{what} claims {claimed} bytes, more than any FLIR frame ({MAX_FRAME_BYTES}): the file is corrupt"
    )]
    TooLarge { what: &'static str, claimed: usize },
    #[error("no raw data record (type 0x01): not a radiometric frame")]
    NoRawData,
    #[error(
        "no camera info record (type 0x20) with Planck constants; set [cameras.radiometry] with r1, r2, b, f, o"
    )]
    NoCameraInfo,
    #[error("raw data is PNG-compressed (subtype 3); export uncompressed FFF/SEQ")]
    PngRawData,
    #[error(
        "Planck constants are unusable: {0}; set [cameras.radiometry] with the camera's r1, r2, b, f, o"
    )]
    BadPlanck(String),
}

/// Reads integers and floats in one byte order with bounds checks.
struct Reader<'a> {
    data: &'a [u8],
    big_endian: bool,
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn bytes<const N: usize>(&self, at: usize) -> Result<[u8; N], FffError> {
        self.data
            .get(at..at + N)
            .and_then(|b| b.try_into().ok())
            .ok_or(FffError::Truncated {
                what: self.what,
                start: at,
                end: at + N,
                len: self.data.len(),
            })
    }
    fn u16(&self, at: usize) -> Result<u16, FffError> {
        let b = self.bytes::<2>(at)?;
        Ok(if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    }
    fn u32(&self, at: usize) -> Result<u32, FffError> {
        let b = self.bytes::<4>(at)?;
        Ok(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }
    fn f32(&self, at: usize) -> Result<f64, FffError> {
        Ok(f32::from_bits(self.u32(at)?) as f64)
    }
}

/// One decoded radiometric frame.
#[derive(Debug, Clone)]
pub struct FffFrame {
    pub width: u32,
    pub height: u32,
    pub counts: Vec<u16>,
    /// `None` when the frame has no camera info record (then the config must say).
    pub radiometry: Option<Radiometry>,
    pub camera_model: String,
    /// Capture time from the camera clock, Unix microseconds.
    pub captured_us: Option<i64>,
    pub frame_rate: Option<u16>,
}

#[derive(Debug, Clone, Copy)]
struct Record {
    kind: u16,
    subtype: u16,
    offset: usize,
    length: usize,
}

/// Header + directory of the FFF frame at the start of `data`: (records, bytes it spans).
fn directory(data: &[u8]) -> Result<(Vec<Record>, usize), FffError> {
    let magic = data.get(..4).ok_or(FffError::Truncated {
        what: "header",
        start: 0,
        end: HEADER_LEN,
        len: data.len(),
    })?;
    if &magic[..3] != b"FFF" && &magic[..3] != b"AFF" {
        return Err(FffError::NotFff(
            String::from_utf8_lossy(magic).into_owned(),
        ));
    }
    let le = Reader {
        data,
        big_endian: false,
        what: "header",
    };
    let big_endian = le.u32(0x14)? > 200;
    let header = Reader { big_endian, ..le };
    let dir_offset = header.u32(0x18)? as usize;
    let count = header.u32(0x1c)? as usize;
    let dir_end = dir_offset.saturating_add(count.saturating_mul(RECORD_LEN));
    if dir_end > MAX_FRAME_BYTES {
        return Err(FffError::TooLarge {
            what: "record directory",
            claimed: dir_end,
        });
    }
    // Checked before reserving room for `count` records (found by fuzzing: a corrupt
    // count asked for 24 GiB).
    if dir_end > data.len() {
        return Err(FffError::Truncated {
            what: "record directory",
            start: dir_offset,
            end: dir_end,
            len: data.len(),
        });
    }
    let dir = Reader {
        what: "record directory",
        ..header
    };
    let mut records = Vec::with_capacity(count);
    let mut end = dir_end.max(HEADER_LEN);
    for i in 0..count {
        let at = dir_offset + i * RECORD_LEN;
        let record = Record {
            kind: dir.u16(at)?,
            subtype: dir.u16(at + 2)?,
            offset: dir.u32(at + 12)? as usize,
            length: dir.u32(at + 16)? as usize,
        };
        if record.kind != 0 {
            end = end.max(record.offset + record.length);
            records.push(record);
        }
    }
    // The stream reader grows its buffer to `end`: never to a corrupt record's claim.
    if end > MAX_FRAME_BYTES {
        return Err(FffError::TooLarge {
            what: "a record",
            claimed: end,
        });
    }
    Ok((records, end))
}

/// The number of bytes the FFF frame at the start of `data` spans (for walking a `.seq`).
pub fn frame_len(data: &[u8]) -> Result<usize, FffError> {
    directory(data).map(|(_, end)| end)
}

fn record_reader<'a>(
    data: &'a [u8],
    r: &Record,
    what: &'static str,
) -> Result<Reader<'a>, FffError> {
    let body = data
        .get(r.offset..r.offset + r.length)
        .ok_or(FffError::Truncated {
            what,
            start: r.offset,
            end: r.offset + r.length,
            len: data.len(),
        })?;
    // Each record starts with a 16-bit 2 in its own byte order.
    let big_endian = body
        .get(..2)
        .is_some_and(|b| u16::from_le_bytes([b[0], b[1]]) != 2);
    Ok(Reader {
        data: body,
        big_endian,
        what,
    })
}

/// Decodes one FFF frame (the whole of `data`).
pub fn parse_fff(data: &[u8]) -> Result<FffFrame, FffError> {
    let (records, _) = directory(data)?;
    let raw = records
        .iter()
        .find(|r| r.kind == RECORD_RAW_DATA)
        .ok_or(FffError::NoRawData)?;
    if raw.subtype == 3 {
        return Err(FffError::PngRawData);
    }
    let raw_data = record_reader(data, raw, "raw data")?;
    let width = raw_data.u16(0x02)? as u32;
    let height = raw_data.u16(0x04)? as u32;
    let pixels_big_endian = raw.subtype == 1;
    let n = width as usize * height as usize;
    let pixel_bytes = raw_data
        .data
        .get(0x20..0x20 + 2 * n)
        .ok_or(FffError::Truncated {
            what: "raw pixels",
            start: raw.offset + 0x20,
            end: raw.offset + 0x20 + 2 * n,
            len: data.len(),
        })?;
    let counts = pixel_bytes
        .chunks_exact(2)
        .map(|b| {
            if pixels_big_endian {
                u16::from_be_bytes([b[0], b[1]])
            } else {
                u16::from_le_bytes([b[0], b[1]])
            }
        })
        .collect();
    let mut frame = FffFrame {
        width,
        height,
        counts,
        radiometry: None,
        camera_model: String::new(),
        captured_us: None,
        frame_rate: None,
    };
    if let Some(info) = records.iter().find(|r| r.kind == RECORD_CAMERA_INFO) {
        let c = record_reader(data, info, "camera info")?;
        let kelvin = |at| c.f32(at).map(|k| k - KELVIN);
        let mut humidity = c.f32(0x3c)?;
        if humidity > 2.0 {
            humidity /= 100.0; // some firmware writes percent
        }
        let radiometry = Radiometry::Planck {
            planck: PlanckConstants {
                r1: c.f32(0x58)?,
                r2: c.f32(0x30c)?,
                b: c.f32(0x5c)?,
                f: c.f32(0x60)?,
                o: c.u32(0x308)? as i32 as f64,
            },
            atmosphere: AtmosphereConstants {
                alpha1: c.f32(0x70)?,
                alpha2: c.f32(0x74)?,
                beta1: c.f32(0x78)?,
                beta2: c.f32(0x7c)?,
                x: c.f32(0x80)?,
            },
            object: ObjectParameters {
                emissivity: c.f32(0x20)?,
                distance_m: c.f32(0x24)?,
                reflected_c: kelvin(0x28)?,
                atmospheric_c: kelvin(0x2c)?,
                window_c: kelvin(0x30)?,
                window_transmission: c.f32(0x34)?,
                humidity,
            },
        };
        radiometry
            .validate()
            .map_err(|e| FffError::BadPlanck(e.to_string()))?;
        frame.radiometry = Some(radiometry);
        let model = c.bytes::<32>(0xd4)?;
        frame.camera_model = String::from_utf8_lossy(&model)
            .trim_end_matches('\0')
            .trim()
            .to_owned();
        let (seconds, millis) = (c.u32(0x384)?, c.u32(0x388)?);
        if seconds > 0 && millis < 1000 {
            frame.captured_us = Some(seconds as i64 * 1_000_000 + millis as i64 * 1000);
        }
        frame.frame_rate = c.u16(0x464).ok().filter(|r| *r > 0);
    }
    Ok(frame)
}

/// Reads the next FFF frame of a stream; `Ok(None)` at a clean end.
fn read_frame(input: &mut impl Read) -> Result<Option<Vec<u8>>, FffError> {
    let mut data = vec![0u8; HEADER_LEN];
    let got = read_up_to(input, &mut data);
    if got == 0 {
        return Ok(None);
    }
    data.truncate(got);
    // Grow to the directory, then to the furthest record; each read may come up short.
    loop {
        let need = match directory(&data) {
            Ok((_, end)) => end,
            Err(FffError::Truncated { end, .. }) => end,
            Err(e) => return Err(e),
        };
        if need <= data.len() {
            data.truncate(need);
            return Ok(Some(data));
        }
        let have = data.len();
        data.resize(need, 0);
        let got = read_up_to(input, &mut data[have..]);
        if got < need - have {
            data.truncate(have + got);
            return Err(FffError::Truncated {
                what: "frame",
                start: 0,
                end: need,
                len: data.len(),
            });
        }
    }
}

fn read_up_to(input: &mut impl Read, buf: &mut [u8]) -> usize {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => filled += n,
        }
    }
    filled
}

/// Replays a `.seq`/`.fff` file, or a folder of `.fff` files, as a thermal stream.
pub struct FlirFileSource {
    camera: Arc<str>,
    files: Vec<PathBuf>,
    speed: f64,
    looped: bool,
    /// Used when a frame has no camera info (the camera's configured constants). Object
    /// overrides are applied downstream, by the pair stage, like for every source.
    fallback: Option<Radiometry>,
}

impl FlirFileSource {
    pub fn open(
        camera: &str,
        path: &Path,
        speed: f64,
        looped: bool,
        fallback: Option<Radiometry>,
    ) -> Result<FlirFileSource, SourceError> {
        let fail = |message: String| SourceError::Open {
            what: format!("flir {}", path.display()),
            message,
        };
        let files = if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| fail(e.to_string()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("fff")))
                .collect();
            files.sort();
            files
        } else if path.is_file() {
            vec![path.to_owned()]
        } else {
            return Err(fail("no such file or folder; check the path".into()));
        };
        if files.is_empty() {
            return Err(fail("the folder holds no .fff files".into()));
        }
        Ok(FlirFileSource {
            camera: camera.into(),
            files,
            speed,
            looped,
            fallback,
        })
    }
}

impl Source for FlirFileSource {
    fn run(
        self: Box<Self>,
        out: QueueSender<SpectrumFrame>,
        stop: Arc<AtomicBool>,
        events: Arc<Events>,
    ) -> Result<(), SourceError> {
        let started = Instant::now();
        let mut first_us: Option<i64> = None;
        let mut first_camera_us: Option<i64> = None;
        let mut previous_us: Option<i64> = None;
        let mut interval_us = 33_333i64;
        let mut lap_shift = 0i64;
        let mut index = 0u64;
        loop {
            for file in &self.files {
                let shown = file.display().to_string();
                let mut input = match std::fs::File::open(file) {
                    Ok(f) => std::io::BufReader::new(f),
                    Err(e) => {
                        events.source_failed(&self.camera, "thermal", &format!("{shown}: {e}"));
                        continue;
                    }
                };
                loop {
                    if stop.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                    let frame = match read_frame(&mut input) {
                        Ok(None) => break,
                        Ok(Some(bytes)) => parse_fff(&bytes),
                        Err(e) => Err(e),
                    };
                    events.frame_received(&self.camera, "thermal");
                    let origin = format!("{shown}#{index}");
                    index += 1;
                    let fff = match frame {
                        Ok(f) => f,
                        Err(e) => {
                            events.frame_dropped(
                                &self.camera,
                                DropReason::DecodeFailed,
                                1,
                                &format!("{origin}: {e}"),
                            );
                            // A broken directory or a short read leaves no way to find the
                            // next frame in this file: go on with the next file.
                            match e {
                                FffError::Truncated { .. } | FffError::NotFff(_) => break,
                                _ => continue,
                            }
                        }
                    };
                    let Some(radiometry) = fff.radiometry.or(self.fallback) else {
                        events.frame_dropped(
                            &self.camera,
                            DropReason::DecodeFailed,
                            1,
                            &format!("{origin}: {}", FffError::NoCameraInfo),
                        );
                        continue;
                    };
                    // Camera time when it is usable (increasing), else the frame rate.
                    interval_us = 1_000_000 / fff.frame_rate.unwrap_or(30).max(1) as i64;
                    if let Some(t) = fff.captured_us {
                        first_camera_us.get_or_insert(t);
                    }
                    let mut captured = fff.captured_us.unwrap_or(0) + lap_shift;
                    if previous_us.is_some_and(|p| captured <= p) || fff.captured_us.is_none() {
                        captured = previous_us.map_or(0, |p| p + interval_us);
                    }
                    previous_us = Some(captured);
                    let first = *first_us.get_or_insert(captured);
                    super::pace(started, captured - first, self.speed);
                    let frame = SpectrumFrame {
                        camera: self.camera.clone(),
                        spectrum: Spectrum::Thermal,
                        captured_us: captured,
                        width: fff.width,
                        height: fff.height,
                        pixels: Arc::new(Pixels::Gray16(fff.counts)),
                        origin: origin.into(),
                        received: Instant::now(),
                        radiometry: Some(Arc::new(radiometry)),
                    };
                    if out.send(frame).is_err() {
                        return Ok(());
                    }
                }
            }
            if !self.looped {
                return Ok(());
            }
            // The next lap continues the timeline instead of jumping back.
            if let (Some(previous), Some(first)) = (previous_us, first_camera_us) {
                lap_shift = previous + interval_us - first;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_not_fff() {
        assert!(matches!(
            parse_fff(b"GIF89a and more bytes"),
            Err(FffError::NotFff(_))
        ));
        assert!(matches!(parse_fff(b"FF"), Err(FffError::Truncated { .. })));
    }

    /// A 64-byte little-endian header whose directory is at `offset` with `count` records.
    fn header(offset: u32, count: u32) -> Vec<u8> {
        let mut h = b"FFF\0".to_vec();
        h.resize(HEADER_LEN, 0);
        h[0x14..0x18].copy_from_slice(&100u32.to_le_bytes());
        h[0x18..0x1c].copy_from_slice(&offset.to_le_bytes());
        h[0x1c..0x20].copy_from_slice(&count.to_le_bytes());
        h
    }

    #[test]
    fn corrupt_sizes_are_refused_before_anything_is_allocated() {
        // Fuzzing found this: a count of 0x30000000 records made the parser reserve 24 GiB.
        let e = parse_fff(&header(64, 0x3000_0000)).unwrap_err();
        assert!(matches!(e, FffError::TooLarge { .. }), "{e}");
        // A plausible directory that is simply not all there is truncated, not too large.
        let e = parse_fff(&header(64, 4)).unwrap_err();
        assert!(matches!(e, FffError::Truncated { end: 192, .. }), "{e}");
        // One record claiming 4 GB: the stream reader must not grow its buffer to it.
        let mut frame = header(64, 1);
        let mut record = vec![0u8; RECORD_LEN];
        record[0..2].copy_from_slice(&1u16.to_le_bytes());
        record[12..16].copy_from_slice(&128u32.to_le_bytes());
        record[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        frame.extend_from_slice(&record);
        let e = read_frame(&mut frame.as_slice()).unwrap_err();
        assert!(matches!(e, FffError::TooLarge { .. }), "{e}");
    }
}

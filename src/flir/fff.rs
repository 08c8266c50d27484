//! The FFF container: one radiometric frame (the payload of `.fff` files, of each frame of
//! a `.seq`, and of the APP1 segments of a radiometric JPEG).
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
//!                         height u16 @4, pixels from @0x20 (subtype 1 BE, 2 LE, 3 an
//!                         image: PNG, its 16-bit samples little-endian inside the
//!                         big-endian PNG, or TIFF)
//! record 0x0e EmbeddedImage  format u16, width u16 @2, height u16 @4 (little-endian),
//!                         the image (JPEG, PNG) from @0x20: the visible photo
//! record 0x20 CameraInfo  emissivity f32 @0x20, distance @0x24, reflected K @0x28,
//!                         atmosphere K @0x2c, window K @0x30, window τ @0x34, humidity
//!                         @0x3c, Planck R1 @0x58 B @0x5c F @0x60, atmospheric α1 α2 β1 β2
//!                         X @0x70…0x80, model char[32] @0xd4, capture time (s, ms) @0x384,
//!                         Planck O i32 @0x308 R2 f32 @0x30c, frame rate u16 @0x464
//! record 0x2a PiP         Real2IR f32, OffsetX i16, OffsetY i16, PiPX1 X2 Y1 Y2 i16
//!                         (little-endian): where the thermal image sits on the photo
//! ```

use std::io::Read;

use serde::Serialize;

use crate::thermal::radiometry::{
    AtmosphereConstants, ObjectParameters, PlanckConstants, Radiometry,
};

const HEADER_LEN: usize = 64;
const RECORD_LEN: usize = 32;
/// Far above any FLIR frame (a 1280×1024 radiometric frame with its embedded visible JPEG
/// is a few MB): a header claiming more is corrupt, and trusting it would allocate it.
const MAX_FRAME_BYTES: usize = 64 << 20;
const RECORD_RAW_DATA: u16 = 0x01;
const RECORD_EMBEDDED_IMAGE: u16 = 0x0e;
const RECORD_CAMERA_INFO: u16 = 0x20;
const RECORD_PIP: u16 = 0x2a;
/// Far above any FLIR sensor (1280×1024): a raw or embedded image claiming more is corrupt.
const MAX_SIDE: u32 = 8192;
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
    #[error(
        "raw data subtype {0} is not one spectrald reads (1 big-endian, 2 little-endian, 3 PNG or TIFF)"
    )]
    UnknownRawType(u16),
    #[error("raw thermal {format}: {message}")]
    RawImage {
        format: &'static str,
        message: String,
    },
    #[error("raw thermal image is {got_w}x{got_h}, the record says {want_w}x{want_h}")]
    RawSize {
        got_w: u32,
        got_h: u32,
        want_w: u32,
        want_h: u32,
    },
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

/// How the raw thermal pixels were stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RawType {
    BigEndian,
    LittleEndian,
    Png,
    Tiff,
}

/// The visible photo a frame carries (record 0x0e), still encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddedImage {
    pub width: u32,
    pub height: u32,
    /// The image file's bytes (JPEG or PNG).
    pub bytes: Vec<u8>,
}

/// Where the thermal image sits on the embedded photo (record 0x2a): the thermal image,
/// cropped to `pip_x1..=pip_x2` × `pip_y1..=pip_y2`, scaled by photo width / (thermal width ×
/// `real2ir`), centred on the photo and shifted by (`offset_x`, `offset_y`) photo pixels
/// (FLIR Tools' and flyr's picture-in-picture placement).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PictureInPicture {
    pub real2ir: f64,
    pub offset_x: i32,
    pub offset_y: i32,
    pub pip_x1: i32,
    pub pip_x2: i32,
    pub pip_y1: i32,
    pub pip_y2: i32,
}

impl PictureInPicture {
    /// Thermal pixel → photo pixel (0-based pixel centres, row-major 3×3) for a thermal
    /// image `thermal_w` wide on a photo `photo_w × photo_h`: the default registration of a
    /// radiometric JPEG. `None` when the ratio or a size is unusable.
    pub fn thermal_to_visible(
        &self,
        thermal_w: u32,
        thermal_h: u32,
        photo_w: u32,
        photo_h: u32,
    ) -> Option<[[f64; 3]; 3]> {
        if !(self.real2ir.is_finite() && self.real2ir > 0.0)
            || [thermal_w, thermal_h, photo_w, photo_h].contains(&0)
        {
            return None;
        }
        // In i64: the corners come from the file, and x2 − x1 + 1 can leave i32.
        let extent = |lo: i32, hi: i32, size: u32| {
            (i64::from(hi) - i64::from(lo) + 1).clamp(1, i64::from(size)) as f64
        };
        let crop_w = extent(self.pip_x1, self.pip_x2, thermal_w);
        let crop_h = extent(self.pip_y1, self.pip_y2, thermal_h);
        let scale = photo_w as f64 / (thermal_w as f64 * self.real2ir);
        let (dst_w, dst_h) = ((crop_w * scale).round(), (crop_h * scale).round());
        // Integer halves, as the placement is computed in whole pixels.
        let origin_x = (photo_w / 2) as f64 - (dst_w as i64 / 2) as f64 + self.offset_x as f64;
        let origin_y = (photo_h / 2) as f64 - (dst_h as i64 / 2) as f64 + self.offset_y as f64;
        // Continuous: photo = origin + (thermal − pip corner) · scale; in pixel-centre
        // coordinates (c = i + 0.5 on both sides) the offsets shift by 0.5 · (scale − 1).
        let (sx, sy) = (dst_w / crop_w, dst_h / crop_h);
        let tx = origin_x - self.pip_x1 as f64 * sx + 0.5 * (sx - 1.0);
        let ty = origin_y - self.pip_y1 as f64 * sy + 0.5 * (sy - 1.0);
        Some([[sx, 0.0, tx], [0.0, sy, ty], [0.0, 0.0, 1.0]])
    }
}

/// One decoded radiometric frame.
#[derive(Debug, Clone)]
pub struct FffFrame {
    pub width: u32,
    pub height: u32,
    pub counts: Vec<u16>,
    pub raw_type: RawType,
    /// The visible photo, when the frame carries one.
    pub embedded: Option<EmbeddedImage>,
    pub pip: Option<PictureInPicture>,
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
    let raw_data = record_reader(data, raw, "raw data")?;
    let width = raw_data.u16(0x02)? as u32;
    let height = raw_data.u16(0x04)? as u32;
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(FffError::TooLarge {
            what: "raw image",
            claimed: width as usize * height as usize * 2,
        });
    }
    let pixels = raw_data.data.get(0x20..).ok_or(FffError::Truncated {
        what: "raw pixels",
        start: raw.offset + 0x20,
        end: raw.offset + 0x20,
        len: data.len(),
    })?;
    let (counts, raw_type) = match raw.subtype {
        1 | 2 => {
            let n = width as usize * height as usize;
            let bytes = pixels.get(..2 * n).ok_or(FffError::Truncated {
                what: "raw pixels",
                start: raw.offset + 0x20,
                end: raw.offset + 0x20 + 2 * n,
                len: data.len(),
            })?;
            let big = raw.subtype == 1;
            let counts = bytes
                .chunks_exact(2)
                .map(|b| match big {
                    true => u16::from_be_bytes([b[0], b[1]]),
                    false => u16::from_le_bytes([b[0], b[1]]),
                })
                .collect();
            (
                counts,
                if big {
                    RawType::BigEndian
                } else {
                    RawType::LittleEndian
                },
            )
        }
        3 => decode_raw_image(pixels, width, height)?,
        other => return Err(FffError::UnknownRawType(other)),
    };
    let mut frame = FffFrame {
        width,
        height,
        counts,
        raw_type,
        embedded: None,
        pip: None,
        radiometry: None,
        camera_model: String::new(),
        captured_us: None,
        frame_rate: None,
    };
    if let Some(r) = records.iter().find(|r| r.kind == RECORD_EMBEDDED_IMAGE) {
        frame.embedded = Some(embedded_image(data, r)?);
    }
    if let Some(r) = records.iter().find(|r| r.kind == RECORD_PIP) {
        frame.pip = picture_in_picture(data, r);
    }
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

/// A PNG or TIFF holding the raw counts: FLIR writes the PNG's 16-bit samples
/// little-endian (the PNG format says big-endian), so they are swapped back.
fn decode_raw_image(
    bytes: &[u8],
    width: u32,
    height: u32,
) -> Result<(Vec<u16>, RawType), FffError> {
    let (format, raw_type) = if bytes.starts_with(b"\x89PNG") {
        (image::ImageFormat::Png, RawType::Png)
    } else if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        (image::ImageFormat::Tiff, RawType::Tiff)
    } else {
        let magic: String = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
        return Err(FffError::RawImage {
            format: "image",
            message: format!("neither PNG nor TIFF (starts {magic})"),
        });
    };
    let name = if raw_type == RawType::Png {
        "PNG"
    } else {
        "TIFF"
    };
    let fail = |message: String| FffError::RawImage {
        format: name,
        message,
    };
    let mut reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_FRAME_BYTES as u64);
    reader.limits(limits);
    let decoded = reader.decode().map_err(|e| fail(e.to_string()))?;
    let (got_w, got_h) = (decoded.width(), decoded.height());
    if (got_w, got_h) != (width, height) {
        return Err(FffError::RawSize {
            got_w,
            got_h,
            want_w: width,
            want_h: height,
        });
    }
    let image::DynamicImage::ImageLuma16(gray) = decoded else {
        return Err(fail(format!(
            "{:?} samples; expected 16-bit grey",
            decoded.color()
        )));
    };
    let samples = gray.into_raw();
    Ok(match raw_type {
        RawType::Png => (samples.into_iter().map(u16::swap_bytes).collect(), raw_type),
        _ => (samples, raw_type),
    })
}

/// The visible photo of record 0x0e (its dimensions are little-endian whatever the file's
/// byte order; the first word is a format code, not a byte-order mark).
fn embedded_image(data: &[u8], r: &Record) -> Result<EmbeddedImage, FffError> {
    let body = data
        .get(r.offset..r.offset + r.length)
        .ok_or(FffError::Truncated {
            what: "embedded image",
            start: r.offset,
            end: r.offset + r.length,
            len: data.len(),
        })?;
    let le = Reader {
        data: body,
        big_endian: false,
        what: "embedded image",
    };
    let (width, height) = (le.u16(0x02)? as u32, le.u16(0x04)? as u32);
    Ok(EmbeddedImage {
        width,
        height,
        bytes: body.get(0x20..).unwrap_or_default().to_vec(),
    })
}

/// Record 0x2a, little-endian (as FLIR Tools reads it); `None` when it does not make sense
/// (a ratio that is not a small positive number).
fn picture_in_picture(data: &[u8], r: &Record) -> Option<PictureInPicture> {
    let body = data.get(r.offset..r.offset + r.length)?;
    let le = Reader {
        data: body,
        big_endian: false,
        what: "picture in picture",
    };
    let int = |at| le.u16(at).ok().map(|v| v as i16 as i32);
    let pip = PictureInPicture {
        real2ir: le.f32(0).ok()?,
        offset_x: int(4)?,
        offset_y: int(6)?,
        pip_x1: int(8)?,
        pip_x2: int(10)?,
        pip_y1: int(12)?,
        pip_y2: int(14)?,
    };
    (pip.real2ir > 0.01 && pip.real2ir < 100.0).then_some(pip)
}

/// Reads the next FFF frame of a stream; `Ok(None)` at a clean end.
pub fn read_frame(input: &mut impl Read) -> Result<Option<Vec<u8>>, FffError> {
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
    fn picture_in_picture_of_a_zero_size_or_extreme_corners_is_unusable_not_a_panic() {
        // Fuzzing found this: a frame 0 pixels wide made the crop clamp to 1..=0 and panic.
        let pip = PictureInPicture {
            real2ir: 1.5,
            offset_x: 0,
            offset_y: 0,
            pip_x1: 0,
            pip_x2: 79,
            pip_y1: 0,
            pip_y2: 59,
        };
        assert!(pip.thermal_to_visible(80, 60, 640, 480).is_some());
        assert_eq!(pip.thermal_to_visible(0, 60, 640, 480), None);
        assert_eq!(pip.thermal_to_visible(80, 60, 640, 0), None);
        // Corners at the ends of i32: the extent does not overflow, it is clamped.
        let wide = PictureInPicture {
            pip_x1: i32::MIN,
            pip_x2: i32::MAX,
            ..pip
        };
        let m = wide
            .thermal_to_visible(80, 60, 640, 480)
            .expect("clamped to the image");
        assert!(m.iter().flatten().all(|v| v.is_finite()), "{m:?}");
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

    fn encoded(samples: &[u16], w: u32, h: u32, format: image::ImageFormat) -> Vec<u8> {
        let grey = image::ImageBuffer::<image::Luma<u16>, _>::from_raw(w, h, samples.to_vec())
            .expect("size");
        let mut out = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageLuma16(grey)
            .write_to(&mut out, format)
            .expect("encode");
        out.into_inner()
    }

    #[test]
    fn raw_images_decode_to_counts_in_either_container() {
        let counts = [12501u16, 20042, 1, 65535, 256, 4096];
        // FLIR's PNGs hold the counts little-endian in the big-endian format.
        let swapped: Vec<u16> = counts.iter().map(|c| c.swap_bytes()).collect();
        let png = encoded(&swapped, 3, 2, image::ImageFormat::Png);
        assert_eq!(
            decode_raw_image(&png, 3, 2),
            Ok((counts.to_vec(), RawType::Png))
        );
        // A TIFF says its byte order in its header: the counts as they are.
        let tiff = encoded(&counts, 3, 2, image::ImageFormat::Tiff);
        assert_eq!(
            decode_raw_image(&tiff, 3, 2),
            Ok((counts.to_vec(), RawType::Tiff))
        );
        // Sizes that disagree with the record, 8-bit samples, other formats: named.
        assert!(matches!(
            decode_raw_image(&png, 2, 3),
            Err(FffError::RawSize {
                got_w: 3,
                got_h: 2,
                ..
            })
        ));
        let mut eight = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageLuma8(image::GrayImage::new(3, 2))
            .write_to(&mut eight, image::ImageFormat::Png)
            .expect("encode");
        let e = decode_raw_image(eight.get_ref(), 3, 2).unwrap_err();
        assert!(e.to_string().contains("expected 16-bit grey"), "{e}");
        let e = decode_raw_image(b"GIF89a", 3, 2).unwrap_err();
        assert!(e.to_string().contains("neither PNG nor TIFF"), "{e}");
        let e = decode_raw_image(&png[..png.len() / 2], 3, 2).unwrap_err();
        assert!(e.to_string().starts_with("raw thermal PNG: "), "{e}");
    }
}

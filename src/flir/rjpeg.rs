//! Radiometric JPEG (R-JPEG): a visible JPEG whose APP1 segments, tagged "FLIR", carry an
//! FFF block in pieces. Each piece's 8-byte header is `FLIR\0`, a 1, its index and the last
//! index; the pieces in index order are the FFF block ([`super::fff`]).
//!
//! Only the marker segments before the image data (SOS) are read; each is bounded by its own
//! length, so a corrupt length ends the walk instead of reading out of the file.

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RjpegError {
    #[error("not a JPEG (no start-of-image marker)")]
    NotJpeg,
    #[error("a JPEG without FLIR segments: not a radiometric FLIR photo")]
    NoFlirSegments,
    #[error("FLIR segment {index} of {count} is missing (the file was cut or edited)")]
    MissingSegment { index: u8, count: u16 },
    #[error(
        "FLIR segments disagree on how many there are ({first} and {other}): the file is corrupt"
    )]
    InconsistentCount { first: u8, other: u8 },
    #[error("FLIR segment {0} appears twice: the file is corrupt")]
    DuplicateSegment(u8),
    #[error("truncated JPEG segment at byte {0}")]
    Truncated(usize),
}

const FLIR_TAG: &[u8; 5] = b"FLIR\0";
const SOI: u8 = 0xd8;
const SOS: u8 = 0xda;
const EOI: u8 = 0xd9;
const APP1: u8 = 0xe1;

/// Whether `data` looks like a JPEG (so the caller can say "R-JPEG" problems, not FFF ones).
pub fn is_jpeg(data: &[u8]) -> bool {
    data.starts_with(&[0xff, SOI])
}

/// The FFF block the JPEG's FLIR APP1 segments carry, reassembled in index order.
pub fn extract_fff(data: &[u8]) -> Result<Vec<u8>, RjpegError> {
    if !is_jpeg(data) {
        return Err(RjpegError::NotJpeg);
    }
    let mut pieces: Vec<Option<&[u8]>> = Vec::new();
    let mut last: Option<u8> = None;
    let mut at = 2;
    while at + 4 <= data.len() {
        if data[at] != 0xff {
            return Err(RjpegError::Truncated(at));
        }
        let marker = data[at + 1];
        // Fill bytes and markers without a length.
        if marker == 0xff {
            at += 1;
            continue;
        }
        if marker == SOS || marker == EOI {
            break;
        }
        if (0xd0..=0xd7).contains(&marker) || marker == 0x01 {
            at += 2;
            continue;
        }
        let length = u16::from_be_bytes([data[at + 2], data[at + 3]]) as usize;
        let end = at + 2 + length;
        let segment = data
            .get(at + 4..end)
            .filter(|_| length >= 2)
            .ok_or(RjpegError::Truncated(at))?;
        if marker == APP1 && segment.len() >= 8 && segment.starts_with(FLIR_TAG) {
            let (index, count) = (segment[6], segment[7]);
            match last {
                None => last = Some(count),
                Some(first) if first != count => {
                    return Err(RjpegError::InconsistentCount {
                        first,
                        other: count,
                    });
                }
                _ => {}
            }
            if pieces.len() <= index as usize {
                pieces.resize(index as usize + 1, None);
            }
            if pieces[index as usize].is_some() {
                return Err(RjpegError::DuplicateSegment(index));
            }
            pieces[index as usize] = Some(&segment[8..]);
        }
        at = end;
    }
    let Some(last) = last else {
        return Err(RjpegError::NoFlirSegments);
    };
    let mut fff = Vec::new();
    for index in 0..=last {
        let piece =
            pieces
                .get(index as usize)
                .copied()
                .flatten()
                .ok_or(RjpegError::MissingSegment {
                    index,
                    count: last as u16 + 1,
                })?;
        fff.extend_from_slice(piece);
    }
    Ok(fff)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A JPEG header with the given APP1 FLIR pieces (index, last, payload).
    fn jpeg(pieces: &[(u8, u8, &[u8])]) -> Vec<u8> {
        let mut out = vec![0xff, SOI];
        // An unrelated APP0 first.
        out.extend_from_slice(&[0xff, 0xe0, 0, 6, b'J', b'F', b'I', b'F']);
        for (index, last, payload) in pieces {
            let len = (2 + 8 + payload.len()) as u16;
            out.extend_from_slice(&[0xff, APP1]);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(FLIR_TAG);
            out.extend_from_slice(&[1, *index, *last]);
            out.extend_from_slice(payload);
        }
        out.extend_from_slice(&[0xff, SOS, 0, 2, 0xaa, 0xbb]);
        out
    }

    #[test]
    fn pieces_are_joined_in_index_order() {
        let data = jpeg(&[(1, 2, b"def"), (0, 2, b"abc"), (2, 2, b"gh")]);
        assert_eq!(extract_fff(&data).unwrap(), b"abcdefgh");
    }

    #[test]
    fn every_broken_file_is_named_for_what_is_wrong() {
        assert_eq!(extract_fff(b"GIF89a"), Err(RjpegError::NotJpeg));
        assert_eq!(extract_fff(&jpeg(&[])), Err(RjpegError::NoFlirSegments));
        assert_eq!(
            extract_fff(&jpeg(&[(0, 2, b"a"), (2, 2, b"c")])),
            Err(RjpegError::MissingSegment { index: 1, count: 3 })
        );
        assert_eq!(
            extract_fff(&jpeg(&[(0, 1, b"a"), (1, 3, b"b")])),
            Err(RjpegError::InconsistentCount { first: 1, other: 3 })
        );
        assert_eq!(
            extract_fff(&jpeg(&[(0, 1, b"a"), (0, 1, b"b")])),
            Err(RjpegError::DuplicateSegment(0))
        );
        let mut cut = jpeg(&[(0, 0, b"abcdef")]);
        cut.truncate(20);
        assert!(matches!(extract_fff(&cut), Err(RjpegError::Truncated(_))));
    }
}

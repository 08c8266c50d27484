//! Fuzzing every parser of outside input: seed files (real FLIR frames, the shipped config,
//! the fixture's replay manifest, a 16-bit PNG and TIFF, an ontology, a feedback session)
//! mutated by bolero-generated edit lists (replace, insert, delete, truncate), so inputs get
//! past the magic numbers and headers into the deep parsing paths, where random bytes alone
//! would stop at the first check. Each parser must answer Ok or a clear Err — never panic,
//! hang or allocate without bound.
//!
//! Bounded in time: `SPECTRALD_FUZZ_SECONDS` per target (default 20 in CI; run 600 locally:
//! `SPECTRALD_FUZZ_SECONDS=600 cargo test --release --test fuzz_parsers -- --test-threads 1`).
//! A failing input is printed by bolero; turn it into a unit test next to the parser (like
//! `corrupt_sizes_are_refused_before_anything_is_allocated` in `src/source/flir.rs`).
//!
//! `http_requests` fuzzes the running daemon: mutated raw HTTP requests over TCP must get a
//! well-formed answer (or a closed connection), never a 5xx other than 503, never a 2xx from
//! a guarded route without the token; the daemon must still serve afterwards.
use crate::common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::time::Duration;

use spectrald::offline::raster::{self, Scale16};
use spectrald::offline::retrieval::ontology::Ontology;
use spectrald::offline::retrieval::session::Session;

fn budget() -> Duration {
    let seconds = std::env::var("SPECTRALD_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20u64);
    Duration::from_secs(seconds)
}

/// Applies generated edits to a seed: (position, operation, byte). Positions wrap to the
/// current length; a truncation keeps at least a quarter so most inputs stay deep.
fn mutate(seed: &[u8], edits: &[(u32, u8, u8)]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for &(pos, op, byte) in edits.iter().take(16) {
        let at = pos as usize % (data.len() + 1);
        match op % 8 {
            0..=3 => {
                if at < data.len() {
                    data[at] = byte;
                }
            }
            4 => data.insert(at, byte),
            5 if at < data.len() => {
                data.remove(at);
            }
            6 => data.truncate(at.max(seed.len() / 4)),
            // Flip one bit: near-valid values (lengths, offsets) are where parsers break.
            _ => {
                if at < data.len() {
                    data[at] ^= 1 << (byte % 8);
                }
            }
        }
    }
    data
}

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(common::repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Fuzzes `parse` with mutations of each seed.
fn fuzz(seeds: Vec<Vec<u8>>, parse: impl Fn(&[u8]) + std::panic::RefUnwindSafe) {
    bolero::check!()
        .with_type::<(u8, Vec<(u32, u8, u8)>)>()
        .with_test_time(budget())
        .for_each(|(which, edits)| {
            let seed = &seeds[*which as usize % seeds.len()];
            parse(&mutate(seed, edits));
        });
}

#[test]
fn flir_fff_frames() {
    let seeds = vec![
        fixture("tests/fixtures/flir/t420.fff"),
        fixture("tests/fixtures/flir/duo-pro-r.fff"),
    ];
    fuzz(seeds, |data| {
        let _ = spectrald::flir::frame_len(data);
        let _ = spectrald::flir::parse_fff(data);
    });
}

/// A JPEG whose FLIR segments carry `payload` in `pieces` parts: a seed in which segment
/// headers (index, count, lengths) are a large share of the bytes the fuzzer edits.
fn rjpeg_of(payload: &[u8], pieces: usize) -> Vec<u8> {
    let mut out = vec![0xff, 0xd8];
    let chunk = payload.len().div_ceil(pieces);
    for (index, part) in payload.chunks(chunk).enumerate() {
        out.extend_from_slice(&[0xff, 0xe1]);
        out.extend_from_slice(&((2 + 8 + part.len()) as u16).to_be_bytes());
        out.extend_from_slice(b"FLIR\0\x01");
        out.extend_from_slice(&[index as u8, (pieces - 1) as u8]);
        out.extend_from_slice(part);
    }
    out.extend_from_slice(&[0xff, 0xd9]);
    out
}

#[test]
fn flir_radiometric_jpegs() {
    let jpeg = fixture("tests/fixtures/flir/flir_example.jpg");
    let fff = spectrald::flir::extract_fff(&jpeg).expect("seed reassembles");
    // Small: the FFF header and directory in six segments.
    let headers = rjpeg_of(&fff[..fff.len().min(1200)], 6);
    // The whole file, its FFF alone (edits land in the raw thermal PNG), and the headers.
    let seeds = vec![jpeg, fff, headers];
    fuzz(seeds, |data| {
        let fff = spectrald::flir::extract_fff(data).unwrap_or_else(|_| data.to_vec());
        if let Ok(frame) = spectrald::flir::parse_fff(&fff)
            && let Some(pip) = frame.pip
        {
            let _ = pip.thermal_to_visible(frame.width, frame.height, 640, 480);
        }
    });
}

fn encoded(image: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, format).expect("encode seed");
    bytes.into_inner()
}

#[test]
fn images_8_and_16_bit() {
    let grey16 =
        image::ImageBuffer::from_fn(24, 16, |x, y| image::Luma([(x * 2000 + y * 300) as u16]));
    let rgb16 = image::ImageBuffer::from_fn(16, 16, |x, y| {
        image::Rgb([(x * 4000) as u16, (y * 4000) as u16, 30_000u16])
    });
    let rgb8 = image::RgbImage::from_fn(16, 16, |x, y| image::Rgb([x as u8 * 9, y as u8 * 9, 77]));
    let seeds = vec![
        encoded(
            image::DynamicImage::ImageLuma16(grey16),
            image::ImageFormat::Png,
        ),
        encoded(
            image::DynamicImage::ImageRgb16(rgb16.clone()),
            image::ImageFormat::Tiff,
        ),
        encoded(
            image::DynamicImage::ImageRgb16(rgb16),
            image::ImageFormat::Png,
        ),
        encoded(
            image::DynamicImage::ImageRgb8(rgb8),
            image::ImageFormat::Jpeg,
        ),
    ];
    fuzz(seeds, |data| {
        let tiff = data.starts_with(b"II") || data.starts_with(b"MM");
        let _ = raster::read_bytes(data, Path::new("fuzz"), tiff, None, Scale16::Percentile);
        let _ = spectrald::offline::lesion::read_input(data, Path::new("fuzz"), tiff);
    });
}

/// Text parsers that read files: each input is written to a scratch file first.
fn fuzz_file(seeds: Vec<Vec<u8>>, name: &str, parse: impl Fn(&Path) + std::panic::RefUnwindSafe) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(name);
    fuzz(seeds, |data| {
        std::fs::write(&path, data).expect("scratch file");
        parse(&path);
    });
}

#[test]
fn config_files() {
    fuzz_file(vec![fixture("config.toml")], "config.toml", |path| {
        let _ = spectrald::config::Config::load(path);
    });
}

#[test]
fn replay_manifests() {
    fuzz_file(
        vec![fixture("tests/fixtures/session-pexels/manifest.csv")],
        "manifest.csv",
        |path| {
            let _ = spectrald::source::replay::read_manifest(path.parent().expect("dir"));
        },
    );
}

#[test]
fn ontologies_and_feedback_sessions() {
    let ontology = fixture("models/eurosat.ontology.toml");
    let tree = Ontology::parse(&String::from_utf8_lossy(&ontology), "seed").expect("seed parses");
    let terms: Vec<String> = ["Forest", "River", "Highway"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let retriever = spectrald::offline::retrieval::search::Retriever::new(
        &terms,
        &tree,
        None,
        0.0,
        Default::default(),
    )
    .expect("retriever");
    let entry = spectrald::offline::retrieval::index::Entry {
        input: "q.png".into(),
        sha256: "00".repeat(32),
        vector: vec![0.7, 0.2, 0.1],
    };
    let session = Session::new(
        "m@1",
        &retriever,
        spectrald::offline::retrieval::search::Metric::Hsbd,
        10,
        &entry,
    )
    .expect("session");
    let seeds = vec![ontology, serde_json::to_vec(&session).expect("json")];
    fuzz(seeds, |data| {
        let text = String::from_utf8_lossy(data);
        if let Ok(tree) = Ontology::parse(&text, "fuzz") {
            let _ = tree.dissimilarities(&terms);
        }
        if let Ok(s) = Session::parse(&text, "fuzz") {
            // A session that parses must also rank without panicking.
            let index = spectrald::offline::retrieval::index::Index {
                model_id: s.model.clone(),
                terms: s.terms.clone(),
                entries: vec![],
            };
            let _ = s.results(&index);
        }
    });
}

/// Sends one raw request (then closes our side, so the server answers and closes); the
/// answer's bytes, or nothing when the server closed without answering.
fn exchange(port: u16, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("the daemon still listens");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    // The server may close early on garbage; a failed write is then not an error.
    let _ = stream.write_all(request);
    let _ = stream.shutdown(Shutdown::Write);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer
}

/// The route a request line names ("GET http://h/metrics?x HTTP/1.1" → "/metrics").
fn route(request: &[u8]) -> String {
    let text = String::from_utf8_lossy(request);
    let target = text.split_whitespace().nth(1).unwrap_or("");
    let path = match target.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    };
    path.split(['?', '#']).next().unwrap_or("").to_owned()
}

#[test]
fn http_requests() {
    const TOKEN: &str = "fuzz-secret-token";
    let port = common::free_port();
    let config = common::daemon::replay_config(
        port,
        &common::repo().join("tests/fixtures/models"),
        &format!("token = \"{TOKEN}\"\nrequest_timeout_ms = 2000\n"),
    );
    let config = config.replace(
        "[models]\n",
        "[models]\nboundary = \"dmsl-boundary-tiny-random\"\nlandmark = \"dmsl-landmark-tiny-random\"\n",
    );
    let mut daemon = common::daemon::Daemon::start(&config);
    let auth = format!("Authorization: Bearer {TOKEN}\r\n");
    let seeds: Vec<Vec<u8>> = [
        "GET /healthz HTTP/1.1\r\nHost: k\r\n\r\n".to_owned(),
        "GET /readyz HTTP/1.1\r\nHost: k\r\n\r\n".to_owned(),
        format!("GET /metrics HTTP/1.1\r\nHost: k\r\n{auth}\r\n"),
        format!("GET /api/v1/cameras HTTP/1.1\r\nHost: k\r\n{auth}\r\n"),
        format!("GET /api/v1/cameras/kiosk-1/snapshot.png HTTP/1.1\r\nHost: k\r\n{auth}\r\n"),
        format!("GET /api/v1/cameras/kiosk-1/thermal.png HTTP/1.1\r\nHost: k\r\n{auth}\r\n"),
        // A body on a route that takes none, chunked: exercises the body limits.
        format!(
            "POST /api/v1/cameras HTTP/1.1\r\nHost: k\r\n{auth}Transfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n"
        ),
        "GET /app.js HTTP/1.1\r\nHost: k\r\nContent-Length: 3\r\n\r\nabc".to_owned(),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect();
    let guarded = |route: &str| !matches!(route, "/" | "/app.js" | "/healthz" | "/readyz");
    let statuses = std::sync::Mutex::new(std::collections::BTreeMap::<u16, u64>::new());
    fuzz(seeds, |request| {
        let answer = exchange(port, request);
        if answer.is_empty() {
            *statuses.lock().expect("lock").entry(0).or_default() += 1;
            return; // closed without a word: acceptable for garbage
        }
        let head = String::from_utf8_lossy(&answer[..answer.len().min(64)]).into_owned();
        let status: u16 = head
            // An HTTP/1.0 request is answered in HTTP/1.0 (found by the 10-minute run).
            .strip_prefix("HTTP/1.1 ")
            .or_else(|| head.strip_prefix("HTTP/1.0 "))
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "malformed answer {head:?} to {:?}",
                    String::from_utf8_lossy(request)
                )
            });
        assert!(
            status < 500 || status == 503,
            "{status} to {:?}",
            String::from_utf8_lossy(request)
        );
        *statuses.lock().expect("lock").entry(status).or_default() += 1;
        let route = route(request);
        let has_token = String::from_utf8_lossy(request).contains(TOKEN);
        assert!(
            !((200..300).contains(&status) && guarded(&route) && !has_token),
            "{route} answered {status} without the token: {:?}",
            String::from_utf8_lossy(request)
        );
    });
    let statuses = statuses.into_inner().expect("lock");
    eprintln!("answers by status (0 = closed without one): {statuses:?}");
    // The mutations reached past the parser: served, refused and malformed all occurred.
    for expected in [200, 400, 401, 404] {
        assert!(statuses.contains_key(&expected), "{statuses:?}");
    }
    let (status, _) = daemon.get("/healthz", None);
    assert_eq!(status, 200, "still serving; log:\n{}", daemon.log());
    let (status, _) = daemon.get("/api/v1/cameras", Some(TOKEN));
    assert_eq!(status, 200);
    assert_eq!(daemon.stop(), 0, "{}", daemon.log());
}

//! `spectrald serve-offline`: an image in, its result out; folder jobs with progress;
//! the same token rules as the daemon's API; no way out of the jobs folder.
use crate::common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon::{http, raw};
use serde_json::Value;

struct Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// serve-offline on a free port with its own store, jobs root `dir/data`, optional token.
fn start(token: Option<&str>) -> (Server, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("patches")).expect("mkdir");
    let port = common::free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_spectrald"));
    command
        .args(["serve-offline", "--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--models-dir",
            &common::repo().join("models").display().to_string(),
        ])
        .args([
            "--store",
            &dir.path().join("results.sqlite").display().to_string(),
        ])
        .args(["--jobs-root", &data.display().to_string()])
        .args(["--jobs-out", &dir.path().join("jobs").display().to_string()])
        .current_dir(common::repo())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    match token {
        Some(t) => command.env("SPECTRALD_HTTP_TOKEN", t),
        None => command.env_remove("SPECTRALD_HTTP_TOKEN"),
    };
    let child = command.spawn().expect("serve-offline starts");
    let started = Instant::now();
    while http(port, "GET", "/healthz", None, "").0 != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "serve-offline did not answer"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (
        Server {
            child,
            port,
            _dir: dir,
        },
        data,
    )
}

fn post_image(port: u16, path: &str, token: Option<&str>, body: &[u8]) -> (u16, Value) {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    let (status, _, text) = raw(port, &request);
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn patch_png(x: u32, y: u32) -> Vec<u8> {
    let scene = image::open(common::repo().join("tests/fixtures/geotiff/rgbn.tif"))
        .expect("scene")
        .into_rgb8();
    let patch = image::imageops::crop_imm(&scene, x, y, 64, 64).to_image();
    let mut bytes = std::io::Cursor::new(Vec::new());
    patch
        .write_to(&mut bytes, image::ImageFormat::Png)
        .expect("png");
    bytes.into_inner()
}

#[test]
fn an_uploaded_image_gets_its_result_and_bad_uploads_get_a_clear_status() {
    let (server, _) = start(None);
    let port = server.port;
    let (status, body) = post_image(
        port,
        "/api/v1/offline/satellite-eurosat-lite0",
        None,
        &patch_png(0, 0),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["schema"], "spectrald.offline/v1");
    assert!(
        body["class"].is_string() && body["probabilities"].is_object(),
        "{body}"
    );
    // The same bytes again come from the store.
    let (_, again) = post_image(
        port,
        "/api/v1/offline/satellite-eurosat-lite0",
        None,
        &patch_png(0, 0),
    );
    assert_eq!(again["from_store"], true);
    assert_eq!(again["class"], body["class"]);
    // Whole scenes work too (TIFF detected from its bytes), with their tile grid.
    let scene =
        std::fs::read(common::repo().join("tests/fixtures/geotiff/rgbn.tif")).expect("scene");
    let (status, tiled) = post_image(
        port,
        "/api/v1/offline/satellite-eurosat-lite0?stride=64",
        None,
        &scene,
    );
    assert_eq!(status, 200, "{tiled}");
    assert_eq!(tiled["tiles"]["cols"], 8);
    assert_eq!(tiled["georeferenced"], true);

    let (status, e) = post_image(
        port,
        "/api/v1/offline/no-such-model",
        None,
        &patch_png(0, 0),
    );
    assert_eq!(status, 404, "{e}");
    let (status, e) = post_image(
        port,
        "/api/v1/offline/satellite-eurosat-lite0",
        None,
        b"garbage bytes",
    );
    assert_eq!(status, 422);
    assert!(
        e["error"]
            .as_str()
            .is_some_and(|m| m.contains("not a readable image")),
        "{e}"
    );
    let (status, _) = post_image(port, "/api/v1/offline/..%2F..%2Fetc%2Fpasswd", None, b"x");
    assert_eq!(status, 404);
    let (status, models) = {
        let (status, _, text) = http(port, "GET", "/api/v1/offline/models", None, "");
        (status, serde_json::from_str::<Value>(&text).expect("json"))
    };
    assert_eq!(status, 200);
    let names: Vec<&str> = models["models"]
        .as_array()
        .expect("models")
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert!(
        names.contains(&"satellite-eurosat-lite0") && !names.iter().any(|n| n.starts_with("dmsl")),
        "{names:?}"
    );
}

#[test]
fn a_folder_job_reports_progress_and_failures_and_stays_inside_its_root() {
    let (server, data) = start(Some("offline-secret"));
    let port = server.port;
    let token = Some("offline-secret");
    for (i, (x, y)) in [(0, 0), (64, 64), (300, 200), (400, 300)]
        .iter()
        .enumerate()
    {
        std::fs::write(
            data.join("patches").join(format!("p{i}.png")),
            patch_png(*x, *y),
        )
        .expect("write");
    }
    std::fs::write(data.join("patches/broken.png"), b"\x89PNG broken").expect("write");

    // The token is required.
    let (status, _, _) = http(
        port,
        "POST",
        "/api/v1/offline/satellite-eurosat-lite0/jobs",
        None,
        r#"{"inputs":["patches"]}"#,
    );
    assert_eq!(status, 401);
    let (status, _, text) = http(
        port,
        "POST",
        "/api/v1/offline/satellite-eurosat-lite0/jobs",
        token,
        r#"{"inputs":["patches"]}"#,
    );
    assert_eq!(status, 202, "{text}");
    let job: Value = serde_json::from_str(&text).expect("json");
    let url = job["status"].as_str().expect("status url").to_string();
    let started = Instant::now();
    let status = loop {
        let (_, _, text) = http(port, "GET", &url, token, "");
        let status: Value = serde_json::from_str(&text).expect("json");
        if status["state"] == "done" {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "job did not finish: {status}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status["total"], 5);
    assert_eq!(status["done"], 4);
    assert_eq!(status["failures"].as_array().map(Vec::len), Some(1));
    assert!(
        status["failures"][0]["input"]
            .as_str()
            .is_some_and(|i| i.ends_with("broken.png")),
        "{status}"
    );
    let (_, _, results) = http(port, "GET", &format!("{url}/results"), token, "");
    assert_eq!(results.lines().filter(|l| l.starts_with('{')).count(), 4);

    // Paths that leave the jobs root are refused.
    for escape in [
        r#"{"inputs":["../"]}"#,
        r#"{"inputs":["/etc"]}"#,
        r#"{"inputs":["patches/../../"]}"#,
    ] {
        let (status, _, text) = http(
            port,
            "POST",
            "/api/v1/offline/satellite-eurosat-lite0/jobs",
            token,
            escape,
        );
        assert_eq!(status, 403, "{escape}: {text}");
    }
    let outside = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::symlink(outside.path(), data.join("link")).expect("symlink");
    std::fs::write(outside.path().join("x.png"), patch_png(0, 0)).expect("write");
    let (status, _, text) = http(
        port,
        "POST",
        "/api/v1/offline/satellite-eurosat-lite0/jobs",
        token,
        r#"{"inputs":["link"]}"#,
    );
    assert_eq!(status, 403, "a link out of the root: {text}");
    assert!(!Path::new(&text).exists());
}

/// The job at `url` once it has finished.
fn finished_job(port: u16, url: &str, token: Option<&str>) -> Value {
    let started = Instant::now();
    loop {
        let (_, _, text) = http(port, "GET", url, token, "");
        let status: Value = serde_json::from_str(&text).expect("json");
        if status["state"] == "done" || status["state"] == "failed" {
            return status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "job did not finish: {status}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_segmentation_request_can_choose_its_test_time_plan() {
    // The shipped sequence-split model's manifest asks for scales 1 and 1.5, mirrored.
    const MS: &str = "segment-camvid-lite0-balanced-352x480-colour-aspp";
    let (server, data) = start(None);
    let port = server.port;
    let frame = std::fs::read(common::fixture_session().join("visible/000000.jpg")).expect("frame");
    let url = |query: &str| format!("/api/v1/offline/{MS}{query}");

    let (status, planned) = post_image(port, &url(""), None, &frame);
    assert_eq!(status, 200, "{planned}");
    assert_eq!(
        planned["scales"],
        serde_json::json!([1.0, 1.5]),
        "{planned}"
    );
    assert_eq!(planned["flip"], true, "{planned}");

    // One whole-image pass is asked for, computed (not the stored plan's result) and said.
    let (status, single) = post_image(port, &url("?scales=1&flip=false"), None, &frame);
    assert_eq!(status, 200, "{single}");
    assert_eq!(single["scales"], serde_json::json!([1.0]), "{single}");
    assert_eq!(single["flip"], false, "{single}");
    assert!(single.get("from_store").is_none(), "{single}");
    assert_ne!(single["class_fractions"], planned["class_fractions"]);

    // The pooled model went back to its manifest's plan: a plain request is the first result.
    let (_, again) = post_image(port, &url(""), None, &frame);
    assert_eq!(again["scales"], serde_json::json!([1.0, 1.5]), "{again}");
    assert_eq!(again["from_store"], true, "{again}");

    // Plans no model can run, and plans for a classifier, are refused with the reason.
    let (status, e) = post_image(port, &url("?scales=0.5"), None, &frame);
    assert_eq!(status, 400, "{e}");
    assert!(
        e["error"]
            .as_str()
            .is_some_and(|m| m.contains("0.5 is outside 1..=8")),
        "{e}"
    );
    let (status, e) = post_image(port, &url("?scales=one"), None, &frame);
    assert_eq!(status, 400, "{e}");
    let (status, e) = post_image(
        port,
        "/api/v1/offline/satellite-eurosat-lite0?scales=1.5",
        None,
        &patch_png(0, 0),
    );
    assert_eq!(status, 422, "{e}");
    assert!(
        e["error"]
            .as_str()
            .is_some_and(|m| m.contains("for segmentation models; this is a classify model")),
        "{e}"
    );

    // A folder job takes the same fields.
    std::fs::write(data.join("patches/frame.jpg"), &frame).expect("write");
    let (status, _, text) = http(
        port,
        "POST",
        &url("/jobs"),
        None,
        r#"{"inputs":["patches/frame.jpg"],"scales":[1],"flip":false}"#,
    );
    assert_eq!(status, 202, "{text}");
    let job: Value = serde_json::from_str(&text).expect("json");
    let job_url = job["status"].as_str().expect("status url").to_string();
    let done = finished_job(port, &job_url, None);
    assert_eq!(done["state"], "done", "{done}");
    let (_, _, results) = http(port, "GET", &format!("{job_url}/results"), None, "");
    let line: Value = serde_json::from_str(results.lines().next().expect("a line")).expect("json");
    assert_eq!(line["scales"], serde_json::json!([1.0]), "{line}");
    assert_eq!(
        done["skipped"], 1,
        "the upload's single pass was stored: {done}"
    );
    let (status, _, text) = http(
        port,
        "POST",
        &url("/jobs"),
        None,
        r#"{"inputs":["patches"],"scales":[9]}"#,
    );
    assert_eq!(status, 400, "{text}");
}

/// A brown 80×50 ellipse on textured skin, 240×180, as PNG bytes.
fn lesion_png() -> Vec<u8> {
    let image = image::RgbImage::from_fn(240, 180, |x, y| {
        let (dx, dy) = ((x as f32 - 120.0) / 40.0, (y as f32 - 90.0) / 25.0);
        let t = ((x * 7 + y * 13) % 11) as u8;
        if dx * dx + dy * dy <= 1.0 {
            image::Rgb([115 + t, 72 + t, 50 + t])
        } else {
            image::Rgb([220 + t, 168 + t, 148 + t])
        }
    });
    let mut bytes = Vec::new();
    image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .expect("encode");
    bytes
}

#[test]
fn a_dermoscopic_upload_gets_its_lesion_line_or_mask() {
    let (server, data) = start(None);
    let port = server.port;
    let body = lesion_png();
    let (status, line) = post_image(
        port,
        "/api/v1/offline/lesion?method=otsu&name=a.png",
        None,
        &body,
    );
    assert_eq!(status, 200, "{line}");
    assert_eq!(line["task"], "lesion");
    assert_eq!(line["method"], "otsu");
    assert_eq!(line["input"], "upload:a.png");
    // π·40·25 ≈ 3142 of 43 200 pixels.
    let fraction = line["lesion_fraction"].as_f64().unwrap_or(0.0);
    assert!((0.065..0.08).contains(&fraction), "{line}");
    // Kept in the service's store under the pipeline id the line names.
    let pipeline = line["pipeline"].as_str().expect("pipeline id");
    assert!(pipeline.starts_with("lesion-otsu@"), "{line}");
    let store =
        spectrald::offline::store::Store::open(&data.parent().expect("dir").join("results.sqlite"))
            .expect("store");
    assert_eq!(store.count(pipeline).expect("count"), 1);
    let (status, line) = post_image(
        port,
        "/api/v1/offline/lesion?hair_removal=false",
        None,
        &body,
    );
    assert_eq!(status, 200, "{line}");
    assert_eq!(line["method"], "cluster");
    assert_eq!(line["hair_removal"], false);
    // The mask itself.
    let request = format!(
        "POST /api/v1/offline/lesion?format=png HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(&body);
    let (status, head, text) = raw(port, &bytes);
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: image/png"),
        "{head}"
    );
    assert!(text.contains("PNG"), "not a PNG body");
    // Bad requests get a status and one line.
    let (status, line) = post_image(port, "/api/v1/offline/lesion?method=kmeans", None, &body);
    assert_eq!(status, 400);
    assert!(
        line["error"]
            .as_str()
            .unwrap_or("")
            .contains("otsu or cluster"),
        "{line}"
    );
    let (status, line) = post_image(port, "/api/v1/offline/lesion", None, b"not an image");
    assert_eq!(status, 422, "{line}");
    let tiny = {
        let mut b = Vec::new();
        image::RgbImage::new(6, 6)
            .write_to(&mut std::io::Cursor::new(&mut b), image::ImageFormat::Png)
            .expect("encode");
        b
    };
    let (status, line) = post_image(port, "/api/v1/offline/lesion", None, &tiny);
    assert_eq!(status, 422, "{line}");
    assert!(
        line["error"]
            .as_str()
            .unwrap_or("")
            .contains("smaller than the 11-pixel"),
        "{line}"
    );
}

#[test]
fn retrieval_sessions_rank_uploads_and_take_feedback_rounds() {
    let (server, _) = start(None);
    let port = server.port;
    let model = "satellite-eurosat-lite0";
    let post = |path: &str, body: &str| -> (u16, Value) {
        let (status, _, text) = http(port, "POST", path, None, body);
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    };
    // Nothing analysed yet: the index is empty and the answer says how to fill it.
    let (status, answer) = post(
        &format!("/api/v1/offline/{model}/retrieve"),
        r#"{"query": "upload:p0.png"}"#,
    );
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("offline classify"))
    );
    let mut shas = Vec::new();
    for (i, (x, y)) in [(0, 0), (64, 64), (300, 200), (400, 300), (128, 0), (0, 256)]
        .iter()
        .enumerate()
    {
        let (status, line) = post_image(
            port,
            &format!("/api/v1/offline/{model}?name=p{i}.png"),
            None,
            &patch_png(*x, *y),
        );
        assert_eq!(status, 200, "{line}");
        shas.push(line["input_sha256"].as_str().expect("sha").to_owned());
    }
    let (status, first) = post(
        &format!("/api/v1/offline/{model}/retrieve"),
        &format!(r#"{{"query": "{}", "k": 3}}"#, &shas[0][..10]),
    );
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["query"]["input"], "upload:p0.png");
    assert_eq!(first["results"].as_array().map(Vec::len), Some(3));
    assert_eq!(first["indexed"], 6);
    let session = first["session"].as_str().expect("session id").to_owned();
    let top = first["results"][0]["input_sha256"]
        .as_str()
        .expect("sha")
        .to_owned();
    let (status, second) = post(
        &format!("/api/v1/offline/retrieve/sessions/{session}/feedback"),
        &format!(r#"{{"irrelevant": ["{top}"]}}"#),
    );
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["round"], 1);
    let (status, _, text) = http(
        port,
        "GET",
        &format!("/api/v1/offline/retrieve/sessions/{session}"),
        None,
        "",
    );
    assert_eq!(status, 200, "{text}");
    let shown: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(shown["rounds"][0]["irrelevant"][0], top.as_str());
    // Unknown session, unknown image, bad metric, unknown field.
    let (status, _) = post(
        "/api/v1/offline/retrieve/sessions/nope/feedback",
        r#"{"relevant": ["x"]}"#,
    );
    assert_eq!(status, 404);
    let (status, answer) = post(
        &format!("/api/v1/offline/retrieve/sessions/{session}/feedback"),
        r#"{"relevant": ["ghost.png"]}"#,
    );
    assert_eq!(status, 404, "{answer}");
    let (status, _) = post(
        &format!("/api/v1/offline/{model}/retrieve"),
        r#"{"query": "upload:p1.png", "metric": "manhattan"}"#,
    );
    assert_eq!(status, 400);
    let (status, _) = post(
        &format!("/api/v1/offline/{model}/retrieve"),
        r#"{"query": "upload:p1.png", "top": 3}"#,
    );
    assert_eq!(status, 400, "unknown fields are refused");
}

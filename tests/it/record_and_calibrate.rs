//! `spectrald record` turns live sources into replayable sessions; `spectrald calibrate`
//! fits the rig homography. Both through the real binary, as an operator runs them.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use spectrald::registration::Homography;

fn spectrald() -> Command {
    Command::new(env!("CARGO_BIN_EXE_spectrald"))
}

fn write_config(dir: &Path, camera: &str) -> PathBuf {
    let models = common::repo().join("tests/fixtures/models");
    let text = format!(
        "[models]\ndir = {models:?}\nboundary = \"dmsl-boundary-tiny-random\"\nlandmark = \"dmsl-landmark-tiny-random\"\n\n{camera}"
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

fn run_ok(command: &mut Command) -> (String, String) {
    let out = command.output().expect("spectrald runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{command:?} failed: {stderr}");
    (stdout, stderr)
}

fn records(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

#[test]
fn recorded_gstreamer_session_replays_frame_for_frame() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        "[[cameras]]\nid = \"rig\"\nwhen_full = \"block\"\n\
         [cameras.visible]\nkind = \"gstreamer\"\nat_eos = \"end\"\n\
         pipeline = \"videotestsrc is-live=true pattern=ball num-buffers=15 ! video/x-raw,width=200,height=150,framerate=30/1\"\n\
         [cameras.thermal]\nkind = \"gstreamer\"\nat_eos = \"end\"\n\
         pipeline = \"videotestsrc is-live=true pattern=gradient num-buffers=5 ! video/x-raw,format=GRAY16_LE,width=80,height=60,framerate=9/1\"\n",
    );
    let session = dir.path().join("session");
    let (_, stderr) = run_ok(
        spectrald()
            .args(["record", "--config"])
            .arg(&config)
            .arg("--out")
            .arg(&session),
    );
    assert!(
        stderr.contains("recorded 15 visible + 5 thermal frames"),
        "{stderr}"
    );
    let manifest = std::fs::read_to_string(session.join("manifest.csv")).expect("manifest");
    assert_eq!(manifest.lines().count(), 1 + 20);
    let thermal = image::open(session.join("thermal/000000.png")).expect("thermal png");
    assert_eq!(
        thermal.color(),
        image::ColorType::L16,
        "thermal keeps 16 bits"
    );
    let visible = image::open(session.join("visible/000003.png")).expect("visible png");
    assert_eq!((visible.width(), visible.height()), (200, 150));
    // Replaying the session publishes every recorded image again.
    let (stdout, _) = run_ok(
        spectrald()
            .args(["replay", "--models-dir"])
            .arg(common::repo().join("tests/fixtures/models"))
            .arg("--config")
            .arg(&config)
            .arg(&session),
    );
    let images: usize = records(&stdout)
        .iter()
        .map(|r| r["spectra"].as_object().expect("spectra").len())
        .sum();
    assert_eq!(images, 20);
    // Recording into the same folder again is refused instead of mixing two sessions.
    let again = spectrald()
        .args(["record", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&session)
        .output()
        .expect("runs");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a recording"));
}

#[test]
fn recorded_flir_session_keeps_its_radiometry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seq = common::repo().join("tests/fixtures/flir/duo-pro-r-3frames.seq");
    let config = write_config(
        dir.path(),
        // No face in the FLIR scene: the whole-frame face is kept to read temperatures in.
        &format!(
            "[detector]\nthermal = \"off\"\nwhole_frame_min_score = 0.0\n[[cameras]]\nid = \"duo\"\n[cameras.thermal]\nkind = \"flir\"\npath = {seq:?}\n"
        ),
    );
    let session = dir.path().join("session");
    run_ok(
        spectrald()
            .args(["record", "--config"])
            .arg(&config)
            .arg("--out")
            .arg(&session),
    );
    let radiometry: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(session.join("radiometry.json")).expect("radiometry.json"),
    )
    .expect("json");
    assert_eq!(radiometry["units"], "planck");
    assert_eq!(radiometry["planck"]["r1"], 364058.0);
    // The direct run and the replay of the recording measure the same temperatures.
    let (direct, _) = run_ok(spectrald().args(["run", "--config"]).arg(&config));
    let (replayed, _) = run_ok(
        spectrald()
            .args(["replay", "--config"])
            .arg(&config)
            .arg(&session),
    );
    let temps = |out: &str| -> Vec<serde_json::Value> {
        records(out)
            .iter()
            .map(|r| r["spectra"]["thermal"]["faces"][0]["temperature"].clone())
            .collect()
    };
    let direct = temps(&direct);
    assert_eq!(direct.len(), 3);
    assert!(direct.iter().all(|t| t["box_max"].is_number()));
    assert_eq!(direct, temps(&replayed));
}

#[test]
fn calibrate_fits_point_pairs_and_the_config_accepts_the_result() {
    let dir = tempfile::tempdir().expect("tempdir");
    let truth = Homography::new([[2.0, 0.02, 15.0], [-0.01, 2.02, -6.0], [5e-5, 2e-5, 1.0]])
        .expect("invertible");
    let mut csv = String::from(
        "thermal_x,thermal_y,visible_x,visible_y\n# corners and centre of a heated calibration board\n",
    );
    for (i, t) in [
        [12.0, 9.0],
        [148.0, 10.0],
        [150.0, 111.0],
        [10.0, 110.0],
        [80.0, 60.0],
        [40.0, 35.0],
    ]
    .iter()
    .enumerate()
    {
        let v = truth.apply(*t);
        let noise = if i == 4 { 0.8 } else { 0.0 }; // one badly clicked point
        csv.push_str(&format!("{},{},{},{}\n", t[0], t[1], v[0] + noise, v[1]));
    }
    let points = dir.path().join("points.csv");
    std::fs::write(&points, csv).expect("write points");
    let (stdout, _) = run_ok(spectrald().arg("calibrate").arg(&points));
    assert!(
        stdout.contains("reprojection error (visible pixels): rms"),
        "{stdout}"
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("homography = "))
        .expect("homography line");
    // The printed line is valid config, and the fitted map is close to the truth.
    let camera = format!(
        "[[cameras]]\nid = \"rig\"\nsource = {{ kind = \"replay\", path = {:?} }}\n{line}\n",
        common::fixture_session()
    );
    let config = write_config(dir.path(), &camera);
    run_ok(spectrald().arg("check-config").arg(&config));
    let parsed: spectrald::config::Config =
        spectrald::config::Config::load(&config).expect("config");
    let fitted = Homography::new(parsed.cameras[0].homography.expect("homography")).expect("ok");
    for t in [[30.0, 30.0], [120.0, 90.0]] {
        let (a, b) = (fitted.apply(t), truth.apply(t));
        assert!((a[0] - b[0]).hypot(a[1] - b[1]) < 1.0, "{a:?} vs {b:?}");
    }
    // Too few points: a clear error, non-zero exit.
    std::fs::write(&points, "1,2,3,4\n5,6,7,8\n").expect("write");
    let out = spectrald()
        .arg("calibrate")
        .arg(&points)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("need at least 4 point pairs, got 2"));
}

#[test]
fn overlay_draws_boxes_and_landmarks_where_the_records_say() {
    let dir = tempfile::tempdir().expect("tempdir");
    let session = common::fixture_session();
    let (stdout, _) = run_ok(spectrald().arg("replay").arg(&session));
    let records_path = dir.path().join("out.jsonl");
    std::fs::write(&records_path, &stdout).expect("write records");
    let out = dir.path().join("overlay");
    let (_, stderr) = run_ok(
        spectrald()
            .arg("overlay")
            .arg(&session)
            .arg(&records_path)
            .arg("--out")
            .arg(&out)
            .args(["--palette", "white-hot"]),
    );
    assert!(stderr.contains("wrote 24 overlay pictures"), "{stderr}");
    let record = &records(&stdout)[5];
    let picture = image::open(out.join("replay-000005.png"))
        .expect("png")
        .into_rgb8();
    // Visible (320 wide) | 4 px gap | thermal scaled x2 to the same height.
    assert_eq!((picture.width(), picture.height()), (320 + 4 + 320, 240));
    let nose = common::landmarks(record, "visible").expect("landmarks")[30];
    let p = picture
        .get_pixel((nose[0] + 0.5) as u32, (nose[1] + 0.5) as u32)
        .0;
    assert_eq!(p, [255, 40, 40], "landmark dot on the visible panel");
    let face = &record["spectra"]["thermal"]["faces"][0];
    let b = &face["box"];
    let (x, y) = (
        b["x"].as_f64().expect("x") * 2.0,
        b["y"].as_f64().expect("y") * 2.0,
    );
    let corner = picture
        .get_pixel(324 + x.round() as u32, y.round() as u32 + 5)
        .0;
    let colour = spectrald::render::track_colour(face["track_id"].as_u64().expect("track id"));
    assert_eq!(corner, colour.0, "box edge on the thermal panel");
}

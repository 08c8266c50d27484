//! Setup mistakes stop the daemon before any work, with one line naming the thing and the fix.
use crate::common;

use std::process::Command;

use common::*;

fn spectrald(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_spectrald"))
        .args(args)
        .output()
        .expect("run spectrald");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path.display().to_string()
}

#[test]
fn unknown_config_key_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write(
        dir.path(),
        "c.toml",
        "[queues]\ncapacity = 4\nwhen_ful = \"block\"\n",
    );
    let (code, _, stderr) = spectrald(&["check-config", &config]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("when_ful") && stderr.contains("c.toml"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
}

/// DIR/c.toml: `[models]` with `models` (TOML lines) and one camera replaying the fixture.
fn config_with_models(dir: &std::path::Path, models: &str) -> String {
    let session = fixture_session().display().to_string();
    write(
        dir,
        "c.toml",
        &format!(
            "[models]\n{models}\n[[cameras]]\nid = \"a\"\nsource = {{ kind = \"replay\", path = {session:?} }}\n"
        ),
    )
}

#[test]
fn batching_out_of_range_is_named_with_its_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (setting, named) in [
        (
            "max_batch = 0",
            "models.max_batch: must be 1 to 256 frames, got 0",
        ),
        (
            "max_wait_ms = 5000",
            "models.max_wait_ms: must be at most 1000 ms",
        ),
    ] {
        let config = config_with_models(dir.path(), setting);
        let (code, _, stderr) = spectrald(&["check-config", &config]);
        assert_eq!(code, 2, "{setting}: {stderr}");
        assert!(stderr.contains(named), "{setting}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    }
}

/// The test machines have the CPU build of ONNX Runtime: asking for a GPU must stop the
/// daemon with the fix, never quietly run on the CPU.
#[test]
fn gpu_device_without_a_gpu_build_of_onnx_runtime_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let models = repo().join("models").display().to_string();
    for (device, backend) in [("cuda", "auto"), ("tensorrt", "ort")] {
        let config = config_with_models(
            dir.path(),
            &format!("dir = {models:?}\nbackend = \"{backend}\"\ndevice = \"{device}\""),
        );
        let (code, stdout, stderr) = spectrald(&["run", "--config", &config]);
        assert_eq!(code, 2, "{device}: {stderr}");
        assert!(stdout.is_empty(), "nothing processed: {stdout}");
        let error: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(error.len(), 1, "one error line: {stderr}");
        assert!(
            error[0].contains(&format!("models.device = \"{device}\""))
                && error[0].contains("onnxruntime-gpu")
                && error[0].contains("device = \"cpu\""),
            "{}",
            error[0]
        );
    }
    let config = config_with_models(dir.path(), "backend = \"tract\"\ndevice = \"cuda\"");
    let (code, _, stderr) = spectrald(&["check-config", &config]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("models.device") && stderr.contains("backend = \"ort\""),
        "{stderr}"
    );
}

#[test]
fn shipped_config_is_valid() {
    let (code, stdout, stderr) = spectrald(&[
        "check-config",
        &repo().join("config.toml").display().to_string(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("OK"));
}

#[test]
fn missing_session_folder_is_named() {
    let (code, stdout, stderr) = spectrald(&["replay", "/nonexistent/session"]);
    assert_eq!(code, 2);
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("/nonexistent/session") && stderr.contains("not a folder"),
        "{stderr}"
    );
}

#[test]
fn missing_model_is_named() {
    // An empty folder: the detector, loaded first, is the one named.
    let dir = tempfile::tempdir().expect("tempdir");
    let replay = |models: &std::path::Path| {
        spectrald(&[
            "replay",
            &fixture_session().display().to_string(),
            "--models-dir",
            &models.display().to_string(),
        ])
    };
    let (code, _, stderr) = replay(dir.path());
    assert_eq!(code, 2);
    assert!(
        stderr.contains("face-yunet-2023mar.json") && stderr.contains("spectrald models"),
        "{stderr}"
    );
    // With the detector there, the missing DMSL model is named.
    write_detector_manifest(dir.path(), |_| {});
    let (code, _, stderr) = replay(dir.path());
    assert_eq!(code, 2);
    assert!(
        stderr.contains("dmsl-boundary-lite.json") && stderr.contains("spectrald models"),
        "{stderr}"
    );
}

/// The shipped detector's manifest in `dir` (its ONNX file stays where it is), edited by `edit`.
fn write_detector_manifest(dir: &std::path::Path, edit: impl Fn(&mut serde_json::Value)) {
    let mut manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("models/face-yunet-2023mar.json")).expect("manifest"),
    )
    .expect("json");
    manifest["file"] = serde_json::json!(repo().join("models/face-yunet-2023mar.onnx"));
    edit(&mut manifest);
    std::fs::write(dir.join("face-yunet-2023mar.json"), manifest.to_string())
        .expect("write detector manifest");
}

#[test]
fn a_detector_that_changed_or_is_not_a_detector_is_refused_at_start() {
    let models = models_with(|_| {});
    write_detector_manifest(models.path(), |m| {
        m["sha256"] = serde_json::json!("0".repeat(64))
    });
    let replay = |extra: &[&str]| {
        let session = fixture_session().display().to_string();
        let dir = models.path().display().to_string();
        let mut args = vec!["replay", &session, "--models-dir", &dir];
        args.extend_from_slice(extra);
        spectrald(&args)
    };
    let (code, stdout, stderr) = replay(&[]);
    assert_eq!(code, 2);
    assert!(stdout.is_empty(), "nothing published");
    assert!(
        stderr.contains("sha256") && stderr.contains("face-yunet-2023mar.onnx"),
        "{stderr}"
    );
    // A DMSL model named as the detector: the missing head is named, with the fix.
    let config = models.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[models]\ndir = \"{}\"\ndetector = \"dmsl-landmark-lite\"\n[[cameras]]\nid = \"a\"\nsource = {{ kind = \"replay\", path = \"{}\" }}\n",
            models.path().display(),
            fixture_session().display()
        ),
    )
    .expect("config");
    let (code, _, stderr) = replay(&["--config", &config.display().to_string()]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("not a YuNet face detector")
            && stderr.contains("cls_8")
            && stderr.contains("models.detector"),
        "{stderr}"
    );
}

/// A models folder with the random fixture models and a manifest edited by `edit`.
fn models_with(edit: impl Fn(&mut serde_json::Value)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = repo().join("tests/fixtures/models");
    for kind in ["boundary", "landmark"] {
        let name = format!("dmsl-{kind}-tiny-random");
        std::fs::copy(
            src.join(format!("{name}.onnx")),
            dir.path().join(format!("{name}.onnx")),
        )
        .expect("copy onnx");
        let mut manifest: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(src.join(format!("{name}.json"))).expect("manifest"),
        )
        .expect("json");
        if kind == "boundary" {
            edit(&mut manifest);
        }
        std::fs::write(
            dir.path().join(format!("dmsl-{kind}-lite.json")),
            manifest.to_string(),
        )
        .expect("write manifest");
    }
    write_detector_manifest(dir.path(), |_| {});
    dir
}

#[test]
fn model_with_wrong_input_shape_is_rejected() {
    let models = models_with(|m| m["input"]["shape"] = serde_json::json!([-1, 1, 64, 64]));
    let (code, _, stderr) = spectrald(&[
        "replay",
        &fixture_session().display().to_string(),
        "--models-dir",
        &models.path().display().to_string(),
        "--backend",
        "ort",
    ]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("input image shape")
            && stderr.contains("[-1, 1, 64, 64]")
            && stderr.contains(".onnx"),
        "{stderr}"
    );
}

#[test]
fn model_file_that_changed_is_rejected() {
    let models = models_with(|m| m["sha256"] = serde_json::json!("0".repeat(64)));
    let (code, _, stderr) = spectrald(&[
        "replay",
        &fixture_session().display().to_string(),
        "--models-dir",
        &models.path().display().to_string(),
    ]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("sha256") && stderr.contains("dmsl-boundary-tiny-random.onnx"),
        "{stderr}"
    );
}

#[test]
fn models_command_verifies_checksums() {
    let (code, stdout, _) = spectrald(&[
        "models",
        "--dir",
        &repo().join("tests/fixtures/models").display().to_string(),
    ]);
    assert_eq!(code, 0);
    // The two random DMSL models and the detector.
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("ok")).count(),
        3,
        "{stdout}"
    );
    let models = models_with(|m| m["sha256"] = serde_json::json!("0".repeat(64)));
    let (code, stdout, _) = spectrald(&["models", "--dir", &models.path().display().to_string()]);
    assert_eq!(code, 1);
    assert!(stdout.contains("FAIL"), "{stdout}");
}

#[test]
fn config_errors_and_check_config_never_print_a_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let session = fixture_session().display().to_string();
    let camera =
        format!("[[cameras]]\nid = \"a\"\nsource = {{ kind = \"replay\", path = {session:?} }}\n");
    // Broken lines that hold secrets: an unterminated string, a wrong type, a bare word,
    // an inline table, a misspelt key.
    for (i, broken) in [
        "[mqtt]\nhost = \"h\"\nusername = \"u\"\npassword = \"hunter2-secret\n",
        "[mqtt]\nhost = \"h\"\nusername = \"u\"\npassword = 424242\n",
        "[http]\ntoken = hunter2-secret\n",
        "mqtt = { host = \"h\", username = \"u\", password = hunter2-secret }\n",
        "[http]\ntokn = \"hunter2-secret\"\n",
    ]
    .iter()
    .enumerate()
    {
        let file = write(
            dir.path(),
            &format!("broken{i}.toml"),
            &format!("{camera}{broken}"),
        );
        let (code, stdout, stderr) = spectrald(&["check-config", &file]);
        assert_eq!(code, 2, "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("line "), "where it is: {stderr}");
        for secret in ["hunter2", "424242"] {
            assert!(
                !stderr.contains(secret) && !stdout.contains(secret),
                "{broken}: {stderr}"
            );
        }
    }
    // A valid config is printed with its secrets hidden.
    let file = write(
        dir.path(),
        "ok.toml",
        &format!(
            "{camera}[mqtt]\nhost = \"h\"\nusername = \"u\"\npassword = \"hunter2-secret\"\n[http]\ntoken = \"hunter2-token\"\n"
        ),
    );
    let (code, stdout, stderr) = spectrald(&["check-config", &file]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stdout.contains("hunter2"), "{stdout}");
    assert!(stdout.contains("password = \"<hidden>\""), "{stdout}");
    assert!(stdout.contains("username = \"u\""), "{stdout}");
}

//! `spectrald offline retrieve` as a user runs it: patches of the real GeoTIFF fixture
//! classified by the bundled satellite model, indexed from the store, queried, refined by
//! feedback in a session file, and scored with simulated feedback; NDCG checked against
//! scikit-learn; every bad input named.
use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::run_offline as offline;
use serde_json::Value;
use spectrald::offline::retrieval::ndcg::ndcg_at;

const SAT: &str = "satellite-eurosat-lite0";

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// `spectrald offline retrieve query --model SAT --store STORE EXTRA…`.
fn query(store: &Path, extra: &[&str]) -> (i32, Vec<Value>, String) {
    let store = s(store);
    let mut args = vec!["retrieve", "query", "--model", SAT, "--store", &store];
    args.extend_from_slice(extra);
    offline(&args)
}

/// 64×64 patches of the fixture scene every 32 px (154 of them), as PNGs in `dir`.
fn patches(dir: &Path) -> Vec<PathBuf> {
    let scene = image::open(common::repo().join("tests/fixtures/geotiff/rgbn.tif"))
        .expect("decode scene")
        .into_rgb8();
    std::fs::create_dir_all(dir).expect("mkdir");
    let mut out = Vec::new();
    for y in (0..=scene.height() - 64).step_by(32) {
        for x in (0..=scene.width() - 64).step_by(32) {
            let path = dir.join(format!("p{x:03}-{y:03}.png"));
            image::imageops::crop_imm(&scene, x, y, 64, 64)
                .to_image()
                .save(&path)
                .expect("save patch");
            out.push(path);
        }
    }
    out
}

/// Classifies the patches into `store` and returns (patch, class) pairs.
fn classified(dir: &Path, store: &Path) -> Vec<(PathBuf, String)> {
    let all = patches(&dir.join("all"));
    let (code, lines, stderr) = offline(&[
        "classify",
        "--model",
        SAT,
        "--store",
        &s(store),
        "--out",
        &s(&dir.join("o")),
        &s(&dir.join("all")),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(lines.len(), all.len());
    lines
        .iter()
        .map(|l| {
            (
                PathBuf::from(l["input"].as_str().expect("input")),
                l["class"].as_str().expect("class").to_owned(),
            )
        })
        .collect()
}

#[test]
fn ndcg_agrees_with_scikit_learn() {
    // Seeded graded relevances and distinct scores, several K, and a query with nothing
    // relevant; scikit-learn's ndcg_score is the independent implementation.
    let mut state = 7u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as f64 / (1u64 << 31) as f64
    };
    let mut cases = Vec::new();
    for n in [5usize, 12, 30] {
        let rel: Vec<f64> = (0..n).map(|_| (next() * 3.0).floor()).collect();
        let score: Vec<f64> = (0..n).map(|i| next() + i as f64 * 1e-9).collect();
        cases.push((rel, score));
    }
    cases.push((vec![0.0; 6], (0..6).map(|i| i as f64).collect()));
    let ks = [1usize, 3, 5, 10, 25];
    let mut script = String::from("from sklearn.metrics import ndcg_score\n");
    for (rel, score) in &cases {
        for k in ks {
            script += &format!("print(ndcg_score([{rel:?}], [{score:?}], k={k}))\n");
        }
    }
    let out = Command::new(common::python())
        .args(["-c", &script])
        .output()
        .expect("python runs (scripts/setup.sh makes .cache/venv with scikit-learn)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().parse().expect("a number"))
        .collect();
    let mut ours = Vec::new();
    for (rel, score) in &cases {
        let mut order: Vec<usize> = (0..rel.len()).collect();
        order.sort_by(|&a, &b| score[b].total_cmp(&score[a]));
        let returned: Vec<f64> = order.iter().map(|&i| rel[i]).collect();
        for k in ks {
            ours.push(ndcg_at(&returned, rel, k));
        }
    }
    assert_eq!(ours.len(), theirs.len());
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert!((a - b).abs() < 1e-9, "case {i}: ours {a}, scikit-learn {b}");
    }
}

#[test]
fn simulated_feedback_raises_ndcg_and_hsbd_beats_euclidean() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("s.sqlite");
    // A labelled folder whose labels are the classes the model gives the patches: the
    // retrieval mechanics are under test here, not the classifier.
    let data = dir.path().join("data");
    for (patch, class) in classified(dir.path(), &store) {
        let to = data.join(&class);
        std::fs::create_dir_all(&to).expect("mkdir");
        std::fs::copy(&patch, to.join(patch.file_name().expect("name"))).expect("copy");
    }
    let classes = std::fs::read_dir(&data).expect("data").count();
    assert!(classes >= 4, "the scene's patches span {classes} classes");
    let evaluate = |weight: &str, out: &str| -> Value {
        let out = dir.path().join(out);
        let (code, _, stderr) = offline(&[
            "retrieve",
            "evaluate",
            "--model",
            SAT,
            "--store",
            &s(&store),
            "--per-class",
            "8",
            "--queries",
            "24",
            "--image-weight",
            weight,
            "--out",
            &s(&out),
            &s(&data),
        ]);
        assert_eq!(code, 0, "{stderr}");
        // No --split: the user is told the figures include training images, and which
        // list to pass.
        assert!(
            stderr.contains("no --split") && stderr.contains("satellite-eurosat-heldout.csv"),
            "{stderr}"
        );
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).expect("metrics"))
            .expect("json")
    };
    let ndcg = |m: &Value, method: &str, round: u64| -> f64 {
        let curve = m["curves"]
            .as_array()
            .expect("curves")
            .iter()
            .find(|c| c["method"] == method && c["round"] == round)
            .unwrap_or_else(|| panic!("{method} round {round}"));
        let values = curve["ndcg"].as_array().expect("ndcg");
        values.last().and_then(Value::as_f64).expect("NDCG@K")
    };
    // Signatures alone know nothing of the ontology the relevance grades follow; the
    // marks teach the term matrix which terms go together.
    let visual = evaluate("1", "visual");
    let (before, after) = (
        ndcg(&visual, "hsbd + term feedback", 0),
        ndcg(&visual, "hsbd + term feedback", 3),
    );
    assert!(after > before, "feedback: NDCG@K {before} → {after}");
    let moved = visual["curves"]
        .as_array()
        .expect("curves")
        .iter()
        .filter(|c| c["method"] == "hsbd + term feedback" && c["round"] != 0)
        .map(|c| c["term_pairs_moved"].as_f64().expect("moved"))
        .sum::<f64>();
    assert!(moved > 0.0, "the rounds that raised NDCG moved term pairs");
    // The patch classifier's vectors are peaked: the single-label bound is reported, marked
    // as a bound; only the term-matrix methods are marked as moving term pairs.
    let curves = visual["curves"].as_array().expect("curves");
    assert!(
        curves
            .iter()
            .any(|c| c["method"] == "term-group bound" && c["bound"] == true)
    );
    for c in curves {
        let term_method =
            c["method"] == "hsbd + term feedback" || c["method"] == "hsbd + term + rocchio";
        assert_eq!(c["term_feedback"] == true, term_method, "{}", c["method"]);
    }
    // The paper's mix: the ontology's structure ranks better than plain distances.
    let mixed = evaluate("0.5", "mixed");
    let hsbd = ndcg(&mixed, "hsbd + term feedback", 0);
    let euclid = ndcg(&mixed, "euclidean", 0);
    assert!(hsbd > euclid, "HSBD {hsbd} vs Euclidean {euclid}");
    assert!(dir.path().join("mixed/ndcg.csv").is_file());
}

#[test]
fn query_then_feedback_in_a_session_file_reorders_and_remembers_marks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("s.sqlite");
    let empty = query(&store, &["x.png"]);
    assert_ne!(empty.0, 0);
    assert!(
        empty.2.contains("is indexed") || empty.2.contains("not in the index"),
        "{}",
        empty.2
    );
    let labelled = classified(dir.path(), &store);
    let (code, lines, stderr) =
        offline(&["retrieve", "index", "--model", SAT, "--store", &s(&store)]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(lines[0]["indexed"], labelled.len());
    // A residential patch as the query, by its stored name.
    let (residential, _) = labelled
        .iter()
        .find(|(_, c)| c == "Residential")
        .expect("a Residential patch");
    let session = dir.path().join("session.json");
    let (code, lines, stderr) = query(
        &store,
        &["-k", "10", "--session", &s(&session), &s(residential)],
    );
    assert_eq!(code, 0, "{stderr}");
    let first = &lines[0];
    assert_eq!(first["round"], 0);
    let results = first["results"].as_array().expect("results");
    assert_eq!(results.len(), 10);
    assert!(
        results
            .iter()
            .all(|r| r["input"] != s(residential).as_str()),
        "query left out"
    );
    let distances: Vec<f64> = results
        .iter()
        .map(|r| r["distance"].as_f64().expect("d"))
        .collect();
    assert!(distances.windows(2).all(|w| w[0] <= w[1]), "{distances:?}");
    // The user marks the last result relevant and the first irrelevant.
    let last = results[9]["input_sha256"].as_str().expect("sha")[..12].to_owned();
    let top = results[0]["input"].as_str().expect("input").to_owned();
    let (code, lines, stderr) = offline(&[
        "retrieve",
        "feedback",
        "--session",
        &s(&session),
        "--store",
        &s(&store),
        "--relevant",
        &last,
        "--irrelevant",
        &top,
    ]);
    assert_eq!(code, 0, "{stderr}");
    let second = &lines[0];
    assert_eq!(second["round"], 1);
    // The line says how much the marks taught the term matrix (and why not, at 0).
    let moved = second["term_pairs_moved"]
        .as_u64()
        .expect("term_pairs_moved");
    assert_eq!(moved == 0, second["note"].is_string(), "{second}");
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(&session).expect("session")).expect("json");
    assert_eq!(saved["rounds"].as_array().expect("rounds").len(), 1);
    assert_ne!(saved["matrix"], Value::Null);
    let marked: Vec<&str> = second["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|r| r["marked"].as_str())
        .collect();
    assert!(
        !marked.is_empty(),
        "marked results carry their mark: {second}"
    );
    // A new image file as the query is analysed and indexed first.
    let fresh = dir.path().join("fresh.png");
    std::fs::copy(&labelled[3].0, &fresh).expect("copy");
    image::open(&fresh)
        .expect("open")
        .fliph()
        .save(&fresh)
        .expect("flip");
    let (code, lines, stderr) = query(&store, &["-k", "500", &s(&fresh)]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(lines[0]["indexed"], labelled.len() + 1);
    assert_eq!(
        lines[0]["results"].as_array().expect("r").len(),
        labelled.len()
    );
    assert!(
        lines[0]["note"]
            .as_str()
            .expect("note")
            .contains("all are returned")
    );
}

#[test]
fn bad_inputs_are_named_with_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("s.sqlite");
    classified(dir.path(), &store);
    let query = |extra: &[&str]| query(&store, extra);
    let one_line = |(code, _, stderr): (i32, Vec<Value>, String), want: &str| {
        assert_ne!(code, 0, "{stderr}");
        let last = stderr.trim().lines().last().unwrap_or_default().to_owned();
        assert!(last.contains(want), "wanted {want:?} in {stderr}");
    };
    one_line(query(&["no-such.png"]), "not in the index");
    let first = dir.path().join("all/p000-000.png");
    one_line(query(&["-k", "0", &s(&first)]), "at least 1");
    one_line(
        query(&["--metric", "manhattan", &s(&first)]),
        "hsbd, euclidean or cosine",
    );
    let ontology = dir.path().join("o.toml");
    std::fs::write(&ontology, "[parents]\nForest = \"green\"\n").expect("write");
    one_line(
        query(&["--ontology", &s(&ontology), &s(&first)]),
        "AnnualCrop",
    );
    std::fs::write(&ontology, "[parents]\na = \"b\"\nb = \"a\"\n").expect("write");
    one_line(query(&["--ontology", &s(&ontology), &s(&first)]), "cycle");
    one_line(
        query(&["--ontology", &s(&dir.path().join("none.toml")), &s(&first)]),
        "--ontology FILE",
    );
    one_line(query(&["--image-weight", "2", &s(&first)]), "[0, 1]");
    // Feedback on a session file that is not one, and on marks not in the index.
    let session = dir.path().join("s.json");
    std::fs::write(&session, "{\"schema\": \"other\"}").expect("write");
    let feedback = |marks: &[&str]| {
        let mut args = vec![
            "retrieve",
            "feedback",
            "--session",
            session.to_str().expect("utf-8"),
        ];
        args.extend_from_slice(&["--store", store.to_str().expect("utf-8")]);
        args.extend_from_slice(marks);
        offline(&args)
    };
    one_line(feedback(&["--relevant", "x"]), "s.json");
    let (code, _, stderr) = query(&["--session", &s(&session), &s(&first)]);
    assert_eq!(code, 0, "{stderr}");
    one_line(feedback(&["--relevant", "ghost.png"]), "ghost.png");
    one_line(feedback(&[]), "at least one");
}

/// Every shipped classify or segment model can serve retrieval as it is: its ontology file
/// names each of its classes and its ONNX graph yields one signature per class. A model
/// added without its ontology file (`"ontology"` in the manifest, or `NAME.ontology.toml`),
/// or with a class the file lacks, fails here instead of at a user's first `retrieve`
/// command.
#[test]
fn every_shipped_offline_model_has_a_complete_ontology() {
    use spectrald::offline::retrieval::{retriever_for, terms::Feedback};
    let mut checked = Vec::new();
    for (path, manifest) in spectrald::infer::list_manifests(&common::repo().join("models")) {
        let manifest = manifest.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if manifest.classes.is_empty() {
            continue;
        }
        retriever_for(&manifest, None, 1.0, Feedback::default())
            .unwrap_or_else(|e| panic!("model {}: {e}", manifest.name));
        checked.push(manifest.name.clone());
    }
    for name in [
        SAT,
        "satellite-eurosat-lite0-ft",
        "satellite-ucmerced-lite0-ft",
        "satellite-ucmerced-lite0-ft-d8",
    ] {
        assert!(
            checked.iter().any(|c| c == name),
            "{name} not among {checked:?}"
        );
    }
}

/// Multi-category annotations, the paper's setting: lesions described by one value per
/// dermoscopic criterion (models/ph2-criteria.ontology.toml), graded by diagnosis
/// (models/ph2-diagnosis.ontology.toml). Synthetic rows (PH2's own labels may not be
/// committed): each diagnosis leans to its typical values, with 30 % of the criteria drawn
/// at random. Feedback must move term pairs and raise NDCG@25 round over round; a bad row
/// is named by its line.
#[test]
fn feedback_on_multi_category_annotations_raises_ndcg() {
    let dir = tempfile::tempdir().expect("tempdir");
    let criteria: [(&str, &[&str]); 6] = [
        ("asymmetry", &["0", "1", "2"]),
        ("pigment_network", &["T", "AT"]),
        ("dots_globules", &["A", "T", "AT"]),
        ("streaks", &["A", "P"]),
        ("regression_areas", &["A", "P"]),
        ("blue_whitish_veil", &["A", "P"]),
    ];
    // Typical value index per criterion, per diagnosis.
    let typical = [
        ("common_nevus", [0, 0, 0, 0, 0, 0]),
        ("atypical_nevus", [1, 1, 2, 0, 0, 0]),
        ("melanoma", [2, 1, 2, 1, 1, 1]),
    ];
    let mut header = vec!["input".to_string(), "label".to_string()];
    for (c, values) in &criteria {
        header.extend(values.iter().map(|v| format!("{c}:{v}")));
    }
    let mut csv = header.join(",") + "\n";
    let mut state: u64 = 7;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    for n in 0..60 {
        let (label, values) = typical[n % 3];
        let mut row = vec![format!("lesion{n:02}"), label.to_string()];
        for ((_, options), &usual) in criteria.iter().zip(&values) {
            let chosen = if next() % 10 < 3 {
                next() % options.len()
            } else {
                usual
            };
            row.extend((0..options.len()).map(|i| if i == chosen { "1" } else { "0" }.into()));
        }
        csv += &(row.join(",") + "\n");
    }
    let vectors = dir.path().join("v.csv");
    std::fs::write(&vectors, &csv).expect("write");
    let models = common::repo().join("models");
    let run = |file: &Path| {
        offline(&[
            "retrieve",
            "evaluate-vectors",
            "--ontology",
            &s(&models.join("ph2-criteria.ontology.toml")),
            "--label-ontology",
            &s(&models.join("ph2-diagnosis.ontology.toml")),
            "--queries",
            "30",
            "--out",
            &s(&dir.path().join("out")),
            &s(file),
        ])
    };
    let (code, _, stderr) = run(&vectors);
    assert_eq!(code, 0, "{stderr}");
    let metrics: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out/metrics.json")).expect("metrics"),
    )
    .expect("json");
    let curve = |method: &str, round: u64| -> Value {
        metrics["curves"]
            .as_array()
            .expect("curves")
            .iter()
            .find(|c| c["method"] == method && c["round"] == round)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let at25 = |c: &Value| c["ndcg"][24].as_f64().expect("NDCG@25");
    let rounds: Vec<f64> = (0..4)
        .map(|r| at25(&curve("hsbd + term feedback", r)))
        .collect();
    assert!(rounds[3] > rounds[0] + 0.01, "NDCG@25 by round {rounds:?}");
    assert!(curve("hsbd + term feedback", 1)["term_pairs_moved"].as_f64() > Some(0.0));
    assert_eq!(
        curve("term-group bound", 0),
        Value::Null,
        "no single-label bound for multi-category vectors"
    );
    // A negative likelihood, and a term the ontology lacks, are named.
    std::fs::write(&vectors, csv.replacen(",1,", ",-1,", 1)).expect("write");
    let (code, _, stderr) = run(&vectors);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("line 2") && stderr.contains("≥ 0"),
        "{stderr}"
    );
    std::fs::write(&vectors, csv.replacen("asymmetry:0", "asymmetry:none", 1)).expect("write");
    let (code, _, stderr) = run(&vectors);
    assert_ne!(code, 0);
    assert!(stderr.contains("asymmetry:none"), "{stderr}");
}

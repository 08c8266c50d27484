"""The Python script a user would write instead of `spectrald replay`: Pillow + numpy +
onnxruntime, the same DMSL models, the same frames, the same preprocessing (the training
script's own functions), one record per pair. Called by `cargo bench --bench
replay_throughput`, which runs the daemon's pipeline in the same run and reports the ratio.

    python bench/replay_reference.py --models models --session tests/fixtures/session-pexels \
        --seconds 10 --threads 1

Loops over the session for `--seconds`, as the daemon's replay does: decode both images,
grey + AGC, letterbox, boundary model (both spectra as one batch), black-out, landmark
model, landmarks back to source pixels, a JSON line (serialised, not written). Prints one
JSON object: pairs/s and the per-pair latency p50/p99.
"""

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "models/train"))
import dmsl_preprocess as dp  # noqa: E402


def session(models, name, threads):
    manifest = json.loads((Path(models) / f"{name}.json").read_text())
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(str(Path(models) / manifest["file"]), options,
                                providers=["CPUExecutionProvider"])
    return sess, manifest["input"]["name"]


def pairs(session_dir):
    with open(Path(session_dir) / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    visible = [r for r in rows if r["spectrum"] == "visible"]
    thermal = [r for r in rows if r["spectrum"] == "thermal"]
    return list(zip(visible, thermal))


def canvas(path, spectrum):
    image = Image.open(path)
    if spectrum == "visible":
        gray = dp.visible_to_gray(np.asarray(image.convert("RGB")))
    else:
        counts = np.asarray(image)
        gray = dp.thermal_to_gray(counts, *dp.percentile_range(counts))
    return dp.letterbox(gray)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="models")
    ap.add_argument("--session", default="tests/fixtures/session-pexels")
    ap.add_argument("--boundary", default="dmsl-boundary-lite")
    ap.add_argument("--landmark", default="dmsl-landmark-lite")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    boundary, boundary_input = session(args.models, args.boundary, args.threads)
    landmark, landmark_input = session(args.models, args.landmark, args.threads)
    todo = pairs(args.session)
    latencies = []
    started = time.perf_counter()
    n = 0
    while time.perf_counter() - started < args.seconds:
        vis, th = todo[n % len(todo)]
        t0 = time.perf_counter()
        (cv, lv), (ct, lt) = (canvas(Path(args.session) / vis["file"], "visible"),
                              canvas(Path(args.session) / th["file"], "thermal"))
        batch = np.stack([cv, ct])[:, None]
        boxes = boundary.run(["box"], {boundary_input: batch})[0]
        masked = np.stack([dp.blackout(c, b) for c, b in zip((cv, ct), boxes)])[:, None]
        points = landmark.run(["landmarks"], {landmark_input: masked})[0].reshape(2, -1, 2)
        record = {"sequence": n, "spectra": {}}
        for name, lb, box, pts in (("visible", lv, boxes[0], points[0]),
                                   ("thermal", lt, boxes[1], points[1])):
            src = [lb.to_source(float(u), float(v)) for u, v in pts]
            record["spectra"][name] = {"box": [float(x) for x in box], "landmarks": src}
        json.dumps(record)
        latencies.append((time.perf_counter() - t0) * 1000)
        n += 1
    seconds = time.perf_counter() - started
    latencies.sort()
    print(json.dumps({
        "pairs_per_s": n / seconds,
        "pairs": n,
        "seconds": seconds,
        "threads": args.threads,
        "latency_p50_ms": latencies[len(latencies) // 2],
        "latency_p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "onnxruntime": ort.__version__,
    }))


if __name__ == "__main__":
    main()

"""The Python script a user would write instead of `spectrald replay`: Pillow + numpy +
onnxruntime, the same models (YuNet face detector, DMSL boundary and landmark), the same
frames, the same preprocessing and face crop (the training scripts' own functions), one
record per pair. Called by `cargo bench --bench replay_throughput`, which runs the daemon's
pipeline in the same run and reports the ratio.

    python bench/replay_reference.py --models models --session tests/fixtures/session-pexels \
        --seconds 10 --threads 1 --homography 2,0,0.5,0,2,0.5

Loops over the session for `--seconds`, as the daemon's replay does: decode both images,
grey + AGC, the detector on the visible image (scaled into 640x480, BGR), its faces mapped
into the thermal image through the rig's homography (thermal -> visible, row-major 2x3), each
face of each spectrum cropped (`face_crop`), the boundary model on every crop as one batch,
black-out, the landmark model as one batch, landmarks back to source pixels, a JSON line
(serialised, not written). Prints one JSON object: pairs/s, faces/s and the per-pair latency
p50/p99.
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

STRIDES = (8, 16, 32)
DETECTOR_SIZE = (640, 480)


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


def detect(detector, name, rgb, score_threshold=0.6, nms_iou=0.3):
    """YuNet as OpenCV's FaceDetectorYN: boxes (x, y, w, h) and 5 keypoints, source pixels."""
    h, w = rgb.shape[:2]
    scale = min(DETECTOR_SIZE[0] / w, DETECTOR_SIZE[1] / h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    small = np.asarray(Image.fromarray(rgb).resize((nw, nh), Image.BILINEAR), np.float32)
    canvas = np.zeros((DETECTOR_SIZE[1], DETECTOR_SIZE[0], 3), np.float32)
    canvas[:nh, :nw] = small[..., ::-1]
    out = dict(zip([o.name for o in detector.get_outputs()],
                   detector.run(None, {name: canvas.transpose(2, 0, 1)[None]})))
    boxes, scores, kps = [], [], []
    for s in STRIDES:
        cols = DETECTOR_SIZE[0] // s
        score = np.sqrt(np.clip(out[f"cls_{s}"][0, :, 0], 0, 1) * np.clip(out[f"obj_{s}"][0, :, 0], 0, 1))
        keep = np.nonzero(score >= score_threshold)[0]
        r, c = (keep // cols).astype(np.float32), (keep % cols).astype(np.float32)
        b = out[f"bbox_{s}"][0, keep]
        bw, bh = np.exp(b[:, 2]) * s, np.exp(b[:, 3]) * s
        boxes.append(np.stack([(c + b[:, 0]) * s - bw / 2, (r + b[:, 1]) * s - bh / 2, bw, bh], 1))
        k = out[f"kps_{s}"][0, keep].reshape(-1, 5, 2)
        kps.append(np.stack([(c[:, None] + k[..., 0]) * s, (r[:, None] + k[..., 1]) * s], 2))
        scores.append(score[keep])
    boxes, scores, kps = np.concatenate(boxes), np.concatenate(scores), np.concatenate(kps)
    kept = []
    for i in np.argsort(-scores, kind="stable"):
        if all(iou(boxes[i], boxes[j]) <= nms_iou for j in kept):
            kept.append(i)
    return [(boxes[i] / scale, kps[i] / scale, float(scores[i])) for i in kept]


def iou(a, b):
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    union = a[2] * a[3] + b[2] * b[3] - ix * iy
    return ix * iy / union if union > 0 else 0.0


def to_thermal(h_inv, points):
    p = np.asarray(points, np.float64)
    return p @ h_inv[:, :2].T + h_inv[:, 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="models")
    ap.add_argument("--session", default="tests/fixtures/session-pexels")
    ap.add_argument("--detector", default="face-yunet-2023mar")
    ap.add_argument("--boundary", default="dmsl-boundary-lite")
    ap.add_argument("--landmark", default="dmsl-landmark-lite")
    ap.add_argument("--homography", default="2,0,0.5,0,2,0.5",
                    help="thermal -> visible affine, row-major a,b,c,d,e,f")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    detector, detector_input = session(args.models, args.detector, args.threads)
    boundary, boundary_input = session(args.models, args.boundary, args.threads)
    landmark, landmark_input = session(args.models, args.landmark, args.threads)
    affine = np.array([float(v) for v in args.homography.split(",")]).reshape(2, 3)
    full = np.vstack([affine, [0, 0, 1]])
    h_inv = np.linalg.inv(full)[:2]
    todo = pairs(args.session)
    latencies = []
    started = time.perf_counter()
    n = faces_done = 0
    while time.perf_counter() - started < args.seconds:
        vis, th = todo[n % len(todo)]
        t0 = time.perf_counter()
        rgb = np.asarray(Image.open(Path(args.session) / vis["file"]).convert("RGB"))
        counts = np.asarray(Image.open(Path(args.session) / th["file"]))
        grays = {"visible": dp.visible_to_gray(rgb),
                 "thermal": dp.thermal_to_gray(counts, *dp.percentile_range(counts))}
        found = detect(detector, detector_input, rgb)
        crops, where = [], []
        for box, kps, score in found:
            corners = np.array([[box[0], box[1]], [box[0] + box[2], box[1] + box[3]]])
            t_corners, t_kps = to_thermal(h_inv, corners), to_thermal(h_inv, kps)
            t_box = [*t_corners[0], *(t_corners[1] - t_corners[0])]
            for spectrum, b, k in (("visible", box, kps), ("thermal", t_box, t_kps)):
                crop = dp.FaceCrop.of_detection(b, (k[0], k[1]), True)
                crops.append(dp.face_crop(grays[spectrum], crop))
                where.append((spectrum, crop, b, score))
        record = {"sequence": n, "spectra": {"visible": {"faces": []}, "thermal": {"faces": []}}}
        if crops:
            batch = np.stack(crops)[:, None]
            boxes = boundary.run(["box"], {boundary_input: batch})[0]
            masked = np.stack([dp.blackout(c, b) for c, b in zip(crops, boxes)])[:, None]
            points = landmark.run(["landmarks"], {landmark_input: masked})[0].reshape(len(crops), -1, 2)
            for (spectrum, crop, b, score), pts in zip(where, points):
                x, y = crop.to_source(pts[:, 0], pts[:, 1])
                record["spectra"][spectrum]["faces"].append({
                    "score": score, "box": [float(v) for v in b],
                    "landmarks": np.stack([x - 0.5, y - 0.5], 1).tolist()})
        json.dumps(record)
        faces_done += len(found)
        latencies.append((time.perf_counter() - t0) * 1000)
        n += 1
    seconds = time.perf_counter() - started
    latencies.sort()
    print(json.dumps({
        "pairs_per_s": n / seconds,
        "faces_per_s": faces_done / seconds,
        "pairs": n,
        "seconds": seconds,
        "threads": args.threads,
        "latency_p50_ms": latencies[len(latencies) // 2],
        "latency_p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "onnxruntime": ort.__version__,
    }))


if __name__ == "__main__":
    main()

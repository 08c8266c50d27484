"""Evaluate exported DMSL models the way the daemon runs them, on the val or held-out split.

    python models/train/evaluate.py --variant lite --split held_out --write   # models/dmsl-*-lite.*
    python models/train/evaluate.py --models runs/heatmap/onnx --variant lite --split val

The daemon's pipeline in Python: YuNet on the photo (`detector.py`, daemon defaults), the
detection matched to the labelled face (IoU with the landmarks' box ≥ 0.25, as `spectrald
evaluate`), its face crop (`dmsl_preprocess.face_crop`, upright by the eye keypoints),
boundary model → black-out of the predicted box → landmark model → back to source pixels,
through onnxruntime. On the visible photo and on its deterministic thermal-like transform
(cropped where the visible face was found: a registered rig). A face the detector misses
has no NME and counts as a failure.

Reports NME (paper eq. 3, outer eye corners 37/46): mean, median, failure rate (NME > 0.08
or no output), AUC@0.08, per source subset (AFW / HELEN / LFPW), the boundary IoU, speed.
`--write` puts the metrics into the manifests, models/dmsl-VARIANT-metrics.json, and
overlays of the worst ten faces into models/dmsl-VARIANT-worst.png.

`--reframe T` measures a variant the daemon does not run: when the detector's framing is
unusual for the predicted points (Mahalanobis distance of its eight numbers, under the
detector statistics in detector_boxes.json, above T; 0: always), crop again around the
predicted points with the detector's mean framing and run both models a second time.
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

import crops as C
import dmsl_preprocess as P
import faces as D
from detector import Detector
from measure_detector import describe, match

MODELS = Path(__file__).resolve().parents[1]
FAILURE = 0.08
SUBSETS = ("afw", "helen", "lfpw")


def session(path, threads):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def iou(a, b):
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def predict(boundary, landmark, canvas):
    box = boundary.run(["box"], {"image": canvas[None, None]})[0][0]
    pts = landmark.run(None, {"image": P.blackout(canvas, box)[None, None]})[0][0].reshape(68, 2)
    return box, pts


def auc(values, total, limit=FAILURE):
    """Area under the cumulative error curve up to `limit`, normalised to 1 (missing faces
    never count as below), as src/evaluate.rs."""
    xs = np.linspace(0, limit, 1001)
    v = np.sort(np.asarray(values))
    cdf = np.searchsorted(v, xs, side="right") / max(total, 1)
    return float(np.trapezoid(cdf, xs) / limit)


def summarise(rows):
    """rows: dicts with "nme" (None when missing) -> the table's figures."""
    values = [r["nme"] for r in rows if r["nme"] is not None]
    total = len(rows)
    missing = total - len(values)
    return {
        "faces": total,
        "nme": float(np.mean(values)) if values else None,
        "nme_median": float(np.median(values)) if values else None,
        "failure_rate_0.08": (sum(v > FAILURE for v in values) + missing) / max(total, 1),
        "failure_rate_0.1": (sum(v > 0.1 for v in values) + missing) / max(total, 1),
        "auc_0.08": auc(values, total),
        "missed": missing,
        "boundary_iou": float(np.mean([r["iou"] for r in rows if r["iou"] is not None])) if values else None,
    }


def overlay(gray, truth, pred, label):
    img = cv2.cvtColor((np.clip(gray, 0, 1) * 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    for p in truth:
        cv2.circle(img, (int(p[0]), int(p[1])), 2, (0, 200, 0), -1)
    for p in pred:
        cv2.circle(img, (int(p[0]), int(p[1])), 2, (0, 0, 255), -1)
    img = cv2.resize(img, (256, 256))
    cv2.putText(img, label, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1)
    return img


def speed(boundary, landmark, canvases, seconds=5.0):
    """Faces per second (boundary + black-out + landmark) at batch 1."""
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        c = canvases[n % len(canvases)]
        predict(boundary, landmark, c)
        n += 1
    return n / (time.perf_counter() - t0)


class Reframing:
    """The second pass of --reframe: the detector's mean framing around the first pass's points."""

    def __init__(self, threshold, stats_path=C.STATS):
        stats = json.loads(Path(stats_path).read_text())["train"]
        self.mean = np.array(stats["mean"], np.float64)
        self.inverse = np.linalg.inv(np.array(stats["covariance"], np.float64))
        self.threshold = threshold

    def unusual(self, found, pred):
        z = np.array(describe(found, pred)) - self.mean
        return float(np.sqrt(z @ self.inverse @ z)) > self.threshold

    def again(self, boundary, landmark, gray, pred):
        box, eyes = C.framing(pred, self.mean)
        canvas, _, crop = C.crop_sample(gray, pred, box, eyes)
        _, pred_c = predict(boundary, landmark, canvas)
        return np.stack(crop.to_source(pred_c[:, 0], pred_c[:, 1]), axis=1)


def evaluate(faces, boundary, landmark, detector, reframing=None):
    """Per spectrum: rows of per-face results, and the crops (for speed and overlays)."""
    rows = {"visible": [], "thermal_like": []}
    shown = []
    for face in faces:
        found = match(detector.detect(face.image), face.points)
        for spectrum in rows:
            row = {"name": face.name, "subset": face.name.split("_", 1)[0], "nme": None, "iou": None}
            if found is not None:
                gray, _ = C.grey_of(face, None, augment=False, thermal=spectrum == "thermal_like")
                eyes = (tuple(found.keypoints[0]), tuple(found.keypoints[1]))
                canvas, truth_c, crop = C.crop_sample(gray, face.points, found.box, eyes)
                box, pred_c = predict(boundary, landmark, canvas)
                pred = np.stack(crop.to_source(pred_c[:, 0], pred_c[:, 1]), axis=1)
                if reframing is not None and reframing.unusual(found, pred):
                    pred = reframing.again(boundary, landmark, gray, pred)
                    row["reframed"] = True
                row["nme"] = P.nme(pred, face.points)
                row["iou"] = iou(box, P.box_from_landmarks(truth_c))
                if spectrum == "visible":
                    shown.append((row["nme"], canvas, truth_c * P.CANVAS, pred_c * P.CANVAS, face.name))
            rows[spectrum].append(row)
    return rows, shown


def report(rows):
    out = {}
    for spectrum, r in rows.items():
        out[spectrum] = summarise(r) | {
            "per_subset": {s: summarise([x for x in r if x["subset"] == s]) for s in SUBSETS
                           if any(x["subset"] == s for x in r)}}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", default="lite")
    ap.add_argument("--data", type=Path, default=D.DEFAULT_DATA)
    ap.add_argument("--models", type=Path, default=MODELS)
    ap.add_argument("--split", default="held_out", choices=("val", "held_out"))
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--json", type=Path, help="write the report here")
    ap.add_argument("--landmark-variant", help="the landmark model's variant when it differs "
                    "(e.g. --variant lite-int8 --landmark-variant lite: int8 boundary, fp32 landmark)")
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads for the scoring pass")
    ap.add_argument("--write", action="store_true", help="metrics into the manifests + worst-ten overlays")
    ap.add_argument("--reframe", type=float, metavar="T",
                    help="second pass on a re-framed crop where the detector's framing is more than T "
                         "(Mahalanobis) from the usual; 0: every face (an experiment, not the daemon's pipeline)")
    args = ap.parse_args()
    if args.write and args.reframe is not None:
        D.fail("--reframe is an experiment the daemon does not run; its figures do not go into manifests (drop --write)")
    names = {"boundary": f"dmsl-boundary-{args.variant}",
             "landmark": f"dmsl-landmark-{args.landmark_variant or args.variant}"}
    for name in names.values():
        if not (args.models / f"{name}.onnx").exists():
            D.fail(f"{args.models / (name + '.onnx')} not found; run export.py first")
    try:
        C.check_crop_definition()
        faces = D.load_faces(args.data, args.split, args.limit)
    except D.DataError as e:
        D.fail(str(e))
    bt, lt = (session(args.models / f"{n}.onnx", args.threads) for n in names.values())
    reframing = None if args.reframe is None else Reframing(args.reframe)
    rows, shown = evaluate(faces, bt, lt, Detector(), reframing)
    # The speed figures are at 1 and 2 threads whatever --threads scored with.
    b1, l1 = (bt, lt) if args.threads == 1 else (session(args.models / f"{n}.onnx", 1) for n in names.values())
    summary = report(rows)
    canvases = [c for _, c, _, _, _ in shown]
    b2, l2 = (session(args.models / f"{n}.onnx", 2) for n in names.values())
    summary["speed_onnxruntime_cpu"] = {
        "faces_per_s_batch1_1_thread": round(speed(b1, l1, canvases), 1),
        "faces_per_s_batch1_2_threads": round(speed(b2, l2, canvases), 1),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "onnxruntime": ort.__version__}
    summary["split"] = f"{args.split}: {len(faces)} faces of {args.data.name}, split by source photo (faces.py)"
    summary["pipeline"] = "YuNet detection -> face crop (upright) -> boundary -> black-out -> landmark"
    if reframing is not None:
        summary["pipeline"] += f" -> second pass on a re-framed crop where the framing is > {args.reframe} from the usual"
        summary["reframed"] = {s: sum(bool(x.get("reframed")) for x in r) for s, r in rows.items()}
    print(json.dumps(summary, indent=1))
    if args.json:
        # numpy scalars (NME, IoU) as plain floats
        args.json.write_text(json.dumps(summary | {"per_face": rows}, indent=1, default=float) + "\n")
    if args.write:
        # Only the manifests of this variant's models: a shared fp32 model keeps its own figures.
        for name in (n for n in names.values() if n.endswith(f"-{args.variant}")):
            path = args.models / f"{name}.json"
            manifest = json.loads(path.read_text())
            manifest["metrics"] = summary
            path.write_text(json.dumps(manifest, indent=2) + "\n")
        (args.models / f"dmsl-{args.variant}-metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
        worst = sorted(shown, key=lambda t: -t[0])[:10]
        tiles = [overlay(c, t, p, f"{n[:22]} {e:.3f}") for e, c, t, p, n in worst]
        tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % 5)
        grid = np.vstack([np.hstack(tiles[i:i + 5]) for i in range(0, len(tiles), 5)])
        cv2.imwrite(str(args.models / f"dmsl-{args.variant}-worst.png"), grid)


if __name__ == "__main__":
    main()

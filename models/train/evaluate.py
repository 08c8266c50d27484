"""Evaluate exported DMSL models on the held-out split and write the model card.

    python models/train/evaluate.py --variant lite            # models/dmsl-*-lite.{onnx,json}

Runs the daemon's exact pipeline in Python (dmsl_preprocess: letterbox -> boundary model ->
black-out of the predicted box -> landmark model -> back to source pixels) through
onnxruntime on every held-out face (split by photo, see faces.py), on the visible image and
on its deterministic thermal-like transform. Reports NME (paper eq. 3, outer eye corners) and
the boundary IoU; the dlib 68-point shape predictor (the teacher) on the same faces; ORT
speed on this machine. Writes the metrics into both manifests, models/dmsl-VARIANT.md (the
model card) and an overlay PNG of held-out faces.
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

import dmsl_preprocess as P
import faces as D

MODELS = Path(__file__).resolve().parents[1]


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


def predict(boundary, landmark, canvas, oracle_box=None):
    x = canvas[None, None]
    box, mask = boundary.run(None, {"image": x})
    box = box[0]
    seen = oracle_box if oracle_box is not None else box
    pts = landmark.run(None, {"image": P.blackout(canvas, seen)[None, None]})[0][0].reshape(68, 2)
    return box, pts, mask[0, 0]


def teacher():
    import importlib.util
    import dlib
    spec = importlib.util.find_spec("face_recognition_models")
    model = Path(spec.origin).parent / "models" / "shape_predictor_68_face_landmarks.dat"
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(model)), dlib


def overlay(image_rgb, truth, pred, box_px):
    img = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR).copy()
    x, y, w, h = (int(round(v)) for v in box_px)
    cv2.rectangle(img, (x, y), (x + w, y + h), (255, 160, 0), 1)
    for p in truth:
        cv2.circle(img, (int(p[0]), int(p[1])), 2, (0, 200, 0), -1)
    for p in pred:
        cv2.circle(img, (int(p[0]), int(p[1])), 2, (0, 0, 255), -1)
    return cv2.resize(img, (256, 256))


def speed(boundary, landmark, canvases, seconds=5.0):
    """Pairs of (boundary + black-out + landmark) per second at batch 1 on one canvas each."""
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        c = canvases[n % len(canvases)]
        box = boundary.run(None, {"image": c[None, None]})[0][0]
        landmark.run(None, {"image": P.blackout(c, box)[None, None]})
        n += 1
    return n / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", default="lite")
    ap.add_argument("--data", type=Path, default=D.DEFAULT_DATA)
    ap.add_argument("--models", type=Path, default=MODELS)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--no-teacher", action="store_true")
    args = ap.parse_args()
    names = {k: f"dmsl-{k}-{args.variant}" for k in ("boundary", "landmark")}
    for k, name in names.items():
        if not (args.models / f"{name}.onnx").exists():
            D.fail(f"{args.models / (name + '.onnx')} not found; run export.py first")
    try:
        faces = D.load_faces(args.data, "held_out", args.limit)
    except D.DataError as e:
        D.fail(str(e))
    b1, l1 = (session(args.models / f"{n}.onnx", 1) for n in names.values())

    results = {"visible": [], "thermal_like": []}
    canvases, montage = [], []
    det = None if args.no_teacher else teacher()
    teacher_nme, teacher_oracle_nme, teacher_missed = [], [], 0
    for i, face in enumerate(faces):
        truth = face.points  # continuous source pixels
        for spectrum in results:
            canvas, pts_c = D.make_sample(face, None, augment=False, thermal=spectrum == "thermal_like")
            lb = P.Letterbox.for_size(face.image.shape[1], face.image.shape[0])
            gt_box = P.box_from_landmarks(pts_c)
            box, pred_c, _ = predict(b1, l1, canvas)
            _, oracle_c, _ = predict(b1, l1, canvas, oracle_box=gt_box)
            to_src = lambda p: np.stack(lb.to_source(p[:, 0], p[:, 1]), axis=1)
            pred = to_src(pred_c)
            results[spectrum].append({
                "nme": P.nme(pred, truth), "nme_oracle_box": P.nme(to_src(oracle_c), truth), "iou": iou(box, gt_box)})
            if spectrum == "visible":
                canvases.append(canvas)
                if i < 8:
                    bx0, by0 = lb.to_source(box[0], box[1])
                    bx1, by1 = lb.to_source(box[0] + box[2], box[1] + box[3])
                    montage.append(overlay(face.image, truth - 0.5, pred - 0.5, (bx0, by0, bx1 - bx0, by1 - by0)))
        if det is not None:
            detector, predictor, dlib = det
            found = detector(face.image, 1)
            if found:
                shape = predictor(face.image, max(found, key=lambda r: r.width()))
                teacher_nme.append(P.nme(np.array([[p.x + 0.5, p.y + 0.5] for p in shape.parts()]), truth))
            else:
                teacher_missed += 1
            x0, y0 = truth.min(axis=0)
            x1, y1 = truth.max(axis=0)
            rect = dlib.rectangle(int(x0), int(y0), int(x1), int(y1))
            shape = predictor(face.image, rect)
            teacher_oracle_nme.append(P.nme(np.array([[p.x + 0.5, p.y + 0.5] for p in shape.parts()]), truth))

    summary = {}
    for spectrum, rows in results.items():
        summary[spectrum] = {
            "faces": len(rows),
            "nme": float(np.mean([r["nme"] for r in rows])),
            "nme_median": float(np.median([r["nme"] for r in rows])),
            "nme_with_ground_truth_box": float(np.mean([r["nme_oracle_box"] for r in rows])),
            "boundary_iou": float(np.mean([r["iou"] for r in rows])),
            "failure_rate_nme_over_0.1": float(np.mean([r["nme"] > 0.1 for r in rows])),
        }
    if det is not None:
        summary["dlib_teacher_visible"] = {
            "nme_detected": float(np.mean(teacher_nme)) if teacher_nme else None,
            "detected": len(teacher_nme), "missed": teacher_missed,
            "nme_given_ground_truth_box": float(np.mean(teacher_oracle_nme)),
        }
    speeds = {}
    for threads in (1, 2):
        b, l = (session(args.models / f"{n}.onnx", threads) for n in names.values())
        speeds[f"frames_per_s_batch1_{threads}_threads"] = round(speed(b, l, canvases), 1)
    summary["speed_onnxruntime_cpu"] = speeds | {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                                                  "onnxruntime": ort.__version__}
    summary["size_mb"] = {k: round((args.models / f"{n}.onnx").stat().st_size / 1e6, 2) for k, n in names.items()}
    summary["held_out"] = f"{len(faces)} faces of {args.data.name}, split by source photo (faces.py)"
    print(json.dumps(summary, indent=2))

    for k, name in names.items():
        path = args.models / f"{name}.json"
        manifest = json.loads(path.read_text())
        manifest["metrics"] = summary
        path.write_text(json.dumps(manifest, indent=2) + "\n")
    if montage:
        rows = [np.hstack(montage[i:i + 4]) for i in range(0, len(montage) - len(montage) % 4, 4)]
        cv2.imwrite(str(args.models / f"dmsl-{args.variant}-heldout.png"), np.vstack(rows))
    (args.models / f"dmsl-{args.variant}-metrics.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Measure where the face detector puts its box and eye keypoints on labelled faces.

    python models/train/measure_detector.py            # writes models/train/detector_boxes.json

Runs YuNet as the daemon does (`detector.py`, the daemon's default settings) on every face of
the training and validation splits, matches the detection to the labelled face (largest IoU
with the landmarks' box, at least 0.25, as `spectrald evaluate` does), and describes the
detection relative to the landmarks in eight numbers, in units of the landmarks' box size
s = sqrt(w * h):

    box centre offset (x, y) / s, log(box w / s), log(box h / s),
    right-eye keypoint − the subject's right-eye landmark centre (x, y) / s,
    left-eye keypoint − the subject's left-eye landmark centre (x, y) / s.

Their mean and covariance over the training split are what `crops.py` samples to make
training crops framed the way the detector frames faces (issue: train on the crops the daemon
makes). The crop constants in `dmsl_preprocess.py` / `src/dmsl/crop.rs` (CROP_SCALE,
CENTRE_SHIFT) come from the same measurement: printed at the end.
"""

import argparse
import json
import math
from pathlib import Path

import numpy as np

import faces as D
from detector import Detector, iou

HERE = Path(__file__).resolve().parent
OUT = HERE / "detector_boxes.json"
MATCH_IOU = 0.25


def landmark_box(points):
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    return np.array([x0, y0, x1 - x0, y1 - y0], np.float64)


def eye_centres(points):
    """(subject's right eye = image left, subject's left eye) landmark centres."""
    return points[36:42].mean(axis=0), points[42:48].mean(axis=0)


def describe(detection, points):
    """The eight numbers of the module docstring for one matched detection."""
    gx, gy, gw, gh = landmark_box(points)
    s = math.sqrt(gw * gh)
    bx, by, bw, bh = (float(v) for v in detection.box)
    right, left = eye_centres(points)
    k = detection.keypoints
    return [
        (bx + bw / 2 - (gx + gw / 2)) / s, (by + bh / 2 - (gy + gh / 2)) / s,
        math.log(bw / s), math.log(bh / s),
        (k[0, 0] - right[0]) / s, (k[0, 1] - right[1]) / s,
        (k[1, 0] - left[0]) / s, (k[1, 1] - left[1]) / s,
    ]


def match(detections, points):
    truth = landmark_box(points)
    scored = [(iou(d.box, truth), d) for d in detections]
    scored = [(o, d) for o, d in scored if o >= MATCH_IOU]
    return max(scored, key=lambda t: t[0])[1] if scored else None


def measure(faces, detector):
    rows, per_face, missed = [], {}, []
    for face in faces:
        found = match(detector.detect(face.image), face.points)
        if found is None:
            missed.append(face.name)
            continue
        rows.append(describe(found, face.points))
        per_face[face.name] = {"box": [round(float(v), 3) for v in found.box],
                               "keypoints": [[round(float(v), 3) for v in p] for p in found.keypoints[:2]],
                               "score": round(found.score, 4)}
    return np.array(rows), per_face, missed


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=D.DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    detector = Detector()
    report = {"data": args.data.name, "match_iou": MATCH_IOU,
              "detector": "models/face-yunet-2023mar.onnx, 640x480, score 0.6, NMS 0.3 (daemon defaults)",
              "parameters": ["dx/s", "dy/s", "log(w/s)", "log(h/s)",
                             "right_eye_dx/s", "right_eye_dy/s", "left_eye_dx/s", "left_eye_dy/s"]}
    for split in ("train", "val"):
        try:
            faces = D.load_faces(args.data, split)
        except D.DataError as e:
            D.fail(str(e))
        rows, per_face, missed = measure(faces, detector)
        report[split] = {
            "faces": len(faces), "detected": len(rows), "missed": missed,
            "mean": rows.mean(axis=0).round(5).tolist(),
            "std": rows.std(axis=0).round(5).tolist(),
            "covariance": np.cov(rows.T).round(7).tolist(),
            "detections": per_face,
        }
        print(f"{split}: {len(rows)} of {len(faces)} detected; mean {np.round(rows.mean(axis=0), 3).tolist()}"
              f"; sd {np.round(rows.std(axis=0), 3).tolist()}")
    # The crop constants: where the landmarks' box sits relative to the detector box.
    mean = np.array(report["train"]["mean"])
    det_h_over_s = math.exp(mean[3])
    det_area_over_s = math.exp(mean[2] + mean[3]) ** 0.5
    print(f"landmark box centre below the detector box centre: {-mean[1] / det_h_over_s:.3f} x box height "
          f"(dmsl_preprocess.CENTRE_SHIFT); landmark box side {1 / det_area_over_s:.3f} x sqrt(box area)")
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

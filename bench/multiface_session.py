#!/usr/bin/env python3
"""Builds a multi-face replay session with ground truth, for `bench/multiface_score.py`.

Labelled 300-W faces (`../shared/data/faces-300w-dev`, human 68-point landmarks) are pasted
onto CamVid street scenes (`../shared/data/camvid-dev`, upscaled to 640x480) with a feathered
elliptical mask, 0-4 faces per frame, each 48-200 px wide (the width of its landmarks' box).
Frames come in scenes of 6 on one background: the faces drift across the scene, some cross,
some leave, so the session exercises tracking too. About a quarter of the frames have no
face. Faces are drawn from one side of the training split only (`--split held_out` for the
figures we report, `--split train` for tuning), never both.

    python3 bench/multiface_session.py --split held_out --frames 240 --out target/multiface-heldout

Writes OUT/manifest.csv + OUT/visible/*.png (a visible-only replay session) and
OUT/truth.json: per frame file, the faces with name, scene track, box (the landmarks' box,
source pixels) and the 68 landmarks (0-based pixel centres). Needs numpy and Pillow.
"""

import argparse
import hashlib
import json
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
WIDTH, HEIGHT = 640, 480
SCENE = 6
HELD_OUT_BUCKETS = 2  # models/train/faces.py's rule


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def photo_id(name):
    if name.startswith(("afw_", "helen_")):
        stem, _, n = name.rpartition("_")
        if n.isdigit():
            return stem
    return name


def is_held_out(name):
    return hashlib.sha1(photo_id(name).encode()).digest()[0] % 20 >= 20 - HELD_OUT_BUCKETS


def read_pts(path):
    text = path.read_text()
    body = text.split("{", 1)[1].split("}", 1)[0] if "{" in text else text
    values = [float(v) for v in body.split()]
    if len(values) != 136:
        fail(f"{path}: expected 68 points, found {len(values) // 2}")
    return np.array(values, np.float64).reshape(68, 2) - 1.0  # 0-based pixel centres


def load_faces(folder, split):
    marks = folder / "landmarks"
    if not marks.is_dir():
        fail(f"{folder}: no landmarks/ folder; pass --faces with the faces-300w-dev layout")
    faces = []
    for pts in sorted(marks.glob("*.pts")):
        if (split == "held_out") != is_held_out(pts.stem):
            continue
        image = folder / "images" / f"{pts.stem}.jpg"
        if image.is_file():
            faces.append((pts.stem, image, read_pts(pts)))
    if not faces:
        fail(f"{folder}: no faces in split {split}")
    return faces


def face_patch(image_path, points, width):
    """The face image scaled so its landmarks' box is `width` px wide, with an alpha mask
    (feathered ellipse around the face and forehead) and the scaled landmarks."""
    img = Image.open(image_path).convert("RGB")
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    scale = width / max(x1 - x0, 1.0)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    img = img.resize(size, Image.BILINEAR)
    pts = (points + 0.5) * scale - 0.5
    bx0, by0 = pts.min(axis=0)
    bx1, by1 = pts.max(axis=0)
    cx, cy = (bx0 + bx1) / 2, (by0 + by1) / 2
    rx, ry = (bx1 - bx0) * 0.68, (by1 - by0) * 0.85
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).ellipse([cx - rx, cy - ry * 1.15, cx + rx, cy + ry * 0.9], fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(max(1.0, width * 0.05)))
    return img, mask, pts


def background(path):
    return Image.open(path).convert("RGB").resize((WIDTH, HEIGHT), Image.BILINEAR)


def plan_scene(rng, faces, next_track):
    """0-4 faces, each with a start position and a drift over the scene; positions are drawn
    again (up to 50 times) until the face stays inside the frame and apart from the others
    at the scene's start and end."""
    count = int(rng.choice([0, 1, 2, 3, 4], p=[0.25, 0.2, 0.2, 0.2, 0.15]))
    placed = []
    for _ in range(count):
        name, image, points = faces[int(rng.integers(len(faces)))]
        width = float(np.exp(rng.uniform(math.log(48), math.log(200))))
        height = width * 1.15
        for _ in range(50):
            start = np.array([rng.uniform(width / 2 + 2, WIDTH - width / 2 - 2),
                              rng.uniform(height / 2 + 2, HEIGHT - height / 2 - 2)])
            move = rng.normal(0, 0.03 * WIDTH, 2)
            ends = [start, start + move * (SCENE - 1)]
            inside = all(width / 2 < c[0] < WIDTH - width / 2 and height / 2 < c[1] < HEIGHT - height / 2
                         for c in ends)
            apart = all(np.abs(c - q["start"] - q["move"] * k).max() > (width + q["width"]) * 0.7
                        for q in placed for k, c in ((0, ends[0]), (SCENE - 1, ends[1])))
            if inside and apart:
                break
        else:
            continue
        leaves_at = int(rng.integers(3, SCENE)) if rng.random() < 0.25 else SCENE
        placed.append(dict(name=name, image=image, points=points, width=width, start=start,
                           move=move, leaves_at=leaves_at, track=next_track + len(placed)))
    return placed


def overlaps(box, boxes):
    for b in boxes:
        ix = min(box[0] + box[2], b[0] + b[2]) - max(box[0], b[0])
        iy = min(box[1] + box[3], b[1] + b[3]) - max(box[1], b[1])
        if ix > 0 and iy > 0:
            return True
    return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=Path, default=DATA / "faces-300w-dev")
    ap.add_argument("--backgrounds", type=Path, default=DATA / "camvid-dev" / "images")
    ap.add_argument("--split", choices=("held_out", "train"), required=True)
    ap.add_argument("--frames", type=int, default=240)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    faces = load_faces(args.faces, args.split)
    scenes = sorted(args.backgrounds.glob("*.jpg")) or sorted(args.backgrounds.glob("*.png"))
    if not scenes:
        fail(f"{args.backgrounds}: no background images")
    rng = np.random.default_rng(args.seed)
    (args.out / "visible").mkdir(parents=True, exist_ok=True)
    manifest = ["spectrum,timestamp_us,file"]
    truth = {"split": args.split, "faces_from": str(args.faces), "frames": {}}
    track = 0
    for scene_start in range(0, args.frames, SCENE):
        bg = background(scenes[int(rng.integers(len(scenes)))])
        plan = plan_scene(rng, faces, track)
        track += len(plan)
        patches = {id(p): face_patch(p["image"], p["points"], p["width"]) for p in plan}
        for k in range(min(SCENE, args.frames - scene_start)):
            index = scene_start + k
            frame = bg.copy()
            boxes, entries = [], []
            for p in plan:
                if k >= p["leaves_at"]:
                    continue
                img, mask, pts = patches[id(p)]
                centre = p["start"] + p["move"] * k
                lo = pts.min(axis=0)
                hi = pts.max(axis=0)
                offset = np.round(centre - (lo + hi) / 2)
                moved = pts + offset
                box = [float(v) for v in (*moved.min(axis=0) + 0.5, *(moved.max(axis=0) - moved.min(axis=0)))]
                # Faces stay inside the frame and apart (a face pasted over another would
                # hide the labelled one).
                if box[0] < 0 or box[1] < 0 or box[0] + box[2] > WIDTH or box[1] + box[3] > HEIGHT:
                    continue
                if overlaps(box, boxes):
                    continue
                frame.paste(img, (int(offset[0]), int(offset[1])), mask)
                boxes.append(box)
                entries.append(dict(name=p["name"], track=p["track"], box=box,
                                    landmarks=[[round(float(x), 3), round(float(y), 3)] for x, y in moved]))
            file = f"visible/{index:06d}.png"
            frame.save(args.out / file)
            manifest.append(f"visible,{index * 100_000},{file}")
            truth["frames"][file] = entries
    (args.out / "manifest.csv").write_text("\n".join(manifest) + "\n")
    (args.out / "truth.json").write_text(json.dumps(truth) + "\n")
    counts = [len(v) for v in truth["frames"].values()]
    print(f"wrote {len(counts)} frames, {sum(counts)} faces, {counts.count(0)} without a face, to {args.out}")


if __name__ == "__main__":
    main()

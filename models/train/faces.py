"""Training data: faces with 68-point labels, the held-out split and augmentation.

A data folder has the layout of `../shared/data/faces-300w-dev`: `images/NAME.jpg`,
`landmarks/NAME.pts` (iBUG .pts, 1-based pixel centres). The split is by source photo
(several faces of one photo never straddle it): the SHA-1 of a face's photo id picks one of
20 buckets; the last `HELD_OUT_BUCKETS` are held out (about 10 %: reported, never tuned on),
the `VAL_BUCKETS` before them are the validation split (choices between variants and
settings are made there), the rest is the training split.
"""

import hashlib
import math
import zlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

import dmsl_preprocess as P

HELD_OUT_BUCKETS = 2  # of 20
VAL_BUCKETS = 2
SPLITS = ("train", "val", "held_out", "train+val")
REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "faces-300w-dev"


class DataError(Exception):
    """A data folder that cannot be trained on; the message says what to fix."""


@dataclass
class Face:
    name: str
    image: np.ndarray  # uint8 HxWx3 RGB
    points: np.ndarray  # (68, 2) continuous pixel coordinates


def read_pts(path: Path) -> np.ndarray:
    text = path.read_text()
    body = text.split("{", 1)[1].split("}", 1)[0] if "{" in text else text
    values = [float(v) for v in body.split()]
    if len(values) != 136:
        raise DataError(f"{path}: expected 68 points (136 numbers), found {len(values)} numbers; "
                        "only the iBUG 68-point mark-up is supported")
    return np.array(values, dtype=np.float32).reshape(68, 2) - 1.0 + 0.5


def photo_id(name: str) -> str:
    return re.sub(r"_\d+$", "", name) if name.startswith(("afw_", "helen_")) else name


def bucket(name: str) -> int:
    return hashlib.sha1(photo_id(name).encode()).digest()[0] % 20


def is_held_out(name: str) -> bool:
    return bucket(name) >= 20 - HELD_OUT_BUCKETS


def split_of(name: str) -> str:
    b = bucket(name)
    if b >= 20 - HELD_OUT_BUCKETS:
        return "held_out"
    return "val" if b >= 20 - HELD_OUT_BUCKETS - VAL_BUCKETS else "train"


def in_split(name: str, split: str) -> bool:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    own = split_of(name)
    return own == split or (split == "train+val" and own != "held_out")


def load_faces(folder: Path, split: str, limit: int = 0) -> list:
    images, marks = folder / "images", folder / "landmarks"
    if not images.is_dir() or not marks.is_dir():
        raise DataError(f"{folder}: no images/ and landmarks/ folders; point --data at a folder "
                        "laid out like ../shared/data/faces-300w-dev")
    faces = []
    for pts in sorted(marks.glob("*.pts")):
        if not in_split(pts.stem, split):
            continue
        img_path = images / f"{pts.stem}.jpg"
        bgr = cv2.imread(str(img_path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise DataError(f"{img_path}: missing or unreadable image for {pts.name}")
        faces.append(Face(pts.stem, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), read_pts(pts)))
        if limit and len(faces) >= limit:
            break
    if not faces:
        raise DataError(f"{folder}: no faces in split {split!r}")
    return faces


def mirror(img, pts):
    w = img.shape[1]
    flipped = pts[P.MIRROR].copy()
    flipped[:, 0] = w - flipped[:, 0]
    return img[:, ::-1].copy(), flipped


def warp(img, pts, rng):
    """Random scale, rotation, shift (about the face centre) and aspect crop."""
    h, w = img.shape[:2]
    scale = rng.uniform(0.75, 1.25)
    angle = rng.uniform(-18, 18)
    cx, cy = pts.mean(axis=0)
    m = cv2.getRotationMatrix2D((cx - 0.5, cy - 0.5), angle, scale)
    m[:, 2] += (rng.uniform(-0.08, 0.08) * w, rng.uniform(-0.08, 0.08) * h)
    out = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    # cv2 works on pixel indices (centre = integer); landmarks are continuous (+0.5).
    idx = pts - 0.5
    moved = idx @ m[:, :2].T + m[:, 2] + 0.5
    # Cameras are rarely square: crop a random window that keeps every landmark.
    x0, y0 = moved.min(axis=0)
    x1, y1 = moved.max(axis=0)
    if rng.random() < 0.5 and x1 - x0 < w * 0.9:
        cw = int(math.ceil(rng.uniform(max(x1 - x0 + 4, w * 0.6), w)))
        left = int(np.clip(rng.uniform(min(x1 + 2 - cw, x0 - 2), x0 - 2), 0, w - cw))
        out, moved = out[:, left:left + cw], moved - (left, 0)
    elif rng.random() < 0.5 and y1 - y0 < h * 0.9:
        ch = int(math.ceil(rng.uniform(max(y1 - y0 + 4, h * 0.6), h)))
        top = int(np.clip(rng.uniform(min(y1 + 2 - ch, y0 - 2), y0 - 2), 0, h - ch))
        out, moved = out[top:top + ch], moved - (0, top)
    return np.ascontiguousarray(out), moved.astype(np.float32)


def thermal_like(gray: np.ndarray, rng) -> np.ndarray:
    """Make a visible grey image look like a normalised thermal frame: low resolution, blur,
    remapped contrast and (half the time) inverted polarity; no visible texture to lean on."""
    h, w = gray.shape
    f = rng.uniform(2.0, 4.0)
    small = cv2.resize(gray, (max(8, int(w / f)), max(8, int(h / f))), interpolation=cv2.INTER_AREA)
    out = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.8, 2.0))
    out = np.clip(out, 0, 1) ** rng.uniform(0.5, 2.0)
    if rng.random() < 0.5:
        out = 1.0 - out
    return np.clip(out + rng.normal(0, 0.01, out.shape).astype(np.float32), 0, 1)


def photometric(gray: np.ndarray, rng) -> np.ndarray:
    g = gray * rng.uniform(0.7, 1.3) + rng.uniform(-0.15, 0.15)
    if rng.random() < 0.2:
        g = cv2.GaussianBlur(g, (0, 0), rng.uniform(0.5, 1.5))
    if rng.random() < 0.2:
        g = g + rng.normal(0, rng.uniform(0.01, 0.04), g.shape).astype(np.float32)
    return np.clip(g, 0, 1).astype(np.float32)


def make_sample(face: Face, rng, augment: bool, thermal: bool = False):
    """Face -> (canvas 128x128 float32, landmarks (68, 2) normalised to the canvas)."""
    img, pts = face.image, face.points
    if augment:
        if rng.random() < 0.5:
            img, pts = mirror(img, pts)
        img, pts = warp(img, pts, rng)
    gray = P.visible_to_gray(img)
    if augment:
        gray = thermal_like(gray, rng) if rng.random() < 0.35 else photometric(gray, rng)
    elif thermal:
        gray = thermal_like(gray, np.random.default_rng(zlib.crc32(face.name.encode())))
    gray = gray.astype(np.float32)
    canvas, lb = P.letterbox(gray)
    u, v = lb.to_canvas(pts[:, 0], pts[:, 1])
    return canvas, np.stack([u, v], axis=1).astype(np.float32)


def jitter_box(box, rng, amount=0.06):
    """The boundary model is not exact: train the landmark model on perturbed boxes."""
    x, y, w, h = box
    s = max(w, h)
    return np.array([x + rng.normal(0, amount) * s, y + rng.normal(0, amount) * s,
                     w * math.exp(rng.normal(0, amount)), h * math.exp(rng.normal(0, amount))],
                    dtype=np.float32)


def fail(message: str):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)

"""Training and evaluation samples framed the way the daemon frames faces.

The daemon runs the DMSL models on the face crop of each detection (`dmsl_preprocess.
face_crop`, ≡ `src/dmsl/crop.rs`). Training samples are made the same way:

- augment the photo (mirror, scale, rotation, shift: `faces.warp`) and its grey levels
  (photometric or thermal-like);
- place a detector box and eye keypoints around the (moved) landmarks, drawn from the
  detector's own statistics (`measure_detector.py` → `detector_boxes.json`: mean and
  covariance of box offset, log size and eye-keypoint offsets, in landmark-box units);
- crop it exactly as the daemon does.

Evaluation uses the real detector instead (`evaluate.py`).

Before anything else, `check_crop_definition()` compares the crop constants here with the
Rust ones: a training run on crops the daemon does not make is refused.
"""

import json
import math
import re
import zlib
from pathlib import Path

import numpy as np

import dmsl_preprocess as P
import faces as D

HERE = Path(__file__).resolve().parent
STATS = HERE / "detector_boxes.json"
RUST_CROP = HERE.parents[1] / "src" / "dmsl" / "crop.rs"


class CropDefinitionError(D.DataError):
    pass


def check_crop_definition(rust=RUST_CROP):
    """Refuse to train when dmsl_preprocess's crop constants differ from src/dmsl/crop.rs."""
    try:
        text = rust.read_text()
    except OSError as e:
        raise CropDefinitionError(f"{rust}: cannot read the Rust crop definition ({e})") from e
    for name in ("CROP_SCALE", "CENTRE_SHIFT", "MAX_SUBSAMPLES"):
        found = re.search(rf"pub const {name}: \w+ = ([0-9.]+);", text)
        if found is None:
            raise CropDefinitionError(f"{rust}: no `pub const {name}`; the crop definition moved")
        ours = getattr(P, name)
        if float(found.group(1)) != float(ours):
            raise CropDefinitionError(
                f"crop definition differs: {name} is {found.group(1)} in {rust.name} but {ours} in "
                "dmsl_preprocess.py; make them equal (tests/it/crop_parity.rs checks the pixels)")


class DetectorFraming:
    """Samples detector boxes and eye keypoints around labelled landmarks."""

    def __init__(self, stats_path=STATS, spread=1.0):
        try:
            stats = json.loads(Path(stats_path).read_text())["train"]
        except (OSError, KeyError, ValueError) as e:
            raise D.DataError(f"{stats_path}: no detector statistics ({e}); "
                              "run models/train/measure_detector.py first") from e
        self.mean = np.array(stats["mean"], np.float64)
        self.cov = np.array(stats["covariance"], np.float64) * spread ** 2
        self.chol = np.linalg.cholesky(self.cov + 1e-9 * np.eye(len(self.mean)))

    def sample(self, points, rng, noise=True):
        """(box (x, y, w, h), eyes ((x, y) right, (x, y) left)) around `points` (source px)."""
        z = self.mean + (self.chol @ rng.standard_normal(len(self.mean)) if noise else 0.0)
        return framing(points, z)


def framing(points, z):
    """The box and eyes that the eight numbers `z` (measure_detector.describe) stand for."""
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    gw, gh = x1 - x0, y1 - y0
    s = math.sqrt(max(gw * gh, 1e-6))
    cx, cy = (x0 + x1) / 2 + z[0] * s, (y0 + y1) / 2 + z[1] * s
    w, h = math.exp(z[2]) * s, math.exp(z[3]) * s
    right, left = points[36:42].mean(axis=0), points[42:48].mean(axis=0)
    eyes = ((right[0] + z[4] * s, right[1] + z[5] * s), (left[0] + z[6] * s, left[1] + z[7] * s))
    return (cx - w / 2, cy - h / 2, w, h), eyes


# Share of augmented samples made thermal-like (the rest get photometric changes).
THERMAL_SHARE = 0.35


def grey_of(face, rng, augment, thermal, thermal_share=THERMAL_SHARE):
    """The augmented photo's grey image and landmarks (source pixels)."""
    img, pts = face.image, face.points
    if augment:
        if rng.random() < 0.5:
            img, pts = D.mirror(img, pts)
        img, pts = D.warp(img, pts, rng)
    gray = P.visible_to_gray(img).astype(np.float32)
    if augment:
        gray = D.thermal_like(gray, rng) if rng.random() < thermal_share else D.photometric(gray, rng)
    elif thermal:
        gray = D.thermal_like(gray, np.random.default_rng(zlib.crc32(face.name.encode())))
    return gray.astype(np.float32), pts


def crop_sample(gray, pts, box, eyes, upright=True):
    """(canvas 128x128 float32, landmarks (68, 2) normalised to the canvas, the crop)."""
    crop = P.FaceCrop.of_detection(box, eyes, upright)
    canvas = P.face_crop(gray, crop)
    u, v = crop.to_canvas(pts[:, 0], pts[:, 1])
    return canvas, np.stack([u, v], axis=1).astype(np.float32), crop


def training_sample(face, rng, framing_model, augment=True, thermal_share=THERMAL_SHARE):
    gray, pts = grey_of(face, rng, augment, thermal=False, thermal_share=thermal_share)
    box, eyes = framing_model.sample(pts, rng, noise=augment)
    canvas, pts_c, _ = crop_sample(gray, pts, box, eyes)
    return canvas, pts_c

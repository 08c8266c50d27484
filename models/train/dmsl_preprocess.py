"""The DMSL preprocessing, defined once for training and mirrored by the daemon
(`src/dmsl/preprocess.rs`); `tests/it/preprocess_parity.rs` proves the two agree.

Coordinates: "continuous" pixel coordinates, where pixel i covers [i, i+1) and its centre is
i + 0.5. Landmark files (0-based pixel centres) convert with +0.5. A canvas coordinate is
normalised by the canvas size (128), so model inputs and outputs live in [0, 1].

Steps (all float32):
1. to_gray: visible RGB -> luma (ITU-R BT.601: 0.299 R + 0.587 G + 0.114 B) / 255;
   thermal counts -> (v - lo) / (hi - lo) clamped to [0, 1] (fixed range or percentile AGC).
2. letterbox: resize (Pillow BILINEAR on a mode "F" image, the same convolution that
   fast_image_resize implements) so the longer side is 128, then paste centred on a black
   128x128 canvas. `Letterbox` remembers scale and offset to map outputs back.
3. blackout (between the models, paper Fig. 4/8): zero every canvas pixel whose centre lies
   outside the boundary box grown by BLACKOUT_MARGIN of its width/height on each side.

The face crop (`face_crop`, mirrored by `src/dmsl/crop.rs`; `tests/it/crop_parity.rs`)
replaces step 2 for a detected face: a square of side CROP_SCALE * sqrt(w * h) of the
detector box, centred CENTRE_SHIFT * h below the box centre (along the face's own "down"
when upright), rotated by the eye keypoints' angle when upright; each canvas pixel averages
n x n bilinear samples (n = ceil(side / 128), at most MAX_SUBSAMPLES), outside is black.
"""

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

CANVAS = 128
BLACKOUT_MARGIN = 0.10
LUMA = (0.299, 0.587, 0.114)


def visible_to_gray(rgb: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 (or HxW grey) -> float32 HxW in [0, 1]."""
    if rgb.ndim == 2:
        return rgb.astype(np.float32) / 255.0
    rgb = rgb.astype(np.float32)
    return (LUMA[0] * rgb[..., 0] + LUMA[1] * rgb[..., 1] + LUMA[2] * rgb[..., 2]) / 255.0


def thermal_to_gray(counts: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Raw 16-bit counts -> float32 in [0, 1] over the fixed range [lo, hi]."""
    v = (counts.astype(np.float32) - np.float32(lo)) / np.float32(hi - lo)
    return np.clip(v, 0.0, 1.0)


def percentile_range(counts: np.ndarray, low_pct: float = 1.0, high_pct: float = 99.0):
    """Automatic gain: the [low_pct, high_pct] percentiles of the frame (nearest rank)."""
    flat = np.sort(counts.reshape(-1))
    n = flat.size

    def rank(p):
        # Half rounds up, as Rust's f64::round does for these non-negative ranks.
        return flat[min(n - 1, int(np.floor(p / 100.0 * (n - 1) + 0.5)))]

    lo, hi = float(rank(low_pct)), float(rank(high_pct))
    return lo, max(hi, lo + 1.0)


@dataclass(frozen=True)
class Letterbox:
    src_w: int
    src_h: int
    new_w: int
    new_h: int
    pad_x: int
    pad_y: int

    @staticmethod
    def for_size(w: int, h: int) -> "Letterbox":
        scale = CANVAS / max(w, h)
        new_w = max(1, min(CANVAS, int(round(w * scale))))
        new_h = max(1, min(CANVAS, int(round(h * scale))))
        return Letterbox(w, h, new_w, new_h, (CANVAS - new_w) // 2, (CANVAS - new_h) // 2)

    def to_canvas(self, x, y):
        """Continuous source coordinates -> normalised canvas coordinates."""
        return ((x * self.new_w / self.src_w + self.pad_x) / CANVAS,
                (y * self.new_h / self.src_h + self.pad_y) / CANVAS)

    def to_source(self, u, v):
        """Normalised canvas coordinates -> continuous source coordinates."""
        return ((u * CANVAS - self.pad_x) * self.src_w / self.new_w,
                (v * CANVAS - self.pad_y) * self.src_h / self.new_h)


def letterbox(gray: np.ndarray):
    """float32 HxW -> (float32 128x128 canvas, Letterbox)."""
    h, w = gray.shape
    lb = Letterbox.for_size(w, h)
    resized = np.asarray(
        Image.fromarray(np.ascontiguousarray(gray, dtype=np.float32), mode="F").resize(
            (lb.new_w, lb.new_h), Image.BILINEAR),
        dtype=np.float32)
    canvas = np.zeros((CANVAS, CANVAS), dtype=np.float32)
    canvas[lb.pad_y:lb.pad_y + lb.new_h, lb.pad_x:lb.pad_x + lb.new_w] = resized
    return canvas, lb


# The face crop's constants, measured on the training faces (src/dmsl/crop.rs says how).
CROP_SCALE = 1.82
CENTRE_SHIFT = 0.125
MAX_SUBSAMPLES = 4


@dataclass(frozen=True)
class FaceCrop:
    cx: float
    cy: float
    side: float
    angle: float

    @staticmethod
    def of_detection(box, eyes=None, upright=True) -> "FaceCrop":
        """box = (x, y, w, h) continuous source pixels; eyes = ((x, y) image-left eye,
        (x, y) image-right eye), the detector's first two keypoints."""
        x, y, w, h = (float(v) for v in box)
        angle = 0.0
        if upright and eyes is not None:
            (ax, ay), (bx, by) = eyes
            angle = math.atan2(float(np.float32(by) - np.float32(ay)),
                               float(np.float32(bx) - np.float32(ax)))
        sin, cos = math.sin(angle), math.cos(angle)
        shift = CENTRE_SHIFT * h
        return FaceCrop(x + w / 2.0 - sin * shift, y + h / 2.0 + cos * shift,
                        CROP_SCALE * math.sqrt(max(w * h, 0.0)), angle)

    def to_source(self, u, v):
        """Normalised canvas coordinates -> continuous source coordinates."""
        sin, cos = math.sin(self.angle), math.cos(self.angle)
        dx, dy = (np.asarray(u, np.float64) - 0.5) * self.side, (np.asarray(v, np.float64) - 0.5) * self.side
        return self.cx + cos * dx - sin * dy, self.cy + sin * dx + cos * dy

    def to_canvas(self, x, y):
        """Continuous source coordinates -> normalised canvas coordinates."""
        sin, cos = math.sin(self.angle), math.cos(self.angle)
        dx, dy = np.asarray(x, np.float64) - self.cx, np.asarray(y, np.float64) - self.cy
        return (cos * dx + sin * dy) / self.side + 0.5, (-sin * dx + cos * dy) / self.side + 0.5

    def subsamples(self) -> int:
        return int(min(max(math.ceil(self.side / CANVAS), 1), MAX_SUBSAMPLES))


def _bilinear(gray: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Values at pixel-index coordinates (centre of pixel i = i); outside is black."""
    h, w = gray.shape
    # Non-finite coordinates read nothing (black), as in the Rust version.
    finite = np.isfinite(x) & np.isfinite(y)
    x, y = np.where(finite, x, -10.0), np.where(finite, y, -10.0)
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = (x - x0).astype(np.float32), (y - y0).astype(np.float32)

    def at(xi, yi):
        inside = (xi >= 0) & (yi >= 0) & (xi < w) & (yi < h)
        xs = np.clip(xi, 0, w - 1).astype(np.int64)
        ys = np.clip(yi, 0, h - 1).astype(np.int64)
        return np.where(inside, gray[ys, xs], np.float32(0)).astype(np.float32)

    one = np.float32(1)
    top = at(x0, y0) * (one - fx) + at(x0 + 1, y0) * fx
    bottom = at(x0, y0 + 1) * (one - fx) + at(x0 + 1, y0 + 1) * fx
    return top * (one - fy) + bottom * fy


def face_crop(gray: np.ndarray, crop: FaceCrop) -> np.ndarray:
    """float32 HxW grey in [0, 1] -> the face's float32 128x128 canvas."""
    gray = np.ascontiguousarray(gray, dtype=np.float32)
    n = crop.subsamples()
    idx = np.arange(CANVAS, dtype=np.float64)
    total = np.zeros((CANVAS, CANVAS), np.float32)
    for sy in range(n):
        v = (idx[:, None] + (sy + 0.5) / n) / CANVAS
        for sx in range(n):
            u = (idx[None, :] + (sx + 0.5) / n) / CANVAS
            x, y = crop.to_source(u, v)
            total = total + _bilinear(gray, x - 0.5, y - 0.5)
    return total * np.float32(1.0 / (n * n))


def blackout(canvas: np.ndarray, box, margin: float = BLACKOUT_MARGIN) -> np.ndarray:
    """Zero the pixels outside `box` = (x, y, w, h), normalised, grown by `margin`."""
    x, y, w, h = (float(v) for v in box)
    x0, x1 = x - margin * w, x + w + margin * w
    y0, y1 = y - margin * h, y + h + margin * h
    centres = (np.arange(CANVAS, dtype=np.float32) + 0.5) / CANVAS
    keep_x = (centres >= x0) & (centres <= x1)
    keep_y = (centres >= y0) & (centres <= y1)
    return canvas * (keep_y[:, None] & keep_x[None, :])


def box_from_landmarks(points: np.ndarray):
    """(68, 2) normalised -> (x, y, w, h): the landmarks' extent (paper section IV)."""
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    return np.array([x0, y0, x1 - x0, y1 - y0], dtype=np.float32)


def boundary_mask(box) -> np.ndarray:
    """Stage-1 target of the boundary model (paper Fig. 7b): 1 inside the box."""
    return blackout(np.ones((CANVAS, CANVAS), np.float32), box, margin=0.0)


def landmark_mask(points: np.ndarray) -> np.ndarray:
    """Stage-1 target of the landmark model: Algorithm 1 of the paper, scaled to [0, 1].

    Each point adds 0.5^chebyshev_distance * 255 to every pixel still below 255, in point
    order (the paper's loop), measured from pixel centres in canvas pixels.
    """
    centres = np.arange(CANVAS, dtype=np.float32) + 0.5
    mask = np.zeros((CANVAS, CANVAS), np.float32)
    for px, py in points * CANVAS:
        dist = np.maximum(np.abs(centres[None, :] - px), np.abs(centres[:, None] - py))
        glow = np.power(np.float32(0.5), dist) * 255.0
        mask = np.where(mask < 255.0, mask + glow, mask)
    return np.minimum(mask, 255.0) / 255.0


# iBUG 68-point order under a horizontal mirror (0-based indices).
MIRROR = (list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30]
          + [35, 34, 33, 32, 31] + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
          + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55] + [64, 63, 62, 61, 60, 67, 66, 65])
assert sorted(MIRROR) == list(range(68))


def nme(pred: np.ndarray, truth: np.ndarray) -> float:
    """Paper eq. 3 for one face: mean point error / outer-eye-corner distance (37, 46)."""
    d = np.linalg.norm(truth[36] - truth[45])
    return float(np.linalg.norm(pred - truth, axis=1).mean() / d)


def _main():
    """Dump the 128x128 canvas of one image as little-endian float32 (parity tests)."""
    import argparse

    ap = argparse.ArgumentParser(description=_main.__doc__)
    ap.add_argument("image")
    ap.add_argument("--spectrum", choices=("visible", "thermal"), required=True)
    ap.add_argument("--normalization", default="percentile:1:99",
                    help="thermal: fixed:LOW:HIGH or percentile:LOW:HIGH")
    ap.add_argument("--crop", default=None,
                    help="x,y,w,h[,ex0,ey0,ex1,ey1]: dump the face crop of this box instead")
    ap.add_argument("--upright", action="store_true")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    pixels = np.asarray(Image.open(args.image))
    if args.spectrum == "visible":
        gray = visible_to_gray(np.asarray(Image.open(args.image).convert("RGB")))
    else:
        mode, low, high = args.normalization.split(":")
        low, high = float(low), float(high)
        if mode == "percentile":
            low, high = percentile_range(pixels, low, high)
        gray = thermal_to_gray(pixels, low, high)
    if args.crop:
        v = [float(t) for t in args.crop.split(",")]
        eyes = ((v[4], v[5]), (v[6], v[7])) if len(v) == 8 else None
        canvas = face_crop(gray, FaceCrop.of_detection(v[:4], eyes, args.upright))
    else:
        canvas, _ = letterbox(gray)
    canvas.astype("<f4").tofile(args.out)


if __name__ == "__main__":
    _main()

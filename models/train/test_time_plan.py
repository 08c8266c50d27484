"""A segmentation model's test-time plan in Python: the whole image and k-times enlarged
copies cut into model-sized tiles overlapping by half, each pass also mirrored with flip,
probabilities averaged. The twin of `src/offline/multiscale.rs`; numpy + Pillow +
onnxruntime only (no torch), so the benchmark's reference (`bench/offline_reference.py`) and
`segment_test_time.py` share it.
"""

import math

import numpy as np
from PIL import Image


def tile_origins(length, tile):
    """Every half tile, plus one flush with the far edge (src/offline/multiscale.rs)."""
    last = length - tile
    return sorted(set(range(0, max(last, 0), max(tile // 2, 1))) | {max(last, 0)})


def resize(planes, size):
    """Float planes [C, H, W] resized to `size` (H, W) with Pillow's bilinear convolution,
    which antialiases when shrinking: what the Rust side (fast_image_resize) does."""
    h, w = size
    return np.stack([np.asarray(Image.fromarray(p, mode="F").resize((w, h), Image.BILINEAR)) for p in planes])


def scaled(side, k):
    """round(side * k), halves away from zero as Rust's f64::round, at least `side`."""
    return max(int(math.floor(side * k + 0.5)), side)


def at_scale(session, input_name, img, size, k, flip):
    """Class probabilities [C, kH, kW] of one pass: the frame resized to k x the input `size`."""
    h, w = size
    big_h, big_w = scaled(h, k), scaled(w, k)
    rgb = img.transpose(2, 0, 1).astype(np.float32) / 255
    big = resize(rgb, (big_h, big_w)).transpose(1, 2, 0)
    if flip:
        big = big[:, ::-1]
    acc, count = None, np.zeros((big_h, big_w), np.float32)
    for y in tile_origins(big_h, h):
        for x in tile_origins(big_w, w):
            tile = np.ascontiguousarray(big[y:y + h, x:x + w].transpose(2, 0, 1))[None]
            probs = session.run(None, {input_name: tile})[0][0]
            if acc is None:
                acc = np.zeros((len(probs), big_h, big_w), np.float32)
            acc[:, y:y + h, x:x + w] += probs
            count[y:y + h, x:x + w] += 1
    acc /= count
    return acc[:, :, ::-1].copy() if flip else acc


def passes_of(scales, flip):
    """The (scale, mirrored) passes of a plan."""
    return [(k, mirrored) for k in scales for mirrored in ([False, True] if flip else [False])]


def predict(passes, plan):
    """Labels: the plan's passes' probabilities (at the label map's size) averaged."""
    return sum(passes[p] for p in plan).argmax(0)


def labels_with_plan(session, input_name, img, size, scales, flip):
    """Class per pixel of an RGB frame [H, W, 3] (uint8) under the plan, at the frame's size."""
    shape = img.shape[:2]
    passes = {p: resize(at_scale(session, input_name, img, size, *p), shape) for p in passes_of(scales, flip)}
    return predict(passes, list(passes))

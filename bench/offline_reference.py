"""The Python script a user would write instead of `spectrald offline`: Pillow + numpy +
onnxruntime, same models, same inputs, same threads. Called by
`cargo bench --bench offline_throughput`, which runs the Rust side in the same run.

    python bench/offline_reference.py --models models --scene tests/fixtures/geotiff/rgbn.tif --seconds 10

Prints one JSON object: tiles/s (classification, scene tiled at stride 16, batches of 16)
and megapixels/s (segmentation of the scene's RGB), decode included in both; the two road-scene
models to deploy, each in one whole-image pass and with its manifest's test-time plan
(scales and flip: `models/train/test_time_plan.py`, the twin of src/offline/multiscale.rs).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "models" / "train"))
from test_time_plan import labels_with_plan  # noqa: E402

# key -> model, as benches/offline_throughput.rs
DEPLOY = {"decoder": "segment-camvid-lite0-balanced-352x480-colour-aspp-all",
          "local": "segment-camvid-lite0-balanced-352x480-colour-aspp-local-all"}


def session(path, threads):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def classify_scene(sess, path, stride, batch):
    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    h, w, _ = rgb.shape
    tiles = [
        rgb[y : y + 64, x : x + 64].transpose(2, 0, 1)
        for y in range(0, h - 64 + 1, stride)
        for x in range(0, w - 64 + 1, stride)
    ]
    classes = []
    for i in range(0, len(tiles), batch):
        probs = sess.run(None, {"image": np.stack(tiles[i : i + batch])})[0]
        classes.append(probs.argmax(1))
    return len(tiles)


def segment_image(sess, path):
    image = Image.open(path).convert("RGB")
    w, h = image.size
    small = np.asarray(image.resize((256, 192), Image.BILINEAR), dtype=np.float32) / 255.0
    probs = sess.run(None, {"image": small.transpose(2, 0, 1)[None]})[0][0]
    full = np.stack([np.asarray(Image.fromarray(p).resize((w, h), Image.BILINEAR)) for p in probs])
    labels = full.argmax(0).astype(np.uint8)
    return w * h / 1e6, labels


def segment_with_plan(sess, manifest, path, scales, flip):
    """The scene's RGB through the model's plan (one pass: scales [1], no flip)."""
    img = np.asarray(Image.open(path).convert("RGB"))
    size = tuple(manifest["input"]["shape"][2:])
    labels = labels_with_plan(sess, manifest["input"]["name"], img, size, scales, flip)
    return img.shape[0] * img.shape[1] / 1e6, labels


def timed(fn, seconds):
    done, start = 0.0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        done += fn()
    return done / (time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="models")
    ap.add_argument("--scene", default="tests/fixtures/geotiff/rgbn.tif")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    sat = session(f"{args.models}/satellite-eurosat-lite0.onnx", args.threads)
    seg = session(f"{args.models}/segment-camvid-lite0.onnx", args.threads)
    tiles = timed(lambda: classify_scene(sat, args.scene, 16, 16), args.seconds)
    mps = timed(lambda: segment_image(seg, args.scene)[0], args.seconds)
    result = {"tiles_per_s": tiles, "megapixels_per_s": mps, "onnxruntime": ort.__version__}
    for key, name in DEPLOY.items():
        manifest = json.loads(Path(f"{args.models}/{name}.json").read_text())
        deploy = session(f"{args.models}/{manifest['file']}", args.threads)
        plan = manifest["test_time"]
        result[f"{key}_one_pass_megapixels_per_s"] = timed(
            lambda: segment_with_plan(deploy, manifest, args.scene, [1.0], False)[0], args.seconds)
        result[f"{key}_plan_megapixels_per_s"] = timed(
            lambda: segment_with_plan(deploy, manifest, args.scene, plan["scales"], plan["flip"])[0],
            args.seconds)
        result[f"{key}_plan"] = plan
    print(json.dumps(result))


if __name__ == "__main__":
    main()

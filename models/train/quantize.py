"""int8 variant of the exported DMSL models (static QDQ quantization, calibrated on training faces).

    python models/train/quantize.py --variant lite          # -> models/dmsl-boundary-lite-int8.{onnx,json}

Calibration uses faces of the *training* split only (faces.py; the held-out faces stay unseen),
cropped as the daemon crops detected faces (crops.py), each as a visible and a thermal-like
canvas, so both spectra set the activation ranges. Weights are int8 per tensor (per channel
cost 17 % thermal NME with the FC head: see the model card), activations uint8; the output
layer and ops onnxruntime cannot run in int8 stay float. Only the boundary model by default:
the heatmap landmark model loses 17 % NME in int8 (its soft-argmax needs precise heatmaps) and
is small and fast in fp32, so the int8 variant pairs the int8 boundary with the fp32 landmark
model (`--kinds boundary,landmark` quantizes both, calibrating the landmark model on
blacked-out canvases boxed by the fp32 boundary model). Writes a manifest beside each model (a
copy of the fp32 manifest with the new file, sha256 and a `quantization` entry); the accuracy
is then measured by `evaluate.py --variant lite-int8 --landmark-variant lite` and
`spectrald evaluate` and written into the card `models/dmsl-lite.md` by hand.

Needs only onnx, onnxruntime, numpy, opencv and pillow (no torch).
"""

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                      QuantType, quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process

import crops as C
import dmsl_preprocess as P
import faces as D
from evaluate import session

MODELS = Path(__file__).resolve().parents[1]


class Canvases(CalibrationDataReader):
    def __init__(self, canvases, input_name="image"):
        self.items = iter([{input_name: c[None, None]} for c in canvases])

    def get_next(self):
        return next(self.items, None)


def calibration_canvases(data: Path, count: int, seed: int):
    """Face crops framed as the detector frames them (crops.py, mean framing), visible and
    thermal-like, of `count` training faces."""
    rng = np.random.default_rng(seed)
    faces = D.load_faces(data, "train")
    framing = C.DetectorFraming()
    picked = rng.choice(len(faces), size=min(count, len(faces)), replace=False)
    canvases = []
    for i in picked:
        for thermal in (False, True):
            gray, pts = C.grey_of(faces[i], None, augment=False, thermal=thermal)
            box, eyes = framing.sample(pts, rng, noise=False)
            canvas, _, _ = C.crop_sample(gray, pts, box, eyes)
            canvases.append(canvas.astype(np.float32))
    return canvases


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def quantize(src: Path, dst: Path, canvases, method: str, keep_float: list):
    pre = dst.with_suffix(".pre.onnx")
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    quantize_static(str(pre), str(dst), Canvases(canvases), quant_format=QuantFormat.QDQ,
                    per_channel=False, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method={"minmax": CalibrationMethod.MinMax,
                                      "percentile": CalibrationMethod.Percentile}[method],
                    nodes_to_exclude=keep_float, extra_options={"CalibPercentile": 99.99})
    pre.unlink()


def speed(path: Path, batch: int, seconds: float = 3.0) -> float:
    s = session(path, 1)
    x = np.random.default_rng(0).random((batch, 1, P.CANVAS, P.CANVAS), dtype=np.float32)
    s.run(None, {"image": x})
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        s.run(None, {"image": x})
        n += batch
    return n / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", default="lite")
    ap.add_argument("--data", type=Path, default=D.DEFAULT_DATA)
    ap.add_argument("--models", type=Path, default=MODELS)
    ap.add_argument("--calibration-faces", type=int, default=200)
    ap.add_argument("--method", choices=["minmax", "percentile"], default="minmax")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kinds", default="boundary",
                    help="models to quantize (default: boundary only; int8 landmark heatmaps cost +17 %% NME "
                         "on val, see the model card: the int8 variant runs the fp32 landmark model)")
    ap.add_argument("--keep-float", default="/head/head.3/Gemm,/net/heat/Conv,/net/Softmax",
                    help="comma-separated node names left in float (default: the output layer of the FC "
                         "head; the heatmap head's heatmaps and their softmax)")
    args = ap.parse_args()
    kinds = args.kinds.split(",")
    for kind in kinds:
        if kind not in ("boundary", "landmark"):
            D.fail(f"--kinds: unknown model {kind!r}; use boundary and/or landmark")
    try:
        C.check_crop_definition()
        canvases = calibration_canvases(args.data, args.calibration_faces, args.seed)
    except D.DataError as e:
        D.fail(str(e))

    src = {k: args.models / f"dmsl-{k}-{args.variant}.onnx" for k in ("boundary", "landmark")}
    for path in src.values():
        if not path.exists():
            D.fail(f"{path} not found; run export.py first")
    inputs = {"boundary": canvases}
    if "landmark" in kinds:
        # The landmark model sees blacked-out canvases: box them with the fp32 boundary model.
        boundary = ort.InferenceSession(str(src["boundary"]), providers=["CPUExecutionProvider"])
        inputs["landmark"] = [P.blackout(c, boundary.run(None, {"image": c[None, None]})[0][0]) for c in canvases]

    for kind in kinds:
        path = src[kind]
        name = f"dmsl-{kind}-{args.variant}-int8"
        dst = args.models / f"{name}.onnx"
        names = {n.name for n in onnx.load(str(path)).graph.node}
        keep = [n for n in args.keep_float.split(",") if n in names]
        quantize(path, dst, inputs[kind], args.method, keep)
        manifest = json.loads(path.with_suffix(".json").read_text())
        manifest.update({
            "name": name,
            "file": dst.name,
            "sha256": sha256(dst),
            "quantization": {
                "of": path.name,
                "of_sha256": sha256(path),
                "format": "QDQ, weights int8 per tensor, activations uint8",
                "calibration": f"{len(inputs[kind])} face crops ({args.calibration_faces} training faces, "
                               f"visible + thermal-like), {args.method}, seed {args.seed}",
                "kept_float": keep,
                "tool": f"onnxruntime.quantization {ort.__version__}",
            },
        })
        manifest.pop("metrics", None)
        (args.models / f"{name}.json").write_text(json.dumps(manifest, indent=2) + "\n")
        fp32, int8 = speed(path, 1), speed(dst, 1)
        print(json.dumps({"model": name, "size_mb": round(dst.stat().st_size / 1e6, 2),
                          "images_per_s_fp32_b1": round(fp32, 1), "images_per_s_int8_b1": round(int8, 1),
                          "speedup": round(int8 / fp32, 2)}))


if __name__ == "__main__":
    main()

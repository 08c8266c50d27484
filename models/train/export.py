"""Export trained DMSL checkpoints to ONNX with a manifest beside each.

    python models/train/export.py --variant lite --run models/train/runs/lite --out models

Writes OUT/dmsl-{boundary,landmark}-VARIANT.onnx (opset 17, input "image" [N,1,128,128],
dynamic batch) and OUT/dmsl-*-VARIANT.json (input/outputs, preprocessing, sha256, training).
The boundary model has two outputs: "box" [N,4] and "mask" [N,1,128,128] (its U-Net mask,
used for the face score); the landmark model has "landmarks" [N,136].
`--random` exports untrained weights (architecture-exact test fixtures, named as such).
A run whose landmark model has the heatmap head (train.py --head heatmap, `head.json`) exports
the same interface. `--flip-tta` builds test-time flip averaging into the landmark graph: the
canvas and its mirror image go through the model as one batch and the mirrored points,
re-indexed, are averaged with the direct ones (twice the landmark model's cost; the daemon
needs no change).
"""

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

import dmsl_preprocess as P
from dmsl_model import DMSL, DMSLHeatmap, INPUT_NAME, OUTPUTS, VARIANTS, has_batch_norm


class BoundaryExport(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, image):
        mask = torch.sigmoid(self.net.unet(image))
        return self.net.head(mask), mask


class LandmarkExport(nn.Module):
    def __init__(self, net, flip_tta=False):
        super().__init__()
        self.net = net
        self.flip_tta = flip_tta
        self.register_buffer("mirror", torch.tensor(P.MIRROR, dtype=torch.long))

    def points(self, image):
        if isinstance(self.net, DMSLHeatmap):
            return self.net(image)
        return self.net.head(torch.sigmoid(self.net.unet(image)))

    def forward(self, image):
        if not self.flip_tta:
            return self.points(image)
        n = image.shape[0]
        both = self.points(torch.cat([image, torch.flip(image, dims=[3])], dim=0))
        direct, flipped = both[:n].reshape(-1, 68, 2), both[n:].reshape(-1, 68, 2)
        # The mirror image's point i is the face's point MIRROR[i], at x -> 1 - x.
        flipped = flipped[:, self.mirror]
        flipped = torch.stack([1.0 - flipped[..., 0], flipped[..., 1]], dim=-1)
        return ((direct + flipped) / 2).reshape(-1, 136)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export_one(kind, variant, state, out_dir, name, training, seed, head="fc", level=2, flip_tta=False,
               version="2.0.0"):
    torch.manual_seed(seed)
    if kind == "landmark" and head == "heatmap":
        norm = state is None or has_batch_norm(state)
        net = DMSLHeatmap(VARIANTS[variant], level=level, norm=norm)
    else:
        net = DMSL(VARIANTS[variant], OUTPUTS[kind])
    if state is not None:
        net.load_state_dict(state)
    net.eval()
    wrapper = (BoundaryExport(net) if kind == "boundary" else LandmarkExport(net, flip_tta)).eval()
    outputs = (["box", "mask"] if kind == "boundary" else ["landmarks"])
    onnx_path = out_dir / f"{name}.onnx"
    dummy = torch.rand(2, 1, P.CANVAS, P.CANVAS)
    torch.onnx.export(
        wrapper, (dummy,), str(onnx_path), input_names=[INPUT_NAME], output_names=outputs,
        dynamic_axes={INPUT_NAME: {0: "N"}, **{o: {0: "N"} for o in outputs}},
        opset_version=17, dynamo=False)
    model = onnx.load(str(onnx_path))
    onnx.checker.check_model(model)
    # Check the exported graph against PyTorch on the same input.
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {INPUT_NAME: dummy.numpy()})
    with torch.no_grad():
        want = wrapper(dummy)
    want = want if isinstance(want, tuple) else (want,)
    worst = max(float(np.abs(g - w.numpy()).max()) for g, w in zip(got, want))
    if worst > 1e-4:
        raise SystemExit(f"error: {onnx_path}: ONNX and PyTorch differ by {worst}; export is broken")
    shapes = {"box": [-1, 4], "mask": [-1, 1, P.CANVAS, P.CANVAS], "landmarks": [-1, 136]}
    manifest = {
        "name": name,
        "task": kind,
        "version": version if state is not None else "1.0.0",
        "variant": variant,
        "file": onnx_path.name,
        "sha256": sha256(onnx_path),
        "input": {"name": INPUT_NAME, "shape": [-1, 1, P.CANVAS, P.CANVAS]},
        "outputs": [{"name": o, "shape": shapes[o]} for o in outputs],
        "preprocessing": {
            "definition": "models/train/dmsl_preprocess.py (mirrored by src/dmsl/preprocess.rs, src/dmsl/crop.rs)",
            "visible": "ITU-R BT.601 luma / 255",
            "thermal": "raw values normalised to [0,1]: fixed range or percentile AGC (config)",
            "crop": (f"face crop of each detection: square of side {P.CROP_SCALE} x sqrt(box area), centred "
                     f"{P.CENTRE_SHIFT} x box height below the box centre, upright by the eye keypoints, "
                     "area-averaged bilinear samples onto 128x128"),
            "coordinates": "outputs normalised to the 128x128 canvas; continuous pixel coordinates",
            "blackout_margin": P.BLACKOUT_MARGIN if kind == "landmark" else None,
        },
        "training": training,
        "metrics": {},
        "card": f"{'dmsl-' + variant}.md",
        "licence": ("random weights, no data: MIT OR Apache-2.0" if state is None else
                    "weights trained on 300-W (research use only, no commercial use): see the model card"),
    }
    (out_dir / f"{name}.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"exported {onnx_path} ({onnx_path.stat().st_size / 1e6:.1f} MB), max |onnx - torch| = {worst:.2e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", choices=sorted(VARIANTS), default="lite")
    ap.add_argument("--run", type=Path, help="training output folder (with boundary/ and landmark/)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1])
    ap.add_argument("--random", action="store_true", help="export untrained weights (test fixtures)")
    ap.add_argument("--suffix", default="", help="appended to the model names")
    ap.add_argument("--flip-tta", action="store_true", help="average with the mirrored canvas (landmark model)")
    ap.add_argument("--models", default="boundary,landmark",
                    help="which to export (e.g. landmark: a run that reused another run's boundary model)")
    ap.add_argument("--version", default="2.0.0", help="the manifest's version of a trained model")
    ap.add_argument("--landmark-variant", choices=sorted(VARIANTS),
                    help="widths of the landmark model when they differ from --variant's (the names keep --variant)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    kinds = [k.strip() for k in args.models.split(",") if k.strip()]
    if not kinds or any(k not in ("boundary", "landmark") for k in kinds):
        raise SystemExit(f"error: --models {args.models!r}: use boundary, landmark or both (comma-separated)")
    for kind in kinds:
        name = f"dmsl-{kind}-{args.variant}{args.suffix}"
        if args.random:
            export_one(kind, args.variant, None, args.out, name, {"data": "none (random weights)"}, seed=7)
            continue
        ckpt = args.run / kind / "final.pt"
        if not ckpt.exists():
            raise SystemExit(f"error: {ckpt} not found; run train.py --out {args.run} first")
        train_args = json.loads((args.run / "train_args.json").read_text())
        head_file = args.run / "head.json"
        head = json.loads(head_file.read_text()) if head_file.exists() else {"landmark": "fc", "heatmap_level": 2}
        train_args |= {"landmark_head": head["landmark"], "flip_tta": args.flip_tta and kind == "landmark"}
        # The landmark model's widths: as asked, else as trained (a run may train a wider
        # landmark model beside a lite boundary model, e.g. heatmap-wing-mid).
        trained = train_args.get("variant", args.variant)
        widths = (args.landmark_variant or trained) if kind == "landmark" else args.variant
        export_one(kind, widths, torch.load(ckpt, map_location="cpu"), args.out, name, train_args, seed=0,
                   head=head["landmark"], level=int(head["heatmap_level"]),
                   flip_tta=args.flip_tta and kind == "landmark", version=args.version)


if __name__ == "__main__":
    main()

"""A weight average ("model soup") of landmark models that share a starting point: the
shipped model and warm restarts from it (`train.py --init-from-onnx`). Restarts from one
set of weights stay in one basin of the loss, where the average of their weights behaves
like the average of their predictions (an ensemble) at the cost of one model: same graph,
same speed.

    python models/train/soup.py --out runs/soup --onnx ../dmsl-landmark-lite.onnx --runs runs/ft-onnx-rare
    python models/train/export.py --run runs/soup --out runs/soup/onnx --models landmark --flip-tta --suffix=-tta

Every ingredient has the same weight. Runs must be restarts from an exported model (no
batch normalisation: their norms are folded into the convolutions, as the ONNX graph's).
"""

import argparse
import json
from pathlib import Path

import torch

import faces as D
from dmsl_model import DMSLHeatmap, VARIANTS, has_batch_norm
from onnx_weights import load_exported


def ingredients(args):
    """(name, state dict) of each model to average."""
    found = []
    for path in args.onnx:
        net = DMSLHeatmap(VARIANTS[args.variant], level=args.heatmap_level, norm=False)
        try:
            load_exported(net, path)
        except (ValueError, OSError) as e:
            D.fail(f"--onnx: {e}")
        found.append((str(path), net.state_dict()))
    for run in args.runs:
        path = run / "landmark" / "final.pt"
        if not path.is_file():
            D.fail(f"--runs: {path} not found; finish that run first")
        state = torch.load(path, map_location="cpu")
        if has_batch_norm(state):
            D.fail(f"--runs: {run} was trained with batch normalisation; only restarts from an exported "
                   "model (train.py --init-from-onnx) share the soup's folded form")
        found.append((str(run), state))
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--onnx", type=Path, nargs="*", default=[], help="exported landmark models (heatmap head)")
    ap.add_argument("--runs", type=Path, nargs="*", default=[], help="training runs (their landmark/final.pt)")
    ap.add_argument("--variant", choices=sorted(VARIANTS), default="lite")
    ap.add_argument("--heatmap-level", type=int, default=2)
    args = ap.parse_args()
    found = ingredients(args)
    if len(found) < 2:
        D.fail("a soup needs at least two models (--onnx and --runs together)")
    keys = found[0][1].keys()
    for name, state in found[1:]:
        if state.keys() != keys:
            D.fail(f"{name} is not the same network as {found[0][0]} (other --variant or --heatmap-level)")
    # The mask branch is random in a model read back from ONNX and unused by the points:
    # averaged like the rest, it stays out of the exported graph.
    soup = {k: sum(state[k].float() for _, state in found) / len(found) for k in keys}
    (args.out / "landmark").mkdir(parents=True, exist_ok=True)
    torch.save(soup, args.out / "landmark" / "final.pt")
    described = [run for run in args.runs if (run / "train_args.json").exists()]
    train_args = json.loads((described[0] / "train_args.json").read_text()) if described else {}
    train_args |= {"variant": args.variant, "soup": [n for n, _ in found]}
    (args.out / "train_args.json").write_text(json.dumps(train_args, indent=1) + "\n")
    (args.out / "head.json").write_text(json.dumps({"landmark": "heatmap", "heatmap_level": args.heatmap_level}) + "\n")
    print(f"soup of {len(found)} models -> {args.out / 'landmark' / 'final.pt'}")


if __name__ == "__main__":
    main()

"""Test-time scales and flip for a trained segmentation model: scores its held-out list with
one whole-image pass and with the given plan (the image resized to k times the model input
and cut into model-sized tiles overlapping by half, each scale also mirrored with --flip,
probabilities averaged), and writes the plan and both figures into the model's manifest.
`spectrald offline segment|evaluate` then use the plan by default (docs/offline.md).

    python models/train/segment_test_time.py models/NAME.json --split models/NAME-heldout.csv --scales 1,1.5 --flip

The ONNX file is not touched (its sha256 stays valid). Choose the plan on data you do not
report (other folds), as the CamVid card describes.

A model trained on every frame (`segment_cr.py --all-sequences`) has no held-out frames of
its own; its figure is the mean over the sequence folds trained with the same recipe:

    python models/train/segment_test_time.py models/NAME-all.json --scales 1,1.5 --flip \
        --folds runs/camvid-seq-*/NAME.json   # each fold's manifest, scored with the same plan
"""

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from segment_cr import VOID, confusion, scores
from test_time_plan import at_scale, passes_of, predict, resize


KEYS = ("pixel_accuracy", "mean_accuracy", "mean_iu", "frequency_weighted_iu")


def fold_estimate(paths, plan):
    """The mean of the folds' figures (each fold's held-out sequence unseen by that fold)."""
    folds = []
    for path in paths:
        fold = json.loads(path.read_text())
        if fold.get("test_time") != plan:
            raise SystemExit(f"error: {path} was scored with the plan {fold.get('test_time')}, not {plan}; "
                             f"run this script on it with --split first")
        folds.append({"model": str(path), "split": fold["training"]["split"],
                      "held_out_frames": fold["metrics"]["held_out_frames"],
                      **{k: fold["metrics"][k] for k in KEYS}})
    estimate = {k: float(np.mean([f[k] for f in folds])) for k in KEYS}
    return estimate | {"held_out_frames": 0,
                       "estimate": "mean over sequence folds trained with the same recipe; this model saw every frame",
                       "folds": folds}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("manifest", type=Path)
    ap.add_argument("--split", type=Path, help="held-out list (columns image, label)")
    ap.add_argument("--folds", type=Path, nargs="+", default=[],
                    help="instead of --split: the manifests of the sequence folds (same recipe, already "
                         "scored with the same plan); their mean becomes this model's estimate")
    ap.add_argument("--data", type=Path, default=Path("../shared/data/camvid-dev"))
    ap.add_argument("--scales", default="1,1.5")
    ap.add_argument("--flip", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    try:
        scales = [float(k) for k in args.scales.split(",")]
    except ValueError:
        raise SystemExit(f"error: --scales {args.scales!r}: give numbers, e.g. 1,1.5") from None
    if not scales or any(not 1 <= k <= 8 for k in scales):
        raise SystemExit(f"error: --scales {args.scales}: each scale must be in 1..8 (1 = the whole image)")
    if (args.split is None) == (not args.folds):
        raise SystemExit("error: give either --split (score this model's held-out frames) or --folds "
                         "(a model trained on every frame: the mean of its sequence folds)")
    for path in [args.manifest, *([args.split] if args.split else []), *args.folds]:
        if not path.exists():
            raise SystemExit(f"error: {path} not found")
    manifest = json.loads(args.manifest.read_text())
    if manifest.get("task") != "segment":
        raise SystemExit(f"error: {args.manifest} is a {manifest.get('task')!r} model; test-time scales are for segment models")
    plan_of_args = {"scales": scales, "flip": args.flip}
    if args.folds:
        report = {"metrics": fold_estimate(args.folds, plan_of_args)}
        manifest.pop("metrics_single_pass", None)
        print(f"mean IU {report['metrics']['mean_iu'] * 100:.2f} (mean of {len(args.folds)} folds)")
    else:
        report = score_split(args, manifest, scales)
    manifest["test_time"] = plan_of_args
    manifest.update(report)
    args.manifest.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote test_time and {'the estimate' if args.folds else 'both figures'} into {args.manifest}")


def score_split(args, manifest, scales):
    """One whole-image pass and the plan on the --split frames: both figures."""
    plans = {"metrics_single_pass": one_model(passes_of([1.0], False)),
             "metrics": one_model(passes_of(scales, args.flip))}
    report, frames = score_plans([(args.manifest, manifest)], args.split, plans, args.data, args.threads)
    for key, m in report.items():
        m["held_out_frames"] = frames
        print(key, f"mean IU {m['mean_iu'] * 100:.2f}  pixel acc {m['pixel_accuracy'] * 100:.2f}", flush=True)
    return report


def one_model(passes, member=0):
    """A plan's (scale, mirrored) passes as passes of one model: (member, scale, mirrored)."""
    return [(member, k, mirrored) for k, mirrored in passes]


def score_plans(members, split, plans, data, threads):
    """scores() on the frames of `split` under each plan (name -> passes, each pass
    (member, scale, mirrored) of one of the `members`, [(manifest path, manifest)], models of
    the same classes), and the number of frames. A plan over several members is their
    ensemble: all its passes' probabilities averaged. Each distinct pass runs once per frame,
    however many plans share it (scale 1, unmirrored, is in most)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    models = []
    for path, manifest in members:
        if manifest["classes"] != members[0][1]["classes"]:
            raise SystemExit(f"error: {path} has other classes than {members[0][0]}; an ensemble needs the same")
        session = ort.InferenceSession(str(path.parent / manifest["file"]), options,
                                       providers=["CPUExecutionProvider"])
        models.append((session, manifest["input"]["name"], tuple(manifest["input"]["shape"][2:])))
    every_pass = list(dict.fromkeys(p for passes in plans.values() for p in passes))
    cms = {name: np.zeros((VOID, VOID), np.int64) for name in plans}
    with open(split, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        img = np.asarray(Image.open(data / r["image"]).convert("RGB"))
        lab = np.asarray(Image.open(data / r["label"]))
        probs = {}
        for m, k, mirrored in every_pass:
            session, input_name, size = models[m]
            probs[(m, k, mirrored)] = resize(at_scale(session, input_name, img, size, k, mirrored), lab.shape)
        for name, passes in plans.items():
            cms[name] += confusion(lab, predict(probs, passes), VOID)
    report = {}
    for name, cm in cms.items():
        m = scores(cm)
        m["per_class_iu"] = dict(zip(members[0][1]["classes"], m["per_class_iu"]))
        report[name] = m
    return report, len(rows)


if __name__ == "__main__":
    main()

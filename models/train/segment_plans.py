"""Choose a segmentation model's test-time plan without reporting on the figures it was
chosen on: every fold model (one recipe, each with a different sequence held out) is scored
on its own held-out frames under every candidate plan, then, for each fold, the plan with
the best mean on the *other* folds is picked and that fold's figure under it is reported
(leave-one-fold-out). The mean of those figures is the recipe's honest estimate; the plan
that wins on all folds is the one a model trained on every frame should carry.

    python models/train/segment_plans.py runs/camvid-seq-*-local/NAME.json \
        --plans 1 1+flip 1,1.5 1,1.5+flip --out runs/NAME-plans.json

A plan is its scales joined by commas, `+flip` to add each scale mirrored (the notation of
`spectrald offline segment --scales … --flip`). Each fold's held-out list is the CSV its
training run wrote next to the manifest (NAME-heldout.csv). Manifests are only read.

`--with` adds, fold by fold, the same recipe trained again (another seed, same held-out
sequence): every plan is then also scored as the ensemble of the two models (`PLAN x2`:
each model runs the plan, all probabilities averaged; twice the model runs), and the
second model alone (`PLAN seed2`), so one table shows the seed spread and what the
ensemble buys:

    python models/train/segment_plans.py runs/camvid-seq-*-local/NAME.json \
        --with runs/camvid-seq-*-local-s1/NAME.json --plans 1 1+flip
"""

import argparse
import json
from pathlib import Path

import numpy as np

from segment_test_time import one_model, score_plans
from test_time_plan import passes_of


def parse_plan(text):
    """'1,1.5+flip' -> ([1.0, 1.5], True), with a one-line error for anything else."""
    scales, _, suffix = text.partition("+")
    if suffix not in ("", "flip"):
        raise SystemExit(f"error: plan {text!r}: the only suffix is +flip (e.g. 1,1.5+flip)")
    try:
        values = [float(k) for k in scales.split(",")]
    except ValueError:
        raise SystemExit(f"error: plan {text!r}: give scales as numbers, e.g. 1,1.5+flip") from None
    if any(not 1 <= k <= 8 for k in values):
        raise SystemExit(f"error: plan {text!r}: each scale must be in 1..8 (1 = the whole image)")
    return values, suffix == "flip"


def score_fold(manifest_path, plans, data, threads, other=None):
    """Mean IU (and the rest of scores()) of one fold model under every plan; with `other`
    (the same fold trained again), also that model alone and the two as an ensemble."""
    manifest = json.loads(manifest_path.read_text())
    split = manifest_path.with_name(manifest_path.stem + "-heldout.csv")
    if not split.exists():
        raise SystemExit(f"error: {split} not found: the fold's held-out list is written by segment_cr.py "
                         f"--held-out-sequence next to its manifest")
    members = [(manifest_path, manifest)]
    passes = {name: passes_of(*parse_plan(name)) for name in plans}
    plan_passes = {name: one_model(passes[name]) for name in plans}
    if other is not None:
        other_split = other.with_name(other.stem + "-heldout.csv")
        if not other_split.exists() or other_split.read_text() != split.read_text():
            raise SystemExit(f"error: {other} was not trained with {manifest_path}'s held-out frames "
                             f"({other_split} differs or is missing); --with pairs models of the same fold")
        members.append((other, json.loads(other.read_text())))
        for name in plans:
            plan_passes[f"{name} seed2"] = one_model(passes[name], 1)
            plan_passes[f"{name} x2"] = one_model(passes[name]) + one_model(passes[name], 1)
    figures, frames = score_plans(members, split, plan_passes, data, threads)
    # "sequence 0006R0 held out whole" -> "0006R0" for the table's columns.
    split_words = manifest["training"]["split"].split()
    fold = split_words[1] if split_words[:1] == ["sequence"] else manifest["training"]["split"]
    return {"fold": fold, "model": str(manifest_path), "held_out_frames": frames, "plans": figures}


def leave_one_fold_out(folds, plans):
    """For each fold: the plan with the best mean IU on the other folds, and this fold's figure."""
    chosen = []
    for i, fold in enumerate(folds):
        others = [f for j, f in enumerate(folds) if j != i]
        best = max(plans, key=lambda p: np.mean([f["plans"][p]["mean_iu"] for f in others]))
        chosen.append({"fold": fold["fold"], "plan": best, "mean_iu": fold["plans"][best]["mean_iu"]})
    return chosen


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("manifests", type=Path, nargs="+", help="the fold models' manifests (one recipe)")
    ap.add_argument("--with", dest="others", type=Path, nargs="+", default=[],
                    help="the same folds trained again (another --seed), in the same order: adds each "
                         "plan's ensemble of the two (PLAN x2) and the second model alone (PLAN seed2)")
    ap.add_argument("--plans", nargs="+", default=["1", "1+flip", "1,1.5", "1,1.5+flip"])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/camvid-dev"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, help="write every figure and the choice as JSON")
    args = ap.parse_args()
    if len(args.manifests) < 2:
        raise SystemExit("error: give at least two fold manifests: a plan is chosen on the folds left over")
    if args.others and len(args.others) != len(args.manifests):
        raise SystemExit(f"error: --with gives {len(args.others)} manifests for {len(args.manifests)} folds; "
                         "give one per fold, in the same order")
    for path in args.manifests + args.others:
        if not path.exists():
            raise SystemExit(f"error: {path} not found")
    for name in args.plans:
        parse_plan(name)
    others = args.others or [None] * len(args.manifests)
    folds = [score_fold(path, args.plans, args.data, args.threads, other)
             for path, other in zip(args.manifests, others)]
    names = list(folds[0]["plans"])

    width = max(len(f["fold"]) for f in folds)
    plan_width = max(len(n) for n in names) + 2
    print(f"{'plan':<{plan_width}}" + "".join(f"{f['fold']:>{width + 2}}" for f in folds) + "    mean")
    for name in names:
        values = [f["plans"][name]["mean_iu"] * 100 for f in folds]
        print(f"{name:<{plan_width}}" + "".join(f"{v:>{width + 2}.2f}" for v in values) + f"  {np.mean(values):6.2f}")
    # The plan is chosen among one model's plans (what a model trained on every frame can
    # carry); the ensembles get their own leave-one-fold-out figure, the second model alone
    # none (it is the spread between seeds, not a choice).
    chosen = leave_one_fold_out(folds, args.plans)
    for c in chosen:
        print(f"{c['fold']}: plan chosen on the other folds {c['plan']}, this fold {c['mean_iu'] * 100:.2f}")
    estimate = float(np.mean([c["mean_iu"] for c in chosen]))
    overall = max(args.plans, key=lambda p: np.mean([f["plans"][p]["mean_iu"] for f in folds]))
    print(f"leave-one-fold-out estimate: mean IU {estimate * 100:.2f}; plan for a model trained on every frame: {overall}")
    report = {"folds": folds, "leave_one_fold_out": chosen, "estimate_mean_iu": estimate,
              "plan_for_all_frames": overall}
    if args.others:
        chosen_x2 = leave_one_fold_out(folds, [f"{p} x2" for p in args.plans])
        estimate_x2 = float(np.mean([c["mean_iu"] for c in chosen_x2]))
        print(f"two-seed ensembles, plan chosen on the other folds: "
              + ", ".join(f"{c['fold']} {c['plan']} {c['mean_iu'] * 100:.2f}" for c in chosen_x2)
              + f"; estimate {estimate_x2 * 100:.2f}")
        report |= {"ensemble_leave_one_fold_out": chosen_x2, "ensemble_estimate_mean_iu": estimate_x2}
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

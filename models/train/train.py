"""Train the DMSL boundary and landmark models the way the paper does (section VI-B).

Stage 1: the U-Net learns a mask with the BCE of eq. 4 (boundary mask for M_b, Algorithm 1
landmark glow for M_l). Stage 2: the U-Net is frozen and the FC head learns the outputs with
the MSE of eq. 1 / eq. 2. The landmark model sees its input blacked out outside the
(jittered) ground-truth boundary, as the daemon blacks out outside the predicted one.

Checkpoints are written after every epoch to OUT/<model>/; a rerun resumes where it stopped.
The same script runs on CPU or GPU (`--device`).

    python models/train/train.py --variant lite --data ../shared/data/faces-300w-dev \
        --out models/train/runs/lite
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import dmsl_preprocess as P
import faces as D
from dmsl_model import DMSL, OUTPUTS, VARIANTS


def stage_inputs(model_kind, faces, rng, augment=True):
    """One augmented pass over `faces`: (inputs, stage-1 masks, stage-2 targets)."""
    xs, masks, targets = [], [], []
    for face in faces:
        canvas, pts = D.make_sample(face, rng, augment)
        box = P.box_from_landmarks(pts)
        if model_kind == "boundary":
            xs.append(canvas)
            masks.append(P.boundary_mask(box))
            targets.append(box)
        else:
            seen_box = D.jitter_box(box, rng) if augment else box
            xs.append(P.blackout(canvas, seen_box))
            masks.append(P.landmark_mask(pts))
            targets.append(pts.reshape(-1))
    return (torch.from_numpy(np.stack(xs)[:, None]), torch.from_numpy(np.stack(masks)[:, None]),
            torch.from_numpy(np.stack(targets)))


def load_checkpoint(path, net, opt):
    if not path.exists():
        return 0
    state = torch.load(path, map_location="cpu")
    net.load_state_dict(state["net"])
    opt.load_state_dict(state["opt"])
    return state["epoch"]


def save_checkpoint(path, net, opt, epoch):
    tmp = path.with_suffix(".tmp")
    torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "epoch": epoch}, tmp)
    tmp.replace(path)


def train_model(kind, args, faces, log):
    out = args.out / kind
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    net = DMSL(VARIANTS[args.variant], OUTPUTS[kind]).to(args.device)

    # Stage 1: U-Net on masks, BCE (eq. 4).
    opt = torch.optim.Adam(net.unet.parameters(), lr=args.lr)
    ck1 = out / "stage1.pt"
    start = load_checkpoint(ck1, net, opt)
    for epoch in range(start, args.stage1_epochs):
        rng = np.random.default_rng(args.seed * 1000 + epoch)
        t0, total = time.time(), 0.0
        order = rng.permutation(len(faces))
        for i in range(0, len(order), args.batch):
            x, m, _ = stage_inputs(kind, [faces[j] for j in order[i:i + args.batch]], rng)
            loss = F.binary_cross_entropy_with_logits(net.mask_logits(x.to(args.device)),
                                                      m.to(args.device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(x)
        save_checkpoint(ck1, net, opt, epoch + 1)
        log(kind, "stage1", epoch + 1, total / len(faces), time.time() - t0)

    # Stage 2: frozen U-Net; its masks for a fixed set of augmented passes are computed
    # once, then the FC head trains on them with MSE (eq. 1 / eq. 2).
    for p in net.unet.parameters():
        p.requires_grad_(False)
    net.eval()
    opt2 = torch.optim.Adam(net.head.parameters(), lr=args.lr)
    ck2 = out / "stage2.pt"
    start = load_checkpoint(ck2, net, opt2)
    if start < args.stage2_epochs:
        feats, targets = [], []
        with torch.no_grad():
            for rep in range(args.stage2_passes):
                rng = np.random.default_rng(args.seed * 7919 + rep)
                for i in range(0, len(faces), args.batch):
                    x, _, t = stage_inputs(kind, faces[i:i + args.batch], rng, augment=rep > 0)
                    feats.append(torch.sigmoid(net.mask_logits(x.to(args.device))).half().cpu())
                    targets.append(t)
        feats, targets = torch.cat(feats), torch.cat(targets)
        log(kind, "stage2-cache", 0, float(len(feats)), 0.0)
    net.head.train()
    for epoch in range(start, args.stage2_epochs):
        gen = torch.Generator().manual_seed(args.seed + epoch)
        order = torch.randperm(len(feats), generator=gen)
        t0, total = time.time(), 0.0
        for i in range(0, len(order), args.batch * 4):
            idx = order[i:i + args.batch * 4]
            pred = net.head(feats[idx].float().to(args.device))
            loss = F.mse_loss(pred, targets[idx].to(args.device))
            opt2.zero_grad()
            loss.backward()
            opt2.step()
            total += loss.item() * len(idx)
        save_checkpoint(ck2, net, opt2, epoch + 1)
        log(kind, "stage2", epoch + 1, total / len(feats), time.time() - t0)
    torch.save(net.state_dict(), out / "final.pt")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", choices=sorted(VARIANTS), default="lite")
    ap.add_argument("--data", type=Path, default=D.DEFAULT_DATA)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--models", default="boundary,landmark")
    ap.add_argument("--stage1-epochs", type=int, default=12)
    ap.add_argument("--stage2-epochs", type=int, default=60)
    ap.add_argument("--stage2-passes", type=int, default=4, help="augmented passes cached for stage 2")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="use only the first N faces (smoke runs)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    try:
        faces = D.load_faces(args.data, "train", args.limit)
    except D.DataError as e:
        D.fail(str(e))
    args.out.mkdir(parents=True, exist_ok=True)
    log_path = args.out / "train_log.jsonl"
    (args.out / "train_args.json").write_text(json.dumps(
        {k: str(v) for k, v in vars(args).items()} | {"train_faces": len(faces)}, indent=1))

    def log(kind, stage, epoch, loss, secs):
        line = {"model": kind, "stage": stage, "epoch": epoch, "loss": loss, "seconds": round(secs, 1)}
        print(json.dumps(line), flush=True)
        with log_path.open("a") as f:
            f.write(json.dumps(line) + "\n")

    for kind in args.models.split(","):
        if kind not in OUTPUTS:
            D.fail(f"--models: unknown model {kind!r}; use boundary and/or landmark")
        train_model(kind, args, faces, log)


if __name__ == "__main__":
    main()

"""Train the DMSL boundary and landmark models on the face crops the daemon makes.

Paper structure (section VI-B), the reference (`--head fc`): stage 1, the U-Net learns a mask
with the BCE of eq. 4 (boundary mask for M_b, Algorithm 1 landmark glow for M_l); stage 2,
the U-Net is frozen and the FC head learns the outputs (eq. 1 / eq. 2: MSE, or `--loss wing`).
`--head heatmap` (landmark model only) reads the points from per-point heatmaps on the U-Net
(soft-argmax, `dmsl_model.DMSLHeatmap`), trained end to end with the mask BCE beside.

Samples are crops framed as the detector frames faces (`crops.py`: detector statistics from
`measure_detector.py`), augmented, made once into a pool of `--pool-passes` passes over the
faces (`runs/pool-*.npy`, reused by every variant of the same split and seed), so variants
compare on the same data. The landmark model sees its input blacked out outside the
landmarks' box jittered by `--jitter` (the boundary model's error, measured on val).

Checkpoints are written after every epoch to OUT/<model>/; a rerun resumes where it stopped.
The same script runs on CPU or GPU (`--device`).

    python models/train/measure_detector.py
    python models/train/train.py --out models/train/runs/fc-mse
    python models/train/train.py --out models/train/runs/heatmap --models landmark --head heatmap \\
        --loss wing --boundary-from models/train/runs/fc-mse
"""

import argparse
import hashlib
import json
import math
import multiprocessing
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import crops as C
import dmsl_preprocess as P
import faces as D
from dmsl_model import DMSL, DMSLHeatmap, OUTPUTS, VARIANTS, has_batch_norm
from onnx_weights import load_exported

RUNS = Path(__file__).resolve().parent / "runs"


# ---- the sample pool -------------------------------------------------------------------

def _pool_pass(job):
    data, split, seed, rep, limit, thermal_share = job
    faces = D.load_faces(data, split, limit)
    framing = C.DetectorFraming()
    canvases = np.empty((len(faces), P.CANVAS, P.CANVAS), np.float16)
    points = np.empty((len(faces), 68, 2), np.float32)
    for i, face in enumerate(faces):
        rng = np.random.default_rng([seed, rep, i])
        canvas, pts = C.training_sample(face, rng, framing, augment=True, thermal_share=thermal_share)
        canvases[i], points[i] = canvas, pts
    return rep, canvases, points


def sample_pool(args, faces):
    """(canvases [passes, N, 128, 128] float16, points [passes, N, 68, 2]), cached on disk."""
    stem = RUNS / (f"pool-{args.split}-s{args.seed}-p{args.pool_passes}" + (f"-n{args.limit}" if args.limit else "")
                   + (f"-t{round(args.thermal_share * 100)}" if args.thermal_share != C.THERMAL_SHARE else ""))
    files = Path(f"{stem}.canvases.npy"), Path(f"{stem}.points.npy")
    if all(f.exists() for f in files):
        return np.load(files[0], mmap_mode="r"), np.load(files[1])
    files[0].parent.mkdir(parents=True, exist_ok=True)
    canvases = np.lib.format.open_memmap(f"{stem}.tmp.npy", "w+", np.float16,
                                         (args.pool_passes, len(faces), P.CANVAS, P.CANVAS))
    points = np.empty((args.pool_passes, len(faces), 68, 2), np.float32)
    jobs = [(args.data, args.split, args.seed, rep, args.limit, args.thermal_share) for rep in range(args.pool_passes)]
    t0 = time.time()
    with multiprocessing.Pool(args.threads) as workers:
        for rep, c, p in workers.imap_unordered(_pool_pass, jobs):
            canvases[rep], points[rep] = c, p
            print(f"pool pass {rep + 1}/{args.pool_passes} ({time.time() - t0:.0f} s)", flush=True)
    canvases.flush()
    del canvases
    Path(f"{stem}.tmp.npy").replace(files[0])
    np.save(files[1], points)
    return np.load(files[0], mmap_mode="r"), points


# ---- inputs and targets of one batch ---------------------------------------------------

def boxes_of(points):
    """[N, 68, 2] normalised -> [N, 4] (x, y, w, h): the landmarks' extent."""
    lo, hi = points.min(axis=1), points.max(axis=1)
    return np.concatenate([lo, hi - lo], axis=1).astype(np.float32)


def jittered(boxes, rng, amount):
    s = np.maximum(boxes[:, 2], boxes[:, 3])[:, None]
    noise = rng.normal(0, amount, boxes.shape).astype(np.float32)
    out = boxes.copy()
    out[:, :2] += noise[:, :2] * s
    out[:, 2:] *= np.exp(noise[:, 2:])
    return out


def box_keep(boxes, margin):
    """[N, 4] boxes -> [N, 1, 128, 128] 1 inside the box grown by `margin` (P.blackout)."""
    b = torch.as_tensor(boxes)
    c = (torch.arange(P.CANVAS, dtype=torch.float32) + 0.5) / P.CANVAS
    x0, x1 = b[:, 0] - margin * b[:, 2], b[:, 0] + b[:, 2] + margin * b[:, 2]
    y0, y1 = b[:, 1] - margin * b[:, 3], b[:, 1] + b[:, 3] + margin * b[:, 3]
    kx = (c[None] >= x0[:, None]) & (c[None] <= x1[:, None])
    ky = (c[None] >= y0[:, None]) & (c[None] <= y1[:, None])
    return (ky[:, :, None] & kx[:, None, :]).float()[:, None]


def landmark_masks(points, device):
    """P.landmark_mask (Algorithm 1) for a batch, computed on `device`: [N, 68, 2] -> [N, 1, 128, 128].

    The numpy reference costs ~3 ms a face on one core, which starves a GPU; this is the same
    loop over the 68 points on the whole batch at once (`check_landmark_masks` holds it to
    the reference).
    """
    pts = torch.as_tensor(np.asarray(points), dtype=torch.float32, device=device) * P.CANVAS
    centres = torch.arange(P.CANVAS, dtype=torch.float32, device=device) + 0.5
    mask = torch.zeros(len(pts), P.CANVAS, P.CANVAS, device=device)
    for k in range(pts.shape[1]):
        dx = (centres[None, None, :] - pts[:, k, 0, None, None]).abs()
        dy = (centres[None, :, None] - pts[:, k, 1, None, None]).abs()
        glow = torch.pow(0.5, torch.maximum(dx, dy)) * 255.0
        mask = torch.where(mask < 255.0, mask + glow, mask)
    return (torch.clamp(mask, max=255.0) / 255.0)[:, None]


def check_landmark_masks(points):
    """Refuse to train when the batched mask drifts from dmsl_preprocess's reference."""
    ours = landmark_masks(points, "cpu")[:, 0].numpy()
    ref = np.stack([P.landmark_mask(p) for p in points])
    err = float(np.abs(ours - ref).max())
    if err > 1e-4:
        D.fail(f"train.py: batched landmark mask differs from dmsl_preprocess.landmark_mask by {err:.2e}; "
               "fix landmark_masks() before training")


def batch(kind, canvases, points, rng, jitter, device="cpu"):
    """(inputs, stage-1 masks, targets) of one batch of pool samples, on `device`."""
    x = torch.from_numpy(np.asarray(canvases, np.float32))[:, None]
    boxes = boxes_of(points)
    if kind == "boundary":
        return x.to(device), box_keep(boxes, 0.0).to(device), torch.from_numpy(boxes).to(device)
    x = x * box_keep(jittered(boxes, rng, jitter) if jitter > 0 else boxes, P.BLACKOUT_MARGIN)
    targets = torch.from_numpy(points.reshape(len(points), -1))
    return x.to(device), landmark_masks(points, device), targets.to(device)


def wing(pred, target, w=10.0, eps=2.0, per_sample=False):
    """Wing loss (Feng et al., CVPR 2018) in canvas pixels: log-shaped below w, so small
    errors keep a useful gradient where MSE's vanishes. `per_sample`: one value per row."""
    d = (pred - target).abs() * P.CANVAS
    c = w - w * math.log(1 + w / eps)
    loss = torch.where(d < w, w * torch.log(1 + d / eps), d - c)
    return loss.mean(dim=1) if per_sample else loss.mean()


def mse(pred, target, per_sample=False):
    return F.mse_loss(pred, target, reduction="none").mean(dim=1) if per_sample else F.mse_loss(pred, target)


def point_loss(name):
    return {"mse": mse, "wing": wing}[name]


# ---- checkpoints -------------------------------------------------------------------------

def load_checkpoint(path, net, opt, sched=None):
    """Restores `net`, `opt` and `sched` from `path` if it exists; (epochs done, the whole
    saved state: save_checkpoint's extras included), or (0, {}) for a fresh start."""
    if not path.exists():
        return 0, {}
    state = torch.load(path, map_location="cpu")
    net.load_state_dict(state["net"])
    opt.load_state_dict(state["opt"])
    if sched is not None and "sched" in state:
        sched.load_state_dict(state["sched"])
    return state["epoch"], state


def save_checkpoint(path, net, opt, epoch, sched=None, **extra):
    tmp = path.with_suffix(".tmp")
    state = {"net": net.state_dict(), "opt": opt.state_dict(), "epoch": epoch, **extra}
    if sched is not None:
        state["sched"] = sched.state_dict()
    torch.save(state, tmp)
    tmp.replace(path)


def batches(n, size, rng, extra=()):
    """One epoch's batches of face indices: every face once, plus the faces in `extra`."""
    order = rng.permutation(np.concatenate([np.arange(n), np.asarray(extra, np.int64)]).astype(np.int64))
    return [np.sort(order[i:i + size]) for i in range(0, len(order), size)]


def top_faces(score, share, repeat):
    """The `share` of faces with the highest `score` (at least one), each `repeat` times:
    the extra samples of an epoch (see `batches`)."""
    top = np.argsort(-score)[:max(1, round(share * len(score)))]
    return np.repeat(top, repeat)


def hard_faces(face_loss, share, repeat):
    """Online hard-example mining: the `share` of faces with the highest point loss when last
    seen, each `repeat` more times this epoch. Rare poses (profiles, open mouths) are where
    the failures (NME > 0.08) are; a uniform epoch sees each of them once."""
    if repeat <= 0 or not face_loss.any():
        return np.empty(0, np.int64)
    return top_faces(face_loss, share, repeat)


def shape_rarity(points):
    """Each face's distance from the mean shape after a similarity alignment (Procrustes):
    profiles, wide-open mouths and tilted heads are far from it. `points` [N, 68, 2]; the 68
    points as complex numbers, so the best rotation + scale onto the mean is one ratio."""
    z = points[..., 0] + 1j * points[..., 1]
    z = z - z.mean(1, keepdims=True)
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    mean = z[0]
    for _ in range(5):
        aligned = z * (np.sum(z.conj() * mean, 1) / np.sum(z.conj() * z, 1))[:, None]
        mean = aligned.mean(0)
        mean = mean / np.linalg.norm(mean)
    aligned = z * (np.sum(z.conj() * mean, 1) / np.sum(z.conj() * z, 1))[:, None]
    return np.linalg.norm(aligned - mean, axis=1)


def rare_faces(points, share, repeat):
    """Pose/expression balancing: the `share` of faces whose shape is farthest from the mean
    (shape_rarity), each `repeat` more times per epoch. Unlike hard_faces it does not depend
    on the model, so faces it already fits well still come often enough to stay fitted."""
    if repeat <= 0:
        return np.empty(0, np.int64)
    return top_faces(shape_rarity(points), share, repeat)


# ---- training ------------------------------------------------------------------------------

def train_fc(kind, args, pool, log):
    """Paper two-stage training: U-Net on masks (BCE), then the FC head on frozen masks."""
    canvases, points = pool
    out = args.out / kind
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    net = DMSL(VARIANTS[args.variant], OUTPUTS[kind]).to(args.device)
    passes, n = points.shape[:2]

    opt = torch.optim.Adam(net.unet.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.stage1_epochs)
    ck1 = out / "stage1.pt"
    start, _ = load_checkpoint(ck1, net, opt, sched)
    for epoch in range(start, args.stage1_epochs):
        rng = np.random.default_rng([args.seed, 1, epoch])
        rep, t0, total = epoch % passes, time.time(), 0.0
        net.train()
        for idx in batches(n, args.batch, rng):
            x, m, _ = batch(kind, canvases[rep, idx], points[rep, idx], rng, args.jitter, args.device)
            loss = F.binary_cross_entropy_with_logits(net.mask_logits(x), m)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        save_checkpoint(ck1, net, opt, epoch + 1, sched)
        log(kind, "stage1", epoch + 1, total / n, time.time() - t0)

    for p in net.unet.parameters():
        p.requires_grad_(False)
    net.eval()
    opt2 = torch.optim.Adam(net.head.parameters(), lr=args.lr)
    sched2 = torch.optim.lr_scheduler.CosineAnnealingLR(opt2, args.stage2_epochs)
    ck2 = out / "stage2.pt"
    start, _ = load_checkpoint(ck2, net, opt2, sched2)
    if start < args.stage2_epochs:
        feats, targets = [], []
        with torch.no_grad():
            for rep in range(min(passes, args.stage2_passes)):
                rng = np.random.default_rng([args.seed, 2, rep])
                for idx in batches(n, args.batch * 4, rng):
                    x, _, t = batch(kind, canvases[rep, idx], points[rep, idx], rng, args.jitter, args.device)
                    feats.append(torch.sigmoid(net.mask_logits(x)).half().cpu())
                    targets.append(t.cpu())
        feats, targets = torch.cat(feats), torch.cat(targets)
        log(kind, "stage2-cache", 0, float(len(feats)), 0.0)
    loss_fn = point_loss(args.loss if kind == "landmark" else "mse")
    net.head.train()
    for epoch in range(start, args.stage2_epochs):
        gen = torch.Generator().manual_seed(args.seed + epoch)
        order = torch.randperm(len(feats), generator=gen)
        t0, total = time.time(), 0.0
        for i in range(0, len(order), args.batch * 4):
            idx = order[i:i + args.batch * 4]
            loss = loss_fn(net.head(feats[idx].float().to(args.device)), targets[idx].to(args.device))
            opt2.zero_grad()
            loss.backward()
            opt2.step()
            total += loss.item() * len(idx)
        sched2.step()
        save_checkpoint(ck2, net, opt2, epoch + 1, sched2)
        log(kind, "stage2", epoch + 1, total / len(feats), time.time() - t0)
    torch.save(net.state_dict(), out / "final.pt")


def train_heatmap(args, pool, log):
    """Landmark model with soft-argmax heatmaps, end to end: point loss + mask BCE."""
    canvases, points = pool
    out = args.out / "landmark"
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    init_state = torch.load(args.init_from / "landmark" / "final.pt", map_location="cpu") if args.init_from else None
    # A restart from an exported model (or from a run that was one) has its norms folded in.
    norm = not args.init_from_onnx and (init_state is None or has_batch_norm(init_state))
    net = DMSLHeatmap(VARIANTS[args.variant], level=args.heatmap_level, norm=norm).to(args.device)
    passes, n = points.shape[:2]
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.epochs)
    ck = out / "heatmap.pt"
    start, state = load_checkpoint(ck, net, opt, sched)
    # Each face's point loss when last seen (hard-example mining), kept across resumes.
    saved = state.get("face_loss")
    face_loss = saved.numpy() if saved is not None else np.zeros(points.shape[1], np.float32)
    if start == 0 and init_state is not None:
        # A warm restart: the weights of a finished run, a fresh optimiser and schedule.
        try:
            net.load_state_dict(init_state)
        except RuntimeError as e:
            D.fail(f"--init-from {args.init_from}: its landmark model is not a {args.variant} heatmap model "
                   f"(trained with another --head or --variant): {str(e).splitlines()[0]}")
        log("landmark", "init-from", 0, 0.0, 0.0)
    if start == 0 and args.init_from_onnx:
        # The same from a shipped model: its graph's (norm-folded) convolution weights.
        try:
            load_exported(net.cpu(), args.init_from_onnx)
        except ValueError as e:
            D.fail(f"--init-from-onnx: {e}")
        net.to(args.device)
        log("landmark", "init-from-onnx", 0, 0.0, 0.0)
    loss_fn = point_loss(args.loss)
    # Rarity from the first pool pass (its random rotation and flip do not change a shape's
    # distance after alignment).
    rare = rare_faces(points[0], args.rare_share, args.rare_repeat)
    for epoch in range(start, args.epochs):
        rng = np.random.default_rng([args.seed, 3, epoch])
        rep, t0, total = epoch % passes, time.time(), 0.0
        net.train()
        extra = np.concatenate([hard_faces(face_loss, args.hard_share, args.hard_repeat), rare])
        for idx in batches(n, args.batch, rng, extra):
            x, m, t = batch("landmark", canvases[rep, idx], points[rep, idx], rng, args.jitter, args.device)
            mask, pts = net.both(x)
            per_face = loss_fn(pts, t, per_sample=True)
            face_loss[idx] = per_face.detach().cpu().numpy()
            loss = per_face.mean() + args.mask_weight * F.binary_cross_entropy_with_logits(mask, m)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        save_checkpoint(ck, net, opt, epoch + 1, sched, face_loss=torch.from_numpy(face_loss))
        log("landmark", "heatmap", epoch + 1, total / (n + len(extra)), time.time() - t0)
    torch.save(net.state_dict(), out / "final.pt")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", choices=sorted(VARIANTS), default="lite")
    ap.add_argument("--data", type=Path, default=D.DEFAULT_DATA)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--split", default="train", choices=D.SPLITS)
    ap.add_argument("--models", default="boundary,landmark")
    ap.add_argument("--head", choices=("fc", "heatmap"), default="fc", help="landmark model head")
    ap.add_argument("--loss", choices=("mse", "wing"), default="mse", help="landmark point loss")
    ap.add_argument("--stage1-epochs", type=int, default=20)
    ap.add_argument("--stage2-epochs", type=int, default=60)
    ap.add_argument("--stage2-passes", type=int, default=6, help="pool passes cached for stage 2")
    ap.add_argument("--epochs", type=int, default=40, help="heatmap head: end-to-end epochs")
    ap.add_argument("--heatmap-level", type=int, default=2, help="U-Net expanding level: 0 = 1/8 … 3 = full")
    ap.add_argument("--mask-weight", type=float, default=1.0, help="heatmap head: weight of the mask BCE")
    ap.add_argument("--pool-passes", type=int, default=20, help="augmented passes in the sample pool")
    ap.add_argument("--jitter", type=float, default=0.06, help="landmark model: box jitter before black-out")
    ap.add_argument("--boundary-from", type=Path, help="reuse this run's trained boundary model")
    ap.add_argument("--init-from", type=Path, help="heatmap head: start from this run's landmark weights")
    ap.add_argument("--init-from-onnx", type=Path,
                    help="heatmap head: start from this exported landmark model (e.g. the shipped one; "
                         "needs --mask-weight 0: its mask branch is not in the graph)")
    ap.add_argument("--thermal-share", type=float, default=C.THERMAL_SHARE,
                    help="share of augmented samples made thermal-like")
    ap.add_argument("--hard-share", type=float, default=0.1,
                    help="heatmap head: share of faces counted hard (highest loss when last seen)")
    ap.add_argument("--hard-repeat", type=int, default=0,
                    help="heatmap head: extra times each hard face is seen per epoch (0 = off)")
    ap.add_argument("--rare-share", type=float, default=0.1,
                    help="heatmap head: share of faces counted rare (shape farthest from the mean shape)")
    ap.add_argument("--rare-repeat", type=int, default=0,
                    help="heatmap head: extra times each rare-shape face is seen per epoch (0 = off)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="use only the first N faces (smoke runs)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--pool-only", action="store_true", help="build the sample pool and stop")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda"):
        # TF32 convolutions and matmuls: ~1e-3 relative rounding, far below the label noise.
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    try:
        C.check_crop_definition()
        C.DetectorFraming()
        faces = D.load_faces(args.data, args.split, args.limit)
    except D.DataError as e:
        D.fail(str(e))
    kinds = args.models.split(",")
    for kind in kinds:
        if kind not in OUTPUTS:
            D.fail(f"--models: unknown model {kind!r}; use boundary and/or landmark")
    if args.init_from and not (args.head == "heatmap" and (args.init_from / "landmark" / "final.pt").exists()):
        D.fail(f"--init-from: needs --head heatmap and {args.init_from}/landmark/final.pt (a finished heatmap run)")
    if args.init_from_onnx:
        if args.init_from or args.head != "heatmap" or not args.init_from_onnx.is_file():
            D.fail(f"--init-from-onnx {args.init_from_onnx}: needs --head heatmap, an existing .onnx file, "
                   "and no --init-from")
        if args.mask_weight != 0:
            D.fail("--init-from-onnx: the exported model has no mask branch (Algorithm 1's mask is only a "
                   "training target); pass --mask-weight 0")
    if not 0.0 <= args.thermal_share <= 1.0:
        D.fail(f"--thermal-share: {args.thermal_share} is not a share; use a value in [0, 1]")
    for kind, share, repeat in (("hard", args.hard_share, args.hard_repeat),
                                ("rare", args.rare_share, args.rare_repeat)):
        if not 0.0 < share <= 1.0 or repeat < 0:
            D.fail(f"--{kind}-share {share} / --{kind}-repeat {repeat}: use a share in (0, 1] "
                   "and a repeat count ≥ 0")
    if (args.hard_repeat or args.rare_repeat) and args.head != "heatmap":
        D.fail("--hard-repeat and --rare-repeat are for the heatmap head (--head heatmap)")
    if args.head == "heatmap" and "boundary" in kinds:
        D.fail("--head heatmap is for the landmark model; train the boundary model with --head fc "
               "(or pass --models landmark --boundary-from RUN)")
    args.out.mkdir(parents=True, exist_ok=True)
    log_path = args.out / "train_log.jsonl"
    (args.out / "train_args.json").write_text(json.dumps(
        {k: str(v) for k, v in vars(args).items()} | {"train_faces": len(faces)}
        # Which exported model a restart began from (the file under that name changes when one ships).
        | ({"init_from_onnx_sha256": hashlib.sha256(args.init_from_onnx.read_bytes()).hexdigest()}
           if args.init_from_onnx else {}), indent=1))

    def log(kind, stage, epoch, loss, secs):
        line = {"model": kind, "stage": stage, "epoch": epoch, "loss": loss, "seconds": round(secs, 1)}
        print(json.dumps(line), flush=True)
        with log_path.open("a") as f:
            f.write(json.dumps(line) + "\n")

    if args.boundary_from:
        src = args.boundary_from / "boundary" / "final.pt"
        if not src.exists():
            D.fail(f"--boundary-from: {src} not found; train that run's boundary model first")
        (args.out / "boundary").mkdir(exist_ok=True)
        shutil.copy(src, args.out / "boundary" / "final.pt")
    pool = sample_pool(args, faces)
    check_landmark_masks(pool[1][0, :4])
    if args.pool_only:
        return
    for kind in kinds:
        if kind == "landmark" and args.head == "heatmap":
            train_heatmap(args, pool, log)
        else:
            train_fc(kind, args, pool, log)
    (args.out / "head.json").write_text(json.dumps({"landmark": args.head, "heatmap_level": args.heatmap_level}) + "\n")


if __name__ == "__main__":
    main()

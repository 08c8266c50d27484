"""FCN-style semantic segmentation trained with and without the contextual-regularization
(CR) loss of indoor-segmentation-contextual-regularization.txt, on CamVid (11 classes).

    python models/train/segment_cr.py --data ../shared/data/camvid-dev --out models --cr-lambda 0
    python models/train/segment_cr.py --data ../shared/data/camvid-dev --out models --cr-lambda 100

- Network: FCN-8s head (1x1 score convs at strides 8/16/32, summed after bilinear
  upsampling; or with --head aspp a DeepLabv3+-style decoder at stride 4) on an ImageNet
  EfficientNet-Lite0 encoder (PyPI wheel, Apache-2.0);
  softmax at the input resolution (192x256 by default, CamVid's 4:3; --size).
- Loss: softmax cross-entropy over labelled pixels (void, id 11, ignored as in SegNet)
  plus, with --cr-lambda > 0, the paper's constraint loss
      l_c = lambda * sum_n sum_j || W_j o (D_j (x) f_n) ||_1,
      W_j(i) = exp(-||I(i) - I(i + d_j)||^2 / (2 sigma^2)),
  over the 8 neighbour offsets d_j with fixed difference kernels D_j (the paper's
  starting kernels; its learnable-kernel variant and kernel loss l_k are not used),
  I the RGB image in [0,1], sigma = 0.25, lambda = 100 as the paper. The paper sums over
  pixels with no stated normalisation; here the sum is a mean over pixels, neighbours and
  classes so lambda does not scale with the image size (written in the manifest).
- Split: per video sequence, the last 25 % of its frames in time order are held out (the
  frames are 1 fps and strongly correlated, so a random split would leak). The held-out
  list is written next to the model so `spectrald offline evaluate` scores the same frames.
  --held-out-sequence S holds out one whole sequence instead (the honest split: folds);
  --all-sequences trains the model to deploy on every frame once the folds have measured
  the recipe (no held-out figures of its own).
- Metrics (held out, at the labels' 480x360, void ignored): pixel acc, mean acc, mean IU,
  frequency-weighted IU exactly as FCN defines them, and per-class IU.
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
from test_time_plan import labels_with_plan

H, W = 192, 256  # default input size (--size), CamVid's 4:3
VOID = 11
OFFSETS = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]


class Fcn8(nn.Module):
    def __init__(self, n_classes):
        super().__init__()
        self.encoder = Lite0Stages()
        self.score8 = nn.Conv2d(40, n_classes, 1)
        self.score16 = nn.Conv2d(112, n_classes, 1)
        self.score32 = nn.Conv2d(1280, n_classes, 1)

    def logits(self, image):
        taps = self.encoder(image)
        up = lambda x, ref: F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)
        s16 = self.score16(taps[16]) + up(self.score32(taps[32]), taps[16])
        s8 = self.score8(taps[8]) + up(s16, taps[8])
        return F.interpolate(s8, size=image.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, image):
        return torch.softmax(self.logits(image), 1)


def conv_bn(cin, cout, kernel=1, dilation=1, separable=False):
    """Conv (depthwise-separable when asked, to keep the stride-4 decoder cheap on a CPU),
    BatchNorm, ReLU."""
    pad = dilation * (kernel // 2)
    if separable:
        layers = [nn.Conv2d(cin, cin, kernel, padding=pad, dilation=dilation, groups=cin, bias=False),
                  nn.Conv2d(cin, cout, 1, bias=False)]
    else:
        layers = [nn.Conv2d(cin, cout, kernel, padding=pad, dilation=dilation, bias=False)]
    return nn.Sequential(*layers, nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class AsppDecoder(nn.Module):
    """A DeepLabv3+-style head (Chen et al., ECCV 2018) sized for Lite0 on a CPU: atrous
    spatial pyramid pooling on the stride-32 features (1x1, separable 3x3 at dilations 2 and
    4 — the stride-32 map of a 352x480 frame is 11x15, so DeepLab's 6/12/18 would see only
    padding — and image pooling), fused with the stride-16 features, then a decoder at
    stride 4 that concatenates the encoder's stride-4 features, so thin classes (Pole,
    SignSymbol, Pedestrian) keep their edges; FCN-8s upsamples x8 from stride 8."""

    def __init__(self, n_classes, width=128, low=32, dec=96, image_pool=True):
        super().__init__()
        self.encoder = Lite0Stages()
        self.aspp = nn.ModuleList([conv_bn(1280, width), conv_bn(1280, width, 3, 2, separable=True),
                                   conv_bn(1280, width, 3, 4, separable=True)])
        # Image pooling: one vector of the whole frame's features added at every pixel
        # (`aspp-local` leaves it out: a frame's overall light then does not move every pixel).
        self.pool = (nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(1280, width, 1), nn.ReLU(inplace=True))
                     if image_pool else None)
        self.project = conv_bn((4 if image_pool else 3) * width, width)
        self.skip16 = conv_bn(112, width)
        self.skip4 = conv_bn(24, low)
        self.decode = nn.Sequential(conv_bn(width + low, dec, 3, separable=True),
                                    conv_bn(dec, dec, 3, separable=True), nn.Dropout2d(0.1))
        self.classify = nn.Conv2d(dec, n_classes, 1)

    def logits(self, image):
        taps = self.encoder(image)
        up = lambda x, ref: F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)
        deep = taps[32]
        branches = [b(deep) for b in self.aspp]
        if self.pool is not None:
            branches.append(self.pool(deep).expand(-1, -1, *deep.shape[-2:]))
        s16 = self.skip16(taps[16]) + up(self.project(torch.cat(branches, 1)), taps[16])
        s4 = self.decode(torch.cat([up(s16, taps[4]), self.skip4(taps[4])], 1))
        return F.interpolate(self.classify(s4), size=image.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, image):
        return torch.softmax(self.logits(image), 1)


# --head: the network on the encoder, and how the manifest describes it.
HEADS = {
    "fcn8": (Fcn8, "FCN-8s head"),
    "aspp": (AsppDecoder, "DeepLabv3+-style head (ASPP at stride 32, decoder at stride 4)"),
    "aspp-local": (lambda n: AsppDecoder(n, image_pool=False),
                   "DeepLabv3+-style head without image pooling (ASPP at stride 32, decoder at stride 4)"),
}


def shift(x, dy, dx):
    """x moved so that out[i] = x[i + d]; the border rows/columns are cut from both."""
    h, w = x.shape[-2:]
    return x[..., max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)]


def cr_loss(probs, image, sigma):
    """Mean over pixels, 8 neighbours and classes of W_j(i) |f_n(i) - f_n(i + d_j)|."""
    total = 0.0
    for dy, dx in OFFSETS:
        a_img, b_img = shift(image, -dy, -dx), shift(image, dy, dx)
        weight = torch.exp(-((a_img - b_img) ** 2).sum(1, keepdim=True) / (2 * sigma**2))
        a, b = shift(probs, -dy, -dx), shift(probs, dy, dx)
        total = total + (weight * (a - b).abs()).mean()
    return total / len(OFFSETS)


class LearnableCr(nn.Module):
    """The paper's learnable contextual regularization: 8 kernels D_j (3x3), initialised to
    the fixed differences f(i) - f(i + d_j), shared between the image's weight maps (eq. 6)
    and the softmax maps (eq. 7), held near unit norm by the kernel loss l_k (eq. 9)."""

    def __init__(self, alpha=1000.0, beta=1000.0):
        super().__init__()
        k = torch.zeros(len(OFFSETS), 1, 3, 3)
        for j, (dy, dx) in enumerate(OFFSETS):
            k[j, 0, 1, 1], k[j, 0, 1 + dy, 1 + dx] = 1.0, -1.0
        self.kernels = nn.Parameter(k)
        self.alpha, self.beta = alpha, beta

    def differences(self, x):
        """D_j (x) x for every channel: [B, C, H, W] -> [B, C, 8, H-2, W-2]."""
        b, c, h, w = x.shape
        return F.conv2d(x.reshape(b * c, 1, h, w), self.kernels).reshape(b, c, len(OFFSETS), h - 2, w - 2)

    def loss(self, probs, image, sigma):
        """l_c as cr_loss (a mean, not a sum), with these kernels."""
        weight = torch.exp(-(self.differences(image) ** 2).sum(1, keepdim=True) / (2 * sigma**2))
        return (weight * self.differences(probs).abs()).mean()

    def kernel_loss(self):
        """l_k = sum_j alpha (|d_j|^2 - 1)^2 + beta |d_j|^2."""
        norms = (self.kernels**2).sum((1, 2, 3))
        return (self.alpha * (norms - 1) ** 2 + self.beta * norms).sum()


def median_frequency_weights(labels, n):
    """SegNet's class balancing: weight_c = median(freq) / freq_c, where freq_c is class c's
    pixels over the pixels of the training frames that contain c (void not counted)."""
    counts = np.stack([np.bincount(lab.ravel(), minlength=n + 1)[:n] for lab in labels])
    present = counts > 0
    frame_pixels = counts.sum(1, keepdims=True)
    freq = counts.sum(0) / np.maximum((frame_pixels * present).sum(0), 1)
    median = np.median(freq[freq > 0])
    return np.where(freq > 0, median / np.maximum(freq, 1e-12), 0.0).astype(np.float32)


def split(data: Path, held_share: float, held_sequence: str = ""):
    """(train rows, held-out rows): the last `held_share` of each sequence's frames, or with
    `held_sequence` every frame of that sequence (nothing of it in training)."""
    rows = list(csv.DictReader(open(data / "files.csv")))
    by_seq = {}
    for r in rows:
        by_seq.setdefault(r["sequence"], []).append(r)
    if held_sequence:
        if held_sequence not in by_seq:
            raise SystemExit(f"error: --held-out-sequence {held_sequence!r} is not in {data / 'files.csv'} "
                             f"(sequences: {', '.join(sorted(by_seq))})")
        return ([r for r in rows if r["sequence"] != held_sequence],
                sorted(by_seq[held_sequence], key=lambda r: r["image"]))
    train, held = [], []
    for seq in sorted(by_seq):
        frames = sorted(by_seq[seq], key=lambda r: r["image"])
        cut = len(frames) - round(len(frames) * held_share)
        train += frames[:cut]
        held += frames[cut:]
    return train, held


def held_out_metrics(session, data: Path, rows, size, classes):
    """FCN's scores on `rows` at the labels' resolution, one whole-image pass: the pass of
    `segment_test_time.py` and of the Rust evaluator (test_time_plan.labels_with_plan), so the
    figure written at training is the one those reproduce. `size` is the model's input (H, W)."""
    cm = np.zeros((VOID, VOID), dtype=np.int64)
    for r in rows:
        img = np.asarray(Image.open(data / r["image"]).convert("RGB"))
        lab = np.asarray(Image.open(data / r["label"]))
        cm += confusion(lab, labels_with_plan(session, "image", img, size, [1.0], False), VOID)
    metrics = scores(cm)
    metrics["per_class_iu"] = dict(zip(classes, metrics["per_class_iu"]))
    metrics["held_out_frames"] = len(rows)
    return metrics


def load(data: Path, rows, size):
    """The training frames and labels of `rows`, resized to `size` (H, W)."""
    images, labels = [], []
    for r in rows:
        img = Image.open(data / r["image"]).convert("RGB").resize((size[1], size[0]), Image.BILINEAR)
        lab = Image.open(data / r["label"]).resize((size[1], size[0]), Image.NEAREST)
        images.append(np.asarray(img))
        labels.append(np.asarray(lab))
    return np.stack(images), np.stack(labels)


def confusion(truth, pred, n):
    keep = truth < n
    return np.bincount(n * truth[keep].astype(np.int64) + pred[keep], minlength=n * n).reshape(n, n)


def scores(cm):
    """FCN's definitions (n_ij: class i labelled, predicted j; t_i = sum_j n_ij)."""
    n_ii = np.diag(cm).astype(np.float64)
    t = cm.sum(1).astype(np.float64)
    pred = cm.sum(0).astype(np.float64)
    present = t > 0
    iu = n_ii / np.maximum(t + pred - n_ii, 1)
    return {
        "pixel_accuracy": float(n_ii.sum() / t.sum()),
        "mean_accuracy": float((n_ii[present] / t[present]).mean()),
        "mean_iu": float(iu[present].mean()),
        "frequency_weighted_iu": float((t * iu).sum() / t.sum()),
        "per_class_iu": iu.tolist(),
    }


def photometric(img):
    """Per-frame colour jitter for light the training sequences lack (0001TP is filmed at
    dusk): gamma 0.5–2, brightness ×0.6–1.4, contrast ×0.7–1.3, saturation ×0.6–1.4,
    white balance ×0.9–1.1 per channel. `img` [B,3,H,W] in [0,1]."""
    b = len(img)

    def uniform(lo, hi, *shape):
        return torch.empty(b, *shape).uniform_(lo, hi)

    out = img.clamp(1e-4, 1) ** torch.exp(uniform(-0.69, 0.69, 1, 1, 1))
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = ((out - mean) * uniform(0.7, 1.3, 1, 1, 1) + mean) * uniform(0.6, 1.4, 1, 1, 1)
    grey = out.mean(dim=1, keepdim=True)
    out = (grey + (out - grey) * uniform(0.6, 1.4, 1, 1, 1)) * uniform(0.9, 1.1, 3, 1, 1)
    return out.clamp(0, 1)


def zoom_crop(img, lab, max_zoom=1.5):
    """A random crop of 1/z of each side (z in 1..max_zoom, one per batch) resized back:
    thin classes (Pole, SignSymbol, Pedestrian) appear larger, as in a higher-resolution
    frame or a tile. Labels by nearest neighbour."""
    h, w = img.shape[-2:]
    z = random.uniform(1.0, max_zoom)
    ch, cw = round(h / z), round(w / z)
    y0, x0 = random.randint(0, h - ch), random.randint(0, w - cw)
    img = F.interpolate(img[..., y0:y0 + ch, x0:x0 + cw], size=(h, w), mode="bilinear", align_corners=False)
    lab = F.interpolate(lab[:, None, y0:y0 + ch, x0:x0 + cw].float(), size=(h, w), mode="nearest")[:, 0].long()
    return img, lab


# --augment: the steps after the horizontal flip, and how the manifest describes the recipe.
AUGMENTS = {
    "flip": ((), "horizontal flip"),
    "colour": (("colour",), "horizontal flip, photometric jitter"),
    "colour-zoom": (("colour", "zoom"), "horizontal flip, photometric jitter, zoomed crops ×1–1.5"),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data/camvid-dev"))
    ap.add_argument("--out", type=Path, default=Path("models"))
    ap.add_argument("--cr-lambda", type=float, default=100.0)
    ap.add_argument("--sigma", type=float, default=0.25)
    ap.add_argument("--cr-kernels", choices=("fixed", "learnable"), default="fixed",
                    help="fixed: the 8 neighbour differences; learnable: the paper's kernels, "
                         "trained with the kernel loss l_k (alpha = beta = 1000 as the paper)")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="train on this many frames only (smoke test)")
    ap.add_argument("--size", default=f"{H}x{W}", help="network input HxW (the whole frame is resized to it)")
    ap.add_argument("--class-balance", action="store_true",
                    help="weight the cross-entropy by median frequency balancing (SegNet)")
    ap.add_argument("--augment", choices=sorted(AUGMENTS), default="flip",
                    help="flip: horizontal flips only; colour: + photometric jitter; colour-zoom: + random zoomed crops")
    ap.add_argument("--head", choices=sorted(HEADS), default="fcn8",
                    help="fcn8: FCN-8s score maps (the shipped models); aspp: DeepLabv3+-style decoder at stride 4; "
                         "aspp-local: the same without its image-pooling branch")
    ap.add_argument("--held-out-sequence", default="",
                    help="hold out this whole video sequence instead of the last 25 %% of each")
    ap.add_argument("--all-sequences", action="store_true",
                    help="train on every frame (the model to deploy once the recipe is chosen and "
                         "measured with --held-out-sequence folds); no held-out figures")
    args = ap.parse_args()
    try:
        h, w = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise SystemExit(f"error: --size {args.size!r}: give HxW, e.g. 288x384") from None
    if h % 32 or w % 32:
        raise SystemExit(f"error: --size {args.size}: both sides must be multiples of 32 (the encoder's stride)")
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    torch.set_num_threads(args.threads)

    classes = [r["name"] for r in csv.DictReader(open(args.data / "classes.csv"))][:VOID]
    if args.all_sequences and args.held_out_sequence:
        raise SystemExit("error: --all-sequences trains on every frame; leave out --held-out-sequence")
    train_rows, held_rows = split(args.data, 0.25, args.held_out_sequence)
    if args.all_sequences:
        train_rows, held_rows = train_rows + held_rows, []
    if args.limit:
        train_rows = train_rows[: args.limit]
    x, y = load(args.data, train_rows, (h, w))
    x = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255
    y = torch.from_numpy(y.astype(np.int64))
    print(f"train {len(x)} frames, held out {len(held_rows)}", flush=True)
    weights = None
    if args.class_balance:
        weights = torch.from_numpy(median_frequency_weights(y.numpy(), VOID))
        print("class weights", dict(zip(classes, [round(float(w), 2) for w in weights])), flush=True)

    net = HEADS[args.head][0](len(classes))
    # Frozen BatchNorm statistics: batches of 8 correlated frames are too small to
    # re-estimate them.
    for m in net.encoder.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()
            m.weight.requires_grad_(False)
            m.bias.requires_grad_(False)
    params = [p for p in net.parameters() if p.requires_grad]
    learnable = LearnableCr() if args.cr_kernels == "learnable" and args.cr_lambda > 0 else None
    if args.cr_kernels == "learnable" and learnable is None:
        raise SystemExit("error: --cr-kernels learnable needs the CR loss (--cr-lambda > 0)")
    groups = [{"params": params}] + ([{"params": learnable.parameters(), "weight_decay": 0.0}] if learnable else [])
    opt = torch.optim.AdamW(groups, lr=args.lr, weight_decay=1e-4)
    steps = args.epochs * ((len(x) + args.batch - 1) // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.1)
    log = []
    augment_steps = AUGMENTS[args.augment][0]
    t0 = time.time()
    for epoch in range(args.epochs):
        net.train()
        for m in net.encoder.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        perm = torch.randperm(len(x))
        sums = np.zeros(3)
        for i in range(0, len(x), args.batch):
            idx = perm[i : i + args.batch]
            img, lab = x[idx], y[idx]
            if random.random() < 0.5:
                img, lab = img.flip(-1), lab.flip(-1)
            if "zoom" in augment_steps:
                img, lab = zoom_crop(img, lab)
            if "colour" in augment_steps:
                img = photometric(img)
            logits = net.logits(img)
            ce = F.cross_entropy(logits, lab, weight=weights, ignore_index=VOID)
            probs = torch.softmax(logits, 1)
            if learnable is not None:
                cr, lk = learnable.loss(probs, img, args.sigma), learnable.kernel_loss()
            else:
                cr = cr_loss(probs, img, args.sigma) if args.cr_lambda > 0 else torch.zeros(())
                lk = torch.zeros(())
            loss = ce + args.cr_lambda * cr + lk
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            sums += [ce.item() * len(idx), cr.item() * len(idx), lk.item() * len(idx)]
        entry = {"epoch": epoch + 1, "ce": sums[0] / len(x), "cr": sums[1] / len(x), "s": round(time.time() - t0)}
        if learnable is not None:
            entry["lk"] = sums[2] / len(x)
        log.append(entry)
        print(json.dumps(entry), flush=True)

    net.eval()
    # The recipe's choices are in the name, so a variant never overwrites the shipped model.
    name = ("segment-camvid-lite0" + ("-cr" if args.cr_lambda > 0 else "") + ("k" if learnable else "")
            + ("-balanced" if args.class_balance else "") + ("" if (h, w) == (H, W) else f"-{h}x{w}")
            + ("" if args.augment == "flip" else f"-{args.augment}") + ("" if args.head == "fcn8" else f"-{args.head}")
            + ("-all" if args.all_sequences else ""))
    args.out.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out / f"{name}.onnx"
    export_onnx(net, x[:1], onnx_path, "image", ["probabilities"])
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])

    if held_rows:
        metrics = held_out_metrics(session, args.data, held_rows, (h, w), classes)
        print(json.dumps(metrics, indent=1))
        # A sequence split is named after its model (models/NAME-heldout.csv: `retrieve evaluate`
        # finds it by that prefix); the per-sequence 25 % split keeps its historical name.
        held_list = args.out / (f"{name}-heldout.csv" if args.held_out_sequence else "segment-camvid-heldout.csv")
        with open(held_list, "w", newline="") as f:
            rows_out = csv.writer(f)
            rows_out.writerow(["image", "label"])
            for r in held_rows:
                rows_out.writerow([r["image"], r["label"]])
    else:
        # Every frame was seen: an honest figure can only come from the folds that held a
        # sequence out with the same recipe (written into the manifest by hand, see the card).
        metrics = {"held_out_frames": 0, "estimate": "none here: see the model card's sequence folds"}
    (args.out / f"{name}-train-log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in log))
    manifest = {
        "name": name,
        "task": "segment",
        "version": "1.0.0",
        "file": onnx_path.name,
        "sha256": sha256(onnx_path),
        "input": {"name": "image", "shape": [-1, 3, h, w]},
        "outputs": [{"name": "probabilities", "shape": [-1, len(classes), h, w]}],
        "classes": classes,
        "colors": [[int(r["r"]), int(r["g"]), int(r["b"])] for r in csv.DictReader(open(args.data / "classes.csv"))][:VOID],
        "bands": ["red", "green", "blue"],
        "preprocessing": {
            "input": f"RGB / 255, bilinear resize of the whole image to {w}x{h} (W x H)",
            "output": f"class probabilities at {w}x{h}; resize bilinearly to the image, then argmax",
            "in_graph": "(x*255-127)/128 (EfficientNet-Lite)",
        },
        "training": {
            "script": "models/train/segment_cr.py",
            "data": "CamVid 11-class dev subset (../shared/data/camvid-dev), void (11) ignored",
            "split": ("every frame of every sequence (nothing held out)" if args.all_sequences else
                      f"sequence {args.held_out_sequence} held out whole" if args.held_out_sequence else
                      "per sequence, last 25 % of frames in time order held out (segment-camvid-heldout.csv)"),
            "train_frames": len(x),
            "network": f"{HEADS[args.head][1]} on EfficientNet-Lite0 (ImageNet, PyPI, Apache-2.0), encoder BatchNorm frozen",
            "loss": ("softmax CE" + (" weighted by median frequency balancing" if args.class_balance else "")
                     + (" + lambda * CR" if args.cr_lambda > 0 else "") + (" + l_k" if learnable else "")),
            "cr": {"lambda": args.cr_lambda, "sigma": args.sigma, "neighbours": 8,
                   "normalisation": "mean over pixels, neighbours and classes",
                   "kernels": ("fixed differences" if learnable is None else
                               {"learnable": "initialised to the fixed differences, l_k alpha = beta = 1000",
                                "learned": learnable.kernels.detach().reshape(len(OFFSETS), 3, 3).tolist()})},
            "epochs": args.epochs, "batch": args.batch, "lr": args.lr, "optimizer": "AdamW wd 1e-4, one-cycle",
            "augment": AUGMENTS[args.augment][1],
            "seed": args.seed, "seconds": round(time.time() - t0),
        },
        "metrics": metrics,
        "card": "segment-camvid-lite0.md",
        "ontology": "camvid.ontology.toml",
        "licence": "research use only (trained on CamVid, no open licence); backbone Apache-2.0; see the model card",
    }
    write_manifest(args.out / f"{name}.json", manifest)


if __name__ == "__main__":
    main()

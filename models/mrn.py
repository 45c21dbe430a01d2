"""MRN (Matting Refinement Network, DFIMat): image + coarse instance mask -> alpha matte.

* CNN local encoder (ResNet-D basic blocks) on ``concat(normalised image, binarised mask)``,
  strides 2..32, with MGMatting-style shortcuts at every stride including full resolution.
* Transformer global encoder on the stride-32 tokens (sine positions), for image-wide context.
* Progressive fusion decoder from low to high resolution (S/32 -> S), with MGMatting's three
  side outputs at strides 8, 4, 1 (``(tanh+1)/2`` activations; the S/8 and S/4 logits are
  upsampled bilinearly before the activation).
* PRM exactly as MGMatting runs it at inference (15×15 then 7×7 OpenCV ellipses), inside the
  graph (``models/common/prm.py``).

The guidance mask is binarised at 0.5 as the official inference does (``mask >= 128/255``).
Padding: images arrive letterboxed with zero (black) padding; no reflect padding is added.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from models.common.attention import TransformerEncoderLayer, sine_position_embedding
from models.common.layers import BasicBlock, conv_bn_act, tanh_alpha
from models.common.matting_blocks import RefineHead, UpFuse, shortcut, upsample_to
from models.common.norm import ImageNormalizer
from models.common.prm import ProgressiveRefinement
from models.common.wire import from_wire


@dataclass(frozen=True)
class MRNConfig:
    """``enc_channels``/``enc_blocks``: encoder widths/blocks at strides 2, 4, 8, 16, 32;
    ``dec_channels``: decoder widths at strides 16, 8, 4, 2, 1; ``head_hidden``: refine-head width.
    """

    in_channels: int = 4
    out_channels: int = 1
    enc_channels: tuple[int, ...] = (16, 32, 64, 96, 128)
    enc_blocks: tuple[int, ...] = (1, 1, 2, 2, 1)
    global_dim: int = 128
    global_layers: int = 2
    global_heads: int = 4
    dec_channels: tuple[int, ...] = (64, 48, 32, 16, 8)
    full_res_convs: int = 1
    head_hidden: int = 16


PRESETS: dict[str, MRNConfig] = {
    "tiny": MRNConfig(),
    # MGMatting's widths (ResNet-34-D style encoder, decoder 256..32) plus a 256-d, 4-layer global encoder.
    "paper": MRNConfig(
        enc_channels=(32, 64, 128, 256, 512),
        enc_blocks=(1, 3, 4, 4, 2),
        global_dim=256,
        global_layers=4,
        global_heads=8,
        dec_channels=(256, 128, 64, 32, 32),
        full_res_convs=2,
        head_hidden=32,
    ),
}


class MattingBackbone(nn.Module):
    """Local CNN encoder + global transformer + progressive decoder with OS1/OS4/OS8 logits.

    ``x [B,in_channels,S,S]`` (normalised image + guidance) -> logits ``(os1 [B,C,S,S],
    os4 [B,C,S/4,S/4], os8 [B,C,S/8,S/8])`` with ``C = out_channels``. S must be a multiple of 32.
    """

    def __init__(self, cfg: MRNConfig) -> None:
        super().__init__()
        ec, dc = cfg.enc_channels, cfg.dec_channels
        stages = []
        in_ch = cfg.in_channels
        for i, (out_ch, n) in enumerate(zip(ec, cfg.enc_blocks, strict=True)):
            first: nn.Module = conv_bn_act(in_ch, out_ch, 3, 2) if i == 0 else BasicBlock(in_ch, out_ch, 2)
            stages.append(nn.Sequential(first, *[BasicBlock(out_ch, out_ch) for _ in range(n - (i > 0))]))
            in_ch = out_ch
        self.stages = nn.ModuleList(stages)
        # Shortcuts from the input (stride 1) and strides 2, 4, 8, 16 into the decoder.
        skip_in = (cfg.in_channels, *ec[:4])
        skip_out = (dc[4], dc[3], dc[2], dc[1], dc[0])
        self.shortcuts = nn.ModuleList(shortcut(i, o) for i, o in zip(skip_in, skip_out, strict=True))
        self.global_proj = nn.Conv2d(ec[4], cfg.global_dim, 1)
        self.global_layers = nn.ModuleList(
            TransformerEncoderLayer(cfg.global_dim, cfg.global_heads) for _ in range(cfg.global_layers)
        )
        self.global_norm = nn.LayerNorm(cfg.global_dim)
        self.up16 = UpFuse(cfg.global_dim, dc[0])
        self.up8 = UpFuse(dc[0], dc[1])
        self.up4 = UpFuse(dc[1], dc[2])
        self.up2 = UpFuse(dc[2], dc[3], convs=cfg.full_res_convs)
        self.up1 = UpFuse(dc[3], dc[4], convs=cfg.full_res_convs)
        self.head_os8 = RefineHead(dc[1], cfg.head_hidden, cfg.out_channels)
        self.head_os4 = RefineHead(dc[2], cfg.head_hidden, cfg.out_channels)
        self.head_os1 = RefineHead(dc[4], min(cfg.head_hidden, 2 * dc[4]), cfg.out_channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feats = []
        h = x
        for stage in self.stages:
            h = stage(h)
            feats.append(h)
        skips = [sc(f) for sc, f in zip(self.shortcuts, [x, *feats[:4]], strict=True)]
        g = self.global_proj(feats[4])
        b, c, gh, gw = g.shape
        pos = sine_position_embedding(gh, gw, c, g).flatten(2).transpose(1, 2)
        tokens = g.flatten(2).transpose(1, 2)
        for layer in self.global_layers:
            tokens = layer(tokens, pos)
        g = self.global_norm(tokens).transpose(1, 2).reshape(b, c, gh, gw)
        d16 = self.up16(g, skips[4])
        d8 = self.up8(d16, skips[3])
        d4 = self.up4(d8, skips[2])
        d2 = self.up2(d4, skips[1])
        d1 = self.up1(d2, skips[0])
        return self.head_os1(d1), self.head_os4(d4), self.head_os8(d8)


class MRN(nn.Module):
    """``image [B,3,S,S]`` in [0,1], ``mask [B,1,S,S]`` (coarse mask/probability) -> dict of alphas
    ``[B,1,S,S]``:
    ``alpha`` (after PRM), ``alpha_os1``, ``alpha_os4``, ``alpha_os8``.
    """

    def __init__(self, cfg: MRNConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.normalize = ImageNormalizer()
        self.backbone = MattingBackbone(cfg)
        self.prm = ProgressiveRefinement()

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        guidance = (mask >= 0.5).to(image.dtype)
        os1, os4, os8 = self.backbone(torch.cat([self.normalize(image), guidance], dim=1))
        size = (image.shape[-2], image.shape[-1])
        a1, a4, a8 = tanh_alpha(os1), tanh_alpha(upsample_to(os4, size)), tanh_alpha(upsample_to(os8, size))
        return {"alpha": self.prm(a1, a4, a8), "alpha_os1": a1, "alpha_os4": a4, "alpha_os8": a8}


class MRNExport(nn.Module):
    """Exported ``mrn``: ``(image [B,3,S,S], mask [B,1,S,S]) -> (alpha [B,1,S,S],)`` with PRM applied."""

    def __init__(self, model: MRN) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.model(from_wire(image), mask)["alpha"],)


def build_mrn(preset: str = "tiny") -> MRN:
    """MRN at a size preset (``tiny`` or ``paper``)."""
    return MRN(PRESETS[preset])

"""InstMatt ("Human Instance Matting via Mutual Guidance and Multi-Instance Refinement").

All instances of an image are matted in one call, with a fixed maximum instance count ``K``
and a validity mask so the exported graph has a fixed shape:

1. **Tri-mask guidance** per instance k (InstMatt's order): target ``m_k``, others
   ``Σ_{j≠k} m_j``, background ``1 − Σ_j m_j`` (not clipped), over valid slots only.
2. **Matting branch** -> tri-matte logits (target, others, background) at strides 8, 4, 1
   with MGMatting's activations and PRM over the 3 channels (one mask gates all three).
   Deviation for cost (documented): the official network runs a whole MGMatting encoder on
   ``concat(image, tri-mask)`` once per instance; here the image encoder runs once per image
   and each instance's tri-mask enters through a light guidance convolution at every
   decoder scale down to S/2, so the per-instance work is the decoder only. At full
   resolution each instance predicts (at S/2) OS1 logits and per-pixel gains of a detail map
   computed once from the image, so per-instance full-resolution work is elementwise. The
   ``paper`` preset uses MGMatting's widths.
3. **Multi-instance refinement** (parallel T/R/B-reduce), on the stride-4 features of all
   instances together: ``split`` gates the features by the 3 tri-matte channels (grouped
   conv), the streams are exchanged across valid instances (target stream + mean of the
   others' "other" streams; "other" stream + sum of the others' target streams; background
   stream + mean background over instances), ``merge`` (+ the RGB image) and ``head`` predict a
   residual on the OS1 tri-matte logits. Final alpha = the refined OS1 result where the OS1
   PRM region is set, the PRM result elsewhere. Windowing/iteration of the official
   refiner is replaced by this one dense pass (fixed shape, no data-dependent loop).

Padded slots are zeroed on input, excluded from every cross-instance sum, and their
outputs are zero; every operation is symmetric in the instance axis (permutation-equivariant).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.common.layers import BasicBlock, conv_bn_act, tanh_alpha
from models.common.matting_blocks import RefineHead, UpFuse, shortcut, upsample_to
from models.common.norm import ImageNormalizer
from models.common.prm import ProgressiveRefinement
from models.common.wire import from_wire


@dataclass(frozen=True)
class InstMattConfig:
    """``enc_channels``: image encoder widths at strides 2..32; ``dec_channels``: per-instance decoder
    widths at strides 16, 8, 4, 2, 1; ``refine_channels``: per-stream width of the refiner split.
    """

    max_instances: int = 8
    enc_channels: tuple[int, ...] = (16, 24, 48, 64, 96)
    enc_blocks: tuple[int, ...] = (1, 1, 1, 1, 1)
    bottleneck: int = 64
    dec_channels: tuple[int, ...] = (32, 24, 16, 8, 8)
    head_hidden: int = 8
    refine_channels: int = 8
    refine_hidden: int = 16


PRESETS: dict[str, InstMattConfig] = {
    "tiny": InstMattConfig(),
    "paper": InstMattConfig(
        max_instances=8,
        enc_channels=(32, 64, 128, 256, 512),
        enc_blocks=(1, 3, 4, 4, 2),
        bottleneck=512,
        dec_channels=(256, 128, 64, 32, 32),
        head_hidden=32,
        refine_channels=16,
        refine_hidden=32,
    ),
}


def tri_masks(masks: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``masks [B,K,H,W]``, ``valid [B,K]`` -> tri-masks ``[B,K,3,H,W]`` (target, others, background)."""
    m = masks * valid[:, :, None, None]
    total = m.sum(dim=1, keepdim=True)
    return torch.stack([m, total - m, (1.0 - total).expand_as(m)], dim=2)


def _expand(x: torch.Tensor, k: int) -> torch.Tensor:
    """``[B,...]`` -> ``[B·k,...]``, each image repeated for its k instance slots."""
    return x.unsqueeze(1).expand(x.shape[0], k, *x.shape[1:]).reshape(-1, *x.shape[1:])


class MultiInstanceRefiner(nn.Module):
    """``features [B,K,C,h,w]``, ``alpha [B,K,3,h,w]``, ``rgb [B,3,h,w]``, ``valid [B,K]`` -> residual
    logits ``[B,K,3,h,w]``.
    """

    def __init__(self, in_ch: int, stream: int, hidden: int) -> None:
        super().__init__()
        self.split = nn.Conv2d(3 * in_ch, 3 * stream, 3, 1, 1, groups=3)
        self.merge = nn.Sequential(
            nn.Conv2d(3 * stream + 3, hidden, 3, 1, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(hidden, hidden, 3, 1, 1),
            nn.LeakyReLU(0.2),
        )
        self.head = nn.Conv2d(hidden, 3, 3, 1, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.stream = stream

    def forward(
        self, features: torch.Tensor, alpha: torch.Tensor, rgb: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        b, k, c, h, w = features.shape
        gated = (features.unsqueeze(2) * alpha.unsqueeze(3)).reshape(b * k, 3 * c, h, w)
        streams = self.split(gated).reshape(b, k, 3, self.stream, h, w)
        v = valid.reshape(b, k, 1, 1, 1)
        t, r, bg = streams[:, :, 0] * v, streams[:, :, 1] * v, streams[:, :, 2] * v
        n = valid.sum(dim=1).reshape(b, 1, 1, 1, 1)
        others = (n - v).clamp_min(1.0)
        t_sum = t.sum(dim=1, keepdim=True)  # T-reduce
        r_sum = r.sum(dim=1, keepdim=True)  # R-reduce
        b_mean = bg.sum(dim=1, keepdim=True) / n.clamp_min(1.0)  # B-reduce
        t_new = t + (r_sum - r) / others
        r_new = r + (t_sum - t)
        b_new = 0.5 * (bg + b_mean)
        mixed = torch.cat([t_new, r_new, b_new], dim=2).reshape(b * k, 3 * self.stream, h, w)
        x = torch.cat([mixed, _expand(rgb, k)], dim=1)
        return self.head(self.merge(x)).reshape(b, k, 3, h, w)


class InstMatt(nn.Module):
    """``image [B,3,S,S]``, ``masks [B,K,S,S]``, ``valid [B,K]`` -> dict: ``alpha [B,K,S,S]`` (final, zero in
    padded slots) and, with ``full_outputs``, ``trimatte [B,K,3,S,S]`` (final tri-mattes, zero in padded
    slots) and ``trimatte_os1/os4/os8 [B,K,3,S,S]`` (side outputs before PRM/refinement, padded slots
    not zeroed: mask them in the loss). S must be a multiple of 32.
    """

    def __init__(self, cfg: InstMattConfig) -> None:
        super().__init__()
        self.cfg = cfg
        ec, dc = cfg.enc_channels, cfg.dec_channels
        self.normalize = ImageNormalizer()
        stages = []
        in_ch = 3
        for i, (out_ch, n) in enumerate(zip(ec, cfg.enc_blocks, strict=True)):
            first: nn.Module = conv_bn_act(in_ch, out_ch, 3, 2) if i == 0 else BasicBlock(in_ch, out_ch, 2)
            stages.append(nn.Sequential(first, *[BasicBlock(out_ch, out_ch) for _ in range(n - (i > 0))]))
            in_ch = out_ch
        self.encoder = nn.ModuleList(stages)
        # Image shortcuts at strides 2, 4, 8, 16 (shared by all instances of the image).
        skip_in = tuple(ec[:4])
        skip_out = (dc[3], dc[2], dc[1], dc[0])
        self.shortcuts = nn.ModuleList(shortcut(i, o) for i, o in zip(skip_in, skip_out, strict=True))
        # Per-instance tri-mask guidance at strides 2, 4, 8, 16, 32.
        self.guidance = nn.ModuleList(nn.Conv2d(3, o, 3, 1, 1) for o in (*skip_out, cfg.bottleneck))
        self.bottleneck = conv_bn_act(ec[4], cfg.bottleneck, 3)
        self.instance_bottleneck = conv_bn_act(cfg.bottleneck, cfg.bottleneck, 3, act=nn.LeakyReLU)
        self.up16 = UpFuse(cfg.bottleneck, dc[0], convs=1)
        self.up8 = UpFuse(dc[0], dc[1], convs=1)
        self.up4 = UpFuse(dc[1], dc[2], convs=1)
        self.up2 = UpFuse(dc[2], dc[3], convs=1)
        self.head_os8 = RefineHead(dc[1], cfg.head_hidden, 3)
        self.head_os4 = RefineHead(dc[2], cfg.head_hidden, 3)
        # OS1 at full resolution: per instance, logits and gains at S/2 (6 channels); shared by
        # the instances of an image, a full-resolution detail map from the image. Full-resolution
        # logits = up(logits) + up(gains) · detail, so per-instance full-res work is elementwise.
        self.head_os1 = RefineHead(dc[3], dc[4], 6)
        self.detail = nn.Sequential(
            nn.Conv2d(3, dc[4], 3, 1, 1), nn.LeakyReLU(0.2), nn.Conv2d(dc[4], 1, 3, 1, 1)
        )
        self.prm = ProgressiveRefinement()
        self.refiner = MultiInstanceRefiner(dc[2], cfg.refine_channels, cfg.refine_hidden)

    def forward(
        self, image: torch.Tensor, masks: torch.Tensor, valid: torch.Tensor, full_outputs: bool = True
    ) -> dict[str, torch.Tensor]:
        b, k, s_h, s_w = masks.shape
        valid = (valid > 0.5).to(image.dtype)
        x = self.normalize(image)
        feats = []
        h = x
        for stage in self.encoder:
            h = stage(h)
            feats.append(h)
        img_skips = [sc(f) for sc, f in zip(self.shortcuts, feats[:4], strict=True)]
        bottom = self.bottleneck(feats[4])

        tri = tri_masks(masks, valid).reshape(b * k, 3, s_h, s_w)
        pyramid = [F.avg_pool2d(tri, 2)]
        for _ in range(4):
            pyramid.append(F.avg_pool2d(pyramid[-1], 2))
        g = [conv(t) for conv, t in zip(self.guidance, pyramid, strict=True)]

        d = self.instance_bottleneck(_expand(bottom, k) + g[4])
        d16 = self.up16(d, _expand(img_skips[3], k) + g[3])
        d8 = self.up8(d16, _expand(img_skips[2], k) + g[2])
        d4 = self.up4(d8, _expand(img_skips[1], k) + g[1])
        d2 = self.up2(d4, _expand(img_skips[0], k) + g[0])

        size = (s_h, s_w)
        half = upsample_to(self.head_os1(d2), size)
        detail = _expand(self.detail(x), k)
        os1 = half[:, :3] + half[:, 3:] * detail
        a1 = tanh_alpha(os1)
        a4 = tanh_alpha(upsample_to(self.head_os4(d4), size))
        a8 = tanh_alpha(upsample_to(self.head_os8(d8), size))
        alpha_prm, region1 = self.prm.refine(a1, a4, a8)

        h4, w4 = d4.shape[-2], d4.shape[-1]
        gate = F.adaptive_avg_pool2d(alpha_prm, (h4, w4)).reshape(b, k, 3, h4, w4)
        rgb = F.adaptive_avg_pool2d(x, (h4, w4))
        delta = self.refiner(d4.reshape(b, k, -1, h4, w4), gate, rgb, valid)
        a1_refined = tanh_alpha(os1 + upsample_to(delta.reshape(b * k, 3, h4, w4), size))
        final = torch.where(region1, a1_refined, alpha_prm)

        trimatte = final.reshape(b, k, 3, s_h, s_w)
        alpha = trimatte[:, :, 0] * valid[:, :, None, None]
        if not full_outputs:
            return {"alpha": alpha}
        return {
            "alpha": alpha,
            "trimatte": trimatte * valid.reshape(b, k, 1, 1, 1),
            "trimatte_os1": a1.reshape(b, k, 3, s_h, s_w),
            "trimatte_os4": a4.reshape(b, k, 3, s_h, s_w),
            "trimatte_os8": a8.reshape(b, k, 3, s_h, s_w),
        }


class InstMattExport(nn.Module):
    """Exported ``instmatt``: ``(image [B,3,S,S], masks [B,K,S,S], valid [B,K]) -> (alpha [B,K,S,S],)``."""

    def __init__(self, model: InstMatt) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor, masks: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.model(from_wire(image), masks, valid, full_outputs=False)["alpha"],)


def build_instmatt(preset: str = "tiny") -> InstMatt:
    """InstMatt at a size preset (``tiny`` or ``paper``)."""
    return InstMatt(PRESETS[preset])

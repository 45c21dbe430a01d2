"""SAM 2's image encoder as SEMat's SAM2 variant uses it: a Hiera trunk with the box-mask patch
embedding added to the image's (``HieraBBoxMask``), and SAM 2's FPN neck.

Hiera (``sam2/modeling/backbones/hieradet.py``): a 7x7 stride-4 patch embedding, a windowed
position embedding (a bicubically resized background table plus a tiled window table), then
four stages of multi-scale blocks; the first block of stages 2-4 max-pools its queries by 2 and
widens the channels (x2) and heads (x2); blocks attend within windows of ``window_spec[stage]``
(the first block of a stage still uses the previous stage's window, pooled), except the
``global_att_blocks``. The four stage outputs (strides 4, 8, 16, 32) go to the FPN neck: a
1x1 conv per level to ``d_model``, top-down nearest-neighbour fusion on ``fpn_top_down_levels``
only; the stride-32 level is dropped (``scalp=1``), leaving strides 4, 8 and 16.

Parameter names are the official ones under ``image_encoder.`` (``trunk.patch_embed.proj``,
``trunk.bbox_mask_patch_embed.proj``, ``trunk.pos_embed``, ``trunk.pos_embed_window``,
``trunk.blocks.{i}.norm1|attn.qkv|attn.proj|norm2|mlp.layers.{0,1}|proj``, ``neck.convs.{j}.conv``);
LoRA wraps what peft's ``["qkv", "proj"]`` suffix targets match.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.common.lora import LoRAConv2d, LoRALinear
from models.semat.config import SEMatSAM2Config
from models.semat.image_encoder import PatchEmbed, window_partition, window_unpartition


class HieraMLP(nn.Module):
    """Two linears with a GELU between (``layers.0``, ``layers.1``): ``[..., dim] -> [..., dim]``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(dim, hidden), nn.Linear(hidden, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers[1](F.gelu(self.layers[0](x)))


def max_pool_hw(x: torch.Tensor) -> torch.Tensor:
    """2x2 max pooling of a channels-last map ``[B,H,W,C] -> [B,H/2,W/2,C]`` (floor)."""
    return F.max_pool2d(x.permute(0, 3, 1, 2), 2, 2).permute(0, 2, 3, 1)


class MultiScaleAttention(nn.Module):
    """Self-attention on ``[B,H,W,dim] -> [B,H',W',dim_out]``; with ``q_pool`` the queries are max-pooled
    by 2 (so H' = H/2) while keys and values keep the full grid."""

    def __init__(self, dim: int, dim_out: int, num_heads: int, q_pool: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q_pool = q_pool
        self.qkv: nn.Module = nn.Linear(dim, dim_out * 3)
        self.proj: nn.Module = nn.Linear(dim_out, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1)
        q, k, v = torch.unbind(qkv, 2)
        if self.q_pool:
            q = max_pool_hw(q.reshape(b, h, w, -1))
            h, w = q.shape[1], q.shape[2]
            q = q.reshape(b, h * w, self.num_heads, -1)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.proj(out.transpose(1, 2).reshape(b, h, w, -1))


class MultiScaleBlock(nn.Module):
    """Pre-norm Hiera block ``[B,H,W,dim] -> [B,H',W',dim_out]``: (pooled) windowed attention and an MLP.

    At a stage change (``q_stride``) the shortcut is ``pool(proj(norm1(x)))`` and the windows
    of the pooled output are ``window_size / 2`` wide.
    """

    def __init__(
        self, dim: int, dim_out: int, num_heads: int, mlp_ratio: float, q_stride: bool, window_size: int
    ) -> None:
        super().__init__()
        self.dim, self.dim_out = dim, dim_out
        self.window_size = window_size
        self.q_stride = q_stride
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = MultiScaleAttention(dim, dim_out, num_heads, q_pool=q_stride)
        self.norm2 = nn.LayerNorm(dim_out, eps=1e-6)
        self.mlp = HieraMLP(dim_out, int(dim_out * mlp_ratio))
        if dim != dim_out:
            self.proj: nn.Module = nn.Linear(dim, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm1(x)
        if self.dim != self.dim_out:
            shortcut = self.proj(x)
            if self.q_stride:
                shortcut = max_pool_hw(shortcut)
        ws = self.window_size
        h, w = x.shape[1], x.shape[2]
        pad_hw = (h, w)
        if ws > 0:
            x, pad_hw = window_partition(x, ws)
        x = self.attn(x)
        if self.q_stride:
            ws = ws // 2
            h, w = shortcut.shape[1], shortcut.shape[2]
            if ws > 0:
                pad_hw = (h + (ws - h % ws) % ws, w + (ws - w % ws) % ws)
        if self.window_size > 0:
            x = window_unpartition(x, ws, pad_hw, (h, w))
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class Hiera(nn.Module):
    """``(normalised image [B,3,S,S], box mask [B,1,S,S])`` -> the four stage outputs ``[B,C_i,S/4/2^i,...]``
    (C_i = embed_dim·2^i), box-mask patch embedding added to the image's."""

    def __init__(self, cfg: SEMatSAM2Config) -> None:
        super().__init__()
        dim, heads = cfg.embed_dim, cfg.num_heads
        self.patch_embed = PatchEmbed(3, dim, 4, kernel=7, padding=3)
        self.bbox_mask_patch_embed = PatchEmbed(4, dim, 4, kernel=7, padding=3)
        self.pos_embed = nn.Parameter(torch.zeros(1, dim, *cfg.window_pos_embed_bkg_spatial_size))
        self.pos_embed_window = nn.Parameter(torch.zeros(1, dim, cfg.window_spec[0], cfg.window_spec[0]))
        stage_ends = [sum(cfg.stages[: i + 1]) - 1 for i in range(len(cfg.stages))]
        q_pool_blocks = [end + 1 for end in stage_ends[:-1]]
        self.stage_ends = stage_ends
        self.blocks = nn.ModuleList()
        stage = 0
        for i in range(sum(cfg.stages)):
            dim_out = dim
            window = 0 if i in cfg.global_att_blocks else cfg.window_spec[stage]  # lags by a block
            if i - 1 in stage_ends:
                dim_out, heads, stage = dim * 2, heads * 2, stage + 1
            self.blocks.append(
                MultiScaleBlock(dim, dim_out, heads, cfg.mlp_ratio, i in q_pool_blocks, window)
            )
            dim = dim_out
        self.channel_list = [self.blocks[i].dim_out for i in stage_ends[::-1]]

    def position_embedding(self, h: int, w: int) -> torch.Tensor:
        """The windowed position embedding at an ``h x w`` token grid -> ``[1,h,w,C]``."""
        pos = F.interpolate(self.pos_embed, size=(h, w), mode="bicubic", align_corners=False)
        win = self.pos_embed_window
        pos = pos + win.tile(1, 1, h // win.shape[-2], w // win.shape[-1])
        return pos.permute(0, 2, 3, 1)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        x = self.patch_embed(image) + self.bbox_mask_patch_embed(torch.cat([image, mask], dim=1))
        x = x + self.position_embedding(x.shape[1], x.shape[2])
        outputs = []
        for i, blk in enumerate(self.blocks):
            x = blk(x)
            if i in self.stage_ends:
                outputs.append(x.permute(0, 3, 1, 2))
        return outputs


class FpnNeck(nn.Module):
    """SAM 2's neck: stage outputs (finest first) -> ``d_model``-wide maps at the same strides."""

    def __init__(
        self, d_model: int, backbone_channel_list: list[int], top_down_levels: tuple[int, ...]
    ) -> None:
        super().__init__()
        self.convs = nn.ModuleList()
        for dim in backbone_channel_list:  # coarsest first, as the official list
            level = nn.Sequential()
            level.add_module("conv", nn.Conv2d(dim, d_model, 1))
            self.convs.append(level)
        self.top_down_levels = tuple(top_down_levels)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        n = len(self.convs) - 1
        out: list[torch.Tensor] = [xs[0]] * (n + 1)
        prev: torch.Tensor | None = None
        for i in range(n, -1, -1):
            lateral = self.convs[n - i](xs[i])
            if i in self.top_down_levels and prev is not None:
                prev = lateral + F.interpolate(prev, scale_factor=2.0, mode="nearest")
            else:
                prev = lateral
            out[i] = prev
        return out


class HieraImageEncoder(nn.Module):
    """``(normalised image [B,3,S,S], box mask [B,1,S,S])`` -> FPN maps at strides 4, 8, 16
    (``[B,d_model,S/4,S/4]``, ``[B,d_model,S/8,S/8]``, ``[B,d_model,S/16,S/16]``)."""

    def __init__(self, cfg: SEMatSAM2Config) -> None:
        super().__init__()
        self.trunk = Hiera(cfg)
        self.neck = FpnNeck(cfg.d_model, self.trunk.channel_list, cfg.fpn_top_down_levels)

    def add_lora(self, rank: int, alpha: float, dropout: float) -> None:
        """LoRA where peft's ``["qkv", "proj"]`` targets match: every block's ``attn.qkv``/``attn.proj``,
        the stage-change ``proj`` and both patch embeddings' ``proj`` convs."""
        trunk = self.trunk
        for blk in trunk.blocks:
            blk.attn.qkv = LoRALinear(blk.attn.qkv, rank, alpha, dropout)
            blk.attn.proj = LoRALinear(blk.attn.proj, rank, alpha, dropout)
            if blk.dim != blk.dim_out:
                blk.proj = LoRALinear(blk.proj, rank, alpha, dropout)
        for embed in (trunk.patch_embed, trunk.bbox_mask_patch_embed):
            embed.proj = LoRAConv2d(embed.proj, rank, alpha, dropout)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        return self.neck(self.trunk(image, mask))[:-1]

"""SAM's ViT image encoder with LoRA adapters, plus SEMat's box-prompt patch embedding.

Parameter names follow segment-anything (``patch_embed.proj``, ``pos_embed``,
``blocks.{i}.attn.qkv|proj|rel_pos_h|rel_pos_w``, ``blocks.{i}.mlp.lin1|lin2``, ``neck.{0..3}``);
LoRA layers add peft's ``base_layer``/``lora_A.default``/``lora_B.default`` level until
:func:`models.common.lora.merge_lora` folds them away for export.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.common.lora import LoRAConv2d, LoRALinear
from models.common.norm import LayerNorm2d
from models.common.tensors import arange_like
from models.semat.config import SEMatConfig


class PatchEmbed(nn.Module):
    """Patch embedding ``[B,C,H,W] -> [B,H/p,W/p,D]`` (channels-last, like SAM): a conv of stride
    ``patch_size``, non-overlapping by default (SAM's ViT), or a wider ``kernel`` with ``padding``
    (Hiera's 7x7 stride-4 stem)."""

    def __init__(
        self, in_chans: int, embed_dim: int, patch_size: int, kernel: int | None = None, padding: int = 0
    ) -> None:
        super().__init__()
        self.proj: nn.Module = nn.Conv2d(in_chans, embed_dim, kernel or patch_size, patch_size, padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


class ConditionLayer(nn.Module):
    """SEMat's prompt enhancement: ``concat(image, box mask) [B,4,S,S] -> [B,S/p,S/p,D]``, added to the
    patches.
    """

    def __init__(self, embed_dim: int, patch_size: int) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(4, embed_dim, patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.patch_embed(x)


def _rel_pos_table(q_size: int, k_size: int, rel_pos: torch.Tensor) -> torch.Tensor:
    """Relative-position embeddings ``[q_size, k_size, C]`` for one axis (table resized if needed)."""
    max_dist = 2 * max(q_size, k_size) - 1
    if rel_pos.shape[0] != max_dist:
        rel_pos = F.interpolate(rel_pos.t().unsqueeze(0), size=max_dist, mode="linear", align_corners=False)[
            0
        ].t()
    q_coords = arange_like(q_size, rel_pos)[:, None] * max(k_size / q_size, 1.0)
    k_coords = arange_like(k_size, rel_pos)[None, :] * max(q_size / k_size, 1.0)
    rel = (q_coords - k_coords) + (k_size - 1) * max(q_size / k_size, 1.0)
    return rel_pos[rel.long()]


class ViTAttention(nn.Module):
    """Multi-head self-attention with decomposed relative positions on a ``[B,H,W,C]`` grid."""

    def __init__(self, dim: int, num_heads: int, input_size: tuple[int, int]) -> None:
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.qkv: nn.Module = nn.Linear(dim, dim * 3)
        self.proj: nn.Module = nn.Linear(dim, dim)
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * input_size[0] - 1, head_dim))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * input_size[1] - 1, head_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[0], x.shape[3]
        h, w = int(x.shape[1]), int(x.shape[2])  # fixed per export: keeps the rel-pos tables static
        nh = self.num_heads
        qkv = self.qkv(x).reshape(b, h * w, 3, nh, c // nh).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [B, nh, HW, hd]
        rh = _rel_pos_table(h, h, self.rel_pos_h)
        rw = _rel_pos_table(w, w, self.rel_pos_w)
        rq = q.reshape(b, nh, h, w, c // nh)
        rel_h = torch.einsum("bnhwc,hkc->bnhwk", rq, rh)
        rel_w = torch.einsum("bnhwc,wkc->bnhwk", rq, rw)
        bias = (rel_h[..., :, None] + rel_w[..., None, :]).reshape(b, nh, h * w, h * w)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(out.transpose(1, 2).reshape(b, h, w, c))


class ViTMLP(nn.Module):
    """SAM's block MLP ``lin1 -> GELU -> lin2``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.lin1 = nn.Linear(dim, hidden)
        self.lin2 = nn.Linear(hidden, dim)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(self.act(self.lin1(x)))


def window_partition(x: torch.Tensor, ws: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """``[B,H,W,C]`` -> windows ``[B·nW, ws, ws, C]`` (zero-padded to multiples of ``ws``) and the padded
    size.
    """
    b, h, w, c = x.shape
    ph, pw = (ws - h % ws) % ws, (ws - w % ws) % ws
    if ph or pw:
        x = F.pad(x, (0, 0, 0, pw, 0, ph))
    hp, wp = h + ph, w + pw
    x = x.reshape(b, hp // ws, ws, wp // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws, ws, c), (hp, wp)


def window_unpartition(
    windows: torch.Tensor, ws: int, pad_hw: tuple[int, int], hw: tuple[int, int]
) -> torch.Tensor:
    """Inverse of :func:`window_partition`: ``[B·nW, ws, ws, C]`` -> ``[B,H,W,C]``."""
    hp, wp = pad_hw
    h, w = hw
    c = windows.shape[-1]
    x = windows.reshape(-1, hp // ws, wp // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, hp, wp, c)[:, :h, :w, :]


class ViTBlock(nn.Module):
    """SAM transformer block (pre-norm), windowed attention unless ``window_size == 0``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, window_size: int, grid: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        size = (window_size, window_size) if window_size > 0 else (grid, grid)
        self.attn = ViTAttention(dim, num_heads, size)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = ViTMLP(dim, int(dim * mlp_ratio))
        self.window_size = window_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm1(x)
        if self.window_size > 0:
            hw = (x.shape[1], x.shape[2])
            x, pad_hw = window_partition(x, self.window_size)
            x = window_unpartition(self.attn(x), self.window_size, pad_hw, hw)
        else:
            x = self.attn(x)
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class SAMImageEncoder(nn.Module):
    """``x [B,3,S,S]`` normalised image, ``condition [B,S/p,S/p,D]`` -> ``(embedding [B,prompt_dim,S/p,S/p],
    interm [n_global, B, S/p, S/p, D])`` where ``interm`` holds the outputs of the global-attention blocks.
    """

    def __init__(self, cfg: SEMatConfig) -> None:
        super().__init__()
        grid = cfg.img_size // cfg.patch_size
        d = cfg.embed_dim
        self.patch_embed = PatchEmbed(3, d, cfg.patch_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid, grid, d))
        self.blocks = nn.ModuleList(
            ViTBlock(
                d, cfg.num_heads, cfg.mlp_ratio, 0 if i in cfg.global_attn_indexes else cfg.window_size, grid
            )
            for i in range(cfg.depth)
        )
        self.neck = nn.Sequential(
            nn.Conv2d(d, cfg.prompt_dim, 1, bias=False),
            LayerNorm2d(cfg.prompt_dim),
            nn.Conv2d(cfg.prompt_dim, cfg.prompt_dim, 3, padding=1, bias=False),
            LayerNorm2d(cfg.prompt_dim),
        )
        self.global_attn_indexes = tuple(cfg.global_attn_indexes)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def add_lora(self, rank: int, alpha: float, dropout: float) -> None:
        """Wrap ``qkv``/``proj`` of every block and ``patch_embed.proj`` in LoRA adapters (peft's targets)."""
        for blk in self.blocks:
            blk.attn.qkv = LoRALinear(blk.attn.qkv, rank, alpha, dropout)
            blk.attn.proj = LoRALinear(blk.attn.proj, rank, alpha, dropout)
        self.patch_embed.proj = LoRAConv2d(self.patch_embed.proj, rank, alpha, dropout)

    def _pos_embed(self, h: int, w: int) -> torch.Tensor:
        pos = self.pos_embed
        if pos.shape[1] != h or pos.shape[2] != w:
            pos = F.interpolate(pos.permute(0, 3, 1, 2), size=(h, w), mode="bicubic", align_corners=False)
            pos = pos.permute(0, 2, 3, 1)
        return pos

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.patch_embed(x) + condition
        x = x + self._pos_embed(int(x.shape[1]), int(x.shape[2]))
        interm = []
        for i, blk in enumerate(self.blocks):
            x = blk(x)
            if i in self.global_attn_indexes:
                interm.append(x)
        return self.neck(x.permute(0, 3, 1, 2)), torch.stack(interm, dim=0)

"""Attention layers and positional encodings shared by the transformer parts of the models."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from models.common.tensors import arange_like


class Attention(nn.Module):
    """Multi-head attention with separate q/k/v/out projections (SAM's decoder layout).

    ``downsample_rate`` shrinks the internal width (SAM uses 2 for token<->image attention).
    ``q [B,Nq,C]``, ``k [B,Nk,C]``, ``v [B,Nk,C]``, optional additive ``bias`` broadcastable to
    ``[B,heads,Nq,Nk]`` (``-inf`` = masked) -> ``[B,Nq,C]``.
    """

    def __init__(self, dim: int, num_heads: int, downsample_rate: int = 1, kv_dim: int | None = None) -> None:
        super().__init__()
        kv_dim = dim if kv_dim is None else kv_dim
        self.internal_dim = dim // downsample_rate
        self.num_heads = num_heads
        if self.internal_dim % num_heads:
            raise ValueError("num_heads must divide dim // downsample_rate")
        self.q_proj = nn.Linear(dim, self.internal_dim)
        self.k_proj = nn.Linear(kv_dim, self.internal_dim)
        self.v_proj = nn.Linear(kv_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        q = self._split(self.q_proj(q))
        k = self._split(self.k_proj(k))
        v = self._split(self.v_proj(v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        b, h, n, d = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, h * d))


class FeedForward(nn.Module):
    """Two-layer MLP ``lin1 -> act -> lin2`` (``[..., dim] -> [..., dim]``)."""

    def __init__(self, dim: int, hidden: int, act: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.lin1 = nn.Linear(dim, hidden)
        self.lin2 = nn.Linear(hidden, dim)
        self.act = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(self.act(self.lin1(x)))


class TransformerEncoderLayer(nn.Module):
    """Pre-norm self-attention + MLP block over tokens ``[B,N,C]`` with an additive position ``pos
    [1|B,N,C]``.

    The position is added to queries and keys only (DETR convention), so values stay content.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = FeedForward(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h + pos, h + pos, h)
        return x + self.mlp(self.norm2(x))


def sine_position_embedding(
    height: int, width: int, dim: int, like: torch.Tensor, temperature: float = 10000.0
) -> torch.Tensor:
    """DETR-style 2-D sine/cosine position encoding of a ``height x width`` grid -> ``[1,dim,height,width]``,
    with the dtype and device of ``like``.

    Half the channels encode y, half x; coordinates are normalised to (0, 2π] so the
    encoding does not depend on the absolute grid size.
    """
    if dim % 4:
        raise ValueError("dim must be divisible by 4")
    npf = dim // 2
    y = (arange_like(height, like) + 1.0) / height * 2 * math.pi
    x = (arange_like(width, like) + 1.0) / width * 2 * math.pi
    dim_t = arange_like(npf, like)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / npf)
    py = y[:, None] / dim_t  # [H, npf]
    px = x[:, None] / dim_t  # [W, npf]
    py = torch.stack((py[:, 0::2].sin(), py[:, 1::2].cos()), dim=2).flatten(1)
    px = torch.stack((px[:, 0::2].sin(), px[:, 1::2].cos()), dim=2).flatten(1)
    pos = torch.cat(
        (py[:, None, :].expand(height, width, npf), px[None, :, :].expand(height, width, npf)), dim=2
    )
    return pos.permute(2, 0, 1).unsqueeze(0).contiguous()

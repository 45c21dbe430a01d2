"""Visual sampler: clicks, scribbles and boxes -> visual prompt tokens sampled from image features.

Each mark arrives rasterised at S/4 (a click as a small disk, a scribble as its thick stroke,
a box as the filled rectangle) in one of ``Nv`` fixed slots with a kind. The token of a slot
is the mask-average of the image features under its map (S/16 semantic features with their
position encoding, so the token knows *where* it is, and S/4 mask features for detail),
projected to the query width, plus a learned embedding of its kind.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.iscn.config import NUM_PROMPT_KINDS


def masked_average(weights: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """``weights [B,N,h,w]`` >= 0, ``features [B,C,h,w]`` -> weighted means ``[B,N,C]`` (0 for empty maps)."""
    area = weights.sum(dim=(2, 3)).clamp_min(1e-6)
    return torch.einsum("bnhw,bchw->bnc", weights, features) / area[..., None]


class VisualSampler(nn.Module):
    """``prompt_maps [B,Nv,S/4,S/4]``, ``prompt_kinds [B,Nv]`` + features -> tokens ``[B,Nv,dim]``, valid
    ``[B,Nv]``.
    """

    def __init__(self, dim: int, mask_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim + mask_dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.kind_embed = nn.Embedding(NUM_PROMPT_KINDS, dim)

    def forward(
        self,
        prompt_maps: torch.Tensor,
        prompt_kinds: torch.Tensor,
        features: torch.Tensor,
        pos: torch.Tensor,
        mask_features: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        w4 = prompt_maps.clamp(0.0, 1.0)
        stride = w4.shape[-1] // features.shape[-1]
        w16 = F.avg_pool2d(w4, stride) if stride > 1 else w4
        pooled16 = masked_average(w16, features + pos)
        pooled4 = masked_average(w4, mask_features)
        tokens = self.norm(self.proj(torch.cat([pooled16, pooled4], dim=-1)))
        kinds = prompt_kinds.clamp(0, NUM_PROMPT_KINDS - 1)
        valid = kinds > 0
        tokens = (tokens + self.kind_embed(kinds)) * valid[..., None].to(tokens.dtype)
        return tokens, valid

"""Contrastive reasoning module (CRM) of DFIMat: cross-round conflicts as feature offsets.

The conflict map ``M_ref`` says, per pixel at S/4, how this round's marks relate to the
previous prediction: 0 = no conflict, 1 = new foreground mark where the previous mask said
background, 2 = new background mark where it said foreground. Each value has a learnable
vector per feature level; the map is one-hot encoded, area-pooled to each level's grid and
the matching mixture of vectors is added to the image features, so a feature at a conflict
pixel is shifted by exactly the vector of its conflict value.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.iscn.config import BG_KINDS, CONFLICT_BG_OVER_FG, CONFLICT_FG_OVER_BG, FG_KINDS


def conflict_one_hot(conflict_map: torch.Tensor) -> torch.Tensor:
    """``conflict_map [B,1,h,w]`` (float or int, values 0/1/2) -> one-hot ``[B,3,h,w]`` float."""
    c = conflict_map.float().round().clamp(0.0, 2.0)
    return torch.cat([(c == 0.0), (c == 1.0), (c == 2.0)], dim=1).float()


class ContrastiveReasoning(nn.Module):
    """Adds the per-value conflict embeddings to feature maps of widths ``dims``.

    ``forward(conflict_map [B,1,h,w], *features [B,dims[i],h_i,w_i])`` returns the features,
    each plus ``Σ_v pooled_onehot_v · embed_v`` (``h_i`` must divide ``h``).
    """

    def __init__(self, dims: tuple[int, ...]) -> None:
        super().__init__()
        self.embeds = nn.ModuleList(nn.Embedding(3, d) for d in dims)
        for e in self.embeds:
            nn.init.normal_(e.weight, std=0.02)

    def forward(self, conflict_map: torch.Tensor, features: list[torch.Tensor]) -> list[torch.Tensor]:
        one_hot = conflict_one_hot(conflict_map)
        out = []
        for f, embed in zip(features, self.embeds, strict=True):
            oh = one_hot
            if oh.shape[-2:] != f.shape[-2:]:
                oh = F.adaptive_avg_pool2d(oh, f.shape[-2:])
            out.append(f + torch.einsum("bkhw,kc->bchw", oh, embed.weight))
        return out


def compute_conflict_map(
    prev_mask: torch.Tensor,
    prompt_maps: torch.Tensor,
    prompt_kinds: torch.Tensor,
    has_prev: torch.Tensor,
    threshold: float = 0.5,
) -> torch.Tensor:
    """Builds ``M_ref`` from the previous prediction and this round's marks (for the service and trainer).

    ``prev_mask [B,1,h,w]`` probability, ``prompt_maps [B,Nv,h,w]``, ``prompt_kinds [B,Nv]``
    int64, ``has_prev [B,1]`` -> float ``[B,1,h,w]`` in {0,1,2}. Boxes and padding slots do not
    create conflicts; without a previous round the map is all zeros.
    """
    prev_fg = prev_mask >= threshold
    marked = prompt_maps > 0.5
    is_fg = torch.zeros_like(prompt_kinds, dtype=torch.bool)
    is_bg = torch.zeros_like(prompt_kinds, dtype=torch.bool)
    for k in FG_KINDS:
        is_fg = is_fg | (prompt_kinds == k)
    for k in BG_KINDS:
        is_bg = is_bg | (prompt_kinds == k)
    fg_new = (marked & is_fg[:, :, None, None]).any(dim=1, keepdim=True)
    bg_new = (marked & is_bg[:, :, None, None]).any(dim=1, keepdim=True)
    conflict = torch.zeros_like(prev_mask)
    conflict = torch.where(fg_new & ~prev_fg, torch.full_like(conflict, CONFLICT_FG_OVER_BG), conflict)
    conflict = torch.where(bg_new & prev_fg, torch.full_like(conflict, CONFLICT_BG_OVER_FG), conflict)
    return conflict * (has_prev.view(-1, 1, 1, 1) > 0.5).float()

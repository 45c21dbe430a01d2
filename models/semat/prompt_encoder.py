"""SAM's prompt encoder, box path only (SEMat prompts with one box per image), and the box's mask.

The full SAM parameter set is kept (point embeddings, ``not_a_point_embed``,
``mask_downscaling``) so the official checkpoint loads; only the box and dense no-mask
paths run.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from models.common.norm import LayerNorm2d
from models.common.tensors import arange_like


class PositionEmbeddingRandom(nn.Module):
    """Random Fourier features of normalised (x, y) coordinates (SAM's ``pe_layer``)."""

    def __init__(self, num_pos_feats: int) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(2, num_pos_feats))

    def encode(self, coords: torch.Tensor) -> torch.Tensor:
        """``coords [..., 2]`` in [0,1] -> ``[..., 2·num_pos_feats]``."""
        coords = (2 * coords - 1) @ self.positional_encoding_gaussian_matrix
        coords = 2 * math.pi * coords
        return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1)

    def grid(self, h: int, w: int) -> torch.Tensor:
        """Dense encoding of the ``h x w`` cell centres -> ``[1, C, h, w]``."""
        ys = (arange_like(h, self.positional_encoding_gaussian_matrix) + 0.5) / h
        xs = (arange_like(w, self.positional_encoding_gaussian_matrix) + 0.5) / w
        coords = torch.stack([xs[None, :].expand(h, w), ys[:, None].expand(h, w)], dim=-1)
        return self.encode(coords).permute(2, 0, 1).unsqueeze(0)


class PromptEncoder(nn.Module):
    """``boxes [B,4]`` xyxy in pixels of the ``input_size`` frame -> sparse ``[B,2,C]`` (``[B,3,C]`` with
    ``pad_point``), dense ``[B,C,h,w]``.

    SAM 2's image predictor sends the box as two points labelled 2 and 3, so its prompt encoder
    appends a padding point (``not_a_point_embed``, its position encoding zeroed): ``pad_point``.
    """

    def __init__(self, embed_dim: int, mask_in_chans: int = 16) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)
        # 0: negative point, 1: positive point, 2: box top-left, 3: box bottom-right.
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, 2, 2),
            LayerNorm2d(mask_in_chans // 4),
            nn.GELU(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, 2, 2),
            LayerNorm2d(mask_in_chans),
            nn.GELU(),
            nn.Conv2d(mask_in_chans, embed_dim, 1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def forward(
        self, boxes: torch.Tensor, input_size: int, grid: tuple[int, int], pad_point: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        corners = (boxes.reshape(-1, 2, 2) + 0.5) / input_size
        sparse = self.pe_layer.encode(corners)
        sparse = sparse + torch.stack(
            [self.point_embeddings[2].weight[0], self.point_embeddings[3].weight[0]], dim=0
        ).unsqueeze(0)
        if pad_point:
            pad = self.not_a_point_embed.weight.unsqueeze(0).expand(sparse.shape[0], -1, -1)
            sparse = torch.cat([sparse, pad], dim=1)
        dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(boxes.shape[0], -1, grid[0], grid[1])
        return sparse, dense


def box_mask(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``boxes [B,4]`` xyxy (pixels) -> filled half-open rectangle masks ``[B,1,height,width]`` (float
    0/1).
    """
    b = boxes.floor()
    ys = arange_like(height, boxes).view(1, 1, height, 1)
    xs = arange_like(width, boxes).view(1, 1, 1, width)
    x0, y0, x1, y1 = (b[:, i].view(-1, 1, 1, 1) for i in range(4))
    return ((ys >= y0) & (ys < y1) & (xs >= x0) & (xs < x1)).to(boxes.dtype)

"""ISCN decoder: object, target, visual and text queries over the S/16 image features.

Token order in the query set: ``[object queries (Nq) | target query (1) | visual queries (Nv) |
text query (1)]``. Each layer runs, Mask2Former style, masked cross-attention to the image
features, self-attention among all queries and prompts, and an FFN.

* Object queries are learned and see only each other in self-attention, so the instance
  masks and "is human" scores they yield do not depend on the prompts (a prompt-less call
  gives InstMatt its instances).
* The target query is the prompted instance: it attends to every valid query and prompt
  token; its output gives the prompted mask and its class score.
* Visual queries come from the visual sampler, the text query from the text projection;
  padding slots are masked out as keys.
* The previous round's mask is the target query's attention mask in the first cross-
  attention (the region ``prev >= 0.5``, grown by this round's positive marks and by the
  fg-over-bg conflicts, dilated by one S/16 cell); later layers use the intermediate
  predictions as masks (Mask2Former). Masks are additive biases of ``-1e4``, so a row
  whose mask is empty falls back to plain attention.
* CRM adds the conflict embeddings to both feature levels before anything else.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.common.attention import Attention, FeedForward, sine_position_embedding
from models.common.layers import MLP
from models.common.tensors import arange_like
from models.iscn.config import CONFLICT_FG_OVER_BG, POSITIVE_KINDS, ISCNConfig
from models.iscn.crm import ContrastiveReasoning
from models.iscn.text_prompt import TextPrompt
from models.iscn.visual_sampler import VisualSampler

MASKED = -1.0e4


class DecoderLayer(nn.Module):
    """Masked cross-attention -> self-attention -> FFN, each post-norm; queries ``[B,T,dim]``."""

    def __init__(self, dim: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.cross_attn = Attention(dim, heads)
        self.norm1 = nn.LayerNorm(dim)
        self.self_attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, ffn, act=nn.ReLU)
        self.norm3 = nn.LayerNorm(dim)

    def forward(
        self,
        q: torch.Tensor,
        q_pos: torch.Tensor,
        memory: torch.Tensor,
        mem_pos: torch.Tensor,
        cross_bias: torch.Tensor,
        self_bias: torch.Tensor,
    ) -> torch.Tensor:
        q = self.norm1(q + self.cross_attn(q + q_pos, memory + mem_pos, memory, cross_bias))
        qp = q + q_pos
        q = self.norm2(q + self.self_attn(qp, qp, q, self_bias))
        return self.norm3(q + self.ffn(q))


def _downsample_any(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bool ``[B,C,h,w]`` -> bool ``[B,C,*size]``: a cell is set if any pixel in it is set."""
    return F.adaptive_max_pool2d(mask.float(), size) > 0.5


class ISCNDecoder(nn.Module):
    """Prompt-dependent half of ISCN (see the module docstring).

    Inputs: ``features [B,dim,h,w]`` (S/16), ``mask_features [B,mask_dim,4h,4w]`` (S/4),
    ``prompt_maps [B,Nv,4h,4w]``, ``prompt_kinds [B,Nv]`` int64, ``text_embedding [B,384]``,
    ``has_text [B,1]``, ``conflict_map [B,1,4h,4w]`` (0/1/2 as float), ``prev_mask [B,1,4h,4w]``
    (probability), ``has_prev [B,1]``.
    Returns a dict: ``mask_logits [B,1,4h,4w]``, ``class_logits [B,2]`` (target),
    ``instance_logits [B,Nq,4h,4w]``, ``instance_class_logits [B,Nq,2]``.
    """

    def __init__(self, cfg: ISCNConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.crm = ContrastiveReasoning((d, cfg.mask_dim))
        self.sampler = VisualSampler(d, cfg.mask_dim)
        self.text = TextPrompt(cfg.text_dim, d)
        self.object_queries = nn.Embedding(cfg.num_queries, d)
        self.object_pos = nn.Embedding(cfg.num_queries, d)
        self.target_query = nn.Embedding(1, d)
        self.target_pos = nn.Embedding(1, d)
        self.layers = nn.ModuleList(
            DecoderLayer(d, cfg.heads, cfg.decoder_ffn) for _ in range(cfg.decoder_layers)
        )
        self.norm = nn.LayerNorm(d)
        self.class_head = nn.Linear(d, cfg.num_classes)
        self.mask_embed = MLP(d, d, cfg.mask_dim, 3)

    def predict(self, q: torch.Tensor, mask_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Queries ``[B,Q,dim]`` -> class logits ``[B,Q,2]`` and mask logits ``[B,Q,h,w]`` on
        ``mask_features``.
        """
        q = self.norm(q)
        masks = torch.einsum("bqc,bchw->bqhw", self.mask_embed(q), mask_features)
        return self.class_head(q), masks

    def _self_bias(self, vis_valid: torch.Tensor, txt_valid: torch.Tensor) -> torch.Tensor:
        nq = self.cfg.num_queries
        n_obj = torch.ones_like(vis_valid[:, :1]).expand(-1, nq + 1)
        key_valid = torch.cat([n_obj, vis_valid, txt_valid], dim=1)  # [B,T]
        t = key_valid.shape[1]
        idx = arange_like(t, vis_valid.float())
        is_obj = idx < nq
        structural = ~is_obj[:, None] | is_obj[None, :]  # object rows see only object keys
        allowed = structural[None] & key_valid[:, None, :]
        return torch.where(allowed, 0.0, MASKED).unsqueeze(1).to(torch.float32)

    def _prev_region(
        self,
        prev_mask: torch.Tensor,
        conflict_map: torch.Tensor,
        prompt_maps: torch.Tensor,
        prompt_kinds: torch.Tensor,
        size: tuple[int, int],
    ) -> torch.Tensor:
        positive = torch.zeros_like(prompt_kinds, dtype=torch.bool)
        for k in POSITIVE_KINDS:
            positive = positive | (prompt_kinds == k)
        marks = ((prompt_maps > 0.5) & positive[:, :, None, None]).any(dim=1, keepdim=True)
        region = (prev_mask >= 0.5) | (conflict_map.round() == CONFLICT_FG_OVER_BG) | marks
        region = _downsample_any(region, size)
        return F.max_pool2d(region.float(), 3, 1, 1) > 0.5  # [B,1,h,w]

    def forward(
        self,
        features: torch.Tensor,
        mask_features: torch.Tensor,
        prompt_maps: torch.Tensor,
        prompt_kinds: torch.Tensor,
        text_embedding: torch.Tensor,
        has_text: torch.Tensor,
        conflict_map: torch.Tensor,
        prev_mask: torch.Tensor,
        has_prev: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        nq, nv = cfg.num_queries, prompt_kinds.shape[1]
        features, mask_features = self.crm(conflict_map, [features, mask_features])
        b, d, h, w = features.shape
        pos = sine_position_embedding(h, w, d, features)
        vis, vis_valid = self.sampler(prompt_maps, prompt_kinds, features, pos, mask_features)
        txt, txt_valid = self.text(text_embedding, has_text)

        q = torch.cat(
            [
                self.object_queries.weight.unsqueeze(0).expand(b, -1, -1),
                self.target_query.weight.unsqueeze(0).expand(b, -1, -1),
                vis,
                txt,
            ],
            dim=1,
        )
        q_pos = torch.cat(
            [
                self.object_pos.weight,
                self.target_pos.weight,
                torch.zeros_like(self.object_pos.weight[:1]).expand(nv + 1, -1),
            ],
            dim=0,
        ).unsqueeze(0)
        memory = features.flatten(2).transpose(1, 2)
        mem_pos = pos.flatten(2).transpose(1, 2)
        self_bias = self._self_bias(vis_valid, txt_valid)
        mf16 = F.adaptive_avg_pool2d(mask_features, (h, w))

        # First cross-attention: object rows use their initial predictions, the target row the
        # previous round's region (only when there is a previous round), prompt rows nothing.
        prev16 = self._prev_region(prev_mask, conflict_map, prompt_maps, prompt_kinds, (h, w))
        use_prev = (has_prev.reshape(-1, 1, 1, 1) > 0.5) & torch.ones_like(prev16)
        target_allowed = prev16 | ~use_prev
        _, m16 = self.predict(q[:, :nq], mf16)
        allowed = torch.cat([m16.sigmoid() >= 0.5, target_allowed], dim=1)
        cross_bias = self._cross_bias(allowed, nv + 1)

        n_layers = len(self.layers)
        for i, layer in enumerate(self.layers):
            q = layer(q, q_pos, memory, mem_pos, cross_bias, self_bias)
            if i < n_layers - 1:
                _, m16 = self.predict(q[:, : nq + 1], mf16)
                cross_bias = self._cross_bias(m16.sigmoid() >= 0.5, nv + 1)

        class_logits, masks = self.predict(q[:, : nq + 1], mask_features)
        return {
            "mask_logits": masks[:, nq : nq + 1],
            "class_logits": class_logits[:, nq],
            "instance_logits": masks[:, :nq],
            "instance_class_logits": class_logits[:, :nq],
        }

    @staticmethod
    def _cross_bias(allowed: torch.Tensor, n_free: int) -> torch.Tensor:
        """Bool ``[B,Q,h,w]`` (rows with masks) + ``n_free`` unmasked rows -> bias ``[B,1,Q+n_free,h*w]``."""
        bias = torch.where(allowed.flatten(2), 0.0, MASKED).to(torch.float32)
        free = torch.zeros_like(bias[:, :1]).expand(-1, n_free, -1)
        return torch.cat([bias, free], dim=1).unsqueeze(1)

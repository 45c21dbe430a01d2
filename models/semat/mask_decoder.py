"""SAM's mask decoder (two-way transformer) with SEMat's matting tokens and matting adapter.

Token order: IoU token, 4 SAM mask tokens, 3 matting tokens, then the sparse prompt tokens
(the 2 box corners). The matting adapter mirrors HQ-SAM's: matting features =
``matting_embedding_encoder(image embedding) + matting_compress_vit_feat(first global ViT
block)``, then ``matting_embedding_maskfeature(SAM upscaled embedding)`` is added; the three
matting tokens go through one shared MLP (``matting_hf_mlp``) and are dotted with those
features, giving 3 trimap-like logit maps at 4× the embedding resolution.

With ``hq`` (SEMat's HQ-SAM variant) HQ-SAM's own token and modules are there too: the token
order becomes IoU, 4 mask tokens, the HQ token, 3 matting tokens; HQ features =
``embedding_encoder(image embedding) + compress_vit_feat(first global ViT block)``, plus
``embedding_maskfeature(upscaled)``; the HQ token (``hf_mlp``) dotted with them gives one map
that is added to each of the 3 matting logit maps (``hq_token_only``, as released).
"""

from __future__ import annotations

import torch
from torch import nn

from models.common.attention import Attention
from models.common.layers import MLP
from models.common.norm import LayerNorm2d


class TwoWayAttentionBlock(nn.Module):
    """Token self-attention, token->image and image->token cross-attention (SAM)."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, skip_first_layer_pe: bool) -> None:
        super().__init__()
        self.self_attn = Attention(dim, num_heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn_token_to_image = Attention(dim, num_heads, downsample_rate=2)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Module()
        self.mlp.lin1 = nn.Linear(dim, mlp_dim)
        self.mlp.lin2 = nn.Linear(mlp_dim, dim)
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.cross_attn_image_to_token = Attention(dim, num_heads, downsample_rate=2)
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(
        self, queries: torch.Tensor, keys: torch.Tensor, query_pe: torch.Tensor, key_pe: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.skip_first_layer_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)
        q, k = queries + query_pe, keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q, k, keys))
        queries = self.norm3(queries + self.mlp.lin2(torch.relu(self.mlp.lin1(queries))))
        q, k = queries + query_pe, keys + key_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(k, q, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    """``image [B,C,h,w]``, ``image_pe [1,C,h,w]``, ``tokens [B,T,C]`` -> ``(tokens [B,T,C], image
    [B,hw,C])``.
    """

    def __init__(self, depth: int, dim: int, num_heads: int, mlp_dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(dim, num_heads, mlp_dim, skip_first_layer_pe=(i == 0)) for i in range(depth)
        )
        self.final_attn_token_to_image = Attention(dim, num_heads, downsample_rate=2)
        self.norm_final_attn = nn.LayerNorm(dim)

    def forward(
        self, image: torch.Tensor, image_pe: torch.Tensor, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        keys = image.flatten(2).permute(0, 2, 1)
        key_pe = image_pe.flatten(2).permute(0, 2, 1)
        queries = tokens
        for layer in self.layers:
            queries, keys = layer(queries, keys, tokens, key_pe)
        q, k = queries + tokens, keys + key_pe
        queries = self.norm_final_attn(queries + self.final_attn_token_to_image(q, k, keys))
        return queries, keys


def token_logits(hyper: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """Each token's hypernetwork output dotted with a feature map: ``hyper [B,T,C]``, ``features
    [B,C,H,W]`` -> logits ``[B,T,H,W]``."""
    b, c, h, w = features.shape
    return (hyper @ features.reshape(b, c, h * w)).reshape(b, -1, h, w)


def output_upscaling(dim: int) -> nn.Sequential:
    """SAM's mask upscaler ``[B,dim,h,w] -> [B,dim/8,4h,4w]``: ``0`` ConvT dim->dim/4, ``1`` LN2d, ``2``
    GELU, ``3`` ConvT dim/4->dim/8, ``4`` GELU."""
    return nn.Sequential(
        nn.ConvTranspose2d(dim, dim // 4, 2, 2),
        LayerNorm2d(dim // 4),
        nn.GELU(),
        nn.ConvTranspose2d(dim // 4, dim // 8, 2, 2),
        nn.GELU(),
    )


def _upscale(in_ch: int, mid: int, out: int) -> nn.Sequential:
    """ConvT ×2 -> LN2d -> GELU -> ConvT ×2 (SAM/HQ-SAM's 4× upscalers; index layout 0,1,2,3)."""
    return nn.Sequential(
        nn.ConvTranspose2d(in_ch, mid, 2, 2), LayerNorm2d(mid), nn.GELU(), nn.ConvTranspose2d(mid, out, 2, 2)
    )


def _mask_feature(dim: int) -> nn.Sequential:
    """Conv3×3 -> LN2d -> GELU -> Conv3×3 on the upscaled embedding (HQ-SAM's ``embedding_maskfeature``)."""
    return nn.Sequential(
        nn.Conv2d(dim // 8, dim // 4, 3, 1, 1),
        LayerNorm2d(dim // 4),
        nn.GELU(),
        nn.Conv2d(dim // 4, dim // 8, 3, 1, 1),
    )


class MattingMaskDecoder(nn.Module):
    """SAM mask decoder + matting adapter.

    ``forward(image_embeddings [B,C,h,w], image_pe [1,C,h,w], sparse [B,2,C], dense [B,C,h,w],
    vit_feature [B,h,w,D])`` -> dict with ``masks_sam [B,4,4h,4w]``, ``iou_pred [B,4]``,
    ``masks_matting [B,3,4h,4w]`` (the trimap logits).
    """

    def __init__(
        self,
        dim: int,
        vit_dim: int,
        depth: int,
        num_heads: int,
        mlp_dim: int,
        num_multimask_outputs: int = 3,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
        matting_tokens: int = 3,
        hq: bool = False,
    ) -> None:
        super().__init__()
        self.hq = hq
        self.transformer = TwoWayTransformer(depth, dim, num_heads, mlp_dim)
        self.num_mask_tokens = num_multimask_outputs + 1
        self.num_matting_tokens = matting_tokens
        self.iou_token = nn.Embedding(1, dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, dim)
        self.output_upscaling = output_upscaling(dim)
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(dim, dim, dim // 8, 3) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(dim, iou_head_hidden_dim, self.num_mask_tokens, iou_head_depth)
        if hq:
            self.hf_token = nn.Embedding(1, dim)
            self.hf_mlp = MLP(dim, dim, dim // 8, 3)
            self.compress_vit_feat = _upscale(vit_dim, dim, dim // 8)
            self.embedding_encoder = _upscale(dim, dim // 4, dim // 8)
            self.embedding_maskfeature = _mask_feature(dim)
        self.matting_hf_token = nn.Embedding(matting_tokens, dim)
        self.matting_hf_mlp = MLP(dim, dim, dim // 8, 3)
        self.matting_compress_vit_feat = _upscale(vit_dim, dim, dim // 8)
        self.matting_embedding_encoder = _upscale(dim, dim // 4, dim // 8)
        self.matting_embedding_maskfeature = _mask_feature(dim)

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse: torch.Tensor,
        dense: torch.Tensor,
        vit_feature: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        b, c, h, w = image_embeddings.shape
        hq_tokens = [self.hf_token.weight] if self.hq else []
        output_tokens = torch.cat(
            [self.iou_token.weight, self.mask_tokens.weight, *hq_tokens, self.matting_hf_token.weight], dim=0
        )
        tokens = torch.cat([output_tokens.unsqueeze(0).expand(b, -1, -1), sparse], dim=1)
        hs, src = self.transformer(image_embeddings + dense, image_pe, tokens)
        n_mask, first_matting = self.num_mask_tokens, 1 + self.num_mask_tokens + len(hq_tokens)
        iou_out = hs[:, 0]
        mask_out = hs[:, 1 : 1 + n_mask]
        matting_out = hs[:, first_matting : first_matting + self.num_matting_tokens]

        upscaled = self.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))
        vit = vit_feature.permute(0, 3, 1, 2)
        matting_features = self.matting_embedding_encoder(image_embeddings) + self.matting_compress_vit_feat(
            vit
        )
        matting_mask_features = self.matting_embedding_maskfeature(upscaled) + matting_features

        hyper = torch.stack(
            [mlp(mask_out[:, i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1
        )
        masks_sam = token_logits(hyper, upscaled)
        masks_matting = token_logits(self.matting_hf_mlp(matting_out), matting_mask_features)
        if self.hq:
            hq_features = self.embedding_encoder(image_embeddings) + self.compress_vit_feat(vit)
            hq_mask_features = self.embedding_maskfeature(upscaled) + hq_features
            hq_hyper = self.hf_mlp(hs[:, 1 + n_mask]).unsqueeze(1)
            masks_matting = masks_matting + token_logits(hq_hyper, hq_mask_features)
        return {
            "masks_sam": masks_sam,
            "iou_pred": self.iou_prediction_head(iou_out),
            "masks_matting": masks_matting,
        }

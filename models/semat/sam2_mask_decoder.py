"""SAM 2's mask decoder with SEMat's matting tokens (``MaskDecoderMattingToken``).

Token order: the object-score token, the IoU token, 4 SAM mask tokens, 3 matting tokens, then
the sparse prompt tokens (box corners and the padding point). After the two-way transformer
the image tokens are upscaled 4x with SAM 2's high-resolution skips (``conv_s1`` of the
stride-8 map added after the first transposed conv, ``conv_s0`` of the stride-4 map after the
second), once by ``output_upscaling`` for the SAM tokens and once by its copy
``matting_output_upscaling`` for the matting tokens (not summed: ``upscaled_embedding_res_add``
is off in the released config); each token's MLP output dotted with its upscaled map gives
logits at the stride-4 resolution. As in the official matting-token decoder, only the first
SAM token's logits are returned, and the IoU and object-score heads are kept (they are in the
checkpoint) but not run.
"""

from __future__ import annotations

import torch
from torch import nn

from models.common.layers import MLP
from models.semat.mask_decoder import TwoWayTransformer, output_upscaling, token_logits


def _upscale_with_skips(
    up: nn.Sequential, src: torch.Tensor, feat_s0: torch.Tensor, feat_s1: torch.Tensor
) -> torch.Tensor:
    """SAM 2's high-resolution upscaling: ``[B,C,h,w]`` -> ``[B,C/8,4h,4w]``."""
    x = up[2](up[1](up[0](src) + feat_s1))
    return up[4](up[3](x) + feat_s0)


class SAM2MattingMaskDecoder(nn.Module):
    """``forward(image_embed [B,C,h,w], image_pe [1,C,h,w], sparse [B,T,C], dense [B,C,h,w], feat_s0
    [B,C/8,4h,4w], feat_s1 [B,C/4,2h,2w])`` -> ``(masks_sam [B,1,4h,4w], masks_matting [B,3,4h,4w])``.

    ``conv_s0``/``conv_s1`` project the stride-4/8 FPN maps to ``feat_s0``/``feat_s1`` (SAM 2 runs
    them once per image, in ``forward_image``).
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        mlp_dim: int,
        num_multimask_outputs: int = 3,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
        matting_tokens: int = 3,
    ) -> None:
        super().__init__()
        self.transformer = TwoWayTransformer(depth, dim, num_heads, mlp_dim)
        self.num_mask_tokens = num_multimask_outputs + 1
        self.num_matting_tokens = matting_tokens
        self.iou_token = nn.Embedding(1, dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, dim)
        self.obj_score_token = nn.Embedding(1, dim)
        self.output_upscaling = output_upscaling(dim)
        self.conv_s0 = nn.Conv2d(dim, dim // 8, 1)
        self.conv_s1 = nn.Conv2d(dim, dim // 4, 1)
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(dim, dim, dim // 8, 3) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(
            dim, iou_head_hidden_dim, self.num_mask_tokens, iou_head_depth, sigmoid_output=True
        )
        self.pred_obj_score_head = MLP(dim, dim, 1, 3)
        self.matting_mask_tokens = nn.Embedding(matting_tokens, dim)
        self.matting_output_hypernetworks_mlps = nn.ModuleList(
            MLP(dim, dim, dim // 8, 3) for _ in range(matting_tokens)
        )
        self.matting_output_upscaling = output_upscaling(dim)

    def forward(
        self,
        image_embed: torch.Tensor,
        image_pe: torch.Tensor,
        sparse: torch.Tensor,
        dense: torch.Tensor,
        feat_s0: torch.Tensor,
        feat_s1: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b, c, h, w = image_embed.shape
        output_tokens = torch.cat(
            [
                self.obj_score_token.weight,
                self.iou_token.weight,
                self.mask_tokens.weight,
                self.matting_mask_tokens.weight,
            ],
            dim=0,
        )
        tokens = torch.cat([output_tokens.unsqueeze(0).expand(b, -1, -1), sparse], dim=1)
        hs, src = self.transformer(image_embed + dense, image_pe, tokens)
        first = 2  # after the object-score and IoU tokens
        mask_out = hs[:, first : first + self.num_mask_tokens]
        matting_out = hs[
            :, first + self.num_mask_tokens : first + self.num_mask_tokens + self.num_matting_tokens
        ]
        src = src.transpose(1, 2).reshape(b, c, h, w)
        upscaled = _upscale_with_skips(self.output_upscaling, src, feat_s0, feat_s1)
        matting_upscaled = _upscale_with_skips(self.matting_output_upscaling, src, feat_s0, feat_s1)
        sam_hyper = self.output_hypernetworks_mlps[0](mask_out[:, 0]).unsqueeze(1)
        matting_hyper = torch.stack(
            [mlp(matting_out[:, i]) for i, mlp in enumerate(self.matting_output_hypernetworks_mlps)], dim=1
        )
        return token_logits(sam_hyper, upscaled), token_logits(matting_hyper, matting_upscaled)

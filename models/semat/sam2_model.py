"""SEMat's SAM2 variant (``SEMat_SAM2.pth``): box-prompted matting on a LoRA-tuned SAM 2.

Forward (one box per image), as ``SamHqMatte`` runs it with ``sam2=True``:

1. The box (xyxy in the letterboxed S frame) is rasterised to a mask and embedded by the
   trunk's ``bbox_mask_patch_embed`` beside the image (``HieraBBoxMask``).
2. Hiera (+ LoRA) and the FPN neck -> maps at strides 4, 8, 16 (``models/semat/hiera.py``); the
   mask decoder's ``conv_s0``/``conv_s1`` project the stride-4/8 maps (SAM 2's ``forward_image``)
   and ``no_mem_embed`` is added to the stride-16 one (``directly_add_no_mem_embed``).
3. SAM 2's prompt encoder (the box as two points labelled 2 and 3, plus the padding point) and
   the matting-token mask decoder -> SAM logits and 3 trimap logits at S/4.
4. The trimap logits, bilinearly upsampled to S and divided by 6.5, are concatenated to the
   normalised image; the multi-scale UNet decoder turns that and the three maps into alpha.

The module tree uses the official names (``sam_model.image_encoder|sam_prompt_encoder|
sam_mask_decoder|no_mem_embed``, ``matting_decoder``); SAM 2's video-memory modules, in the
checkpoint but unused for images, are dropped on import (``models.semat.model.official_key``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.common.lora import merge_lora
from models.common.norm import ImageNormalizer
from models.semat.config import SEMatSAM2Config
from models.semat.hiera import HieraImageEncoder
from models.semat.matting_decoder import MultiScaleMattingDetailDecoder
from models.semat.prompt_encoder import PromptEncoder, box_mask
from models.semat.sam2_mask_decoder import SAM2MattingMaskDecoder


class SAM2Container(nn.Module):
    """The parts of SAM 2's ``SAM2Base`` that an image prompt runs, under their official names."""

    def __init__(self, cfg: SEMatSAM2Config) -> None:
        super().__init__()
        self.image_encoder = HieraImageEncoder(cfg)
        self.sam_prompt_encoder = PromptEncoder(cfg.d_model)
        self.sam_mask_decoder = SAM2MattingMaskDecoder(
            cfg.d_model,
            cfg.decoder_depth,
            cfg.decoder_heads,
            cfg.decoder_mlp_dim,
            cfg.num_multimask_outputs,
            cfg.iou_head_depth,
            cfg.iou_head_hidden_dim,
            cfg.matting_tokens,
        )
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, cfg.d_model))


class SEMatSAM2(nn.Module):
    """``image [B,3,S,S]`` in [0,1], ``box [B,4]`` -> dict: ``alpha [B,1,S,S]``, ``trimap_logits
    [B,3,S/4,S/4]``, ``masks_sam [B,1,S/4,S/4]``. S must be a multiple of 32."""

    def __init__(self, cfg: SEMatSAM2Config, lora: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        self.normalize = ImageNormalizer()
        self.sam_model = SAM2Container(cfg)
        self.matting_decoder = MultiScaleMattingDetailDecoder(
            cfg.d_model,
            cfg.vit_feat_in,
            cfg.big_kernel,
            cfg.big_channels,
            cfg.down_channels,
            cfg.down_kernel,
            cfg.up_channels,
            cfg.up_kernel,
            cfg.block_num,
        )
        if lora:
            self.sam_model.image_encoder.add_lora(cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout)

    def merge_lora(self) -> SEMatSAM2:
        """Fold the LoRA adapters into the encoder weights (for export); returns self."""
        merge_lora(self.sam_model.image_encoder)
        return self

    def forward(self, image: torch.Tensor, box: torch.Tensor) -> dict[str, torch.Tensor]:
        s_h, s_w = image.shape[-2], image.shape[-1]
        x = self.normalize(image)
        sam = self.sam_model
        decoder = sam.sam_mask_decoder
        level0, level1, level2 = sam.image_encoder(x, box_mask(box, s_h, s_w))
        feat_s0, feat_s1 = decoder.conv_s0(level0), decoder.conv_s1(level1)
        image_embed = level2 + sam.no_mem_embed.reshape(1, -1, 1, 1)
        grid = (image_embed.shape[-2], image_embed.shape[-1])
        sparse, dense = sam.sam_prompt_encoder(box, s_w, grid, pad_point=True)
        image_pe = sam.sam_prompt_encoder.pe_layer.grid(grid[0], grid[1])
        masks_sam, trimap = decoder(image_embed, image_pe, sparse, dense, feat_s0, feat_s1)
        guide = F.interpolate(trimap, size=(s_h, s_w), mode="bilinear", align_corners=False)
        image6 = torch.cat([x, guide / self.cfg.norm_mask_logits], dim=1)
        alpha = self.matting_decoder(image6, feat_s0, feat_s1, image_embed)
        return {"alpha": alpha, "trimap_logits": trimap, "masks_sam": masks_sam}

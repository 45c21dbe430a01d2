"""SEMat: box-prompted natural-image matting on a LoRA-tuned SAM with a UNet matting decoder.

Forward (one box per image):

1. The box (xyxy in the letterboxed S frame) is rasterised in-graph to a mask (rows
   ``floor(y0)..floor(y1)-1``, columns ``floor(x0)..floor(x1)-1``, as the official loop does),
   concatenated to the normalised image and embedded by ``condition_layer`` (prompt
   enhancement), which is added to the ViT patch embedding.
2. SAM ViT (+ LoRA) -> neck embedding and the global-block features.
3. SAM prompt encoder (box corners) + mask decoder with 3 matting tokens -> trimap logits at S/4.
4. Trimap logits, bilinearly upsampled to S and divided by 6.5, are concatenated to the
   normalised image; the UNet matting decoder turns that and the ViT features into alpha.

The module tree uses the official names (``sam_model.image_encoder|prompt_encoder|
mask_decoder``, ``condition_layer``, ``matting_decoder``); :func:`official_key` maps a key of
the released checkpoint onto ours.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

from models.common.lora import merge_lora
from models.common.norm import ImageNormalizer
from models.common.wire import from_wire
from models.semat.config import PRESETS, SAM2_PRESETS, SEMatConfig
from models.semat.image_encoder import ConditionLayer, SAMImageEncoder
from models.semat.mask_decoder import MattingMaskDecoder
from models.semat.matting_decoder import MattingDetailDecoder
from models.semat.prompt_encoder import PromptEncoder, box_mask
from models.semat.sam2_model import SEMatSAM2


class SamContainer(nn.Module):
    """Holds SAM's three parts under their official attribute names."""

    def __init__(self, cfg: SEMatConfig) -> None:
        super().__init__()
        self.image_encoder = SAMImageEncoder(cfg)
        self.prompt_encoder = PromptEncoder(cfg.prompt_dim)
        self.mask_decoder = MattingMaskDecoder(
            cfg.prompt_dim,
            cfg.embed_dim,
            cfg.decoder_depth,
            cfg.decoder_heads,
            cfg.decoder_mlp_dim,
            cfg.num_multimask_outputs,
            cfg.iou_head_depth,
            cfg.iou_head_hidden_dim,
            cfg.matting_tokens,
            cfg.hq,
        )


class SEMat(nn.Module):
    """``image [B,3,S,S]`` in [0,1], ``box [B,4]`` -> dict: ``alpha [B,1,S,S]``, ``trimap_logits
    [B,3,S/4,S/4]``,
    ``masks_sam [B,4,S/4,S/4]``, ``iou_pred [B,4]``. S must be a multiple of the patch size.
    """

    def __init__(self, cfg: SEMatConfig, lora: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        self.normalize = ImageNormalizer()
        self.sam_model = SamContainer(cfg)
        self.condition_layer = ConditionLayer(cfg.embed_dim, cfg.patch_size)
        self.matting_decoder = MattingDetailDecoder(
            cfg.embed_dim,
            len(cfg.global_attn_indexes),
            cfg.vit_feat_proj_dim,
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

    def merge_lora(self) -> SEMat:
        """Fold the LoRA adapters into the encoder weights (for export); returns self."""
        merge_lora(self.sam_model.image_encoder)
        return self

    def forward(self, image: torch.Tensor, box: torch.Tensor) -> dict[str, torch.Tensor]:
        s_h, s_w = image.shape[-2], image.shape[-1]
        x = self.normalize(image)
        condition = self.condition_layer(torch.cat([x, box_mask(box, s_h, s_w)], dim=1))
        sam = self.sam_model
        embeddings, interm = sam.image_encoder(x, condition)
        grid = (embeddings.shape[-2], embeddings.shape[-1])
        sparse, dense = sam.prompt_encoder(box, s_w, grid)
        image_pe = sam.prompt_encoder.pe_layer.grid(grid[0], grid[1])
        dec = sam.mask_decoder(embeddings, image_pe, sparse, dense, interm[0])
        trimap = dec["masks_matting"]
        guide = F.interpolate(trimap, size=(s_h, s_w), mode="bilinear", align_corners=False)
        alpha = self.matting_decoder(torch.cat([x, guide / self.cfg.norm_mask_logits], dim=1), interm)
        return {
            "alpha": alpha,
            "trimap_logits": trimap,
            "masks_sam": dec["masks_sam"],
            "iou_pred": dec["iou_pred"],
        }


class SEMatExport(nn.Module):
    """Exported ``semat``: ``(image [B,3,S,S], box [B,4]) -> (alpha [B,1,S,S], trimap_logits
    [B,3,S/4,S/4])``.
    """

    def __init__(self, model: SEMat) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor, box: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(from_wire(image), box)
        return out["alpha"], out["trimap_logits"]


# SAM 2's video-memory parts (in SEMat_SAM2.pth, never run for an image): dropped on import.
SAM2_VIDEO_ONLY = tuple(
    f"sam_model.{name}"
    for name in (
        "mask_downsample.",
        "memory_attention.",
        "memory_encoder.",
        "maskmem_tpos_enc",
        "no_mem_pos_enc",
        "no_obj_ptr",
        "obj_ptr_proj.",
        "obj_ptr_tpos_proj.",
    )
)
_SAM2_MLP = re.compile(r"^(sam_model\.sam_mask_decoder\.transformer\.layers\.\d+\.mlp)\.layers\.([01])\.")


def official_key(key: str) -> str | None:
    """Maps a key of a released SEMat checkpoint (``model`` dict; SAM, HQ-SAM or SAM2 variant) onto
    this module's names (``None``: a key to skip).

    Strips peft's ``base_model.model.`` wrapper level, drops the training-only
    ``frozen_mask_decoder`` copy and SAM 2's video-memory modules, and names SAM 2's two-way
    transformer MLP (``mlp.layers.0/1``) as SAM's (``mlp.lin1/lin2``), the module both share.
    """
    if key.startswith("sam_model.frozen_mask_decoder.") or key.startswith(SAM2_VIDEO_ONLY):
        return None
    key = key.replace("image_encoder.base_model.model.", "image_encoder.")
    return _SAM2_MLP.sub(lambda m: f"{m.group(1)}.lin{int(m.group(2)) + 1}.", key)


def build_semat(preset: str = "tiny") -> SEMat | SEMatSAM2:
    """SEMat at a size preset, LoRA unmerged: ``tiny``, ``paper`` (SAM ViT-L shapes), ``paper_hq``
    (HQ-SAM), ``paper_sam2`` (SAM 2 Hiera-L; :class:`models.semat.sam2_model.SEMatSAM2`) and the
    parity fixtures' ``parity*`` presets."""
    if preset in SAM2_PRESETS:
        return SEMatSAM2(SAM2_PRESETS[preset])
    return SEMat(PRESETS[preset])

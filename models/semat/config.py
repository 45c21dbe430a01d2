"""Size presets of SEMat (SAM-based box-prompted matting).

The ``paper`` preset is the released SEMat (SAM variant): a SAM ViT-L encoder with LoRA
rank 16 on ``qkv``/``proj``, the SAM prompt encoder and mask decoder with 3 matting tokens,
and the UNet matting decoder, with the official parameter names and shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class SEMatConfig:
    """Hyper-parameters of SEMat; see ``models/semat/*`` for where each is used."""

    # SAM ViT image encoder.
    img_size: int = 512  # the size the position embedding is stored for; other sizes interpolate it
    patch_size: int = 16
    embed_dim: int = 96
    depth: int = 4
    num_heads: int = 3
    mlp_ratio: float = 4.0
    window_size: int = 8
    global_attn_indexes: tuple[int, ...] = (1, 3)
    prompt_dim: int = 64  # neck output = prompt/decoder width (256 in SAM)
    # LoRA on the encoder's qkv/proj (and, matching peft's suffix rule, patch_embed.proj).
    lora_rank: int = 4
    lora_alpha: float = 4.0
    lora_dropout: float = 0.0
    # SAM mask decoder + matting adapter.
    decoder_depth: int = 2
    decoder_heads: int = 4
    decoder_mlp_dim: int = 256
    num_multimask_outputs: int = 3
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 64
    matting_tokens: int = 3
    hq: bool = False  # HQ-SAM's token and modules (SEMat's HQ-SAM variant)
    # UNet matting decoder.
    big_kernel: int = 5
    big_channels: tuple[int, int] = (8, 8)
    vit_feat_proj_dim: int = 32
    down_channels: tuple[tuple[int, int], ...] = ((8, 8), (8, 16), (16, 32), (32, 64))
    down_kernel: int = 3
    up_channels: tuple[tuple[int, int], ...] = ((64, 32), (32, 16), (16, 8), (8, 8))
    up_kernel: int = 3
    block_num: int = 1
    norm_mask_logits: float = 6.5


PRESETS: dict[str, SEMatConfig] = {
    "tiny": SEMatConfig(),
    "paper": SEMatConfig(
        img_size=1024,
        embed_dim=1024,
        depth=24,
        num_heads=16,
        window_size=14,
        global_attn_indexes=(5, 11, 17, 23),
        prompt_dim=256,
        lora_rank=16,
        lora_alpha=16.0,
        lora_dropout=0.1,
        decoder_depth=2,
        decoder_heads=8,
        decoder_mlp_dim=2048,
        iou_head_hidden_dim=256,
        big_kernel=13,
        big_channels=(16, 32),
        vit_feat_proj_dim=256,
        down_channels=((32, 32), (32, 64), (64, 128), (128, 256)),
        down_kernel=5,
        up_channels=((256, 128), (128, 64), (64, 32), (32, 16)),
        up_kernel=3,
        block_num=2,
    ),
    # The parity fixtures' reduced configuration (tests/fixtures/official/semat/, made from the
    # official code with the same code paths: 256 px input, ViT width 64, depth 4).
    "parity": SEMatConfig(
        img_size=256,
        embed_dim=64,
        depth=4,
        num_heads=2,
        window_size=6,
        global_attn_indexes=(1, 3),
        prompt_dim=32,
        lora_rank=16,
        lora_alpha=16.0,
        lora_dropout=0.1,
        decoder_depth=2,
        decoder_heads=4,
        decoder_mlp_dim=64,
        iou_head_hidden_dim=32,
        big_kernel=13,
        big_channels=(8, 8),
        vit_feat_proj_dim=32,
        down_channels=((8, 4), (4, 8), (8, 8), (8, 16)),
        down_kernel=5,
        up_channels=((16, 8), (8, 8), (8, 4), (4, 4)),
        up_kernel=3,
        block_num=2,
    ),
}

# SEMat's HQ-SAM variant: the same network plus HQ-SAM's token and modules.
PRESETS["paper_hq"] = replace(PRESETS["paper"], hq=True)
PRESETS["parity_hq"] = replace(PRESETS["parity"], hq=True)


@dataclass(frozen=True)
class SEMatSAM2Config:
    """Hyper-parameters of SEMat's SAM2 variant (``SEMat_SAM2.pth``): a Hiera trunk with SEMat's
    box-mask patch embedding, SAM2's FPN neck, prompt encoder and high-resolution mask decoder
    with 3 matting tokens, and the UNet matting decoder fed SAM2's multi-scale features.
    See ``models/semat/hiera.py``, ``sam2_mask_decoder.py`` and ``sam2_model.py``."""

    img_size: int = 1024
    # Hiera trunk (sam2_hiera_l.yaml).
    embed_dim: int = 144
    num_heads: int = 2
    stages: tuple[int, ...] = (2, 6, 36, 4)
    global_att_blocks: tuple[int, ...] = (23, 33, 43)
    window_spec: tuple[int, ...] = (8, 4, 16, 8)
    window_pos_embed_bkg_spatial_size: tuple[int, int] = (7, 7)
    mlp_ratio: float = 4.0
    # FPN neck / prompt and decoder width; only the three finest levels are kept (scalp 1).
    d_model: int = 256
    fpn_top_down_levels: tuple[int, ...] = (2, 3)
    # LoRA (peft, targets "qkv"/"proj": every attn.qkv/proj, the stage-change proj, both patch embeds).
    lora_rank: int = 16
    lora_alpha: float = 16.0
    lora_dropout: float = 0.1
    # SAM2 mask decoder with matting tokens.
    decoder_depth: int = 2
    decoder_heads: int = 8
    decoder_mlp_dim: int = 2048
    num_multimask_outputs: int = 3
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256
    matting_tokens: int = 3
    # UNet matting decoder (sam2_multi_scale_feates): the stride-4 and stride-8 features join the
    # down path before blocks 2 and 3, so their inputs are widened by d_model/8 and d_model/4.
    big_kernel: int = 13
    big_channels: tuple[int, int] = (16, 32)
    vit_feat_in: int = 1024  # only the shape of the (unused) vit_feat_aggregation conv
    down_channels: tuple[tuple[int, int], ...] = ((32, 32), (32, 64), (96, 128), (192, 256))
    down_kernel: int = 5
    up_channels: tuple[tuple[int, int], ...] = ((256, 128), (128, 64), (64, 32), (32, 16))
    up_kernel: int = 3
    block_num: int = 2
    norm_mask_logits: float = 6.5


SAM2_PRESETS: dict[str, SEMatSAM2Config] = {
    "paper_sam2": SEMatSAM2Config(),
    # The parity fixtures' reduced configuration (tests/fixtures/official/semat/sam2_*, made from
    # the official code with the same code paths): 256 px, Hiera width 16, 8 blocks, windows that
    # need padding in stage 3 and at the q-pooled stage change.
    "parity_sam2": SEMatSAM2Config(
        img_size=256,
        embed_dim=16,
        num_heads=1,
        stages=(1, 2, 4, 1),
        global_att_blocks=(5, 6),
        window_spec=(8, 4, 6, 4),
        window_pos_embed_bkg_spatial_size=(4, 4),
        d_model=32,
        decoder_heads=4,
        decoder_mlp_dim=64,
        iou_head_hidden_dim=32,
        big_channels=(8, 8),
        vit_feat_in=64,
        down_channels=((8, 8), (8, 8), (12, 16), (24, 32)),
        up_channels=((32, 16), (16, 8), (8, 8), (8, 4)),
    ),
}

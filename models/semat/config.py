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

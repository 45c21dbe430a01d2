"""Size presets of ISCN (the localisation network of DFIMat)."""

from __future__ import annotations

from dataclasses import dataclass

# Prompt kinds of the visual sampler (the values of ``prompt_kinds``).
KIND_PAD, KIND_FG_CLICK, KIND_BG_CLICK, KIND_FG_SCRIBBLE, KIND_BG_SCRIBBLE, KIND_BOX = range(6)
NUM_PROMPT_KINDS = 6
FG_KINDS = (KIND_FG_CLICK, KIND_FG_SCRIBBLE)
BG_KINDS = (KIND_BG_CLICK, KIND_BG_SCRIBBLE)
POSITIVE_KINDS = (KIND_FG_CLICK, KIND_FG_SCRIBBLE, KIND_BOX)
# Conflict-map values of the contrastive reasoning module.
CONFLICT_NONE, CONFLICT_FG_OVER_BG, CONFLICT_BG_OVER_FG = 0, 1, 2
TEXT_DIM = 384  # all-MiniLM-L6-v2 sentence embeddings


@dataclass(frozen=True)
class ISCNConfig:
    """Hyper-parameters of ISCN.

    ``stage_channels``/``stage_blocks``: CNN stages at strides 4, 8, 16 (after a stride-2 stem
    of ``stem_channels``). ``dim``: width of the global encoder, the queries and the S/16
    features. ``mask_dim``: width of the S/4 per-pixel mask features.
    """

    # "mobilenetv2" (stem_channels / stage_* below, from scratch) or "efficientnet_lite0"
    # (ImageNet-initialised in training; its channels are fixed, stem_channels / stage_* unused).
    backbone: str = "mobilenetv2"
    stem_channels: int = 16
    stage_channels: tuple[int, int, int] = (32, 64, 128)
    stage_blocks: tuple[int, int, int] = (2, 3, 3)
    expand: int = 2
    dim: int = 128
    heads: int = 4
    encoder_layers: int = 2
    mask_dim: int = 32
    decoder_layers: int = 3
    decoder_ffn: int = 256
    num_queries: int = 16
    max_visual_prompts: int = 16
    text_dim: int = TEXT_DIM
    num_classes: int = 2  # 0 = not a human (or no object), 1 = human


PRESETS: dict[str, ISCNConfig] = {
    "tiny": ISCNConfig(),
    # tiny with the ImageNet-initialised EfficientNet-Lite0 CNN (models/common/efficientnet_lite.py):
    # two candidates trained and measured on real photos, neither shipped (README, "Training").
    "tiny_lite0": ISCNConfig(backbone="efficientnet_lite0"),
    # Mask2Former/SEEM-scale: 256-d queries, 6 encoder layers, 9 decoder layers, 100 queries.
    "paper": ISCNConfig(
        stem_channels=64,
        stage_channels=(128, 256, 512),
        stage_blocks=(3, 4, 6),
        expand=4,
        dim=256,
        heads=8,
        encoder_layers=6,
        mask_dim=256,
        decoder_layers=9,
        decoder_ffn=2048,
        num_queries=100,
        max_visual_prompts=16,
    ),
}

"""SEMat (COCO-Matting paper): SAM ViT + LoRA + prompt-enhanced patch embedding + matting decoders,
and its SAM2 variant (Hiera + SAM 2's decoder)."""

from models.semat.config import PRESETS, SAM2_PRESETS, SEMatConfig, SEMatSAM2Config
from models.semat.model import SEMat, SEMatExport, build_semat, official_key
from models.semat.prompt_encoder import box_mask
from models.semat.sam2_model import SEMatSAM2

__all__ = [
    "PRESETS",
    "SAM2_PRESETS",
    "SEMat",
    "SEMatConfig",
    "SEMatExport",
    "SEMatSAM2",
    "SEMatSAM2Config",
    "box_mask",
    "build_semat",
    "official_key",
]

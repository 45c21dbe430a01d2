"""SEMat (COCO-Matting paper): SAM ViT + LoRA + prompt-enhanced patch embedding + matting decoders."""

from models.semat.config import PRESETS, SEMatConfig
from models.semat.model import SEMat, SEMatExport, box_mask, build_semat, official_key

__all__ = ["PRESETS", "SEMat", "SEMatConfig", "SEMatExport", "box_mask", "build_semat", "official_key"]

"""ISCN, the interactive localisation network of DFIMat (one module per component)."""

from models.iscn.config import PRESETS, ISCNConfig
from models.iscn.crm import ContrastiveReasoning, compute_conflict_map
from models.iscn.model import ISCN, ISCNDecoderExport, ISCNEncoderExport, build_iscn

__all__ = [
    "ISCN",
    "PRESETS",
    "ContrastiveReasoning",
    "ISCNConfig",
    "ISCNDecoderExport",
    "ISCNEncoderExport",
    "build_iscn",
    "compute_conflict_map",
]

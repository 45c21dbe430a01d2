"""Builder registry: one place that knows every model family, its presets and its exported parts.

``build_model(family, preset)`` builds the trainable network (like segment-anything's
``sam_model_registry``); ``export_module(name, model)`` wraps a built family model into the
module whose ``forward`` is the exported I/O of ``name`` (``models/io_spec.py``). Trained
weights are state_dicts of ``build_model(family, preset)`` (for SEMat: with LoRA unmerged).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from models import instmatt, iscn, mrn, semat, smat

FAMILIES: dict[str, Callable[[str], nn.Module]] = {
    "iscn": iscn.build_iscn,
    "mrn": mrn.build_mrn,
    "semat": semat.build_semat,
    "smat": smat.build_smat,
    "instmatt": instmatt.build_instmatt,
}

PRESET_CONFIGS: dict[str, dict[str, Any]] = {
    "iscn": iscn.PRESETS,
    "mrn": mrn.PRESETS,
    "semat": {**semat.PRESETS, **semat.SAM2_PRESETS},
    "smat": smat.PRESETS,
    "instmatt": instmatt.PRESETS,
}

PRESETS = ("tiny", "paper")

# Where the shipped trained weights (``<family>.pt`` + provenance JSON) and the imported official
# checkpoints live; ``matteserve train`` and ``import-checkpoint`` write here, ``export`` reads.
SHIPPED_WEIGHTS = Path(__file__).resolve().parent / "weights"

# Exported model name -> (family, wrapper class).
EXPORTS: dict[str, tuple[str, Callable[[Any], nn.Module]]] = {
    "iscn_encoder": ("iscn", iscn.ISCNEncoderExport),
    "iscn_decoder": ("iscn", iscn.ISCNDecoderExport),
    "mrn": ("mrn", mrn.MRNExport),
    "semat": ("semat", semat.SEMatExport),
    "smat_encoder": ("smat", smat.SMatEncoderExport),
    "smat_decoder": ("smat", smat.SMatDecoderExport),
    "instmatt": ("instmatt", instmatt.InstMattExport),
}


def config_for(family: str, preset: str = "tiny") -> Any:
    """The frozen config dataclass of ``family`` at ``preset``."""
    try:
        return PRESET_CONFIGS[family][preset]
    except KeyError as exc:
        raise KeyError(f"unknown model family/preset {family!r}/{preset!r}") from exc


def build_model(family: str, preset: str = "tiny") -> nn.Module:
    """The trainable network of ``family`` (``iscn``, ``mrn``, ``semat``, ``smat``, ``instmatt``) at
    ``preset``.
    """
    if family not in FAMILIES:
        raise KeyError(f"unknown model family {family!r}; known: {sorted(FAMILIES)}")
    if preset not in PRESET_CONFIGS[family]:
        raise KeyError(f"unknown preset {preset!r} for {family!r}; known: {sorted(PRESET_CONFIGS[family])}")
    return FAMILIES[family](preset)


def family_of(name: str) -> str:
    """Family of an exported model name (``iscn_decoder`` -> ``iscn``)."""
    return EXPORTS[name][0]


def export_module(name: str, model: nn.Module) -> nn.Module:
    """Wraps a built family model into the exported ``name``'s I/O (see ``models/io_spec.py``)."""
    return EXPORTS[name][1](model)

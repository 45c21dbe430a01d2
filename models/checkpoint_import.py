"""Import the papers' released checkpoints onto the networks of ``models/official/``.

``import_checkpoint(family, path, variant)`` reads the file as the authors ship it, rewrites
its tensors into our parameter names and refuses — listing every missing, unexpected and
mis-shaped key — unless the result matches the network exactly; it never loads part of a
file. It writes ``<out>/<family>-<variant>.pt`` (a plain state_dict of
``build_official(family, preset)``) and ``<family>-<variant>.json`` (provenance: the source
file's name, size and sha256, the official repository and commit, the licence the authors
state).

Container handling, per the official code (``../shared/reference/official-models.md``):

* SEMat (SAM, HQ-SAM and SAM2 variants): detectron2's ``DetectionCheckpointer`` file
  (``model``); peft's wrapper level ``image_encoder.base_model.model.`` is removed
  (``models.semat.model.official_key``), ``base_layer``/``lora_A.default``/``lora_B.default``
  are our LoRA modules' names, the training-only ``frozen_mask_decoder`` copy (SAM, HQ-SAM)
  and SAM 2's video-memory modules (SAM2) are dropped, NaiveSyncBatchNorm has BatchNorm's
  keys; LoRA is merged and the merged weights are written.
* SMat: detectron2's ``DetectionCheckpointer`` file, the state_dict under ``model``; the
  DINOv2 backbone (fine-tuned) is in it; our ``models/smat.py`` already has the official layout.
* MGMatting / InstMatt: ``{'iter','loss','state_dict','opt_state_dict','lr_state_dict'}``, keys
  with the DDP ``module.`` prefix, SyncBatchNorm saved with BatchNorm's keys, every
  spectral-normalised convolution as ``<conv>.module.weight_bar/weight_u/weight_v`` — folded
  here into ``<conv>.weight = weight_bar / (u · (weight_bar.view(out, -1) @ v))``, the weight
  the official eval-mode forward computes (it skips the power iteration).

Files are read with ``torch.load(weights_only=True)``: a checkpoint is data, and a pickle that
needs arbitrary code to load is refused with that reason.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from models.common.lora import merge_lora
from models.official.instmatt import PRESETS as INSTMATT_PRESETS
from models.official.instmatt import build_instmatt_official
from models.official.mgmatting import PRESETS as MGMATTING_PRESETS
from models.official.mgmatting import build_mgmatting
from models.registry import SHIPPED_WEIGHTS, build_model
from models.semat.model import official_key as semat_official_key

SN_SUFFIXES = (".module.weight_bar", ".module.weight_u", ".module.weight_v")


class CheckpointError(ValueError):
    """The file cannot be imported; the message says why (and lists the offending keys)."""


@dataclass(frozen=True)
class OfficialFamily:
    """What the importer knows about one family's released files."""

    repository: str
    commit: str
    licence: str
    files: dict[str, str]  # variant -> the authors' file name
    build: Callable[[str], nn.Module]
    presets: tuple[str, ...]
    layout: str  # the exported networks' layout (``models.io_spec.OFFICIAL_LAYOUTS``)
    spectral_norm: bool = False
    rename: Callable[[str], str | None] | None = None  # official key -> ours (None: drop the key)
    merge_lora: bool = False  # the network has LoRA modules: merged after loading, saved merged
    unsupported: dict[str, str] = field(default_factory=dict)  # variant -> why it cannot be imported
    # variant -> preset suffix, for variants with another architecture (SEMat's HQ-SAM: "_hq")
    variant_presets: dict[str, str] = field(default_factory=dict)


FAMILIES: dict[str, OfficialFamily] = {
    "mgmatting": OfficialFamily(
        repository="https://github.com/yucornetto/MGMatting",
        commit="2bac93f01a6482d69229065ba16096fece95b34c",
        licence="research only, CC BY-NC 2.0 (the authors' LICENCE.md and README)",
        files={"dim-100k": "MGMatting-DIM-100k", "rwp-100k": "MGMatting-RWP-100k"},
        build=build_mgmatting,
        presets=tuple(MGMATTING_PRESETS),
        layout="mgmatting",
        spectral_norm=True,
    ),
    "semat": OfficialFamily(
        repository="https://github.com/XiaRho/SEMat",
        commit="015c6279a01d3f73152721278e36cfea33d2cf89",
        licence="CC BY-NC 4.0 (the authors' repository)",
        files={"sam": "SEMat_SAM.pth", "hq-sam": "SEMat_HQ-SAM.pth", "sam2": "SEMat_SAM2.pth"},
        build=lambda preset: build_model("semat", preset),
        presets=("paper", "parity", "paper_hq", "parity_hq", "paper_sam2", "parity_sam2"),
        layout="semat",
        rename=semat_official_key,
        merge_lora=True,
        variant_presets={"hq-sam": "_hq", "sam2": "_sam2"},
    ),
    "smat": OfficialFamily(
        repository="https://github.com/zixuan-ye/SmartMatting",
        commit="fd2ba3231bafad9efd693ac19e679bd8a6de7a53",
        licence="research / non-commercial only (the authors' README; the repository has no licence file)",
        files={"official": "SMat.pth"},
        build=lambda preset: build_model("smat", preset),
        presets=("paper", "parity"),
        layout="smat",
    ),
    "instmatt": OfficialFamily(
        repository="https://github.com/nowsyn/InstMatt",
        commit="5845dee7f727c2f335d08bd6ca7b5b5a6ac4b662",
        licence="none stated (the repository has no licence file: all rights reserved by default)",
        files={"official": "best_model.pth"},
        build=build_instmatt_official,
        presets=tuple(INSTMATT_PRESETS),
        layout="instmatt_official",
        spectral_norm=True,
    ),
}


def build_official(family: str, preset: str = "paper") -> nn.Module:
    """The official-layout network of ``family`` (``mgmatting``, ``instmatt``, ``smat``, ``semat``) at
    ``preset``."""
    spec = _family(family)
    if preset not in spec.presets:
        raise CheckpointError(f"unknown preset {preset!r} for {family!r}; known: {', '.join(spec.presets)}")
    return spec.build(preset)


def _family(family: str) -> OfficialFamily:
    try:
        return FAMILIES[family]
    except KeyError:
        raise CheckpointError(f"unknown family {family!r}; importable: {', '.join(FAMILIES)}") from None


def read_container(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file: its ``state_dict`` (trainer format), ``model``
    (detectron2 format) or the file itself when it is a plain state_dict."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except Exception as exc:
        raise CheckpointError(f"{path}: not a loadable checkpoint with plain tensors ({exc})") from exc
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: found no state_dict (a mapping of names to tensors) in the file")
    return dict(obj)


def strip_prefix(state: dict[str, torch.Tensor], prefix: str = "module.") -> dict[str, torch.Tensor]:
    """Removes a DDP-style ``prefix`` when every key carries it (the official loaders do the same)."""
    if all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return state


def fold_spectral_norm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``<conv>.module.weight_bar/u/v`` -> ``<conv>.weight = weight_bar / σ`` (see module doc).

    A conv with only some of the three tensors is left as it is, so the key comparison
    reports it.
    """
    out = dict(state)
    for key in [k for k in state if k.endswith(SN_SUFFIXES[0])]:
        base = key[: -len(SN_SUFFIXES[0])]
        names = [base + s for s in SN_SUFFIXES]
        if not all(n in state for n in names):
            continue
        w, u, v = (state[n].float() for n in names)
        sigma = u.dot(w.view(w.shape[0], -1).mv(v))
        for n in names:
            del out[n]
        out[base + ".weight"] = w / sigma
    return out


def match_state(state: dict[str, torch.Tensor], model: nn.Module, source: str) -> dict[str, torch.Tensor]:
    """``state`` as a complete state_dict of ``model`` (float tensors as float32), or
    :class:`CheckpointError` naming every missing, unexpected and mis-shaped key."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = sorted(
        f"{k}: file {list(state[k].shape)}, network {list(expected[k].shape)}"
        for k in set(state) & set(expected)
        if state[k].shape != expected[k].shape
    )
    if missing or unexpected or misshaped:
        lines = [f"{source} does not match the network ({len(expected)} tensors); nothing was imported."]
        for title, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
            if items:
                shown = items[:20] + ([f"... and {len(items) - 20} more"] if len(items) > 20 else [])
                lines.append(f"{title} ({len(items)}):\n  " + "\n  ".join(shown))
        raise CheckpointError("\n".join(lines))
    return {k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in state.items()}


def official_to_ours(
    family: str, raw: dict[str, torch.Tensor], model: nn.Module, source: str
) -> dict[str, torch.Tensor]:
    """The tensors of an official file (as read by :func:`read_container`) in ``model``'s names."""
    spec = _family(family)
    state = strip_prefix(raw)
    if spec.spectral_norm:
        state = fold_spectral_norm(state)
    if spec.rename is not None:
        renamed = {spec.rename(k): v for k, v in state.items()}
        state = {k: v for k, v in renamed.items() if k is not None}
    return match_state(state, model, source)


@dataclass(frozen=True)
class ImportResult:
    """Where the imported weights and their provenance were written."""

    weights: Path
    provenance: Path


def sha256_of(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def import_checkpoint(
    family: str, path: Path, variant: str | None = None, preset: str = "paper", out_dir: Path | None = None
) -> ImportResult:
    """Imports the authors' checkpoint ``path`` of ``family``; see the module docstring.

    ``variant`` names the output (``<family>-<variant>.pt``; default: the family's first
    released variant) and, for SEMat, the architecture (``sam``, ``hq-sam`` or ``sam2``); ``preset`` is
    the network configuration the file was trained at (``paper`` for the released files,
    ``parity`` for the reduced test fixtures).
    """
    spec = _family(family)
    variant = variant or next(iter(spec.files))
    if variant in spec.unsupported:
        raise CheckpointError(f"{family} variant {variant!r} cannot be imported: {spec.unsupported[variant]}")
    if not variant.replace("-", "").replace("_", "").isalnum():
        raise CheckpointError(f"variant {variant!r}: use letters, digits, '-' and '_' only")
    path = Path(path)
    preset += spec.variant_presets.get(variant, "")
    model = build_official(family, preset)
    state = official_to_ours(family, read_container(path), model, path.name)
    model.load_state_dict(state, strict=True)
    model.eval()
    if spec.merge_lora:
        merge_lora(model)
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
    out_dir = Path(out_dir) if out_dir is not None else SHIPPED_WEIGHTS
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / f"{family}-{variant}.pt"
    torch.save(state, weights)
    provenance = weights.with_suffix(".json")
    record = {
        "family": family,
        "variant": variant,
        "preset": preset,
        "layout": spec.layout,
        "what": f"{family} weights imported from the authors' released checkpoint"
        + (f" ({spec.files[variant]})" if variant in spec.files else ""),
        "source_file": path.name,
        "source_sha256": sha256_of(path),
        "source_bytes": path.stat().st_size,
        "official_repository": spec.repository,
        "official_commit": spec.commit,
        "licence": spec.licence,
        "transformations": ["strip DDP 'module.' prefix"]
        + (["fold spectral norm: weight = weight_bar / sigma"] if spec.spectral_norm else [])
        + (
            ["map the authors' key names (peft wrapper levels, training-only copies dropped)"]
            if spec.rename
            else []
        )
        + (["merge LoRA: W + (alpha / r) * B @ A"] if spec.merge_lora else []),
        "lora_merged": spec.merge_lora,
        "tensors": len(state),
        "parameters": int(sum(v.numel() for k, v in state.items() if v.is_floating_point())),
    }
    provenance.write_text(json.dumps(record, indent=2) + "\n")
    return ImportResult(weights, provenance)


def load_imported(weights: Path) -> tuple[nn.Module, dict]:
    """The network of an imported weight file (``<family>-<variant>.pt`` beside its provenance
    JSON), in eval mode, and the provenance record."""
    record = json.loads(Path(weights).with_suffix(".json").read_text())
    model = build_official(record["family"], record["preset"])
    if record.get("lora_merged"):
        merge_lora(model)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=True)
    return model.eval(), record


__all__ = [
    "FAMILIES",
    "CheckpointError",
    "ImportResult",
    "build_official",
    "import_checkpoint",
    "load_imported",
    "read_container",
]

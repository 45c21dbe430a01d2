"""The exported models' I/O: the single source of truth for names, dtypes and shapes.

Both ``models/export.py`` (writing ``config.pbtxt`` and tracing) and the service's
backends read this module. Conventions:

* Names follow Triton's PyTorch-backend convention ``<name>__<index>``, the index being the
  position in the TorchScript ``forward`` signature (inputs) or returned tuple (outputs).
* Every tensor is batched: dims here are **per item**; the model sees ``[B, *dims]`` and
  ``max_batch_size > 0``. Shapes are fixed for an export size ``S`` (a multiple of 32),
  so Triton's dynamic batcher can batch requests from different users. Per-item scalars
  are ``[1]``.
* Images travel as uint8 RGB 0-255, ``[3,S,S]`` (a quarter of float32's bytes), letterboxed:
  resized so the long side is S and padded bottom/right with zeros. The graph divides by 255
  and normalises (ImageNet) itself; the models need no validity mask for the padding (the
  service crops the outputs). Cached encoder features travel back as float16 (they are stored
  so in the session), and the graph widens them to float32.
  The service builds float32 [0,1] images and float32 features; :func:`to_wire` converts them.

Per model (``S`` = export size, ``s4 = S/4``, tiny-preset widths in brackets):

``iscn_encoder``  image__0 [3,S,S] -> features__0 [dim,S/16,S/16] (dim=128),
                  mask_features__1 [mask_dim,s4,s4] (mask_dim=32)
``iscn_decoder``  features__0, mask_features__1 (from the encoder), prompt_maps__2 [Nv,s4,s4] (Nv=16),
                  prompt_kinds__3 int64 [Nv], text_embedding__4 [384], has_text__5 [1],
                  conflict_map__6 [1,s4,s4], prev_mask__7 [1,s4,s4], has_prev__8 [1]
                  -> mask_logits__0 [1,s4,s4], class_score__1 [1], instance_logits__2 [Nq,s4,s4] (Nq=16),
                  instance_scores__3 [Nq]
``mrn``           image__0 [3,S,S], mask__1 [1,S,S] -> alpha__0 [1,S,S]  (PRM applied in the graph)
``semat``         image__0 [3,S,S], box__1 [4] (xyxy, pixels of the S frame) -> alpha__0 [1,S,S],
                  trimap_logits__1 [3,s4,s4] (bg, unknown, fg)
``smat_encoder``  image__0 [3,S,S] -> patch_tokens__0 [D,g,g] (D=96, g=ceil(S/patch)), class_token__1 [D]
``smat_decoder``  image__0, patch_tokens__1, class_token__2, prompt_mask__3 [1,S,S] (all zero = automatic)
                  -> alpha__0 [1,S,S], similarity__1 [1,g,g]
``instmatt``      image__0 [3,S,S], masks__1 [K,S,S] (K=8), valid__2 [K] -> alpha__0 [K,S,S]

Networks in the papers' official layouts (``OFFICIAL_MODELS``, exported only from imported
checkpoints by ``models.export.export_official``) run at the photo's own resolution, as the
official code does: their spatial dims are ``-1`` (any multiple of 32) and their images are
ImageNet-normalised and reflect-padded by the service (``models.official.contract``):

``mgmatting``          image__0 [3,H,W], guidance__1 [1,H,W] (binary) -> alpha__0 [1,H,W] (after PRM)
``instmatt_official``  image__0 [3,H,W], guidance__1 [3,H,W] (tri-mask) -> trimatte__0 [3,H,W]
                       (after PRM), region__1 [1,H,W] (the OS1 PRM region, 0/1), feature__2 [C,H,W]
``instmatt_refiner``   one window of all refined instances, K inside the item (batch of one):
                       pred__0 [K,3,h,w], feature__1 [K,C,h,w], image__2 [K,3,h,w] -> logits__0 [K,3,h,w]
``smat_official_encoder``  image__0 [3,H,W] (H, W multiples of 14) -> patch_tokens__0 [D,H/14,W/14],
                       class_token__1 [D]
``smat_official_decoder``  image__0, patch_tokens__1, class_token__2, prompt_mask__3 [1,H,W] (padded
                       like the image) -> alpha__0 [1,H,W], similarity__1 [1,H/14,W/14]

ISCN prompt encoding (rasterised at S/4 by the service):

* ``prompt_maps`` slot i holds one mark: a click as a small filled disk, a scribble as its
  thick stroke, a box as the filled rectangle; values in [0,1]. ``prompt_kinds`` gives its
  kind: 0 padding (map ignored), 1 fg click, 2 bg click, 3 fg scribble, 4 bg scribble, 5 box.
  At most Nv marks per round; a prompt-less call is all kinds 0 and ``has_text`` 0.
* ``text_embedding``: the L2-normalised all-MiniLM-L6-v2 sentence embedding; ``has_text`` 1/0.
* ``conflict_map``: float32 holding the integers 0 (none), 1 (new fg mark over previous bg),
  2 (new bg mark over previous fg); :func:`models.iscn.compute_conflict_map` builds it.
* ``prev_mask``: the previous round's mask probability (``sigmoid(mask_logits)``) at S/4;
  zeros and ``has_prev`` 0 in round 1.
* Outputs: ``mask_logits`` are the prompted target's logits at S/4 (the service upsamples and
  MRN refines); ``class_score`` its "is human" probability; ``instance_logits``/``instance_scores``
  are the object queries' masks and "is human" probabilities, independent of the prompts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from models.registry import EXPORTS, config_for, family_of

EXPORTED_MODELS: tuple[str, ...] = tuple(EXPORTS)
# Native-resolution networks of the official layouts -> the layout they export (one imported file
# of that layout writes all of its networks).
OFFICIAL_LAYOUTS: dict[str, str] = {
    "mgmatting": "mgmatting",
    "instmatt_official": "instmatt_official",
    "instmatt_refiner": "instmatt_official",
    "smat_official_encoder": "smat",
    "smat_official_decoder": "smat",
}
OFFICIAL_MODELS: tuple[str, ...] = tuple(OFFICIAL_LAYOUTS)

_DTYPES = {
    "FP32": (torch.float32, np.float32),
    "FP16": (torch.float16, np.float16),
    "UINT8": (torch.uint8, np.uint8),
    "INT64": (torch.int64, np.int64),
}


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: Triton name, dtype (``FP32``/``FP16``/``UINT8``/``INT64``) and per-item
    dims (no batch)."""

    name: str
    dtype: str
    dims: tuple[int, ...]
    doc: str = ""
    stride: int = 1  # a native-resolution (``-1``) map at 1/stride of the image's size

    @property
    def triton_dtype(self) -> str:
        """The ``DataType`` enum name in ``config.pbtxt`` (``TYPE_FP32``...)."""
        return f"TYPE_{self.dtype}"

    @property
    def torch_dtype(self) -> torch.dtype:
        return _DTYPES[self.dtype][0]

    @property
    def numpy_dtype(self) -> type:
        return _DTYPES[self.dtype][1]

    @property
    def base_name(self) -> str:
        """The name without the ``__<index>`` suffix (``image__0`` -> ``image``)."""
        return self.name.rsplit("__", 1)[0]


@dataclass(frozen=True)
class BatchingSpec:
    """Serving policy written into ``config.pbtxt`` (and used by backends to chunk requests).

    ``preferred_batch_sizes``: the sizes ``python -m bench`` measured batching with (empty for the
    native-resolution networks, whose requests rarely share a shape); ``max_queue_size`` and
    ``queue_timeout_us``: the queue is bounded, a request that cannot be queued or waits longer
    is rejected (Triton answers UNAVAILABLE: the API's 503 with Retry-After), so an overloaded
    server sheds load instead of building a backlog that times out on the clients anyway.
    Warm-up runs every batch size in :meth:`warmup_batch_sizes`."""

    max_batch_size: int
    preferred_batch_sizes: tuple[int, ...]
    max_queue_delay_us: int
    warmup: bool = True
    max_queue_size: int = 64
    queue_timeout_us: int = 10_000_000

    def warmup_batch_sizes(self) -> tuple[int, ...]:
        """1, the preferred sizes and the largest: the shapes the batcher forms most."""
        return tuple(sorted({1, *self.preferred_batch_sizes, self.max_batch_size}))


@dataclass(frozen=True)
class ModelIO:
    """The exported I/O of one model at one size and preset."""

    name: str
    family: str
    size: int
    preset: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    batching: BatchingSpec

    def input(self, base_name: str) -> TensorSpec:
        """The input whose name starts with ``base_name`` (``image`` -> ``image__0``)."""
        return next(t for t in self.inputs if t.base_name == base_name)

    def output(self, base_name: str) -> TensorSpec:
        return next(t for t in self.outputs if t.base_name == base_name)


BATCHING: dict[str, BatchingSpec] = {
    "iscn_encoder": BatchingSpec(8, (4, 8), 2000),
    "iscn_decoder": BatchingSpec(16, (8, 16), 1000),
    "mrn": BatchingSpec(8, (4, 8), 2000),
    "semat": BatchingSpec(8, (4, 8), 2000),
    "smat_encoder": BatchingSpec(8, (4, 8), 2000),
    "smat_decoder": BatchingSpec(16, (8, 16), 1000),
    "instmatt": BatchingSpec(4, (2, 4), 2000),
    # Native-resolution networks: Triton batches only requests of one shape, so no preferred sizes;
    # a call takes seconds on a CPU, so they may wait in the queue up to the API's 30 s timeout.
    "mgmatting": BatchingSpec(4, (), 1000, queue_timeout_us=30_000_000),
    "instmatt_official": BatchingSpec(8, (), 1000, queue_timeout_us=30_000_000),
    "instmatt_refiner": BatchingSpec(1, (), 0, queue_timeout_us=30_000_000),
    "smat_official_encoder": BatchingSpec(4, (), 1000, queue_timeout_us=30_000_000),
    "smat_official_decoder": BatchingSpec(8, (), 1000, queue_timeout_us=30_000_000),
}


def _t(
    name: str, index: int, dims: tuple[int, ...], doc: str, dtype: str = "FP32", stride: int = 1
) -> TensorSpec:
    return TensorSpec(f"{name}__{index}", dtype, tuple(int(d) for d in dims), doc, stride)


def _check_size(size: int) -> None:
    if size <= 0 or size % 32:
        raise ValueError(f"export size must be a positive multiple of 32, got {size}")


def official_model_io(name: str, preset: str = "paper") -> ModelIO:
    """The I/O of an official-layout network (``OFFICIAL_MODELS``) at ``preset``; ``size`` is 0."""
    from models.official.instmatt import PRESETS as INSTMATT

    image = _t("image", 0, (3, -1, -1), "ImageNet-normalised RGB, reflect-padded to a multiple of 32")
    if name == "mgmatting":
        inputs: tuple[TensorSpec, ...] = (
            image,
            _t("guidance", 1, (1, -1, -1), "binary guidance mask, padded likewise"),
        )
        outputs: tuple[TensorSpec, ...] = (_t("alpha", 0, (1, -1, -1), "alpha after PRM"),)
    elif name == "instmatt_official":
        c = INSTMATT[preset].generator.stem
        inputs = (image, _t("guidance", 1, (3, -1, -1), "tri-mask: target, others, 1 - all"))
        outputs = (
            _t("trimatte", 0, (3, -1, -1), "target, others, background after PRM"),
            _t("region", 1, (1, -1, -1), "1 where PRM took the OS1 output"),
            _t("feature", 2, (c, -1, -1), "OS1 decoder feature (the refiner's input)"),
        )
    elif name == "instmatt_refiner":
        c = INSTMATT[preset].generator.stem
        inputs = (
            _t("pred", 0, (-1, 3, -1, -1), "tri-mattes of the refined instances in one window"),
            _t("feature", 1, (-1, c, -1, -1), "their OS1 features"),
            _t("image", 2, (-1, 3, -1, -1), "the normalised image, once per instance"),
        )
        outputs = (_t("logits", 0, (-1, 3, -1, -1), "refined tri-matte logits"),)
    elif name in ("smat_official_encoder", "smat_official_decoder"):
        cfg = config_for("smat", preset)
        d, p = cfg.embed_dim, cfg.patch_size
        image = _t("image", 0, (3, -1, -1), "ImageNet-normalised RGB, zero-padded by SMat's rule (x14)")
        tokens = _t("patch_tokens", 0, (d, -1, -1), "normalised ViT patch tokens", stride=p)
        cls = _t("class_token", 1, (d,), "normalised class token")
        if name == "smat_official_encoder":
            inputs, outputs = (image,), (tokens, cls)
        else:
            inputs = (
                image,
                replace(tokens, name="patch_tokens__1", doc="from smat_official_encoder"),
                replace(cls, name="class_token__2", doc="from smat_official_encoder"),
                _t(
                    "prompt_mask",
                    3,
                    (1, -1, -1),
                    "binary prompt, padded like the image; all zero = automatic",
                ),
            )
            outputs = (
                _t("alpha", 0, (1, -1, -1), "alpha at the padded size"),
                _t("similarity", 1, (1, -1, -1), "min-max normalised cosine similarity", stride=p),
            )
    else:
        raise KeyError(name)
    return ModelIO(name, OFFICIAL_LAYOUTS[name], 0, preset, inputs, outputs, BATCHING[name])


def model_io(name: str, size: int = 512, preset: str = "tiny") -> ModelIO:
    """The I/O of exported model ``name`` at export size ``size`` and ``preset`` (for
    ``OFFICIAL_MODELS``: native resolution, ``size`` ignored)."""
    if name in OFFICIAL_MODELS:
        return official_model_io(name, preset)
    _check_size(size)
    family = family_of(name)
    cfg = config_for(family, preset)
    s, s4 = size, size // 4
    image = _t("image", 0, (3, s, s), "RGB 0-255, letterboxed with zero padding", dtype="UINT8")
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    if name == "iscn_encoder":
        inputs = (image,)
        outputs = (
            _t("features", 0, (cfg.dim, s // 16, s // 16), "S/16 semantic features"),
            _t("mask_features", 1, (cfg.mask_dim, s4, s4), "S/4 per-pixel mask features"),
        )
    elif name == "iscn_decoder":
        nv, nq = cfg.max_visual_prompts, cfg.num_queries
        inputs = (
            _t("features", 0, (cfg.dim, s // 16, s // 16), "from iscn_encoder", dtype="FP16"),
            _t("mask_features", 1, (cfg.mask_dim, s4, s4), "from iscn_encoder", dtype="FP16"),
            _t("prompt_maps", 2, (nv, s4, s4), "one rasterised mark per slot, [0,1]"),
            _t(
                "prompt_kinds",
                3,
                (nv,),
                "0 pad, 1 fg click, 2 bg click, 3 fg scribble, 4 bg scribble, 5 box",
                "INT64",
            ),
            _t("text_embedding", 4, (cfg.text_dim,), "MiniLM sentence embedding"),
            _t("has_text", 5, (1,), "1 if text_embedding is set"),
            _t("conflict_map", 6, (1, s4, s4), "0 none, 1 fg over previous bg, 2 bg over previous fg"),
            _t("prev_mask", 7, (1, s4, s4), "previous round's mask probability"),
            _t("has_prev", 8, (1,), "1 from round 2 on"),
        )
        outputs = (
            _t("mask_logits", 0, (1, s4, s4), "prompted target mask logits"),
            _t("class_score", 1, (1,), "P(target is human)"),
            _t("instance_logits", 2, (nq, s4, s4), "object-query mask logits"),
            _t("instance_scores", 3, (nq,), "P(object query is a human)"),
        )
    elif name == "mrn":
        inputs = (image, _t("mask", 1, (1, s, s), "coarse mask / probability (binarised at 0.5)"))
        outputs = (_t("alpha", 0, (1, s, s), "alpha after PRM"),)
    elif name == "semat":
        inputs = (image, _t("box", 1, (4,), "x0, y0, x1, y1 in pixels of the S frame"))
        outputs = (
            _t("alpha", 0, (1, s, s), "alpha"),
            _t("trimap_logits", 1, (3, s4, s4), "matting-token logits: bg, unknown, fg"),
        )
    elif name in ("smat_encoder", "smat_decoder"):
        g = math.ceil(s / cfg.patch_size)
        tokens = (cfg.embed_dim, g, g)
        if name == "smat_encoder":
            inputs = (image,)
            outputs = (
                _t("patch_tokens", 0, tokens, "normalised ViT patch tokens"),
                _t("class_token", 1, (cfg.embed_dim,), "normalised class token"),
            )
        else:
            inputs = (
                image,
                _t("patch_tokens", 1, tokens, "from smat_encoder", dtype="FP16"),
                _t("class_token", 2, (cfg.embed_dim,), "from smat_encoder", dtype="FP16"),
                _t("prompt_mask", 3, (1, s, s), "rasterised prompt; all zero = automatic mode"),
            )
            outputs = (
                _t("alpha", 0, (1, s, s), "alpha"),
                _t("similarity", 1, (1, g, g), "min-max normalised cosine similarity map"),
            )
    elif name == "instmatt":
        k = cfg.max_instances
        inputs = (
            image,
            _t("masks", 1, (k, s, s), "instance masks, zero in unused slots"),
            _t("valid", 2, (k,), "1 for used slots"),
        )
        outputs = (_t("alpha", 0, (k, s, s), "per-instance alpha, zero in unused slots"),)
    else:  # pragma: no cover - EXPORTED_MODELS is closed
        raise KeyError(name)
    return ModelIO(name, family, size, preset, inputs, outputs, BATCHING[name])


def all_model_io(size: int = 512, preset: str = "tiny") -> dict[str, ModelIO]:
    """``model_io`` of every exported model."""
    return {name: model_io(name, size, preset) for name in EXPORTED_MODELS}


def concrete_dims(dims: tuple[int, ...], size: int, instances: int = 2, stride: int = 1) -> tuple[int, ...]:
    """``dims`` with every ``-1`` filled: the last two (spatial) with ``size // stride``, others
    with ``instances``."""
    n = len(dims)
    return tuple(d if d != -1 else (size // stride if i >= n - 2 else instances) for i, d in enumerate(dims))


def to_wire(spec: TensorSpec, array: np.ndarray) -> np.ndarray:
    """``array`` as ``spec`` travels: a float image in [0, 1] -> uint8 0-255 (exact for images made
    from uint8 photos, as the service's are), anything else cast to the spec's dtype."""
    if spec.dtype == "UINT8" and np.issubdtype(np.asarray(array).dtype, np.floating):
        return np.ascontiguousarray(np.rint(np.clip(array, 0.0, 1.0) * 255.0), dtype=np.uint8)
    return np.ascontiguousarray(array, dtype=spec.numpy_dtype)


def example_inputs(
    name: str, size: int = 512, batch: int = 1, preset: str = "tiny", seed: int = 0
) -> tuple[torch.Tensor, ...]:
    """Valid random inputs for ``name`` (for tracing, tests and benchmarks), in signature order.

    Images are random, masks are random rectangles, prompts use a few slots of each kind,
    boxes lie inside the frame, validity flags keep some slots padded.
    """
    io = model_io(name, size, preset)
    g = torch.Generator().manual_seed(seed)
    out = []
    for spec in io.inputs:
        shape = (batch, *concrete_dims(spec.dims, size, stride=spec.stride))
        base = spec.base_name
        if base == "prompt_kinds":
            kinds = torch.randint(1, 6, shape, generator=g)
            kinds[:, shape[1] // 2 :] = 0
            out.append(kinds)
        elif base in ("prompt_maps", "masks", "mask", "prompt_mask", "prev_mask", "guidance"):
            h, w = shape[-2], shape[-1]
            t = torch.zeros(shape)
            flat = t.reshape(-1, h, w)
            for m in flat:
                y0, x0 = (int(v) for v in torch.randint(0, h // 2, (2,), generator=g))
                dy, dx = (int(v) for v in torch.randint(1, h // 2, (2,), generator=g))
                m[y0 : y0 + dy, x0 : x0 + dx] = 1.0
            out.append(t)
        elif base == "conflict_map":
            out.append(torch.randint(0, 3, shape, generator=g).float())
        elif base in ("has_text", "has_prev"):
            out.append(torch.randint(0, 2, shape, generator=g).float())
        elif base == "valid":
            v = torch.zeros(shape)
            v[:, : max(1, shape[1] // 2)] = 1.0
            out.append(v)
        elif base == "box":
            xy0 = torch.rand((batch, 2), generator=g) * size * 0.5
            xy1 = xy0 + 8 + torch.rand((batch, 2), generator=g) * size * 0.45
            out.append(torch.cat([xy0, xy1], dim=1))
        elif base == "text_embedding":
            t = torch.randn(shape, generator=g)
            out.append(t / t.norm(dim=-1, keepdim=True))
        elif base in ("features", "mask_features", "patch_tokens", "class_token", "feature"):
            out.append(torch.randn(shape, generator=g).to(spec.torch_dtype))
        elif spec.dtype == "UINT8":
            out.append(torch.randint(0, 256, shape, generator=g, dtype=torch.uint8))
        else:
            out.append(torch.rand(shape, generator=g))
    return tuple(out)

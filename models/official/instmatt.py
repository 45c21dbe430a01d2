"""InstMatt in the official layout (parameter names of ``nowsyn/InstMatt``, stage 2 with refiner).

The matting network is MGMatting's generator with a 3-channel tri-mask guidance and 3 output
channels (target, others, background); ``refiner.`` is ``MultiInstRefiner(32, 16)``. The
official inference (``infer.py``), reproduced by :func:`instmatt_inference`:

1. the generator runs once per instance on ``concat(image, tri-mask)`` (here as one batch: the
   network is per-sample independent in eval mode);
2. PRM over the three channels with ellipses 15 then 7, one mask gating all channels;
3. the multi-instance refiner (``nostop=False``): likely duplicates are left unrefined; windows
   are chosen on a ×0.1 grid of ``|1 − Σ target − mean background|`` with a greedy NMS; every
   window runs split -> cross-instance exchange -> merge -> head, written back without a 10 px
   margin, window after window, reading what earlier windows wrote. Passes repeat while some
   instance's target changes by more than 0.01 — with the official code's aliasing
   (``last_pred = pred_list``) that is at most two passes, which is what this module does too;
4. the refined tri-matte replaces the PRM result where the OS1 PRM region is set.

The window selection and loop are Python (the official code is data-dependent there too);
the generator and the per-window kernel are tensor-only and export to TorchScript.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.common.prm import ProgressiveRefinement
from models.official.contract import capped_size, imagenet_normalise, pad_to_multiple_of_32, unpad
from models.official.mgmatting import PRESETS as MGMATTING_PRESETS
from models.official.mgmatting import MGMattingConfig, MGMattingGenerator

REFINE_MARGIN = 10


@dataclass(frozen=True)
class InstMattConfig:
    """The generator's config (3-channel guidance and output) and the refiner's stream width."""

    generator: MGMattingConfig = field(
        default_factory=lambda: MGMattingConfig(mask_channels=3, out_channels=3)
    )
    refine_streams: int = 16


PRESETS: dict[str, InstMattConfig] = {
    "paper": InstMattConfig(),
    "parity": InstMattConfig(
        generator=replace(MGMATTING_PRESETS["parity"], mask_channels=3, out_channels=3), refine_streams=2
    ),
}


class MultiInstRefiner(nn.Module):
    """The per-window kernel of InstMatt's multi-instance refiner.

    ``forward(pred, feature, image)``: tri-mattes ``[K,3,h,w]`` of the instances being refined,
    their OS1 features ``[K,C,h,w]`` and the normalised image ``[K,3,h,w]`` -> refined tri-matte
    logits ``[K,3,h,w]``.
    """

    def __init__(self, channels: int, streams: int) -> None:
        super().__init__()
        self.streams = streams
        self.split = nn.Conv2d(channels * 3, streams * 3, 3, padding=1, groups=3)
        self.merge = nn.Sequential(
            nn.Conv2d(streams * 3 + 3, channels, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(channels, channels, 3, padding=1),
        )
        self.head = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, pred: torch.Tensor, feature: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        c, s = feature.shape[1], self.streams
        gate = torch.cat([pred[:, i : i + 1].expand(-1, c, -1, -1) for i in range(3)], dim=1)
        split = self.split(feature.repeat(1, 3, 1, 1) * gate)
        target, others, background = split[:, :s], split[:, s : 2 * s], split[:, 2 * s :]
        count = split.shape[0]
        target_sum = target.sum(dim=0, keepdim=True)
        exchanged_t = others.sum(dim=0, keepdim=True) / max(count - 1, 1) - target_sum + target * 2
        exchanged_r = target_sum - target + others
        exchanged_b = background.mean(dim=0, keepdim=True).expand(count, -1, -1, -1)
        merged = self.merge(torch.cat([exchanged_t, exchanged_r, exchanged_b, image], dim=1))
        return self.head(merged)


class InstMattNetwork(MGMattingGenerator):
    """The stage-2 model: generator (``encoder``/``aspp``/``decoder``) plus ``refiner``."""

    def __init__(self, cfg: InstMattConfig) -> None:
        super().__init__(cfg.generator)
        self.instmatt_config = cfg
        self.refiner = MultiInstRefiner(cfg.generator.stem, cfg.refine_streams)


def build_instmatt_official(preset: str | InstMattConfig = "paper") -> InstMattNetwork:
    """InstMatt's stage-2 network at ``preset`` (or an explicit config)."""
    cfg = preset if isinstance(preset, InstMattConfig) else PRESETS[preset]
    return InstMattNetwork(cfg)


def tri_masks(masks: torch.Tensor) -> torch.Tensor:
    """Instance masks ``[K,H,W]`` in [0,1] -> per-instance guidance ``[K,3,H,W]``: the target,
    the sum of the others, and ``1 − Σ masks`` (not clipped).
    """
    total = masks.sum(dim=0, keepdim=True)
    return torch.stack([masks, total - masks, (1 - total).expand_as(masks)], dim=1)


def likely_duplicates(target: torch.Tensor) -> torch.Tensor:
    """Target alphas ``[K,1,H,W]`` -> bool ``[K]``: instances the refiner must leave alone.

    Overlap of the ``α > 0.01`` supports is intersection / (smaller support + 1) (at half
    resolution when K > 8); an instance overlapping more than one other by > 0.3 is flagged, and
    of every pair overlapping by > 0.5 the member whose overlap ratio is larger.
    """
    a = target
    b = target.squeeze(1).unsqueeze(0)
    if target.shape[0] > 8:
        a = F.interpolate(a, scale_factor=0.5)
        b = F.interpolate(b, scale_factor=0.5)
    sa, sb = a > 0.01, b > 0.01
    intersection = (sa & sb).float().sum(dim=(2, 3))
    smaller = torch.min(sa.float().sum(dim=(2, 3)), sb.float().sum(dim=(2, 3)))
    overlap = intersection / (smaller + 1.0)
    overlap.fill_diagonal_(0)
    flagged = (overlap > 0.3).sum(dim=1) > 1
    k = overlap.shape[0]
    for i in range(k):
        for j in range(i + 1, k):
            if overlap[i, j] > 0.5 or overlap[j, i] > 0.5:
                flagged[i if overlap[i, j] > overlap[j, i] else j] = True
    return flagged


def _suppress(dets: np.ndarray, threshold: float, window: int) -> list[int]:
    """Greedy NMS over ``[N,5]`` (x1,y1,x2,y2,score): a box is dropped when its IoU (+1-pixel
    convention) with a kept one exceeds ``threshold`` **and** both centre offsets are below
    ``window // 2``. Returns kept indices in score order (numpy's default argsort, as official).
    """
    x1, y1, x2, y2, scores = (dets[:, i] for i in range(5))
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]
    keep: list[int] = []
    while order.size > 0:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        iw = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + 1)
        ih = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + 1)
        inter = iw * ih
        iou = inter / (areas[best] + areas[rest] - inter)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        near = (np.abs(cx[best] - cx[rest]) < window // 2) & (np.abs(cy[best] - cy[rest]) < window // 2)
        order = rest[~((iou > threshold) & near)]
    return keep


def refine_windows(distance: torch.Tensor, window: int) -> np.ndarray:
    """Windows to refine, ``[N,5]`` (x1,y1,x2,y2,score): one candidate per cell of a ×0.1
    nearest subsampling of ``distance [1,1,H,W]``, a ``window``-sized square centred on the
    cell's pixel (×10) shifted inside the image; candidates scoring > 0.01 go through NMS (IoU
    0.3); if none does, the single best candidate.
    """
    height, width = distance.shape[2:]
    grid = F.interpolate(distance, scale_factor=0.1, mode="nearest").squeeze()
    gh, gw = grid.shape
    xs, ys = np.meshgrid(np.arange(gw), np.arange(gh))
    centres = np.stack([xs, ys], axis=2).reshape(-1, 2) * 10
    boxes = np.concatenate([centres + (-window) // 2, centres + window // 2], axis=1)
    # Shift each box inside [0,W]x[0,H] (by the overflow on either side).
    for lo, hi, size in ((0, 2, width), (1, 3, height)):
        shift = (
            -np.minimum(boxes[:, lo], 0)
            + np.minimum(size - boxes[:, lo], 0)
            - np.minimum(boxes[:, hi], 0)
            + np.minimum(size - boxes[:, hi], 0)
        )
        boxes[:, lo] += shift
        boxes[:, hi] += shift
    scores = grid.reshape(-1, 1).cpu().numpy()
    dets = np.concatenate([boxes, scores], axis=1)
    candidates = dets[scores[:, 0] > 0.01]
    if len(candidates) == 0:
        return dets[dets[:, -1].argsort()[::-1][0:1]]
    return candidates[_suppress(candidates, 0.3, window)]


def refiner_window_size(instances: int, height: int, width: int) -> int:
    """Window side: 320 for up to 8 instances, 256 up to 14, else 128, at most the image's short side."""
    window = 320 if instances <= 8 else 256 if instances <= 14 else 128
    return min(window, min(height, width))


RefinerKernel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def refine_instances(
    refiner: RefinerKernel, image: torch.Tensor, pred: torch.Tensor, feature: torch.Tensor
) -> torch.Tensor:
    """InstMatt's multi-instance refinement (eval, ``nostop=False``).

    ``refiner``: the window kernel (a :class:`MultiInstRefiner`, or a function calling the
    exported ``instmatt_refiner``); ``image [K,3,H,W]`` normalised, ``pred [K,3,H,W]`` PRM
    tri-mattes, ``feature [K,C,H,W]`` OS1 features -> refined tri-mattes ``[K,3,H,W]`` (a new
    tensor; ``pred`` is not modified).
    """
    k, _, height, width = pred.shape
    keep = ~likely_duplicates(pred[:, 0:1])
    window = refiner_window_size(k, height, width)
    distance = (1 - pred[:, 0:1].sum(dim=0, keepdim=True) - pred[:, 2:3].mean(dim=0, keepdim=True)).abs()
    boxes = refine_windows(distance, window)
    current = pred.clone()
    active = torch.ones(k, dtype=torch.bool, device=pred.device)
    m = REFINE_MARGIN
    for refine_pass in range(2):
        before = current[:, 0:1].clone()
        for x1, y1, x2, y2, _score in boxes:
            x1, y1, x2, y2 = int(x1), int(y1), int(x2), int(y2)
            logits = refiner(
                current[keep, :, y1:y2, x1:x2], feature[keep, :, y1:y2, x1:x2], image[keep, :, y1:y2, x1:x2]
            )
            ph, pw = logits.shape[2:]
            out = (torch.tanh(logits[:, :, m : ph - m, m : pw - m]) + 1.0) / 2.0
            current[active & keep, :, y1 + m : y2 - m, x1 + m : x2 - m] = out[active[keep]]
        if refine_pass == 1:
            break  # official: the second pass compares the prediction with itself (aliasing)
        active &= (current[:, 0:1] - before).abs().amax(dim=(1, 2, 3)) > 0.01
        if not bool(active.any()):
            break
    return current


class InstMattGeneratorExport(nn.Module):
    """Exported ``instmatt_official``: per instance, normalised image ``[B,3,H,W]`` + tri-mask
    ``[B,3,H,W]`` -> (PRM tri-matte ``[B,3,H,W]``, OS1 PRM region ``[B,1,H,W]`` as 0/1, OS1
    feature ``[B,C,H,W]``)."""

    def __init__(self, model: InstMattNetwork) -> None:
        super().__init__()
        # The generator's parts only: the refiner is its own exported network (one call a window).
        self.encoder, self.aspp, self.decoder = model.encoder, model.aspp, model.decoder
        self.prm = ProgressiveRefinement()

    def forward(
        self, image: torch.Tensor, guidance: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        embedding, shortcuts = self.encoder(torch.cat((image, guidance), dim=1))
        os1, os4, os8, feature = self.decoder(self.aspp(embedding), shortcuts)
        alpha, region = self.prm.refine(os1, os4, os8)
        return alpha, region.float(), feature


class InstMattRefinerExport(nn.Module):
    """Exported ``instmatt_refiner``: one window of every refined instance, the instance axis
    inside a batch of one: ``[1,K,3,h,w]``, ``[1,K,C,h,w]``, ``[1,K,3,h,w]`` -> logits ``[1,K,3,h,w]``."""

    def __init__(self, model: InstMattNetwork) -> None:
        super().__init__()
        self.refiner = model.refiner

    def forward(self, pred: torch.Tensor, feature: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.refiner(pred[0], feature[0], image[0])[None]


@dataclass
class InstMattInput:
    """The official pre-processing's result: ``image [K,3,Hp,Wp]`` normalised and reflect-padded,
    ``guidance [K,3,Hp,Wp]`` tri-masks, the processed size ``(h, w)`` and the original ``(oh, ow)``.
    """

    image: torch.Tensor
    guidance: torch.Tensor
    size: tuple[int, int]
    original: tuple[int, int]


def prepare_instmatt(image_rgb: np.ndarray, masks: np.ndarray, max_side: int = 1280) -> InstMattInput:
    """Official ``generator_tensor_dict``: RGB uint8 ``[H,W,3]`` and masks ``[K,H',W']`` in [0,1]
    (nearest-resized to the image when the sizes differ) -> :class:`InstMattInput`. When the long
    side exceeds ``max_side`` both are resized (bilinear / nearest, ``int()`` sizes).
    """
    oh, ow = image_rgb.shape[:2]
    stack = np.ascontiguousarray(np.moveaxis(masks.astype(np.float32), 0, -1))
    if stack.shape[:2] != (oh, ow):
        stack = cv2.resize(stack, (ow, oh), interpolation=cv2.INTER_NEAREST)
    nh, nw = capped_size(oh, ow, max_side)
    if (nh, nw) != (oh, ow):
        image_rgb = cv2.resize(image_rgb, (nw, nh))
        stack = cv2.resize(stack, (nw, nh), interpolation=cv2.INTER_NEAREST)
    if stack.ndim == 2:
        stack = stack[:, :, None]
    h, w = image_rgb.shape[:2]
    image = imagenet_normalise(pad_to_multiple_of_32(image_rgb))
    guidance = torch.from_numpy(np.ascontiguousarray(pad_to_multiple_of_32(stack).transpose(2, 0, 1)))
    k = guidance.shape[0]
    return InstMattInput(image[None].repeat(k, 1, 1, 1), tri_masks(guidance), (h, w), (oh, ow))


@torch.no_grad()
def instmatt_inference(
    net: InstMattNetwork, inputs: InstMattInput, prm: ProgressiveRefinement | None = None
) -> torch.Tensor:
    """Official ``single_inference``: -> tri-mattes ``[K,3,Hp,Wp]`` after PRM and the refiner."""
    prm = prm or ProgressiveRefinement()
    os1, os4, os8, feature = net(inputs.image, inputs.guidance)
    alpha, region1 = prm.refine(os1, os4, os8)
    refined = refine_instances(net.refiner, inputs.image, alpha, feature)
    return torch.where(region1, refined, alpha)


def instmatt_alphas(trimattes: torch.Tensor, inputs: InstMattInput, quantise: bool = True) -> np.ndarray:
    """Official ``transform``: target channel ×255 truncated to uint8, cropped, and resized back
    (cv2 bilinear) when the input was downscaled -> ``[K,oh,ow]`` uint8; with ``quantise=False``
    the same crop and resize of the float alphas in [0,1] (the service quantises once, later).
    """
    alpha = trimattes[:, 0].cpu().numpy()
    alpha = (alpha * 255).astype(np.uint8) if quantise else np.ascontiguousarray(alpha, dtype=np.float32)
    alpha = np.ascontiguousarray(unpad(alpha, inputs.size))
    oh, ow = inputs.original
    if alpha.shape[1:] != (oh, ow):
        alpha = np.stack([cv2.resize(a, (ow, oh)) for a in alpha])
    return alpha

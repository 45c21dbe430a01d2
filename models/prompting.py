"""How wire prompts become the networks' prompt tensors, shared by the service and the trainer.

Everything here is numpy and works in the letterboxed frame: the photo (H, W) is resized so
its long side is the export size S and padded bottom/right with zeros (``Letterbox``).
Whatever the service sends a network at inference, the trainer builds the same way.

* ISCN: up to ``max_slots`` marks rasterised at S/4, one per slot, with a kind code
  (0 pad, 1 fg click, 2 bg click, 3 fg scribble, 4 bg scribble, 5 box); boxes first, then
  the most recent marks. Text is embedded separately (``models.text``).
* SMat: one binary prompt mask at S: boxes filled, clicks as filled squares (SMat's 41x41 px
  at the original resolution, scaled), fg scribbles as thick strokes. Empty = automatic.
* SEMat: one box [4] in the S frame (the union of the boxes given).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from schemas.prompts import BoxPrompt, ClickPrompt, Prompt, ScribblePrompt

KIND_PAD, KIND_FG_CLICK, KIND_BG_CLICK, KIND_FG_SCRIBBLE, KIND_BG_SCRIBBLE, KIND_BOX = range(6)
CLICK_RADIUS_S4 = 2  # disk radius of a click at S/4 (about 8 px of a 512 frame)
SMAT_CLICK_HALF = 20  # SMat's clicks are (2*20+1)^2 squares at the original resolution


@dataclass(frozen=True)
class Letterbox:
    """Geometry of letterboxing an (height, width) photo into a size x size frame."""

    height: int
    width: int
    size: int

    @property
    def scale(self) -> float:
        return self.size / max(self.height, self.width)

    @property
    def inner(self) -> tuple[int, int]:
        """(h, w) of the photo inside the frame."""
        return max(1, round(self.height * self.scale)), max(1, round(self.width * self.scale))

    def image(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 -> float32 [3, S, S] in [0, 1], zero padded."""
        h, w = self.inner
        interp = cv2.INTER_AREA if self.scale < 1 else cv2.INTER_LINEAR
        frame = np.zeros((self.size, self.size, 3), np.float32)
        frame[:h, :w] = cv2.resize(image, (w, h), interpolation=interp).astype(np.float32) / 255.0
        return np.ascontiguousarray(frame.transpose(2, 0, 1))

    def plane(self, plane: np.ndarray, stride: int = 1) -> np.ndarray:
        """(H, W) float map at original size -> (S/stride, S/stride) letterboxed map (area filter)."""
        h, w = self.inner
        s = self.size // stride
        hs, ws = max(1, round(h / stride)), max(1, round(w / stride))
        out = np.zeros((s, s), np.float32)
        out[:hs, :ws] = cv2.resize(plane.astype(np.float32), (ws, hs), interpolation=cv2.INTER_AREA)
        return out

    def crop(self, plane: np.ndarray) -> np.ndarray:
        """A (S/k, S/k) map -> the part covering the photo (aspect of the photo)."""
        k = self.size / plane.shape[-1]
        h, w = self.inner
        return plane[..., : max(1, round(h / k)), : max(1, round(w / k))]

    def to_original(self, plane: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
        """Crop a letterboxed (S/k, S/k) map to the photo and resize it to (H, W)."""
        return cv2.resize(
            self.crop(plane).astype(np.float32), (self.width, self.height), interpolation=interpolation
        )


def _is_fg(prompt: Prompt) -> bool:
    return getattr(prompt, "label", "fg") == "fg"


def iscn_prompt_tensors(
    prompts: Sequence[Prompt], box: Letterbox, max_slots: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """Marks -> (prompt_maps float32 [max_slots, S/4, S/4] in {0,1}, prompt_kinds int64 [max_slots]).

    Text prompts are skipped (see ``models.text``). With more marks than slots, boxes are kept
    and then the most recent marks."""
    marks = [p for p in prompts if isinstance(p, (ClickPrompt, ScribblePrompt, BoxPrompt))]
    boxes = [p for p in marks if isinstance(p, BoxPrompt)][-max_slots:]
    others = [p for p in marks if not isinstance(p, BoxPrompt)]
    room = max_slots - len(boxes)
    keep = boxes + (others[-room:] if room > 0 else [])
    s4 = box.size // 4
    scale = box.scale / 4.0
    maps = np.zeros((max_slots, s4, s4), np.float32)
    kinds = np.zeros((max_slots,), np.int64)
    for slot, prompt in enumerate(keep):
        canvas = maps[slot]
        if isinstance(prompt, BoxPrompt):
            x0, y0 = int(np.floor(prompt.x0 * scale)), int(np.floor(prompt.y0 * scale))
            x1, y1 = int(np.ceil(prompt.x1 * scale)), int(np.ceil(prompt.y1 * scale))
            canvas[max(0, y0) : max(y0 + 1, y1), max(0, x0) : max(x0 + 1, x1)] = 1.0
            kinds[slot] = KIND_BOX
        elif isinstance(prompt, ClickPrompt):
            centre = (int(prompt.x * scale), int(prompt.y * scale))
            cv2.circle(canvas, centre, CLICK_RADIUS_S4, 1.0, -1)
            kinds[slot] = KIND_FG_CLICK if _is_fg(prompt) else KIND_BG_CLICK
        else:
            points = (np.asarray(prompt.points, np.float64) * scale).astype(np.int32).reshape(-1, 1, 2)
            thickness = max(1, round(2 * prompt.radius * scale))
            cv2.polylines(canvas, [points], False, 1.0, thickness)
            cv2.circle(canvas, tuple(int(v) for v in points[0, 0]), max(1, thickness // 2), 1.0, -1)
            kinds[slot] = KIND_FG_SCRIBBLE if _is_fg(prompt) else KIND_BG_SCRIBBLE
    return maps, kinds


def smat_prompt_mask(prompts: Sequence[Prompt], box: Letterbox, grid_stride: int | None = None) -> np.ndarray:
    """Foreground marks -> float32 [1, S, S] binary prompt mask (all zero: automatic mode).

    Background marks are ignored: SMat's prompt is a single positive mask. SMat samples the
    mask at its token grid (nearest: pixels ``(i, j) * stride``) and, as the official code
    does, pools an all-zero feature when no sample is set although the mask has pixels; with
    ``grid_stride``, when no sample is set, every mark also sets the sample nearest to it, so a
    small click or a thin scribble always reaches the network."""
    mask = np.zeros((box.size, box.size), np.float32)
    scale = box.scale
    half = max(1, round(SMAT_CLICK_HALF * scale))
    anchors: list[tuple[float, float]] = []
    for prompt in prompts:
        if isinstance(prompt, BoxPrompt):
            x0, y0 = int(prompt.x0 * scale), int(prompt.y0 * scale)
            x1, y1 = int(np.ceil(prompt.x1 * scale)), int(np.ceil(prompt.y1 * scale))
            mask[y0:y1, x0:x1] = 1.0
            anchors.append(((x0 + x1) / 2, (y0 + y1) / 2))
        elif isinstance(prompt, ClickPrompt) and _is_fg(prompt):
            x, y = int(prompt.x * scale), int(prompt.y * scale)
            mask[max(0, y - half) : y + half + 1, max(0, x - half) : x + half + 1] = 1.0
            anchors.append((x, y))
        elif isinstance(prompt, ScribblePrompt) and _is_fg(prompt):
            points = (np.asarray(prompt.points, np.float64) * scale).astype(np.int32).reshape(-1, 1, 2)
            thickness = max(5, round(2 * prompt.radius * scale))
            cv2.polylines(mask, [points], False, 1.0, thickness)
            anchors += [(float(x), float(y)) for x, y in points[:, 0]]
    if grid_stride and mask.any() and not mask[::grid_stride, ::grid_stride].any():
        last = (box.size - 1) // grid_stride * grid_stride
        for x, y in anchors:
            gx = min(max(round(x / grid_stride) * grid_stride, 0), last)
            gy = min(max(round(y / grid_stride) * grid_stride, 0), last)
            mask[gy, gx] = 1.0
    return mask[None]


def box_union(prompts: Sequence[Prompt]) -> tuple[float, float, float, float] | None:
    """(x0, y0, x1, y1) of the union of the boxes among ``prompts``, in photo pixels, or None."""
    boxes = [p for p in prompts if isinstance(p, BoxPrompt)]
    if not boxes:
        return None
    return (
        min(b.x0 for b in boxes),
        min(b.y0 for b in boxes),
        max(b.x1 for b in boxes),
        max(b.y1 for b in boxes),
    )


def semat_box(prompts: Sequence[Prompt], box: Letterbox) -> np.ndarray | None:
    """The union of the boxes -> float32 [4] (x0, y0, x1, y1) in the S frame, or None without a box."""
    union = box_union(prompts)
    if union is None:
        return None
    scaled = np.array(union, np.float64) * box.scale
    return np.clip(scaled.astype(np.float32), 0.0, float(box.size))

"""Progressive merge: a corrective round changes only the regions its new marks touch.

FocalClick's progressive merge (Chen et al., CVPR 2022, section 3.4): after a round of
corrective clicks or scribbles, the new matte replaces the previous one only in the connected
regions where the binary mask changed **and** that a new mark touches; everywhere else the
previous round's matte, which the user has already accepted, stays. A corrective click then
cannot make the matte worse far away from it, which a network's global re-prediction does on
real photos.

The components are found on a working copy of at most :data:`WORK_SIDE` px (the marks'
resolution, ``service.engines.marks``); the kept region is widened by :data:`FEATHER` px there
and blurred into a blend weight, so the two mattes meet without a seam.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from schemas.prompts import ClickPrompt, Prompt, ScribblePrompt
from service.engines.marks import WORK_SIDE
from service.imaging import long_side_scale
from service.prompts import draw_marks

FEATHER = 2  # px at the working size: the kept region's widening, and the blend's blur sigma


def is_corrective(new_prompts: Sequence[Prompt]) -> bool:
    """Whether a round only adds clicks and scribbles (no new box or text, which redefine the target)."""
    return bool(new_prompts) and all(isinstance(p, ClickPrompt | ScribblePrompt) for p in new_prompts)


def merge_changes(
    previous: np.ndarray | None, alpha: np.ndarray, new_prompts: Sequence[Prompt]
) -> np.ndarray:
    """``alpha`` (H, W) float32 in [0, 1], this round's matte, kept only in the changed regions
    that the round's ``new_prompts`` touch, ``previous`` (H, W) elsewhere. ``alpha`` itself when
    there is no previous matte of the same size, the round is not corrective, or no pixel
    crossed 0.5 (the mattes then differ only in their soft edges, and the new ones are kept)."""
    if previous is None or previous.shape != alpha.shape or not is_corrective(new_prompts):
        return alpha
    weight = kept_weight(previous, alpha, new_prompts)
    return alpha if weight is None else blend(previous, alpha, weight)


def kept_weight(previous: np.ndarray, alpha: np.ndarray, new_prompts: Sequence[Prompt]) -> np.ndarray | None:
    """The weight of ``alpha`` against ``previous`` (both (H, W)) at the working size, float32 in
    [0, 1]: 1 in the changed regions that the marks of ``new_prompts`` touch, feathered, 0 elsewhere;
    None when no pixel crossed 0.5."""
    height, width = alpha.shape
    scale = long_side_scale(height, width, WORK_SIDE)
    h, w = max(1, round(height * scale)), max(1, round(width * scale))

    def small(a: np.ndarray) -> np.ndarray:
        return a if scale == 1.0 else cv2.resize(a, (w, h), interpolation=cv2.INTER_AREA)

    before, after = small(previous) >= 0.5, small(alpha) >= 0.5
    if not (before != after).any():
        return None
    fg, bg = draw_marks(new_prompts, h, w, scale=scale, click_radius=max(1, round(2 * scale)))
    keep = touched_changes(before, after, fg > 0, bg > 0).astype(np.float32)
    size = 2 * FEATHER + 1
    weight = cv2.GaussianBlur(cv2.dilate(keep, np.ones((size, size), np.uint8)), (0, 0), FEATHER)
    return np.clip(weight * 2.0, 0.0, 1.0)  # the kept region itself at full weight


def touched_changes(
    before: np.ndarray, after: np.ndarray, fg_marks: np.ndarray, bg_marks: np.ndarray | None = None
) -> np.ndarray:
    """Bool (h, w): the changes from the binary mask ``before`` to ``after`` (bool (h, w)) that
    the marks ask for: the 8-connected regions that became foreground and that ``fg_marks``
    touch, and those that became background and that ``bg_marks`` touch (bool (h, w) each,
    within a pixel). A region that changed against its mark's label (a foreground click beside
    a part the new prediction dropped) is not kept."""
    kept = _touched(after & ~before, fg_marks)
    if bg_marks is not None:
        kept |= _touched(before & ~after, bg_marks)
    return kept


def _touched(region: np.ndarray, marks: np.ndarray) -> np.ndarray:
    """Bool (h, w): the 8-connected components of ``region`` that ``marks`` touch, within a pixel."""
    if not marks.any() or not region.any():
        return np.zeros(region.shape, bool)
    touched = cv2.dilate(marks.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    _, labels = cv2.connectedComponents(region.astype(np.uint8), connectivity=8)
    hit = np.unique(labels[touched & region])
    return np.isin(labels, hit[hit > 0])


def blend(previous: np.ndarray, alpha: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``previous + W * (alpha - previous)`` (float32 (H, W)) with ``W`` the working-size ``weight``
    (h, w) resized bilinearly to (H, W), computed on the weight's bounding box only."""
    height, width = alpha.shape
    h, w = weight.shape
    out = previous.astype(np.float32, copy=True)
    rows, cols = np.flatnonzero(weight.any(axis=1)), np.flatnonzero(weight.any(axis=0))
    if not len(rows):
        return out
    # A working pixel of margin: beyond it the resized weight is 0.
    y0, y1 = max(0, rows[0] - 1), min(h, rows[-1] + 2)
    x0, x1 = max(0, cols[0] - 1), min(w, cols[-1] + 2)
    if (h, w) == (height, width):
        box, part = np.s_[y0:y1, x0:x1], weight[y0:y1, x0:x1]
    else:
        sx, sy = w / width, h / height
        top, bottom = int(y0 / sy), min(height, int(np.ceil(y1 / sy)) + 1)
        left, right = int(x0 / sx), min(width, int(np.ceil(x1 / sx)) + 1)
        box = np.s_[top:bottom, left:right]
        # The crop of what resizing the whole weight would give (cv2.resize's pixel-centre
        # mapping), without computing the rest.
        mapping = np.array([[sx, 0.0, (left + 0.5) * sx - 0.5 - x0], [0.0, sy, (top + 0.5) * sy - 0.5 - y0]])
        part = cv2.warpAffine(
            weight[y0:y1, x0:x1],
            mapping,
            (right - left, bottom - top),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
    out[box] += part * (alpha[box].astype(np.float32, copy=False) - out[box])
    return out

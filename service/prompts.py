"""Checking prompts against the image, and drawing them as seed masks.

Structural checks (types, required fields) are the schema's; here live the checks that
need the image size, each answering 400 with the index of the offending prompt.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable, Sequence

import cv2
import numpy as np

from schemas.prompts import BoxPrompt, ClickPrompt, Prompt, PromptKind, ScribblePrompt, TextPrompt
from service.errors import InvalidPrompt

MAX_SCRIBBLE_RADIUS = 256.0


def validate_prompts(prompts: Sequence[Prompt], width: int, height: int, *, max_prompts: int) -> None:
    """Raise ``InvalidPrompt`` naming ``prompts[i]`` for the first prompt that cannot apply to a
    ``width`` x ``height`` image: non-finite or out-of-range coordinates, inverted or empty boxes,
    empty scribbles, blank text, or more than ``max_prompts`` prompts."""
    if len(prompts) > max_prompts:
        raise InvalidPrompt(
            f"A round may carry at most {max_prompts} prompts; this one has {len(prompts)}.",
            code="too_many_prompts",
        )
    for index, prompt in enumerate(prompts):
        where = f"prompts[{index}] ({prompt.type})"
        if isinstance(prompt, ClickPrompt):
            _check_point(where, prompt.x, prompt.y, width, height)
        elif isinstance(prompt, ScribblePrompt):
            if not prompt.points:
                raise InvalidPrompt(f"{where}: a scribble needs at least one point.")
            for k, (x, y) in enumerate(prompt.points):
                _check_point(f"{where} point {k}", x, y, width, height)
            if not math.isfinite(prompt.radius) or not 0 < prompt.radius <= MAX_SCRIBBLE_RADIUS:
                raise InvalidPrompt(f"{where}: radius must be in (0, {MAX_SCRIBBLE_RADIUS:g}].")
        elif isinstance(prompt, BoxPrompt):
            _check_point(f"{where} corner (x0, y0)", prompt.x0, prompt.y0, width, height)
            _check_point(f"{where} corner (x1, y1)", prompt.x1, prompt.y1, width, height)
            if prompt.x1 <= prompt.x0 or prompt.y1 <= prompt.y0:
                raise InvalidPrompt(
                    f"{where}: the box is inverted or empty; need x0 < x1 and y0 < y1 "
                    f"(got x0={prompt.x0:g}, x1={prompt.x1:g}, y0={prompt.y0:g}, y1={prompt.y1:g})."
                )
        elif isinstance(prompt, TextPrompt) and not _has_visible_characters(prompt.text):
            raise InvalidPrompt(f"{where}: the text is empty.")


def _has_visible_characters(text: str) -> bool:
    """Whether ``text`` holds anything but white space and invisible characters (zero-width
    spaces and joiners, direction marks, control characters: Unicode categories Z*, Cf, Cc)."""
    return any(unicodedata.category(c) not in INVISIBLE_CATEGORIES for c in text)


INVISIBLE_CATEGORIES = ("Cf", "Cc", "Zs", "Zl", "Zp")  # format, control, separators (spaces)
SIMPLIFY_TOLERANCE_PX = 0.5  # a scribble's stored polyline stays within this of the drawn one


def compact_marks(prompts: Sequence[Prompt]) -> list[Prompt]:
    """The prompts as they are stored and used: each scribble's polyline simplified
    (Douglas-Peucker, ``cv2.approxPolyDP``, within ``SIMPLIFY_TOLERANCE_PX`` — well under any
    brush radius) and rounded to 0.1 px. A stroke of a few thousand pointer samples keeps
    tens of points, so a session's history stays small in Redis and cheap to re-read."""
    compacted: list[Prompt] = []
    for prompt in prompts:
        if isinstance(prompt, ScribblePrompt) and len(prompt.points) > 2:
            line = np.asarray(prompt.points, dtype=np.float32).reshape(-1, 1, 2)
            kept = cv2.approxPolyDP(line, min(SIMPLIFY_TOLERANCE_PX, prompt.radius / 4), closed=False)
            kept = kept.reshape(-1, 2)
            if not np.array_equal(kept[-1], line[-1, 0]):
                # OpenCV drops the end of a stroke that returns to its start (a loop).
                kept = np.vstack([kept, line[-1]])
            points = [(round(float(x), 1), round(float(y), 1)) for x, y in kept]
            prompt = prompt.model_copy(update={"points": points})
        compacted.append(prompt)
    return compacted


def mark_points(prompts: Iterable[Prompt]) -> int:
    """How many coordinates ``prompts`` store (a click 1, a box 2, a scribble its points)."""
    total = 0
    for prompt in prompts:
        if isinstance(prompt, ScribblePrompt):
            total += len(prompt.points)
        elif isinstance(prompt, ClickPrompt):
            total += 1
        elif isinstance(prompt, BoxPrompt):
            total += 2
    return total


def _check_point(where: str, x: float, y: float, width: int, height: int) -> None:
    if not (math.isfinite(x) and math.isfinite(y)):
        raise InvalidPrompt(f"{where}: coordinates must be finite numbers.")
    if not (0 <= x <= width and 0 <= y <= height):
        raise InvalidPrompt(
            f"{where}: ({x:g}, {y:g}) lies outside the {width}x{height} image.",
            code="prompt_out_of_range",
        )


def prompt_kinds(prompts: Iterable[Prompt]) -> set[PromptKind]:
    """The set of prompt types present."""
    return {prompt.type for prompt in prompts}


def boxes(prompts: Iterable[Prompt]) -> list[BoxPrompt]:
    return [p for p in prompts if isinstance(p, BoxPrompt)]


def draw_marks(
    prompts: Iterable[Prompt], height: int, width: int, *, scale: float, click_radius: int
) -> tuple[np.ndarray, np.ndarray]:
    """Draw clicks and scribbles as foreground/background seed masks at ``scale`` times the
    original resolution, in prompt order (a later mark overrides an earlier one where they
    overlap). A mark on the photo's last row or column (or on its far edge, x = width) is drawn
    on the last one: scaled and rounded it could land one past the end and draw nothing.
    Returns two uint8 masks of shape (height, width) with values 0/1."""
    label_map = np.zeros((height, width), np.uint8)  # 0 none, 1 fg, 2 bg
    last = np.array([width - 1, height - 1])
    for prompt in prompts:
        value = 1 if getattr(prompt, "label", "fg") == "fg" else 2
        if isinstance(prompt, ClickPrompt):
            x, y = np.clip(np.round([prompt.x * scale, prompt.y * scale]), 0, last).astype(int)
            cv2.circle(label_map, (int(x), int(y)), click_radius, value, thickness=-1)
        elif isinstance(prompt, ScribblePrompt):
            radius = max(1, round(prompt.radius * scale))
            points = np.clip(np.round(np.asarray(prompt.points, np.float64) * scale), 0, last).astype(
                np.int32
            )
            if len(points) == 1:
                cv2.circle(label_map, tuple(int(v) for v in points[0]), radius, value, thickness=-1)
            else:
                cv2.polylines(label_map, [points.reshape(-1, 1, 2)], False, value, thickness=2 * radius + 1)
    return (label_map == 1).astype(np.uint8), (label_map == 2).astype(np.uint8)


def focus_region(
    shape: tuple[int, int], prompts: Sequence[Prompt], context: float
) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1) of the part of the photo that matters when there is a box: the boxes and
    the foreground marks, with a margin of ``context`` times their size (at least 8 px); None
    without a box or when that covers the photo anyway. Marks only, so the region stays the
    same from round to round while the boxes do."""
    box_prompts = boxes(prompts)
    if not box_prompts:
        return None
    h, w = shape
    xs = [v for b in box_prompts for v in (b.x0, b.x1)]
    ys = [v for b in box_prompts for v in (b.y0, b.y1)]
    for p in prompts:
        if getattr(p, "label", "bg") != "fg":
            continue
        if isinstance(p, ClickPrompt):
            xs.append(p.x)
            ys.append(p.y)
        elif isinstance(p, ScribblePrompt):
            pts = np.asarray(p.points, np.float64)
            xs += [float(pts[:, 0].min()) - p.radius, float(pts[:, 0].max()) + p.radius]
            ys += [float(pts[:, 1].min()) - p.radius, float(pts[:, 1].max()) + p.radius]
    bx0, bx1, by0, by1 = min(xs), max(xs), min(ys), max(ys)
    mx = max(8.0, context * (bx1 - bx0))
    my = max(8.0, context * (by1 - by0))
    x0, x1 = max(0, int(np.floor(bx0 - mx))), min(w, int(np.ceil(bx1 + mx)))
    y0, y1 = max(0, int(np.floor(by0 - my))), min(h, int(np.ceil(by1 + my)))
    if x1 - x0 >= w and y1 - y0 >= h:
        return None
    if x1 <= x0 or y1 <= y0:
        return None
    return y0, y1, x0, x1


def shift_prompt(prompt: Prompt, dx: int, dy: int) -> Prompt:
    """``prompt`` in the coordinates of a crop whose top-left corner is (dx, dy)."""
    if isinstance(prompt, ClickPrompt):
        return prompt.model_copy(update={"x": prompt.x - dx, "y": prompt.y - dy})
    if isinstance(prompt, ScribblePrompt):
        return prompt.model_copy(update={"points": [[x - dx, y - dy] for x, y in prompt.points]})
    if isinstance(prompt, BoxPrompt):
        return prompt.model_copy(
            update={"x0": prompt.x0 - dx, "y0": prompt.y0 - dy, "x1": prompt.x1 - dx, "y1": prompt.y1 - dy}
        )
    return prompt

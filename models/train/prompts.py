"""Training-time prompt samplers: wire prompt objects (``schemas.prompts``) from ground truth.

The networks only ever see prompts through :mod:`models.prompting`, exactly as the service
builds them; these samplers produce the wire objects a user (or the DFIMat simulator of
:mod:`models.eval.simulator`) would send:

* round 1: clicks inside the target (the deepest point first, as the simulator does, or
  random interior points), background clicks on another person or next to the target,
  scribbles along a (partial) skeleton of the target, jittered boxes, the text description,
  and mixtures of these;
* later rounds: :func:`correction_prompts` places 1–3 clicks or 1–2 scribbles in the largest
  errors of the previous prediction, with the simulator's own placement rules;
* :func:`perturb_mask` corrupts a ground-truth mask the way a coarse prediction is wrong
  (shifted or eroded/dilated edges, S/4 blockiness, holes, blobs), for previous-round masks
  and for the guidance masks of MRN and InstMatt.

All functions take ``alpha``/``mask`` arrays at the original (letterbox-inner) resolution
[h, w] and a ``numpy.random.Generator``; coordinates follow the wire convention (x = column,
y = row; box edges in pixel-edge coordinates).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from models.eval.simulator import UserSimulator, gt_box, place_scribble
from schemas.prompts import BoxPrompt, ClickPrompt, Prompt, ScribblePrompt, TextPrompt

ROUND_ONE_MODES: dict[str, float] = {
    "click": 0.22,
    "scribble": 0.13,
    "box": 0.2,
    "text": 0.15,
    "box+text": 0.1,
    "text+click": 0.1,
    "box+click": 0.1,
}
"""Round-1 prompt mixtures and how often ISCN is trained on each."""


def _distance(mask: np.ndarray) -> np.ndarray:
    """Distance of each mask pixel to the nearest non-mask pixel (image borders count as boundary)."""
    padded = np.pad(mask.astype(np.uint8), 1)
    return cv2.distanceTransform(padded, cv2.DIST_L2, 3)[1:-1, 1:-1]


def binary(alpha: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Bool mask ``alpha >= threshold``."""
    return np.asarray(alpha) >= threshold


def interior_point(mask: np.ndarray, rng: np.random.Generator, deepest: bool = False) -> tuple[int, int]:
    """(x, y) of a mask pixel: near the deepest point, or uniformly among pixels at least a
    third of the maximum depth from the boundary (so a click lies clearly inside)."""
    dist = _distance(mask)
    top = float(dist.max())
    keep = dist >= (0.9 * top if deepest else max(min(top / 3.0, 3.0), 0.5))
    ys, xs = np.nonzero(keep)
    i = int(rng.integers(len(ys)))
    return int(xs[i]), int(ys[i])


def sample_clicks(
    mask: np.ndarray, rng: np.random.Generator, count: int, label: str = "fg", deepest_first: bool = True
) -> list[ClickPrompt]:
    """``count`` clicks inside ``mask`` (bool [h, w]); none if the mask is empty."""
    if not mask.any():
        return []
    out = []
    for n in range(count):
        x, y = interior_point(mask, rng, deepest=deepest_first and n == 0)
        out.append(ClickPrompt(x=float(x), y=float(y), label=label))
    return out


def sample_scribble(
    mask: np.ndarray, rng: np.random.Generator, label: str = "fg", partial: bool = True
) -> ScribblePrompt | None:
    """A stroke along the skeleton of ``mask`` (the simulator's placement, brush 1–4 px), or a
    random contiguous 40–100 % of it with ``partial``; None for an empty mask."""
    if not mask.any():
        return None
    points, radius = place_scribble(mask, float(rng.uniform(1.0, 4.0)), rng)
    if partial and len(points) > 4:
        keep = max(2, int(len(points) * rng.uniform(0.4, 1.0)))
        start = int(rng.integers(0, len(points) - keep + 1))
        points = points[start : start + keep]
    return ScribblePrompt(points=[(float(x), float(y)) for x, y in points], label=label, radius=radius)


def sample_box(alpha: np.ndarray, rng: np.random.Generator, jitter: float = 0.05) -> BoxPrompt | None:
    """The ground-truth box of ``alpha > 0``, each edge moved by N(0, ``jitter`` x box side)
    (half the time exact), clipped to the image; None for an empty alpha."""
    box = gt_box(alpha)
    if box is None:
        return None
    if rng.random() < 0.5 or jitter <= 0:
        return box
    h, w = alpha.shape
    bw, bh = box.x1 - box.x0, box.y1 - box.y0
    dx0, dx1 = rng.normal(0.0, jitter * bw, 2)
    dy0, dy1 = rng.normal(0.0, jitter * bh, 2)
    x0 = float(np.clip(box.x0 + dx0, 0, w - 1))
    y0 = float(np.clip(box.y0 + dy0, 0, h - 1))
    x1 = float(np.clip(box.x1 + dx1, x0 + 1, w))
    y1 = float(np.clip(box.y1 + dy1, y0 + 1, h))
    return BoxPrompt(x0=x0, y0=y0, x1=x1, y1=y1)


def background_region(target: np.ndarray, others: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Where a background mark goes: another person (when there is one, usually) or the
    background within a band around the target."""
    if others.any() and rng.random() < 0.7:
        return others & ~target
    ys, xs = np.nonzero(target)
    if len(ys) == 0:
        return ~target
    side = max(ys.max() - ys.min(), xs.max() - xs.min(), 8)
    k = int(max(3, 0.25 * side)) | 1
    near = cv2.dilate(target.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))) > 0
    inner = cv2.dilate(target.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    region = near & ~inner & ~others
    return region if region.any() else ~target


def round_one_prompts(
    mode: str,
    alphas: np.ndarray,
    target: int,
    text: str,
    rng: np.random.Generator,
    box_jitter: float = 0.05,
) -> list[Prompt]:
    """Round-1 prompts of ``mode`` (a key of :data:`ROUND_ONE_MODES`, or ``"none"``) for
    instance ``target`` of ``alphas`` [K, h, w]; ``text`` is its description.

    Clicks: 1–3 fg (the first at the deepest point 60 % of the time) and, a third of the
    time, one bg click; scribbles: 1–2 fg strokes and, a quarter of the time, one bg stroke.
    """
    gt = alphas[target]
    mask = binary(gt)
    others = binary(np.delete(alphas, target, axis=0).sum(axis=0)) if len(alphas) > 1 else np.zeros_like(mask)
    prompts: list[Prompt] = []
    for part in mode.split("+"):
        if part == "box":
            box = sample_box(gt, rng, box_jitter)
            if box is not None:
                prompts.append(box)
        elif part == "text":
            prompts.append(TextPrompt(text=text))
        elif part == "click":
            n = int(rng.integers(1, 4))
            prompts.extend(sample_clicks(mask, rng, n, "fg", deepest_first=rng.random() < 0.6))
            if rng.random() < 0.33:
                prompts.extend(sample_clicks(background_region(mask, others, rng), rng, 1, "bg", False))
        elif part == "scribble":
            for _ in range(int(rng.integers(1, 3))):
                stroke = sample_scribble(mask, rng, "fg")
                if stroke is not None:
                    prompts.append(stroke)
            if rng.random() < 0.25:
                stroke = sample_scribble(background_region(mask, others, rng), rng, "bg")
                if stroke is not None:
                    prompts.append(stroke)
        elif part != "none":
            raise ValueError(f"unknown prompt mode {part!r}")
    return prompts


def choose_mode(rng: np.random.Generator, modes: dict[str, float] = ROUND_ONE_MODES) -> str:
    """Draw a mode name with the given relative weights."""
    names = list(modes)
    p = np.asarray([modes[n] for n in names], np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def correction_prompts(
    previous: np.ndarray | None,
    gt: np.ndarray,
    rng: np.random.Generator,
    kind: str | None = None,
) -> list[ClickPrompt | ScribblePrompt]:
    """What the DFIMat simulator adds in a correcting round: clicks (1–3) or scribbles (1–2) in
    the largest error regions of ``previous`` (alpha/probability [h, w], None = nothing yet)
    against ``gt`` [h, w]. ``kind`` "click"/"scribble" (default: clicks 70 % of the time)."""
    kind = kind or ("click" if rng.random() < 0.7 else "scribble")
    sim = UserSimulator(
        "click",
        seed=int(rng.integers(2**31)),
        clicks_per_round=int(rng.integers(1, 4)),
        scribbles_per_round=int(rng.integers(1, 3)),
    )
    return sim.corrections(1, gt, previous, kind)


def _ellipse(
    shape: tuple[int, int], centre: tuple[int, int], axes: tuple[int, int], angle: float
) -> np.ndarray:
    canvas = np.zeros(shape, np.uint8)
    cv2.ellipse(canvas, centre, axes, angle, 0, 360, 1, -1)
    return canvas > 0


def perturb_mask(mask: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """A plausible wrong version of ``mask`` (bool [h, w]) -> float32 {0, 1} [h, w].

    Applies 1–3 of: erosion/dilation, blur-and-threshold (smoothed edges), S/4-style
    blockiness, a shift, holes, blobs near the edge. ``strength`` scales the amounts.
    """
    m = mask.astype(np.uint8)
    area = float(m.sum())
    if area == 0:
        return m.astype(np.float32)
    scale = np.sqrt(area) * strength
    h, w = m.shape
    ops = rng.permutation(["morph", "blur", "blocky", "shift", "holes", "blobs"])[: int(rng.integers(1, 4))]
    for op in ops:
        if op == "morph":
            r = int(max(1, round(rng.uniform(0.01, 0.08) * scale)))
            k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
            m = cv2.erode(m, k) if rng.random() < 0.5 else cv2.dilate(m, k)
        elif op == "blur":
            sigma = float(rng.uniform(1.0, 1.0 + 0.06 * scale))
            m = (cv2.GaussianBlur(m.astype(np.float32), (0, 0), sigma) >= rng.uniform(0.3, 0.7)).astype(
                np.uint8
            )
        elif op == "blocky":
            f = int(rng.choice([4, 8]))
            small = cv2.resize(
                m.astype(np.float32), (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_AREA
            )
            m = (cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR) >= 0.5).astype(np.uint8)
        elif op == "shift":
            dx, dy = (int(v) for v in np.round(rng.normal(0.0, 0.03 * scale, 2)))
            m = cv2.warpAffine(m, np.float32([[1, 0, dx], [0, 1, dy]]), (w, h), flags=cv2.INTER_NEAREST)
        elif op in ("holes", "blobs"):
            ys, xs = np.nonzero(m)
            if len(ys) == 0:
                break
            for _ in range(int(rng.integers(1, 4))):
                if op == "holes":
                    i = int(rng.integers(len(ys)))
                    cy, cx = int(ys[i]), int(xs[i])
                else:
                    edge = np.nonzero(cv2.morphologyEx(m, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)))
                    if len(edge[0]) == 0:
                        break
                    i = int(rng.integers(len(edge[0])))
                    cy, cx = int(edge[0][i]), int(edge[1][i])
                axes = tuple(int(max(1, round(v))) for v in rng.uniform(0.03, 0.15, 2) * scale)
                blob = _ellipse((h, w), (cx, cy), axes, float(rng.uniform(0, 180)))
                m[blob] = 0 if op == "holes" else 1
    return m.astype(np.float32)


def count_kinds(prompts: Sequence[Prompt]) -> dict[str, int]:
    """How many prompts of each wire type (for logging and tests)."""
    out: dict[str, int] = {}
    for p in prompts:
        out[p.type] = out.get(p.type, 0) + 1
    return out

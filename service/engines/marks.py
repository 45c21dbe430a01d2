"""Honouring the user's marks: an edge-aware local correction applied after every pipeline.

After a round, the matte under a background click or scribble is 0 and under a foreground one
is 1, and the connected region the mark corrects follows it:

* a **background** mark on a wrongly included region removes that region: if the region is a
  separate piece of the matte (no foreground mark in it, less than half of the matte), the
  whole piece; otherwise the part of it that is geodesically closer to the mark than to the
  foreground (the foreground marks, or the part of the piece farthest from the mark), with
  path costs that grow with the photo's colour edges, so the cut runs along an edge;
* a **foreground** mark on a missed part adds the part of the background, within a window
  around the mark of the matte's size, that is geodesically closer to the mark than to the
  background evidence (background marks, the outside of the boxes, the window's rim).

A correction reaches only as far as the mark's own region (``reach``, :data:`LOCAL_REACH` for the
learned pipelines): a mark's depth in the region it lies in (its distance from that region's
edge) says how large the error it corrects is, so the corrected region ends at a path cost of a
few times that depth. A separate piece still goes whole, and an addition inside a box is not
bounded (everything outside the box is background evidence that already stops it). Without the
bound a background click on a halo beside a uniform body took the body with it (the geodesic
split ran on across it), and a foreground click on a missed rim without a box let in the
uniform background beside it.

Geodesic distances are minimum-cost paths (``service.engines.geodesic``, scikit-image's
``MCP_Geometric`` distances, stopped where the reach ends) on
a working copy of at most :data:`WORK_SIDE` px; the corrected region is mapped back with
bilinear weights, and the marks themselves are then written at full resolution. The learned
pipelines' CRM still drives the global change; this only makes sure the marks' own regions
follow them.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from schemas.prompts import ClickPrompt, Prompt, ScribblePrompt
from service.engines.geodesic import path_costs
from service.imaging import long_side_scale
from service.prompts import boxes, draw_marks, shift_prompt

WORK_SIDE = 384
EDGE_WEIGHT = 40.0  # path cost per unit of colour-gradient magnitude (RGB in [0, 1]) per pixel
FAR_QUANTILE = 0.8  # without foreground marks, the farthest 20 % of a piece anchor the foreground
# A pixel leaves the matte when its path cost to the mark is below 1/KEEP_BIAS of that to the foreground.
KEEP_BIAS = 1.5
PIECE_FRACTION = 0.5  # a separate piece smaller than this share of the matte goes as a whole
# How far a correction reaches, in path cost, as a multiple of its marks' depth in the region they
# correct (the largest distance from a mark to that region's edge, in working pixels).
LOCAL_REACH = 6.0
MIN_DEPTH = 2.0  # a mark on the region's very edge still corrects a few pixels around it


def has_marks(prompts: Sequence[Prompt]) -> bool:
    """Whether any click or scribble is among ``prompts``."""
    return any(isinstance(p, ClickPrompt | ScribblePrompt) for p in prompts)


def edge_costs(image: np.ndarray) -> np.ndarray:
    """The path costs of ``image`` (H, W, 3 uint8 RGB) at the working size: float32 (h, w),
    1 + EDGE_WEIGHT * |grad I|. They depend on the photo alone, so a session computes them once
    and passes them to every round's :func:`honour_marks`."""
    height, width = image.shape[:2]
    scale = long_side_scale(height, width, WORK_SIDE)
    if scale != 1.0:
        h, w = max(1, round(height * scale)), max(1, round(width * scale))
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
    return _edge_costs(image)


def honour_marks(
    image: np.ndarray,
    alpha: np.ndarray,
    prompts: Sequence[Prompt],
    costs: np.ndarray | None = None,
    reach: float | None = LOCAL_REACH,
    *,
    bounded_search: bool = True,
) -> np.ndarray:
    """``alpha`` (H, W) float32 in [0, 1] of ``image`` (H, W, 3 uint8 RGB) corrected so that every
    click and scribble of ``prompts`` holds (see the module doc). ``costs``: :func:`edge_costs`
    of ``image`` when the caller keeps them (computed here otherwise). ``reach``: how far the
    corrected regions extend, in multiples of the marks' depth (:data:`LOCAL_REACH`); None for
    as far as the geodesic split goes. ``bounded_search``: stop the geodesic searches where the
    reach ends and keep them to the boxes and the evidence around them (the same matte, faster);
    False searches every pixel of each region (a reference). Returns a new array."""
    if not has_marks(prompts):
        return alpha
    height, width = alpha.shape
    scale = long_side_scale(height, width, WORK_SIDE)
    h, w = max(1, round(height * scale)), max(1, round(width * scale))
    small = alpha if scale == 1.0 else cv2.resize(alpha, (w, h), interpolation=cv2.INTER_AREA)
    fg, bg = draw_marks(prompts, h, w, scale=scale, click_radius=max(1, round(2 * scale)))
    inside = small >= 0.5
    step_costs = (edge_costs(image) if costs is None else costs).astype(np.float64)
    remove = _removed_region(inside, fg > 0, bg > 0, step_costs, reach, bounded_search=bounded_search)
    outside_boxes = _outside_boxes(prompts, h, w, scale)
    add = _added_region(
        inside, fg > 0, bg > 0, step_costs, outside_boxes, reach, bounded_search=bounded_search
    )
    out = alpha.astype(np.float32, copy=True)
    if remove.any() or add.any():
        change = add.astype(np.float32) - remove.astype(np.float32)
        if scale != 1.0:
            change = cv2.resize(change, (width, height), interpolation=cv2.INTER_LINEAR)
        # Only where the change is non-zero does the blend alter the matte (exactly: x * 1 and
        # x + y * 0 are x), so it runs on the change's bounding box.
        rows, cols = np.flatnonzero(change.any(axis=1)), np.flatnonzero(change.any(axis=0))
        if len(rows):
            box = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
            part, delta = out[box], change[box]
            out[box] = np.where(
                delta < 0, part * (1.0 + delta), part + (1.0 - part) * np.clip(delta, 0.0, 1.0)
            )
    _write_marks(out, prompts)
    return np.clip(out, 0.0, 1.0, out=out)


def _write_marks(alpha: np.ndarray, prompts: Sequence[Prompt]) -> None:
    """Sets ``alpha`` (H, W) to 1 under the foreground marks and 0 under the background ones, at
    full resolution, drawing only the marks' bounding box."""
    height, width = alpha.shape
    xs, ys, pad = [], [], 3  # click radius 2 at full resolution, plus a pixel of rounding
    for p in prompts:
        if isinstance(p, ClickPrompt):
            xs.append(p.x)
            ys.append(p.y)
        elif isinstance(p, ScribblePrompt):
            pts = np.asarray(p.points, np.float64).reshape(-1, 2)
            xs += [pts[:, 0].min(), pts[:, 0].max()]
            ys += [pts[:, 1].min(), pts[:, 1].max()]
            pad = max(pad, int(np.ceil(p.radius)) + 2)
    if not xs:
        return
    # An even corner keeps the marks' rounding (half to even) the same as at full size.
    x0, x1 = max(0, int(np.floor(min(xs))) - pad) & ~1, min(width, int(np.ceil(max(xs))) + pad + 1)
    y0, y1 = max(0, int(np.floor(min(ys))) - pad) & ~1, min(height, int(np.ceil(max(ys))) + pad + 1)
    if x0 >= x1 or y0 >= y1:
        return
    shifted = [shift_prompt(p, x0, y0) for p in prompts if isinstance(p, ClickPrompt | ScribblePrompt)]
    fg, bg = draw_marks(shifted, y1 - y0, x1 - x0, scale=1.0, click_radius=2)
    part = alpha[y0:y1, x0:x1]
    part[fg > 0] = 1.0
    part[bg > 0] = 0.0


def _edge_costs(image: np.ndarray) -> np.ndarray:
    """Per-pixel travel cost 1 + EDGE_WEIGHT * |grad I| (Sobel on the RGB image in [0, 1], the
    largest channel), lightly smoothed first so that noise does not look like an edge."""
    img = cv2.GaussianBlur(image.astype(np.float32) / 255.0, (0, 0), 1.0)
    gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3)
    magnitude = np.sqrt(gx * gx + gy * gy)
    if magnitude.ndim == 3:
        magnitude = np.maximum(np.maximum(magnitude[..., 0], magnitude[..., 1]), magnitude[..., 2])
    return 1.0 + EDGE_WEIGHT * magnitude


def _geodesic(
    costs: np.ndarray, domain: np.ndarray, seeds: np.ndarray, limit: float | None = None
) -> np.ndarray:
    """Minimum path cost from any of ``seeds`` to every pixel, moving only inside ``domain``
    (inf elsewhere and where unreachable; with ``limit``, also wherever it exceeds ``limit``)."""
    sources = seeds & domain
    # Paths from inside a seed region leave it through its rim: starting from the rim alone gives
    # the same distances outside the seeds (and keeps the start list short). The image's edge
    # counts as rim, so that seeds covering the whole image still start somewhere.
    interior = cv2.erode(
        sources.astype(np.uint8), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0
    )
    rim = sources & ~interior.astype(bool)
    starts = np.argwhere(rim)
    out = np.full(domain.shape, np.inf)
    if len(starts) == 0:
        return out
    # Paths cannot leave the domain, so the search runs on its bounding box only (exact).
    ys, xs = np.nonzero(domain)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    inner = domain[y0:y1, x0:x1]
    walled = np.where(inner, costs[y0:y1, x0:x1], np.inf)
    distance = path_costs(walled, starts - (y0, x0), limit)
    distance[sources[y0:y1, x0:x1]] = 0.0
    out[y0:y1, x0:x1] = np.where(inner, distance, np.inf)
    return out


def _removed_region(
    inside: np.ndarray,
    fg: np.ndarray,
    bg: np.ndarray,
    costs: np.ndarray,
    reach: float | None,
    *,
    bounded_search: bool = True,
) -> np.ndarray:
    """The wrongly included pixels the background marks take out (bool [h, w]); ``reach`` as in
    :func:`honour_marks`. ``bounded_search``: stop the geodesic searches where the reach ends
    (the same result); False searches the whole piece."""
    # A mark the pipeline already honoured sits just outside the matte: it still corrects the
    # piece it touches, so the mark's pixels join the matte for the search.
    candidates = inside | bg
    hit = bg & cv2.dilate(inside.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    if not hit.any():
        return np.zeros(inside.shape, bool)
    _, labels = cv2.connectedComponents(candidates.astype(np.uint8), connectivity=8)
    total = max(int(candidates.sum()), 1)
    removed = np.zeros(candidates.shape, bool)
    for label in np.unique(labels[hit]):
        piece = labels == label
        anchors = fg & piece
        if not anchors.any() and piece.sum() < PIECE_FRACTION * total:
            removed |= piece  # a separate piece the user marked as background
            continue
        limit = None if reach is None else _reach_limit(piece, bg, reach, border=False)
        bounded = bounded_search and limit is not None
        if bounded and not anchors.any():
            # A pixel within the reach keeps only if an anchor lies within this horizon of the marks.
            near = _geodesic(costs, piece, bg, (1.0 + KEEP_BIAS) * limit * (1.0 + 1e-6))
            if _far_end_beyond(near, piece):
                removed |= piece & (near <= limit)
                continue
        # Without foreground anchors they are the piece's far end, which needs the whole search.
        from_bg = _geodesic(costs, piece, bg, limit if bounded and anchors.any() else None)
        if not anchors.any():
            reached = from_bg[np.isfinite(from_bg)]
            anchors = piece & (from_bg >= np.quantile(reached, FAR_QUANTILE))
        # A pixel within the reach is cut unless its path from the anchors costs at most KEEP_BIAS
        # times its path from the marks, so that search may stop at KEEP_BIAS times the reach.
        from_fg = _geodesic(costs, piece, anchors, KEEP_BIAS * limit if bounded else None)
        cut = piece & (KEEP_BIAS * from_bg < from_fg)
        if limit is not None:
            cut &= from_bg <= limit
        removed |= cut
    return removed


def _far_end_beyond(near: np.ndarray, piece: np.ndarray) -> bool:
    """Whether the far end of ``piece`` that anchors it without foreground marks (its pixels at
    least the FAR_QUANTILE quantile of path cost from the marks) lies wholly beyond the horizon
    that ``near`` (float [h, w], path costs from the marks, inf beyond the horizon) was searched to.

    With the horizon at (1 + KEEP_BIAS) times the reach, no anchor can then keep a pixel within the
    reach (a path to it from an anchor costs more than ``horizon - c >= KEEP_BIAS * c`` where ``c
    <= reach`` is its own cost from the marks), and everything within the reach goes, as the whole
    search would decide: the quantile lies beyond the horizon when fewer pixels than its rank are
    within it."""
    return int(np.isfinite(near).sum()) <= int(np.floor(FAR_QUANTILE * (int(piece.sum()) - 1)))


def _added_region(
    inside: np.ndarray,
    fg: np.ndarray,
    bg: np.ndarray,
    costs: np.ndarray,
    outside_boxes: np.ndarray | None,
    reach: float | None,
    *,
    bounded_search: bool = True,
) -> np.ndarray:
    """The missed pixels the foreground marks bring in (bool [h, w]); ``reach`` and
    ``bounded_search`` as in :func:`_removed_region`."""
    # Likewise a foreground mark already inside the matte still brings in the missed part it touches.
    outside = ~inside | fg
    hit = fg & cv2.dilate((~inside).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    if not hit.any():
        return np.zeros(inside.shape, bool)
    h, w = inside.shape
    ys, xs = np.nonzero(inside)
    extent = max(ys.max() - ys.min(), xs.max() - xs.min()) if len(ys) else max(h, w) // 2
    half = max(8, int(0.5 * extent))
    hy, hx = np.nonzero(hit)
    y0, y1 = max(0, hy.min() - half), min(h, hy.max() + half + 1)
    x0, x1 = max(0, hx.min() - half), min(w, hx.max() + half + 1)
    window = np.zeros((h, w), bool)
    window[y0:y1, x0:x1] = True
    domain = outside & window
    background = bg.copy()
    rim = window & ~cv2.erode(window.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    background |= rim & ~fg
    if outside_boxes is not None:
        background |= outside_boxes & ~fg
        if bounded_search:
            # Outside the boxes every pixel but a foreground mark is background evidence at cost 0:
            # a path that crosses one is beaten by the path from it, so the search needs only the
            # boxes, the ring of evidence around them and the foreground marks.
            ring = outside_boxes & cv2.dilate(
                (~outside_boxes).astype(np.uint8), np.ones((3, 3), np.uint8)
            ).astype(bool)
            domain &= ~outside_boxes | ring | fg
    limit = None
    if reach is not None and outside_boxes is None:
        limit = _reach_limit(outside, fg, reach, border=True)
    # A pixel within the reach is added when its path from the marks is cheaper than any from the
    # background evidence, so both searches may stop at the reach.
    stop = limit if bounded_search else None
    from_fg = _geodesic(costs, domain, fg, stop)
    from_bg = _geodesic(costs, domain, background & domain, stop)
    added = domain & ~inside & (from_fg < from_bg)
    if limit is not None:
        added &= from_fg <= limit
    return added


def _reach_limit(region: np.ndarray, marks: np.ndarray, reach: float, *, border: bool) -> float:
    """The path cost a correction reaches: ``reach`` times the marks' depth in the ``region``
    they correct (bool [h, w]; the largest distance from a mark pixel to the region's edge, at
    least :data:`MIN_DEPTH`). ``border``: whether the photo's border counts as inside the region
    (the background does; the matte does not)."""
    padded = np.pad(region, 1, constant_values=border).astype(np.uint8)
    depth = cv2.distanceTransform(padded, cv2.DIST_L2, 3)[1:-1, 1:-1]
    return reach * max(MIN_DEPTH, float(depth[marks & region].max()))


def _outside_boxes(prompts: Sequence[Prompt], h: int, w: int, scale: float) -> np.ndarray | None:
    """bool [h, w]: outside every box of ``prompts``, or None without boxes."""
    found = boxes(prompts)
    if not found:
        return None
    inside = np.zeros((h, w), bool)
    for b in found:
        inside[
            int(b.y0 * scale) : int(np.ceil(b.y1 * scale)), int(b.x0 * scale) : int(np.ceil(b.x1 * scale))
        ] = True
    return ~inside

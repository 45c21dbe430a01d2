"""The classical matting engine: GrabCut seeded by the user's marks, then closed-form matting.

Weight-free baseline and fallback. One call computes the matte for all marks so far:

1. Work at a bounded resolution (long side ``max_side``) so a 12 MP photo costs the same
   as a 1 MP one. With a box, the pipeline hands the engine only the box's region
   (``Pipeline.focus_on_boxes``): a small person's box gets the whole working resolution, and
   regions still smaller than ``MIN_WORK_SIDE`` are enlarged.
2. GrabCut, initialised from the previous round's matte when there is one (else from the
   boxes, else from the neighbourhood of the foreground marks; background marks alone leave
   the whole photo probable foreground but the colour-coherent regions they lie in and its
   frame: what is unlike them). A later round resumes from the previous round's colour
   models (``ColourModels``, kept in the session's state) with ``LATER_ROUND_ITERATIONS``
   iteration(s) instead of fitting them afresh over five: the new marks change the hard
   constraints, the graph cut re-segments, and a round costs a fraction of the first. That
   iteration runs on the bounding box of what may be foreground (the previous mask, the marks,
   the boxes) grown by ``later_margin`` of the long side (``_later_region``), not on the
   whole working image. Every mark of every round
   is a hard constraint; outside all boxes is background. A background mark placed on a
   region of the previous matte also removes the colour-coherent part of that region
   around it (flood fill within the previous matte), so one background click drops a
   wrongly included object rather than punching a hole in it. Without a box nothing bounds
   the graph cut, so only the parts of its mask that a foreground mark touches are kept
   (``ClassicalParams.keep_connected``): the person clicked, not every region of similar
   colour elsewhere in the photo (a later foreground click on a detached part adds it).
   Foreground marks spread over an object also say its size: without a box, the probable
   foreground starts within a quarter of their bounding box's diagonal (``grow_spread``) and
   everything beyond that box grown by one diagonal is background (``implied_margin``); a
   single click, which says no size, keeps the fixed ``grow_fraction`` and no bound.
   Without a box, round 1's fresh fit runs ``coarse_iterations`` of its iterations on the photo
   shrunk to ``coarse_side`` and the last at the working size, from those colour models and
   labels (``_coarse_cut``): with most of the photo contested, each full-size iteration's graph
   cut took 0.2-2.6 s on a 640-px photo.
   A box never comes back empty (``ClassicalParams.box_core``): when GrabCut's colour models find
   nothing in a box that differs from its surroundings (a grey photo, a person dressed like the
   background) and cover less than ``EMPTY_BOX_FRACTION`` of it, round 1 cuts again with the
   box's central ellipse as sure foreground; a later round that empties a box keeps the previous
   mask there less the background marks (the marks' correction then removes their regions).
3. A trimap: an unknown band around the GrabCut boundary.
4. pymatting's closed-form matting (Levin et al. 2008) in the band. In a corrective round
   (clicks or scribbles only, after a previous matte) only the part of the band near what the
   round changes is solved: the progressive merge (``service.engines.progressive_merge``) keeps
   a corrective round's change only in the regions where the mask flipped that a new mark
   touches, so band pixels farther than ``SETTLED_REACH`` band widths from those and from the
   new marks keep the previous round's alpha and enter the system as known values
   (``ClassicalParams.incremental``, on with the merge).
5. Back to the original size with ``service.engines.upsampling`` (bilinear, refined by a
   guided filter on the full-resolution photo inside the uncertain band).
6. With ``ClassicalParams.refinement``, the band solved again at the photo's resolution
   (``service.engines.band_refinement``).

It never fails on a valid prompt and image: a trimap without a foreground, background or
unknown region, a GrabCut or solver error (degenerate sizes such as 1x1 or 1x2000) fall back
to the best mask at hand (GrabCut's, else the seeds'), so every round gets a matte.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from schemas.prompts import BoxPrompt, Prompt, TextPrompt
from service.engines.band_refinement import BandRefinement, photo_matte
from service.engines.closed_form import closed_form
from service.engines.progressive_merge import is_corrective, touched_changes
from service.errors import UnsupportedPrompt
from service.imaging import long_side_scale, resize_long_side
from service.prompts import boxes, draw_marks

log = logging.getLogger(__name__)

GRABCUT_ITERATIONS = 5
LATER_ROUND_ITERATIONS = 1  # resumed from the previous round's colour models
MIN_GRABCUT_SIDE = 4  # below this many work pixels on a side, the seeds are the mask
MIN_WORK_SIDE = 160  # smaller regions are enlarged to this long side before GrabCut
GRABCUT_SEED = 12345
FLOOD_TOLERANCE = 24  # per-channel colour difference (0-255) for the region a background mark removes
CF_MARGIN = 2  # pixels around the unknown band that closed-form matting's 3x3 windows reach
EMPTY_BOX_FRACTION = 0.01  # GrabCut's mask covering less of a box than this left the box empty
LATER_REGION_MAX_SHARE = 0.8  # a later round's region larger than this share of the image: cut it all
SETTLED_REACH = 3  # band half-widths around a flipped pixel or new mark that a corrective round re-solves


@dataclass(frozen=True)
class ColourModels:
    """GrabCut's two Gaussian mixtures (OpenCV's (1, 65) float64 layout), carried from one
    round to the next so a later round resumes instead of starting over."""

    background: np.ndarray
    foreground: np.ndarray

    MAGIC = b"GCM1"

    def to_bytes(self) -> bytes:
        return (
            self.MAGIC
            + self.background.astype(np.float64).tobytes()
            + self.foreground.astype(np.float64).tobytes()
        )

    @classmethod
    def from_bytes(cls, data: bytes | None) -> ColourModels | None:
        """The models in ``data``, or None when it holds none (another layout, or no state)."""
        if not data or not data.startswith(cls.MAGIC) or len(data) != 4 + 2 * 65 * 8:
            return None
        values = np.frombuffer(data[4:], np.float64).reshape(2, 1, 65).copy()
        if not np.isfinite(values).all():
            return None
        return cls(background=values[0], foreground=values[1])


@dataclass(frozen=True)
class ClassicalResult:
    """``alpha`` (H, W) float32 in [0, 1]; ``models`` GrabCut's colour models for the next
    round (None when GrabCut did not run)."""

    alpha: np.ndarray
    models: ColourModels | None


@dataclass(frozen=True)
class ClassicalParams:
    """Tunable constants of the engine, in work-resolution pixels unless stated."""

    max_side: int = 640
    band_fraction: float = 0.01  # half-width of the trimap's unknown band, fraction of the long side
    click_fraction: float = 0.006  # radius of a click seed, fraction of the long side
    grow_fraction: float = 0.12  # probable-foreground radius around fg marks when there is no box
    keep_connected: bool = True  # without a box: keep only the mask's parts that a fg mark touches
    # Without a box: sure background beyond the fg marks' box grown by this x its diagonal.
    implied_margin: float | None = 1.0
    # Without a box: probable-foreground radius this x the fg marks' diagonal (at most grow_fraction).
    grow_spread: float | None = 0.25
    min_spread_fraction: float = 0.05  # fg marks spanning less than this of the long side imply no size
    # A box GrabCut leaves empty in round 1 is cut again with the central ellipse of these semi-axes
    # (fractions of the box's width and height) as sure foreground, and one a later round empties
    # keeps the previous mask; None: neither.
    box_core: float | None = 0.15
    refinement: BandRefinement | None = None  # the band again at the photo's resolution (step 6)
    incremental: bool = True  # a corrective round solves only the band near what changed (step 4)
    # Without a box, round 1 fits GrabCut at this long side first (None: all at the working size).
    coarse_side: int | None = 320
    coarse_iterations: int = 4  # of GRABCUT_ITERATIONS, the ones run at coarse_side
    # A later round's GrabCut runs on the bounding box of what can be foreground (the previous
    # mask, the foreground marks, the boxes, the new background marks) grown by this fraction of
    # the long side; None: on the whole working image.
    later_margin: float | None = 0.1


def matte(
    image: np.ndarray,
    prompts: Sequence[Prompt],
    *,
    new_prompts: Sequence[Prompt] = (),
    previous_alpha: np.ndarray | None = None,
    previous_models: ColourModels | None = None,
    params: ClassicalParams = ClassicalParams(),
    work: np.ndarray | None = None,
) -> ClassicalResult:
    """Compute an alpha matte for ``image`` (H, W, 3 uint8 RGB) from all marks so far.

    ``prompts`` holds every round's marks in order (the current round's last);
    ``new_prompts`` the current round's, whose background marks may remove regions of
    ``previous_alpha`` (H, W float in [0, 1], the last round's matte, or None in round 1);
    ``previous_models`` the colour models that round left (resumed when given with a
    previous matte); ``work`` the photo at the working size (``resize_long_side(image,
    params.max_side)[0]``) when the caller keeps it from round to round. Returns the float32
    (H, W) alpha in [0, 1] and the colour models.
    Raises ``UnsupportedPrompt`` for text prompts and when there is no mark at all.
    """
    if any(isinstance(p, TextPrompt) for p in prompts):
        raise UnsupportedPrompt(
            "The classical engine cannot use text prompts; use model 'dfimat', or give a box, "
            "clicks or scribbles."
        )
    if work is None:
        work, scale = resize_long_side(image, params.max_side)
    else:
        scale = long_side_scale(*image.shape[:2], params.max_side)
    if max(work.shape[:2]) < MIN_WORK_SIDE and min(work.shape[:2]) >= MIN_GRABCUT_SIDE:
        # A small box's region: GrabCut's colour models and the solver need pixels to work on.
        scale = min(MIN_WORK_SIDE / max(work.shape[:2]), 8.0)
        size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        work = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    h, w = work.shape[:2]
    long_side = max(h, w)
    click_radius = max(2, round(params.click_fraction * long_side))
    fg_seed, bg_seed = draw_marks(prompts, h, w, scale=scale, click_radius=click_radius)
    rects = _box_rects(boxes(prompts), h, w, scale)
    box_mask = _box_mask(rects, h, w)
    new_fg, new_bg = draw_marks(new_prompts, h, w, scale=scale, click_radius=click_radius)
    previous = previous_soft = None
    if previous_alpha is not None:
        previous_soft = cv2.resize(previous_alpha.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
        previous = previous_soft >= 0.5

    if previous is None and box_mask is None and not fg_seed.any() and not bg_seed.any():
        raise UnsupportedPrompt(
            "The classical engine needs a box, a click or a scribble to know what to cut out.",
            code="prompt_required",
        )

    models = None
    if min(h, w) < MIN_GRABCUT_SIDE:
        mask = _seed_mask(fg_seed, bg_seed, box_mask, previous)
    else:
        try:
            mask, models = _grabcut(
                work,
                fg_seed,
                bg_seed,
                box_mask,
                previous,
                new_bg,
                params,
                previous_models if previous is not None else None,
                rects,
            )
        except cv2.error as exc:
            log.info("GrabCut failed on a %dx%d work image (%s); using the seeds", w, h, exc)
            mask = _seed_mask(fg_seed, bg_seed, box_mask, previous)
    band = max(2, round(params.band_fraction * long_side))
    trimap = _trimap(mask, fg_seed, bg_seed, band)
    settled = None
    if params.incremental and previous is not None and is_corrective(new_prompts):
        marked = (new_fg | new_bg) > 0
        kept = touched_changes(previous, mask > 0, new_fg > 0, new_bg > 0)
        settled = _settled(kept, marked, SETTLED_REACH * band)
    alpha_work = _solve_alpha(work, trimap, mask, settled, previous_soft)
    # A downscaled working copy is the area-filtered photo the guided upsampling would compute again.
    guide = work.astype(np.float32) / 255.0 if scale < 1.0 else None
    alpha = photo_matte(alpha_work.astype(np.float32), image, params.refinement, guide)
    if previous is None and params.box_core is not None and rects:
        _fill_emptied_boxes(alpha, prompts, params.box_core)
    return ClassicalResult(alpha, models)


def _fill_emptied_boxes(alpha: np.ndarray, prompts: Sequence[Prompt], core: float) -> None:
    """Round 1's rule that a box never comes back empty, at the photo's resolution: a box of a
    few photo pixels is enlarged for GrabCut, and what GrabCut kept in it (above
    ``EMPTY_BOX_FRACTION`` of the work pixels) can fall below 0.5 everywhere when taken back
    down to the photo. Such a box's central ellipse (``core`` of its sides) becomes foreground,
    less its background marks. ``alpha`` (H, W) float32 is updated in place."""
    h, w = alpha.shape
    emptied = [
        (x0, y0, x1, y1)
        for x0, y0, x1, y1 in _box_rects(boxes(prompts), h, w, 1.0)
        if x1 > x0 and y1 > y0 and alpha[y0:y1, x0:x1].max() < 0.5
    ]
    if not emptied:
        return
    _, background = draw_marks(prompts, h, w, scale=1.0, click_radius=1)
    filled = _box_cores((h, w), emptied, core) & (_box_mask(emptied, h, w) > 0) & (background == 0)
    alpha[filled] = 1.0


def _settled(kept: np.ndarray, marked: np.ndarray, reach: int) -> np.ndarray:
    """Bool (h, w): the pixels farther than ``reach`` from the changes a corrective round keeps
    (``kept``: the regions where the mask flipped that a new mark touches, which the progressive
    merge keeps) and from its new marks (``marked``), where it keeps the previous round's alpha."""
    near = (kept | marked).astype(np.uint8)
    if not near.any():
        return np.ones(near.shape, bool)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
    return cv2.dilate(near, kernel) == 0


def _solve_alpha(
    work: np.ndarray,
    trimap: np.ndarray,
    mask: np.ndarray,
    settled: np.ndarray | None = None,
    previous: np.ndarray | None = None,
) -> np.ndarray:
    """Closed-form alpha in the trimap's unknown band; the hard ``mask`` (with the trimap's known
    values) when the trimap lacks a foreground, background or unknown region or the solver fails.

    ``settled`` (bool (h, w)) marks band pixels that keep ``previous`` (float (h, w), the previous
    round's alpha at this size) and enter the system as known, soft values; only the rest of the
    band is solved (``service.engines.closed_form``; without ``settled``, pymatting's
    ``estimate_alpha_cf`` bit for bit)."""
    hard = np.where(trimap == 0.5, mask.astype(np.float64), trimap)
    unknown = trimap == 0.5
    if not unknown.any() or not (trimap == 1.0).any() or not (trimap == 0.0).any() or min(trimap.shape) < 2:
        return hard
    values = trimap.copy()
    if settled is not None and previous is not None:
        kept = unknown & settled
        values[kept] = previous[kept]
        unknown = unknown & ~settled
        if not unknown.any():
            return values
    # Only pixels within two of the band enter the system (3x3 windows around unknown pixels), so
    # the solve on the band's bounding box plus that margin is the whole image's, at a fraction of
    # the cost of building and slicing the whole image's Laplacian.
    rows, cols = np.flatnonzero(unknown.any(axis=1)), np.flatnonzero(unknown.any(axis=0))
    y0, y1 = max(0, rows[0] - CF_MARGIN), min(trimap.shape[0], rows[-1] + CF_MARGIN + 1)
    x0, x1 = max(0, cols[0] - CF_MARGIN), min(trimap.shape[1], cols[-1] + CF_MARGIN + 1)
    try:
        values[y0:y1, x0:x1] = closed_form(
            work[y0:y1, x0:x1].astype(np.float64) / 255.0, values[y0:y1, x0:x1], unknown[y0:y1, x0:x1]
        )
    except (ValueError, ArithmeticError, RuntimeError, MemoryError) as exc:
        if settled is not None:
            log.info("closed-form matting near the change failed (%s); solving the whole band", exc)
            return _solve_alpha(work, trimap, mask)
        log.info("closed-form matting failed (%s); using the hard mask", exc)
        return hard
    return values


def _seed_mask(
    fg_seed: np.ndarray, bg_seed: np.ndarray, box_mask: np.ndarray | None, previous: np.ndarray | None
) -> np.ndarray:
    """The mask the marks alone say (uint8 0/1): the previous matte, else the boxes, plus the
    foreground marks, minus the background marks."""
    if previous is not None:
        mask = previous.astype(np.uint8)
    elif box_mask is not None:
        mask = box_mask.copy()
    else:
        mask = np.zeros(fg_seed.shape, np.uint8)
    mask[fg_seed > 0] = 1
    mask[bg_seed > 0] = 0
    return mask


def _box_rects(box_prompts: list[BoxPrompt], h: int, w: int, scale: float) -> list[tuple[int, int, int, int]]:
    """The boxes as ``(x0, y0, x1, y1)`` work pixels (end-exclusive), clipped to the (h, w) image."""
    rects = []
    for box in box_prompts:
        x0, y0 = max(0, int(np.floor(box.x0 * scale))), max(0, int(np.floor(box.y0 * scale)))
        x1, y1 = min(w, int(np.ceil(box.x1 * scale))), min(h, int(np.ceil(box.y1 * scale)))
        rects.append((x0, y0, x1, y1))
    return rects


def _box_mask(rects: list[tuple[int, int, int, int]], h: int, w: int) -> np.ndarray | None:
    """uint8 (h, w): 1 inside any of ``rects``; None without boxes."""
    if not rects:
        return None
    mask = np.zeros((h, w), np.uint8)
    for x0, y0, x1, y1 in rects:
        mask[y0:y1, x0:x1] = 1
    return mask


def _emptied_boxes(
    mask: np.ndarray, rects: Sequence[tuple[int, int, int, int]]
) -> list[tuple[int, int, int, int]]:
    """The non-degenerate boxes of ``rects`` that ``mask`` (h, w) covers less than
    ``EMPTY_BOX_FRACTION`` of."""
    return [
        (x0, y0, x1, y1)
        for x0, y0, x1, y1 in rects
        if x1 > x0 and y1 > y0 and mask[y0:y1, x0:x1].mean() < EMPTY_BOX_FRACTION
    ]


def _box_cores(
    shape: tuple[int, int], rects: Sequence[tuple[int, int, int, int]], fraction: float
) -> np.ndarray:
    """bool ``shape``: the central ellipse of each box (semi-axes ``fraction`` of its width and
    height, at least a pixel)."""
    cores = np.zeros(shape, np.uint8)
    for x0, y0, x1, y1 in rects:
        centre = ((x0 + x1 - 1) // 2, (y0 + y1 - 1) // 2)
        axes = (max(1, round(fraction * (x1 - x0))), max(1, round(fraction * (y1 - y0))))
        cv2.ellipse(cores, centre, axes, 0, 0, 360, 1, -1)
    return cores > 0


def _grabcut(
    work: np.ndarray,
    fg_seed: np.ndarray,
    bg_seed: np.ndarray,
    box_mask: np.ndarray | None,
    previous: np.ndarray | None,
    new_bg: np.ndarray,
    params: ClassicalParams,
    resume: ColourModels | None = None,
    rects: Sequence[tuple[int, int, int, int]] = (),
) -> tuple[np.ndarray, ColourModels | None]:
    """Run GrabCut from the seeds (resuming from ``resume``'s colour models when given);
    ``new_bg`` (uint8 (h, w)) the current round's background marks, which may remove regions of
    ``previous``; ``rects`` the boxes (work pixels), which must not come back empty
    (``ClassicalParams.box_core``). Returns the binary foreground mask (uint8 0/1) and the
    colour models it ended with."""
    h, w = fg_seed.shape
    gc = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
    # Without a box, the size the foreground marks' spread implies (None for one click).
    marked = _marks_box(fg_seed, params.min_spread_fraction * max(h, w)) if box_mask is None else None
    if previous is not None:
        gc[previous] = cv2.GC_PR_FGD
    elif box_mask is not None:
        gc[box_mask > 0] = cv2.GC_PR_FGD
    elif not fg_seed.any():
        # Only background marks: the object is whatever in the photo is unlike them and the
        # colour-coherent regions they lie in.
        gc[:] = cv2.GC_PR_FGD
        gc[_frame(h, w)] = cv2.GC_PR_BGD
        gc[_flood_regions(work, bg_seed, np.ones((h, w), bool))] = cv2.GC_BGD
    else:
        grow = max(3, round(params.grow_fraction * max(h, w)))
        if params.grow_spread is not None and marked is not None:
            grow = max(3, min(grow, round(params.grow_spread * marked[1])))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        gc[cv2.dilate(fg_seed, kernel) > 0] = cv2.GC_PR_FGD
    if box_mask is not None:
        gc[box_mask == 0] = cv2.GC_BGD
    elif params.implied_margin is not None and marked is not None:
        (y0, y1, x0, x1), diagonal = marked
        grow = round(params.implied_margin * diagonal)
        inside = np.zeros((h, w), bool)
        inside[max(0, y0 - grow) : y1 + grow, max(0, x0 - grow) : x1 + grow] = True
        gc[~inside] = cv2.GC_BGD

    domain = previous if previous is not None else (box_mask > 0 if box_mask is not None else None)
    if domain is not None:
        removed = _flood_regions(work, new_bg, domain)
        gc[removed] = cv2.GC_BGD
    gc[bg_seed > 0] = cv2.GC_BGD
    gc[fg_seed > 0] = cv2.GC_FGD

    if not np.isin(gc, (cv2.GC_FGD, cv2.GC_PR_FGD)).any():
        return np.zeros((h, w), np.uint8), None
    if not np.isin(gc, (cv2.GC_BGD, cv2.GC_PR_BGD)).any():
        # GrabCut needs background samples; a frame-filling box leaves none.
        gc[_frame(h, w) & (gc != cv2.GC_FGD)] = cv2.GC_PR_BGD
    bgr = cv2.cvtColor(work, cv2.COLOR_RGB2BGR)
    both_labels = (
        np.isin(gc, (cv2.GC_FGD, cv2.GC_PR_FGD)).any() and np.isin(gc, (cv2.GC_BGD, cv2.GC_PR_BGD)).any()
    )
    guarded = rects if params.box_core is not None else ()
    start = gc.copy() if guarded and previous is None else None  # for the retry of an emptied box
    if resume is not None and both_labels:
        bgd_model, fgd_model = resume.background.copy(), resume.foreground.copy()
        y0, y1, x0, x1 = _later_region(gc, new_bg, rects, params.later_margin) or (0, h, 0, w)
        part = np.ascontiguousarray(gc[y0:y1, x0:x1])  # gc itself when the region is the image
        crop = np.ascontiguousarray(bgr[y0:y1, x0:x1])
        cv2.grabCut(crop, part, None, bgd_model, fgd_model, LATER_ROUND_ITERATIONS, cv2.GC_EVAL)
        gc[y0:y1, x0:x1] = part
    elif (
        box_mask is None
        and previous is None
        and params.coarse_side is not None
        and max(h, w) > params.coarse_side
    ):
        bgd_model, fgd_model = _coarse_cut(bgr, gc, params.coarse_side, params.coarse_iterations)
    else:
        bgd_model, fgd_model = _fresh_cut(bgr, gc)
    mask = np.isin(gc, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
    emptied = _emptied_boxes(mask, guarded)
    if emptied and start is not None:
        # Nothing in the box differed enough from its surroundings for GrabCut's colour models (a
        # grey photo, a person dressed like the background): the box's centre is the object.
        log.info("GrabCut left a box empty; cutting again from the box's centre")
        start[_box_cores(mask.shape, emptied, params.box_core) & (start != cv2.GC_BGD)] = cv2.GC_FGD
        bgd_model, fgd_model = _fresh_cut(bgr, start)
        mask = np.isin(start, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
    elif emptied:
        # A later round's marks said what is not the object, never that nothing is: where the cut
        # emptied a box, the previous mask less the background marks stays.
        kept = previous & (bg_seed == 0)
        for x0, y0, x1, y1 in emptied:
            if kept[y0:y1, x0:x1].mean() >= EMPTY_BOX_FRACTION:
                mask[y0:y1, x0:x1] = kept[y0:y1, x0:x1]
    if params.keep_connected and box_mask is None:
        # Without a box nothing bounds GrabCut: in a photo of several people it also takes
        # whatever else has the marked colours, anywhere. What the user marked is one object.
        kept = touched_changes(np.zeros(mask.shape, bool), mask > 0, fg_seed > 0)
        if kept.any():  # foreground marks are hard foreground, so this holds unless there are none
            mask = kept.astype(np.uint8)
    return mask, ColourModels(background=bgd_model, foreground=fgd_model)


def _frame(h: int, w: int) -> np.ndarray:
    """bool (h, w): the outermost row and column on each side."""
    frame = np.zeros((h, w), bool)
    frame[[0, -1], :] = True
    frame[:, [0, -1]] = True
    return frame


def _later_region(
    gc: np.ndarray,
    new_bg: np.ndarray,
    rects: Sequence[tuple[int, int, int, int]],
    margin: float | None,
) -> tuple[int, int, int, int] | None:
    """Where a resumed round's graph cut can change the mask: the bounding box ``(y0, y1, x0,
    x1)`` of GrabCut's labels ``gc`` (h, w) that may be foreground, the round's background marks
    ``new_bg`` and the boxes ``rects``, grown by ``margin`` of the long side and clipped; None when
    that is most of the image (or ``margin`` is None) or the region lacks either label."""
    if margin is None:
        return None
    h, w = gc.shape
    inside = np.isin(gc, (cv2.GC_FGD, cv2.GC_PR_FGD)) | (new_bg > 0)
    for x0, y0, x1, y1 in rects:
        inside[y0:y1, x0:x1] = True
    x, y, width, height = cv2.boundingRect(inside.astype(np.uint8))
    grow = round(margin * max(h, w))
    y0, y1 = max(0, y - grow), min(h, y + height + grow)
    x0, x1 = max(0, x - grow), min(w, x + width + grow)
    if (y1 - y0) * (x1 - x0) > LATER_REGION_MAX_SHARE * h * w:
        return None
    part = gc[y0:y1, x0:x1]
    if not np.isin(part, (cv2.GC_BGD, cv2.GC_PR_BGD)).any() or min(y1 - y0, x1 - x0) < MIN_GRABCUT_SIDE:
        return None
    return y0, y1, x0, x1


def _coarse_cut(bgr: np.ndarray, gc: np.ndarray, side: int, iterations: int) -> tuple[np.ndarray, np.ndarray]:
    """GrabCut's fresh fit on ``bgr`` (h, w, 3) shrunk to long side ``side`` for ``iterations``,
    then the rest of GRABCUT_ITERATIONS (at least one) at full size from those colour models and
    labels; ``gc`` (h, w) updated in place. Returns the colour models (background, foreground)."""
    h, w = gc.shape
    small_bgr, _ = resize_long_side(bgr, side)
    size = (small_bgr.shape[1], small_bgr.shape[0])
    small_gc = cv2.resize(gc, size, interpolation=cv2.INTER_NEAREST)
    # A mark is a few pixels wide: keep every hard label the resize would drop (foreground wins).
    for label in (cv2.GC_BGD, cv2.GC_FGD):
        hard = cv2.resize((gc == label).astype(np.uint8), size, interpolation=cv2.INTER_AREA) > 0
        small_gc[hard] = label
    bgd_model, fgd_model = _fresh_cut(small_bgr, small_gc, iterations)
    coarse_fg = (
        cv2.resize(
            np.isin(small_gc, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8),
            (w, h),
            interpolation=cv2.INTER_NEAREST,
        )
        > 0
    )
    hard = np.isin(gc, (cv2.GC_FGD, cv2.GC_BGD))
    gc[~hard] = np.where(coarse_fg[~hard], cv2.GC_PR_FGD, cv2.GC_PR_BGD)
    rest = max(1, GRABCUT_ITERATIONS - iterations)
    cv2.grabCut(bgr, gc, None, bgd_model, fgd_model, rest, cv2.GC_EVAL)
    return bgd_model, fgd_model


def _fresh_cut(
    bgr: np.ndarray, gc: np.ndarray, iterations: int = GRABCUT_ITERATIONS
) -> tuple[np.ndarray, np.ndarray]:
    """GrabCut from the labels ``gc`` (updated in place) with new colour models; returns the
    models (background, foreground)."""
    bgd_model = np.zeros((1, 65), np.float64)
    fgd_model = np.zeros((1, 65), np.float64)
    # GrabCut seeds its colour models with k-means from OpenCV's per-thread RNG: fix the
    # seed so the same marks always give the same matte, whichever worker thread runs it.
    cv2.setRNGSeed(GRABCUT_SEED)
    cv2.grabCut(bgr, gc, None, bgd_model, fgd_model, iterations, cv2.GC_INIT_WITH_MASK)
    return bgd_model, fgd_model


def _marks_box(fg_seed: np.ndarray, min_diagonal: float) -> tuple[tuple[int, int, int, int], float] | None:
    """The bounding box ``(y0, y1, x0, x1)`` (end-exclusive) of ``fg_seed``'s marked pixels and its
    diagonal in work pixels, or None when the marks span less than ``min_diagonal`` (one click
    says nothing of the object's size)."""
    x, y, width, height = cv2.boundingRect((fg_seed > 0).astype(np.uint8))  # (0, 0, 0, 0) if none
    diagonal = float(np.hypot(width, height))
    return None if diagonal < min_diagonal else ((y, y + height, x, x + width), diagonal)


def _flood_regions(work: np.ndarray, bg_marks: np.ndarray, domain: np.ndarray) -> np.ndarray:
    """The colour-coherent part of ``domain`` reachable from each background mark pixel that
    lies inside it (OpenCV flood fill with a fixed colour range)."""
    removed = np.zeros(domain.shape, bool)
    seeds = np.argwhere((bg_marks > 0) & domain)
    if len(seeds) == 0:
        return removed
    h, w = domain.shape
    # floodFill's mask is 2 px larger; non-zero mask pixels are walls, so wall off outside the domain.
    walls = np.ones((h + 2, w + 2), np.uint8)
    walls[1:-1, 1:-1] = (~domain).astype(np.uint8)
    tolerance = (FLOOD_TOLERANCE,) * 3
    flags = 4 | cv2.FLOODFILL_FIXED_RANGE | cv2.FLOODFILL_MASK_ONLY | (2 << 8)
    bgr = cv2.cvtColor(work, cv2.COLOR_RGB2BGR)
    # A stroke's pixels are near each other: a few seeds per connected mark suffice.
    count, labels = cv2.connectedComponents((bg_marks > 0).astype(np.uint8) & domain.astype(np.uint8))
    for label in range(1, count):
        ys, xs = np.nonzero(labels == label)
        for k in np.linspace(0, len(ys) - 1, num=min(len(ys), 8)).astype(int):
            y, x = int(ys[k]), int(xs[k])
            if walls[y + 1, x + 1] == 0:
                cv2.floodFill(bgr, walls, (x, y), 0, tolerance, tolerance, flags)
    removed = walls[1:-1, 1:-1] == 2
    return removed


def _trimap(mask: np.ndarray, fg_seed: np.ndarray, bg_seed: np.ndarray, band: int) -> np.ndarray:
    """Unknown band of half-width ``band`` around the mask boundary; seeds are known.
    Returns float64 (h, w) with 0 background, 1 foreground, 0.5 unknown."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
    sure_fg = cv2.erode(mask, kernel) > 0
    if not sure_fg.any() and mask.any():
        sure_fg = cv2.erode(mask, np.ones((3, 3), np.uint8)) > 0 if mask.sum() > 9 else mask > 0
    maybe = cv2.dilate(mask, kernel) > 0
    trimap = np.full(mask.shape, 0.5)
    trimap[~maybe] = 0.0
    trimap[sure_fg] = 1.0
    trimap[fg_seed > 0] = 1.0
    trimap[bg_seed > 0] = 0.0
    return trimap

"""Refining a matte's uncertain band at the photo's own resolution.

The networks work at 256 px and the classical engine at 640 px, so on a 1-12 MP photo a matte's
edge is an upsampled one: ``service.engines.upsampling`` makes it follow the photo's edges, but
detail finer than a working pixel (hair, anti-aliased contours) is not in it. This stage solves
the band again at native resolution with closed-form matting (Levin et al. 2008), guided by
the upsampled matte:

* the band: pixels where the upsampled alpha is fractional or near its 0.5 contour, widened by
  ``band_factor`` working pixels (where the low-resolution matte could not say);
* outside it alpha is known (0 or 1); inside, alpha minimises ``αᵀLα + λ‖α - α_up‖²`` with
  ``L`` pymatting's matting Laplacian on the photo and ``λ`` = ``prior_weight``: the Laplacian
  pulls the edge onto the photo's colour edges at full resolution, the prior keeps the
  network's (or GrabCut's) decision where the colours cannot tell foreground from background;
* solved in tiles with an overlapping margin (only tiles the band touches), and on at most
  ``max_unknown`` band pixels: a larger band (a 12 MP photo's) is solved at the reduced scale
  that fits and taken back to the photo with the guided upsampling, so a round's cost is bounded.

pymatting builds the Laplacian and provides the preconditioned conjugate-gradient solver; its
``estimate_alpha_cf`` has no prior term (a soft constraint towards a given matte), so the system
is assembled by ``service.engines.closed_form``.

It never raises for a valid matte: a tile whose system fails keeps the upsampled values.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from service.engines.closed_form import closed_form
from service.engines.upsampling import upsample_alpha

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BandRefinement:
    """Parameters of the native-resolution refinement (photo pixels unless stated).

    ``min_factor``: photo pixels per working pixel below which the matte is already native
    enough and the stage is skipped; ``band_factor``: the band's half-width in working pixels;
    ``prior_weight``: λ, the pull towards the upsampled matte; ``max_unknown``: band pixels
    solved per matte at most; ``tile``/``margin``: the solver's tiling."""

    min_factor: float = 1.5
    band_factor: float = 1.5
    prior_weight: float = 1e-3
    max_unknown: int = 400_000
    tile: int = 512
    margin: int = 24
    max_iterations: int = 500


def photo_matte(
    alpha: np.ndarray, image: np.ndarray, refinement: BandRefinement | None, guide: np.ndarray | None = None
) -> np.ndarray:
    """A working-resolution matte ``alpha`` (h, w) in [0, 1] covering ``image`` (H, W, 3 uint8)
    -> the float32 (H, W) matte: guided upsampling (``guide``: see ``upsample_alpha``), then
    :func:`refine_band` when ``refinement`` is given and the matte came from a resolution at
    least ``min_factor`` below the photo's."""
    full = upsample_alpha(alpha, image, guide)
    if refinement is None:
        return full
    factor = max(image.shape[0] / max(alpha.shape[0], 1), image.shape[1] / max(alpha.shape[1], 1))
    if factor < refinement.min_factor:
        return full
    return refine_band(full, image, factor, refinement)


def uncertain_band(alpha: np.ndarray, half_width: int) -> np.ndarray:
    """Bool (H, W): fractional alpha or the 0.5 contour, dilated by ``half_width`` pixels."""
    hard = (alpha >= 0.5).astype(np.uint8)
    fractional = ((alpha > 0.02) & (alpha < 0.98)).astype(np.uint8)
    contour = cv2.morphologyEx(hard, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * half_width + 1, 2 * half_width + 1))
    return cv2.dilate(fractional | contour, kernel) > 0


def refine_band(
    alpha: np.ndarray, image: np.ndarray, factor: float, params: BandRefinement = BandRefinement()
) -> np.ndarray:
    """``alpha`` (H, W) float in [0, 1], upsampled by ``factor`` photo pixels per working pixel,
    on ``image`` (H, W, 3 uint8) -> float32 (H, W), its band solved at native resolution (or at
    the largest scale that keeps the band within ``params.max_unknown`` pixels)."""
    height, width = alpha.shape
    if min(height, width) < 3:
        return alpha.astype(np.float32)
    band = uncertain_band(alpha, max(2, round(params.band_factor * factor)))
    count = int(band.sum())
    if count == 0:
        return alpha.astype(np.float32)
    if count > params.max_unknown:
        scale = float(np.sqrt(params.max_unknown / count))
        size = (max(3, round(width * scale)), max(3, round(height * scale)))
        small_image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        small_alpha = cv2.resize(alpha.astype(np.float32), size, interpolation=cv2.INTER_AREA)
        refined = refine_band(small_alpha, small_image, max(1.0, factor * scale), params)
        return np.where(band, upsample_alpha(refined, image), alpha).astype(np.float32)
    known = np.where(alpha >= 0.5, 1.0, 0.0)
    start = np.where(band, np.clip(alpha, 0.0, 1.0), known)
    photo = image.astype(np.float64) / 255.0
    out = start.copy()
    step, margin = params.tile, params.margin
    for top in range(0, height, step):
        for left in range(0, width, step):
            if not band[top : top + step, left : left + step].any():
                continue
            y0, y1 = max(0, top - margin), min(height, top + step + margin)
            x0, x1 = max(0, left - margin), min(width, left + step + margin)
            solved = _solve_tile(photo[y0:y1, x0:x1], start[y0:y1, x0:x1], band[y0:y1, x0:x1], params)
            inner = solved[top - y0 : top - y0 + step, left - x0 : left - x0 + step]
            out[top : top + inner.shape[0], left : left + inner.shape[1]] = inner
    return out.astype(np.float32)


def _solve_tile(photo: np.ndarray, alpha: np.ndarray, band: np.ndarray, params: BandRefinement) -> np.ndarray:
    """One tile: ``photo`` (h, w, 3) float64 in [0, 1], ``alpha`` (h, w) float64 (known outside
    ``band``) -> alpha with the band solved; ``alpha`` unchanged when the system cannot be solved."""
    if min(band.shape) < 3:
        return alpha
    try:
        return closed_form(
            photo,
            alpha,
            band,
            prior_weight=params.prior_weight,
            rtol=1e-5,
            max_iterations=params.max_iterations,
        )
    except (ValueError, ArithmeticError, RuntimeError, MemoryError) as exc:
        log.info("band refinement failed on a %dx%d tile (%s); keeping the upsampled matte", *band.shape, exc)
        return alpha

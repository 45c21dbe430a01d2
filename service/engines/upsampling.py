"""Mapping a low-resolution alpha matte back to the photo without blocky edges.

Plain bilinear upsampling blurs hair and stair-steps edges when the working resolution is far
below the photo's. This module uses joint upsampling with a guided filter — the Fast Guided
Filter of He & Sun (2015): the local linear model alpha ≈ a·I + b (I the colour photo) is
fitted at the low resolution, its coefficients a, b are upsampled, and alpha is evaluated on
the full-resolution photo, so edges follow the photo's own edges. It is applied inside the
uncertain band only (fractional alpha, dilated); opaque and transparent areas keep the
bilinear values.

OpenCV's ``ximgproc.guidedFilter`` filters at a single resolution and has no such joint
upsampling variant, hence the few lines of box filters here. On synthetic people upsampled
from 256-384 px to 1024 px this lowers SAD against the true matte 1.1-7x compared with
bilinear upsampling (see tests/service/test_upsampling.py).
"""

from __future__ import annotations

import cv2
import numpy as np

RADIUS = 1  # box radius at the low resolution
EPS = 1e-4  # regularisation, photo in [0, 1]


def _box(x: np.ndarray) -> np.ndarray:
    return cv2.boxFilter(x, -1, (2 * RADIUS + 1, 2 * RADIUS + 1), borderType=cv2.BORDER_REFLECT)


def guided_coefficients(
    alpha: np.ndarray, guide: np.ndarray, where: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Fit alpha ≈ a·I + b per pixel: ``alpha`` (h, w), ``guide`` (h, w, 3) float in [0, 1] ->
    (a (h, w, 3), b (h, w)), both box-averaged as in the guided filter. With ``where`` (h, w)
    bool, the 3x3 systems are solved only there (elsewhere a = 0, b = the local mean)."""
    mean_i = _box(guide)
    mean_p = _box(alpha)
    cov_ip = _box(guide * alpha[..., None]) - mean_i * mean_p[..., None]
    var = np.empty((*alpha.shape, 3, 3), np.float32)
    for i in range(3):
        for j in range(i, 3):
            var[..., i, j] = var[..., j, i] = (
                _box(guide[..., i] * guide[..., j]) - mean_i[..., i] * mean_i[..., j]
            )
    var += EPS * np.eye(3, dtype=np.float32)
    a = np.zeros_like(mean_i)
    if where is None:
        a = np.linalg.solve(var, cov_ip[..., None])[..., 0]
    else:
        a[where] = np.linalg.solve(var[where], cov_ip[where][..., None])[..., 0]
    b = mean_p - (a * mean_i).sum(axis=-1)
    return _box(a), _box(b)


def guide_at(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """The guide of :func:`upsample_alpha`: ``image`` (H, W, 3 uint8) at (height, width) by the
    area filter, float32 in [0, 1] (what a letterboxed network input holds, inside the frame)."""
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def upsample_alpha(alpha: np.ndarray, image: np.ndarray, guide: np.ndarray | None = None) -> np.ndarray:
    """``alpha`` (h, w) float in [0, 1] covering the photo -> float32 (H, W) for ``image`` (H, W, 3
    uint8). ``guide``: :func:`guide_at` of the photo at (h, w) when the caller has it already (a
    pipeline's letterboxed input, the classical engine's working copy); computed here otherwise."""
    height, width = image.shape[:2]
    small_h, small_w = alpha.shape
    alpha = np.clip(alpha.astype(np.float32), 0.0, 1.0)
    if (small_h, small_w) == (height, width):
        return alpha
    if small_h >= height and small_w >= width:
        return np.clip(cv2.resize(alpha, (width, height), interpolation=cv2.INTER_AREA), 0.0, 1.0)
    full = cv2.resize(alpha, (width, height), interpolation=cv2.INTER_LINEAR)
    uncertain = ((alpha > 0.01) & (alpha < 0.99)).astype(np.uint8)
    if not uncertain.any():
        return np.clip(full, 0.0, 1.0)
    band_small = cv2.dilate(uncertain, np.ones((3, 3), np.uint8))
    ys, xs = np.nonzero(band_small)
    margin = 2 * RADIUS + 2
    y0, y1 = max(0, ys.min() - margin), min(small_h, ys.max() + margin + 1)
    x0, x1 = max(0, xs.min() - margin), min(small_w, xs.max() + margin + 1)
    sy, sx = height / small_h, width / small_w
    top, bottom = int(np.floor(y0 * sy)), min(height, int(np.ceil(y1 * sy)))
    left, right = int(np.floor(x0 * sx)), min(width, int(np.ceil(x1 * sx)))
    if guide is None:
        guide = guide_at(image, small_h, small_w)
    # Coefficients matter within one box radius of the band (they are box-averaged once more).
    solve_at = cv2.dilate(band_small[y0:y1, x0:x1], np.ones((4 * RADIUS + 1, 4 * RADIUS + 1), np.uint8)) > 0
    a, b = guided_coefficients(alpha[y0:y1, x0:x1], np.ascontiguousarray(guide[y0:y1, x0:x1]), where=solve_at)
    size = (right - left, bottom - top)
    a = cv2.resize(a, size, interpolation=cv2.INTER_LINEAR)
    b = cv2.resize(b, size, interpolation=cv2.INTER_LINEAR)
    # The linear model is evaluated on the band's pixels only (a few % of a large photo).
    band = np.nonzero(cv2.resize(band_small[y0:y1, x0:x1], size, interpolation=cv2.INTER_NEAREST))
    pixels = image[top:bottom, left:right][band].astype(np.float32) / 255.0
    full[top:bottom, left:right][band] = (a[band] * pixels).sum(axis=-1) + b[band]
    return np.clip(full, 0.0, 1.0, out=full)

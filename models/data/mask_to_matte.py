"""COCO-Matting's mask-to-matte: turn binary instance masks into soft alpha labels.

For each instance mask: an adaptive band width ω = sqrt(area / 12) (area in pixels of the
mask), erosion of the mask by an elliptical kernel of size ω for the definite foreground,
dilation by the same kernel for the outer limit of the unknown band (the rest is definite
background), then closed-form matting (Levin et al. 2008, via pymatting) inside the band.
So the band is about ω/2 pixels either side of the mask's edge: wide for big instances
whose annotated polygons are coarse, narrow for small ones.

Closed-form matting is solved on the instance's dilated box only, which keeps the sparse
system small. Matting cost grows with the unknown band's area; this is an offline step.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def adaptive_omega(area: float, min_omega: int = 3, max_omega: int | None = None) -> int:
    """Band kernel size ω = sqrt(area / 12), rounded to an odd integer >= ``min_omega``."""
    omega = round(math.sqrt(max(area, 0.0) / 12.0))
    if max_omega is not None:
        omega = min(omega, max_omega)
    omega = max(omega, min_omega)
    return omega | 1


def mask_to_trimap(mask: np.ndarray, omega: int | None = None) -> np.ndarray:
    """Trimap uint8 [H, W] (0 background, 128 unknown, 255 foreground) from a mask [H, W].

    ``mask`` is bool or numeric (> 0.5 is foreground, after scaling uint8 to [0, 1]).
    ``omega`` overrides the adaptive kernel size.
    """
    m = _binary(mask)
    if omega is None:
        omega = adaptive_omega(float(m.sum()))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (omega, omega))
    fg = cv2.erode(m, kernel) > 0
    outer = cv2.dilate(m, kernel) > 0
    trimap = np.zeros(m.shape, np.uint8)
    trimap[outer] = 128
    trimap[fg] = 255
    return trimap


def _binary(mask: np.ndarray) -> np.ndarray:
    m = np.asarray(mask)
    if m.dtype == np.uint8:
        return (m > 127).astype(np.uint8)
    return (m > 0.5).astype(np.uint8)


def mask_to_matte(
    image: np.ndarray,
    mask: np.ndarray,
    omega: int | None = None,
    max_omega: int | None = None,
) -> np.ndarray:
    """Soft alpha float32 [H, W] in [0, 1] for one instance ``mask`` [H, W] of ``image`` [H, W, 3].

    ``image`` is uint8 or float in [0, 1], RGB. Definite foreground/background of the trimap
    keep 1/0; the unknown band is solved by closed-form matting. When erosion leaves no
    definite foreground (a thin or tiny mask), ω is halved until some remains; a mask that
    never keeps any (e.g. one-pixel lines) is returned as is, slightly blurred.
    """
    from pymatting import estimate_alpha_cf

    m = _binary(mask)
    h, w = m.shape
    area = float(m.sum())
    if area == 0:
        return np.zeros((h, w), np.float32)
    if omega is None:
        omega = adaptive_omega(area, max_omega=max_omega)
    trimap = mask_to_trimap(m, omega)
    while not (trimap == 255).any() and omega > 3:
        omega = max(3, omega // 2) | 1
        trimap = mask_to_trimap(m, omega)
    if not (trimap == 255).any() or not (trimap == 0).any():
        return cv2.GaussianBlur(m.astype(np.float32), (0, 0), 0.7)

    ys, xs = np.nonzero(trimap > 0)
    pad = omega + 2
    y0, y1 = max(ys.min() - pad, 0), min(ys.max() + pad + 1, h)
    x0, x1 = max(xs.min() - pad, 0), min(xs.max() + pad + 1, w)
    img = np.asarray(image)
    img = img.astype(np.float64) / 255.0 if img.dtype == np.uint8 else img.astype(np.float64)
    crop_tri = trimap[y0:y1, x0:x1].astype(np.float64) / 255.0
    alpha = np.zeros((h, w), np.float32)
    alpha[y0:y1, x0:x1] = np.clip(estimate_alpha_cf(img[y0:y1, x0:x1], crop_tri), 0.0, 1.0)
    alpha[trimap == 255] = 1.0
    alpha[trimap == 0] = 0.0
    return alpha


def masks_to_mattes(
    image: np.ndarray,
    masks: np.ndarray,
    max_omega: int | None = None,
    exclusive: bool = True,
) -> np.ndarray:
    """Soft alphas [K, H, W] for instance masks [K, H, W]; with ``exclusive`` the alphas of a
    pixel are rescaled to sum to at most 1 (overlapping bands of touching instances)."""
    out = np.stack([mask_to_matte(image, m, max_omega=max_omega) for m in masks]) if len(masks) else masks
    out = np.asarray(out, np.float32)
    if exclusive and len(out):
        total = out.sum(axis=0)
        over = total > 1.0
        out[:, over] /= total[over]
    return out

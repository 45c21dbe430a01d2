"""RGBA cut-outs: estimated foreground colours under the matte.

Where alpha is fractional the observed colour mixes foreground and background; pymatting's
multi-level foreground estimation (Germer et al. 2020) recovers the foreground colour so the
cut-out does not carry a halo of the old background.
"""

from __future__ import annotations

import cv2
import numpy as np
from pymatting import estimate_foreground_ml

from service.imaging import alpha_to_u8

OPAQUE = 0.98


MIN_ESTIMATE_SIDE = 4  # below this, the cut-out keeps the photo's own colours


def cutout_rgba(image: np.ndarray, alpha: np.ndarray, *, max_pixels: int) -> np.ndarray:
    """Return an (H, W, 4) uint8 RGBA cut-out of ``image`` (H, W, 3 uint8) under ``alpha``
    (H, W float in [0, 1]). Foreground colours are estimated at up to ``max_pixels`` and
    upsampled; opaque pixels keep the photo's own colour at full resolution."""
    height, width = alpha.shape
    scale = min(1.0, float(np.sqrt(max_pixels / (height * width))))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small_image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        small_alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)
    else:
        small_image, small_alpha = image, alpha
    if min(small_alpha.shape) < MIN_ESTIMATE_SIDE:
        # pymatting's multi-level estimate divides by the level sizes: too small to estimate.
        foreground = small_image.astype(np.float64) / 255.0
    else:
        foreground = estimate_foreground_ml(
            small_image.astype(np.float64) / 255.0, small_alpha.astype(np.float64)
        )
    colour = np.clip(foreground * 255.0 + 0.5, 0, 255).astype(np.uint8)
    del foreground
    if scale < 1.0:
        # Upsampled as 8-bit colour (3 bytes a pixel), not as float: at 40 MP the float
        # version held over a gigabyte of temporaries.
        colour = cv2.resize(colour, (width, height), interpolation=cv2.INTER_LINEAR)
    opaque = alpha >= OPAQUE
    colour[opaque] = image[opaque]
    return np.dstack([colour, alpha_to_u8(alpha)])

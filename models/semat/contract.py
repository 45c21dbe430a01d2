"""SEMat's official input contract (``demo.py``'s ``transform_image_bbox``), for the authors' weights.

The photo is resized so its long side is ``size`` (1024 for the released files) with
``cv2.INTER_LINEAR`` and sides ``int(x * s + 0.5)``, placed top-left on a black ``size x size``
frame, and scaled to [0,1] (ImageNet normalisation happens in the network, after the padding:
the padding is black). The box corners become ``int(v * s + 0.5)``, clipped to
``[0, size - 1]``. The official output is the alpha cropped to the resized photo.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class SEMatFrame:
    """One photo in SEMat's frame: ``image [3,S,S]`` float32 in [0,1], the scale and the resized size."""

    image: np.ndarray
    scale: float
    resized: tuple[int, int]  # (new_h, new_w)

    def box(self, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
        """A box in photo pixels -> float32 ``[4]`` in the frame (rounded and clipped as official)."""
        size = self.image.shape[-1]
        corners = [int(v * self.scale + 0.5) for v in (x0, y0, x1, y1)]
        return np.clip(np.asarray(corners, np.float64), 0, size - 1.0).astype(np.float32)

    def crop(self, plane: np.ndarray) -> np.ndarray:
        """A ``[S,S]`` output -> the part covering the resized photo ``[new_h, new_w]``."""
        h, w = self.resized
        return plane[:h, :w]


def semat_frame(image_rgb: np.ndarray, size: int = 1024) -> SEMatFrame:
    """RGB uint8 ``[H,W,3]`` -> :class:`SEMatFrame` (see the module docstring)."""
    height, width = image_rgb.shape[:2]
    scale = size * 1.0 / max(height, width)
    new_h, new_w = int(height * scale + 0.5), int(width * scale + 0.5)
    resized = cv2.resize(image_rgb, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    frame = np.zeros((size, size, 3), dtype=image_rgb.dtype)
    frame[:new_h, :new_w] = resized
    return SEMatFrame(frame.transpose(2, 0, 1).astype(np.float32) / 255.0, scale, (new_h, new_w))

"""Binary morphology in torch, bit-exact with OpenCV's elliptical structuring element.

MGMatting's PRM dilates the uncertain region with ``cv2.getStructuringElement(MORPH_ELLIPSE)``
in numpy; doing it in torch keeps PRM inside the exported graph (and on the GPU).

The ellipse is the union of a few centred rectangles (its rows are centred runs whose
half-width never grows away from the middle row), and dilating a binary map by a rectangle
is "box sum > 0", which an integral image answers with four lookups. So the dilation costs
a couple of cumulative sums plus ~4 adds per rectangle per pixel, whatever the kernel size,
instead of a k×k convolution. Counts stay below 2^24, so float32 sums are exact.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def ellipse_kernel(size: int) -> np.ndarray:
    """The ``size x size`` uint8 ellipse of ``cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))``.

    Follows OpenCV's construction: row ``i`` is filled over ``|j - c| <= dx`` with
    ``dx = round(c · sqrt((r² - dy²) / r²))``, ``dy = i - r``, ``r = c = size // 2``,
    rounding half to even like ``cvRound``.
    """
    r = c = size // 2
    inv_r2 = 1.0 / (r * r) if r else 0.0
    kernel = np.zeros((size, size), dtype=np.uint8)
    for i in range(size):
        dy = i - r
        if abs(dy) <= r:
            dx = int(np.rint(c * np.sqrt((r * r - dy * dy) * inv_r2)))
            kernel[i, max(c - dx, 0) : min(c + dx + 1, size)] = 1
    return kernel


def kernel_rectangles(kernel: np.ndarray) -> list[tuple[int, int]]:
    """Decomposes a centred, row-convex, vertically unimodal odd kernel into rectangles.

    Returns ``(half_height, half_width)`` pairs whose centred rectangles' union is the kernel
    (raises ``ValueError`` if the kernel has another shape).
    """
    k = kernel.shape[0]
    r = k // 2
    half_widths = []
    for i in range(k):
        cols = np.flatnonzero(kernel[i])
        if cols.size == 0:
            half_widths.append(-1)
            continue
        lo, hi = int(cols[0]), int(cols[-1])
        if hi - lo + 1 != cols.size or lo + hi != 2 * r:
            raise ValueError("kernel rows must be centred runs")
        half_widths.append(r - lo)
    rects = []
    for d in sorted({w for w in half_widths if w >= 0}):
        rows = [abs(i - r) for i, w in enumerate(half_widths) if w >= d]
        a = max(rows)
        if len(rows) != 2 * a + 1:
            raise ValueError("kernel must shrink monotonically away from the centre row")
        rects.append((a, d))
    return rects


class Dilation(nn.Module):
    """Binary dilation by a fixed odd kernel: bool/0-1 ``[B,1,H,W]`` -> bool ``[B,1,H,W]``.

    Pixels outside the image never dilate inwards (OpenCV's default border for ``cv2.dilate``).
    """

    def __init__(self, kernel: np.ndarray) -> None:
        super().__init__()
        self.radius = kernel.shape[0] // 2
        self.rects = kernel_rectangles(kernel)

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        r = self.radius
        h, w = mask.shape[-2], mask.shape[-1]
        # Integral image with a leading zero row/column over the map padded by r.
        x = F.pad(mask.float(), (r + 1, r, r + 1, r))
        integral = x.cumsum(dim=-2).cumsum(dim=-1)
        out = torch.zeros_like(mask, dtype=torch.bool)
        for a, b in self.rects:
            # Sum over rows y-a..y+a, cols x-b..x+b (padded coordinates shift by r).
            y0, y1 = r - a, r + a + 1
            x0, x1 = r - b, r + b + 1
            s = (
                integral[..., y1 : y1 + h, x1 : x1 + w]
                - integral[..., y0 : y0 + h, x1 : x1 + w]
                - integral[..., y1 : y1 + h, x0 : x0 + w]
                + integral[..., y0 : y0 + h, x0 : x0 + w]
            )
            out = out | (s > 0.5)
        return out


def dilate_conv(mask: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Reference dilation as a convolution: ``mask [B,1,H,W]``, ``kernel [1,1,k,k]`` 0/1 -> bool."""
    k = kernel.shape[-1]
    return F.conv2d(mask.to(kernel.dtype), kernel, padding=k // 2) > 0.5

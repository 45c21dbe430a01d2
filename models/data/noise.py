"""Procedural noise used for textures: value noise and fractal (multi-octave) value noise.

Value noise is a grid of random values upsampled with bicubic interpolation. It is
cheap (one ``cv2.resize`` per octave) and deterministic given the generator.
"""

from __future__ import annotations

import cv2
import numpy as np


def value_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Smooth random field of shape [h, w] (float32, roughly in [0, 1]) with features ``cell`` px wide."""
    cell = max(float(cell), 1.0)
    gh = int(np.ceil(h / cell)) + 3
    gw = int(np.ceil(w / cell)) + 3
    grid = rng.random((gh, gw), dtype=np.float32)
    up = cv2.resize(grid, (int(gw * cell), int(gh * cell)), interpolation=cv2.INTER_CUBIC)
    oy = int(rng.integers(0, max(1, up.shape[0] - h - int(cell))))
    ox = int(rng.integers(0, max(1, up.shape[1] - w - int(cell))))
    return up[oy : oy + h, ox : ox + w]


def fractal_noise(
    rng: np.random.Generator,
    h: int,
    w: int,
    cell: float,
    octaves: int = 4,
    persistence: float = 0.5,
) -> np.ndarray:
    """Sum of ``octaves`` value-noise layers, each half the feature size; [h, w] float32 in [0, 1]."""
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for _ in range(octaves):
        out += amp * value_noise(rng, h, w, cell)
        total += amp
        amp *= persistence
        cell = max(cell / 2.0, 1.0)
    out /= total
    lo, hi = float(out.min()), float(out.max())
    return (out - lo) / max(hi - lo, 1e-6)

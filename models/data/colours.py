"""Colour names for clothing: sampling a named colour and naming a measured one.

The two directions agree: every colour that :func:`sample_named_colour` draws for a name,
and moderate shading of it (value x0.65..1.1; x0.8..1.1 for white), is named back as that name by
:func:`colour_names`. Text descriptions use the names, so they must match what is seen.
"""

from __future__ import annotations

import cv2
import numpy as np

COLOUR_NAMES: tuple[str, ...] = (
    "black",
    "white",
    "gray",
    "brown",
    "red",
    "orange",
    "yellow",
    "green",
    "blue",
    "purple",
    "pink",
)

# (hue degrees lo, hi), (saturation lo, hi), (value lo, hi) used when *drawing* a colour.
_SAMPLE_HSV: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "black": ((0, 360), (0.0, 0.25), (0.06, 0.16)),
    "white": ((0, 360), (0.0, 0.06), (0.9, 1.0)),
    "gray": ((0, 360), (0.0, 0.08), (0.42, 0.6)),
    "brown": ((18, 34), (0.45, 0.75), (0.33, 0.48)),
    "red": ((-6, 5), (0.72, 0.95), (0.62, 0.9)),
    "orange": ((20, 31), (0.75, 0.95), (0.88, 1.0)),
    "yellow": ((48, 57), (0.7, 0.95), (0.86, 1.0)),
    "green": ((95, 145), (0.5, 0.85), (0.42, 0.8)),
    "blue": ((200, 232), (0.55, 0.9), (0.45, 0.85)),
    "purple": ((264, 281), (0.45, 0.8), (0.42, 0.75)),
    "pink": ((316, 334), (0.35, 0.62), (0.82, 1.0)),
}


def hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    """One HSV colour (hue in degrees, s and v in [0, 1]) to RGB float32 [3] in [0, 1]."""
    px = np.array([[[h % 360.0, s, v]]], np.float32)
    return cv2.cvtColor(px, cv2.COLOR_HSV2RGB)[0, 0]


def sample_named_colour(rng: np.random.Generator, name: str) -> np.ndarray:
    """A random RGB colour (float32 [3] in [0, 1]) that :func:`colour_names` calls ``name``."""
    (h0, h1), (s0, s1), (v0, v1) = _SAMPLE_HSV[name]
    return hsv_to_rgb(rng.uniform(h0, h1), rng.uniform(s0, s1), rng.uniform(v0, v1))


def colour_names(rgb: np.ndarray) -> np.ndarray:
    """Index into :data:`COLOUR_NAMES` for each colour of ``rgb`` ([..., 3], float in [0, 1]).

    Returns an int array of shape ``rgb.shape[:-1]``. Rules on HSV: dark -> black, unsaturated ->
    white/gray by value, dark orange hues -> brown, otherwise hue bins.
    """
    rgb = np.asarray(rgb, np.float32)
    shape = rgb.shape[:-1]
    hsv = cv2.cvtColor(rgb.reshape(-1, 1, 3), cv2.COLOR_RGB2HSV).reshape(-1, 3)
    h, s, v = hsv[:, 0], hsv[:, 1], hsv[:, 2]
    out = np.full(h.shape, COLOUR_NAMES.index("blue"), np.int64)
    bins = [
        (12, "red"),
        (42, "orange"),
        (70, "yellow"),
        (170, "green"),
        (255, "blue"),
        (290, "purple"),
        (345, "pink"),
        (361, "red"),
    ]
    lo = 0.0
    for hi, name in bins:
        out[(h >= lo) & (h < hi)] = COLOUR_NAMES.index(name)
        lo = hi
    red = COLOUR_NAMES.index("red")
    out[(out == red) & (s < 0.55) & (v > 0.7)] = COLOUR_NAMES.index("pink")
    out[(h >= 8) & (h < 50) & (v < 0.55)] = COLOUR_NAMES.index("brown")
    grey = s < 0.2
    out[grey] = np.where(v[grey] > 0.72, COLOUR_NAMES.index("white"), COLOUR_NAMES.index("gray"))
    out[v < 0.2] = COLOUR_NAMES.index("black")
    return out.reshape(shape)


def colour_name(rgb: np.ndarray) -> str:
    """Name of one RGB colour ([3], float in [0, 1])."""
    return COLOUR_NAMES[int(colour_names(np.asarray(rgb, np.float32)[None])[0])]


def dominant_colour(pixels: np.ndarray, weights: np.ndarray | None = None) -> tuple[str, np.ndarray] | None:
    """Most frequent colour name among ``pixels`` ([N, 3] in [0, 1]) and the mean RGB of that name's pixels.

    ``weights`` ([N]) weighs the vote (e.g. visible alpha). Returns None for no pixels.
    """
    if len(pixels) == 0:
        return None
    wts = np.ones(len(pixels), np.float64) if weights is None else np.asarray(weights, np.float64)
    if len(pixels) > 4096:  # a regular subsample votes the same and costs far less
        step = len(pixels) // 4096
        pixels, wts = pixels[::step], wts[::step]
    idx = colour_names(pixels)
    votes = np.bincount(idx, weights=wts, minlength=len(COLOUR_NAMES))
    best = int(np.argmax(votes))
    sel = idx == best
    mean = np.average(pixels[sel], axis=0, weights=wts[sel] + 1e-12).astype(np.float32)
    return COLOUR_NAMES[best], mean

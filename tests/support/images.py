"""Synthetic photographs with known ground truth, and image files in many formats."""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image


def textured_background(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A green-ish background with stripes and noise, float32 (H, W, 3) in 0..255."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.empty((height, width, 3), np.float32)
    base[:] = (70, 120, 80)
    base += (12 * np.sin(xx / 9.0) + 8 * np.cos(yy / 13.0))[..., None]
    base += rng.normal(0, 4, base.shape)
    return base


def soft_disc(height: int, width: int, centre: tuple[int, int], radius: int, blur: float = 1.5) -> np.ndarray:
    """A disc with an anti-aliased, slightly blurred edge: float32 (H, W) alpha in [0, 1]."""
    alpha = np.zeros((height, width), np.float32)
    cv2.circle(alpha, centre, radius, 1.0, -1, lineType=cv2.LINE_AA)
    return cv2.GaussianBlur(alpha, (0, 0), blur)


def composite(background: np.ndarray, alpha: np.ndarray, colour: tuple[float, float, float]) -> np.ndarray:
    return background * (1 - alpha[..., None]) + alpha[..., None] * np.asarray(colour, np.float32)


def two_objects(height: int = 360, width: int = 480) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A red soft disc (the target) and a blue square (a distractor) on a textured background.

    Returns (image uint8 RGB, target alpha float32, distractor mask bool)."""
    target = soft_disc(height, width, (width * 35 // 100, height // 2), min(height, width) // 4)
    distractor = np.zeros((height, width), np.float32)
    cv2.rectangle(
        distractor, (width * 62 // 100, height // 3), (width * 79 // 100, height * 70 // 100), 1.0, -1
    )
    image = composite(textured_background(height, width), target, (220, 60, 50))
    image = composite(image, distractor, (40, 60, 220))
    return np.clip(image, 0, 255).astype(np.uint8), target, distractor > 0.5


def encode(image: np.ndarray, fmt: str = "PNG", **kwargs: object) -> bytes:
    """Encode an array with Pillow (``fmt`` PNG, JPEG, WEBP, GIF, ...)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def iou(alpha: np.ndarray, target: np.ndarray, threshold: float = 0.5) -> float:
    a, b = alpha > threshold, target > threshold
    return float((a & b).sum() / max(1, (a | b).sum()))

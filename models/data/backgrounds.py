"""Procedural photo-like backgrounds: rooms, streets, parks, foliage, studio backdrops.

A background is built from a base (gradient, wall and floor split at a horizon, sky and
ground), textured with fractal value noise, cluttered with rectangles (windows, doors,
frames, buildings), ellipses (lamps, bushes, bokeh), lines (poles, wires, shelf edges),
optionally given person-like distractors (mannequins, posters, blurred far-away figures,
shadows on a wall), and finally defocused like a photo with shallow depth of field.

Distractors are painted INTO the background and are never instances: a matting model must
learn that a faint or flat human shape on a wall or poster is not a person to cut out.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from models.data.noise import fractal_noise, value_noise
from models.data.people import render_person, sample_pose, sample_style

KINDS = ("indoor", "street", "park", "foliage", "studio")


@dataclass
class Background:
    """``image`` float32 [H, W, 3] in [0, 1]; ``horizon`` the floor/ground line's row (px)."""

    image: np.ndarray
    horizon: float
    kind: str


def _muted(rng: np.random.Generator, sat: tuple[float, float] = (0.05, 0.45)) -> np.ndarray:
    hsv = np.array([[[rng.uniform(0, 360), rng.uniform(*sat), rng.uniform(0.25, 0.95)]]], np.float32)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]


def _vgradient(h: int, w: int, top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    return np.broadcast_to(top * (1 - t) + bottom * t, (h, w, 3)).copy()


def _texture(rng: np.random.Generator, img: np.ndarray, amount: float, cell: float) -> None:
    """Multiply ``img`` in place by a fractal-noise texture of strength ``amount``."""
    h, w = img.shape[:2]
    tex = fractal_noise(rng, h, w, cell, octaves=int(rng.integers(2, 5)))
    img *= (1.0 - amount / 2 + amount * tex)[..., None]


def _rects(rng: np.random.Generator, img: np.ndarray, n: int, y_max: float | None = None) -> None:
    h, w = img.shape[:2]
    for _ in range(n):
        rw, rh = rng.uniform(0.05, 0.4) * w, rng.uniform(0.05, 0.5) * h
        x0, y0 = rng.uniform(-0.1, 1.0) * w, rng.uniform(-0.1, 0.9) * (y_max if y_max else h)
        col = _muted(rng, (0.0, 0.6))
        p0, p1 = (int(x0), int(y0)), (int(x0 + rw), int(y0 + rh))
        kind = rng.random()
        if kind < 0.55:
            cv2.rectangle(img, p0, p1, col.tolist(), -1, cv2.LINE_AA)
            if rng.random() < 0.5:  # frame / window bars
                edge = (col * rng.uniform(0.4, 0.8)).tolist()
                cv2.rectangle(img, p0, p1, edge, int(rng.integers(1, 4)), cv2.LINE_AA)
                if rng.random() < 0.5:
                    mx, my = (p0[0] + p1[0]) // 2, (p0[1] + p1[1]) // 2
                    cv2.line(img, (mx, p0[1]), (mx, p1[1]), edge, 1, cv2.LINE_AA)
                    cv2.line(img, (p0[0], my), (p1[0], my), edge, 1, cv2.LINE_AA)
        else:
            # A building / shelf: a column of window-like cells.
            cv2.rectangle(img, p0, p1, col.tolist(), -1, cv2.LINE_AA)
            cw = max(int(rng.uniform(0.015, 0.05) * w), 3)
            win = (col * rng.uniform(0.3, 1.6)).clip(0, 1).tolist()
            for yy in range(p0[1] + cw, p1[1] - cw, 2 * cw):
                for xx in range(p0[0] + cw, p1[0] - cw, 2 * cw):
                    cv2.rectangle(img, (xx, yy), (xx + cw, yy + cw), win, -1)


def _blobs(rng: np.random.Generator, img: np.ndarray, n: int, leafy: bool) -> None:
    h, w = img.shape[:2]
    for _ in range(n):
        c = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        ax = (int(rng.uniform(0.03, 0.25) * w), int(rng.uniform(0.03, 0.25) * h))
        if leafy:
            col = cv2.cvtColor(
                np.array(
                    [[[rng.uniform(70, 140), rng.uniform(0.3, 0.8), rng.uniform(0.2, 0.6)]]], np.float32
                ),
                cv2.COLOR_HSV2RGB,
            )[0, 0]
        else:
            col = _muted(rng, (0.0, 0.7))
        cv2.ellipse(img, c, ax, rng.uniform(0, 180), 0, 360, col.tolist(), -1, cv2.LINE_AA)


def _lines(rng: np.random.Generator, img: np.ndarray, n: int) -> None:
    h, w = img.shape[:2]
    for _ in range(n):
        p0 = (int(rng.uniform(-0.2, 1.2) * w), int(rng.uniform(-0.2, 1.2) * h))
        if rng.random() < 0.5:  # mostly vertical / horizontal, as in built scenes
            p1 = (p0[0] + int(rng.normal(0, 0.03) * w), p0[1] + int(rng.uniform(0.3, 1.2) * h))
        else:
            p1 = (int(rng.uniform(-0.2, 1.2) * w), int(rng.uniform(-0.2, 1.2) * h))
        cv2.line(img, p0, p1, _muted(rng, (0.0, 0.5)).tolist(), int(rng.integers(1, 6)), cv2.LINE_AA)


def _bokeh(rng: np.random.Generator, img: np.ndarray, n: int) -> None:
    h, w = img.shape[:2]
    layer = np.zeros_like(img)
    for _ in range(n):
        c = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        r = int(rng.uniform(0.01, 0.06) * max(h, w)) + 1
        cv2.circle(layer, c, r, (_muted(rng, (0.1, 0.6)) * rng.uniform(0.2, 0.6)).tolist(), -1, cv2.LINE_AA)
    img += cv2.GaussianBlur(layer, (0, 0), 1.5)


def _distractor(rng: np.random.Generator, img: np.ndarray, horizon: float) -> None:
    """A person-like shape that is not a person to matte: mannequin, poster, shadow, far figure."""
    h, w = img.shape[:2]
    kind = rng.choice(["mannequin", "poster", "shadow", "far"])
    height = rng.uniform(0.25, 0.7) * h if kind != "far" else rng.uniform(0.1, 0.25) * h
    feet_y = (
        rng.uniform(max(horizon, 0.3 * h), 1.05 * h)
        if kind in ("mannequin", "far")
        else rng.uniform(0.5, 0.9) * h
    )
    x = rng.uniform(0, w)
    style = sample_style(rng, mannequin=kind != "far")
    if kind == "far":
        # A far figure desaturated into the haze and defocused.
        for name in ("skin", "top", "bottom", "hair", "shoes"):
            setattr(style, name, 0.5 * getattr(style, name) + 0.5 * img.mean(axis=(0, 1)))
    layer = render_person(
        rng, (h, w), (x, feet_y - 0.5 * height), height, style, sample_pose(rng), strands=False
    )
    if layer is None:
        return
    ys, xs = layer.slices()
    alpha, premult = layer.alpha, layer.premult
    if kind == "poster":
        # A flat print inside a frame.
        y0, x0 = layer.y0, layer.x0
        lh, lw = layer.shape
        frame = _muted(rng, (0.0, 0.3)) * 0.9 + 0.1
        cv2.rectangle(img, (x0 - 3, y0 - 3), (x0 + lw + 3, y0 + lh + 3), frame.tolist(), -1)
        flat = _muted(rng, (0.3, 0.9))
        premult = alpha[..., None] * flat
    elif kind == "shadow":
        premult = np.zeros_like(premult)
        alpha = cv2.GaussianBlur(alpha, (0, 0), rng.uniform(1.5, 4.0)) * rng.uniform(0.25, 0.5)
    opacity = rng.uniform(0.35, 0.75) if kind != "poster" else 1.0
    blur = rng.uniform(1.0, 3.0) if kind in ("mannequin", "far") else 0.0
    if blur > 0:
        alpha = cv2.GaussianBlur(alpha, (0, 0), blur)
        premult = cv2.GaussianBlur(premult, (0, 0), blur)
    img[ys, xs] = opacity * premult + (1.0 - opacity * alpha[..., None]) * img[ys, xs]


def render_background(rng: np.random.Generator, h: int, w: int, distractors: float = 0.35) -> Background:
    """A random background of ``h`` x ``w`` px; ``distractors`` is the chance of person-like shapes."""
    kind = str(rng.choice(KINDS, p=[0.35, 0.2, 0.2, 0.1, 0.15]))
    horizon = float(rng.uniform(0.3, 0.65) * h)
    hz = int(horizon)
    if kind == "studio":
        img = _vgradient(h, w, _muted(rng), _muted(rng))
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        vign = 1.0 - 0.35 * (((xx - w / 2) / w) ** 2 + ((yy - h / 2) / h) ** 2)
        img *= vign[..., None]
        _texture(rng, img, 0.08, max(h, w) / 4)
        if rng.random() < 0.5:
            _bokeh(rng, img, int(rng.integers(5, 25)))
    elif kind == "indoor":
        wall, floor = _muted(rng), _muted(rng, (0.1, 0.5)) * rng.uniform(0.5, 0.9)
        img = np.empty((h, w, 3), np.float32)
        img[:hz] = wall
        img[hz:] = floor
        _texture(rng, img, rng.uniform(0.1, 0.35), rng.uniform(8, 60))
        if rng.random() < 0.4:  # floor boards / tiles converging to a vanishing point
            vx = rng.uniform(0.2, 0.8) * w
            for xb in np.linspace(-w, 2 * w, int(rng.integers(8, 24))):
                cv2.line(img, (int(vx), hz), (int(xb), h), (floor * 0.7).tolist(), 1, cv2.LINE_AA)
        _rects(rng, img, int(rng.integers(2, 7)), y_max=horizon)
        _blobs(rng, img, int(rng.integers(0, 4)), leafy=rng.random() < 0.5)
        _lines(rng, img, int(rng.integers(1, 6)))
    elif kind == "street":
        sky = np.array([0.55, 0.7, 0.9], np.float32) * rng.uniform(0.8, 1.1)
        img = _vgradient(h, w, sky * 0.85, np.clip(sky * 1.15, 0, 1))
        _rects(rng, img, int(rng.integers(3, 9)), y_max=horizon)
        ground = _muted(rng, (0.0, 0.15)) * rng.uniform(0.4, 0.8)
        img[hz:] = ground
        _texture(rng, img, rng.uniform(0.15, 0.35), rng.uniform(4, 30))
        _lines(rng, img, int(rng.integers(2, 8)))
    elif kind == "park":
        sky = np.array([0.6, 0.75, 0.95], np.float32) * rng.uniform(0.8, 1.1)
        img = _vgradient(h, w, sky, np.clip(sky * 1.2, 0, 1))
        clouds = fractal_noise(rng, h, w, max(h, w) / 3)
        img += 0.25 * np.clip(clouds - 0.5, 0, 1)[..., None]
        _blobs(rng, img, int(rng.integers(3, 10)), leafy=True)
        grass = cv2.cvtColor(
            np.array([[[rng.uniform(60, 120), rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7)]]], np.float32),
            cv2.COLOR_HSV2RGB,
        )[0, 0]
        img[hz:] = grass
        _texture(rng, img, rng.uniform(0.25, 0.5), rng.uniform(2, 12))
        _lines(rng, img, int(rng.integers(0, 4)))
    else:  # foliage: dense high-frequency leaves, the hardest background for hair
        base = cv2.cvtColor(
            np.array([[[rng.uniform(40, 150), rng.uniform(0.3, 0.8), rng.uniform(0.3, 0.8)]]], np.float32),
            cv2.COLOR_HSV2RGB,
        )[0, 0]
        img = np.broadcast_to(base, (h, w, 3)).copy()
        for cell in (rng.uniform(2, 5), rng.uniform(6, 20)):
            n = value_noise(rng, h, w, cell)
            img *= (0.55 + 0.9 * n)[..., None]
        _blobs(rng, img, int(rng.integers(2, 8)), leafy=True)
    if rng.random() < distractors:
        for _ in range(int(rng.integers(1, 3))):
            _distractor(rng, img, horizon)
    img = np.clip(img, 0.0, 1.0)
    if rng.random() < 0.65:
        sigma = float(rng.uniform(0.6, 4.0))
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    return Background(image=img.astype(np.float32), horizon=horizon, kind=kind)

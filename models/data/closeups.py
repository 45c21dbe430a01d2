"""Close-up training scenes of **real people**: a crop around a stretch of one CCP person's
silhouette (head and hair most often), at the photo's own resolution.

Whole-body scenes (:mod:`models.data.real_scenes`) never show what matting benchmarks and
portrait tools are mostly asked about: a frame filled by part of a head, hair against the
background, a shoulder cut by the border, where the box is the whole image and the person
must be told from the background by colour and texture rather than by shape. These scenes
crop such a window from the full-resolution CCP photo (crop side 8-35 % of the person's
height, centred on a silhouette point, 70 % of the time one next to hair or a hat), scale it to
the scene size, and label it with :func:`models.data.ccp.person_matte` *at the crop's
resolution* (so the soft band is computed on the pixels the network sees). Half keep the
photo's own background, half put the person onto a real background photo
(:mod:`models.data.photo_backgrounds`). One instance per scene; everything is deterministic in
``(seed, index, size)``.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from models.data.ccp import LICENCE, CCPDataset, CCPPhoto, person_matte
from models.data.descriptions import describe_instances, measure_attributes
from models.data.photo_backgrounds import background_crop, background_set
from models.data.real_scenes import finish_photo
from models.data.synthetic import Scene

HEAD_LABELS = ("hair", "hat")
"""Labels whose silhouette a close-up prefers (hair against the background, the hard case)."""

MIN_CROP_PX = 80
"""Smallest crop side taken from the photo (so a close-up is upscaled at most ~3.2x to 256 px)."""


def _silhouette(person: np.ndarray) -> np.ndarray:
    """bool [H, W]: the person's outline (mask minus its 3x3 erosion)."""
    mask = person.astype(np.uint8)
    return (mask - cv2.erode(mask, np.ones((3, 3), np.uint8))) > 0


def _near(photo: CCPPhoto, names: tuple[str, ...], radius: int) -> np.ndarray:
    """bool [H, W]: within ``radius`` px of a pixel labelled one of ``names``."""
    parts = np.zeros(photo.labels.shape, np.uint8)
    for name in names:
        parts |= photo.part(name).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(parts, kernel) > 0


def crop_window(photo: CCPPhoto, aspect: float, rng: np.random.Generator) -> tuple[int, int, int, int] | None:
    """A window (y0, y1, x0, x1) of ``photo`` of width/height ``aspect`` around a point of the
    person's silhouette, or None when the photo has no usable silhouette."""
    person = photo.person
    ys = np.nonzero(person)[0]
    if len(ys) < 64:
        return None
    ph, pw = person.shape
    person_h = int(ys.max() - ys.min() + 1)
    edge = _silhouette(person) & ~_border(person.shape)
    if rng.random() < 0.7:
        soft_edge = edge & _near(photo, HEAD_LABELS, radius=3)
        if soft_edge.any():
            edge = soft_edge
    ey, ex = np.nonzero(edge)
    if len(ey) == 0:
        return None
    ch = rng.uniform(0.08, 0.35) * person_h
    ch = min(max(ch, MIN_CROP_PX), ph, pw / aspect)
    cw = min(ch * aspect, pw)
    ch, cw = int(ch), int(cw)
    k = int(rng.integers(len(ey)))
    # The silhouette point lands anywhere in the window's central 60 %.
    fy, fx = rng.uniform(0.2, 0.8, 2)
    y0 = int(np.clip(ey[k] - fy * ch, 0, ph - ch))
    x0 = int(np.clip(ex[k] - fx * cw, 0, pw - cw))
    return y0, y0 + ch, x0, x0 + cw


def _border(shape: tuple[int, int], width: int = 2) -> np.ndarray:
    """bool [H, W]: the photo's outermost ``width`` rows and columns (a person cut by the
    photo's border has no real silhouette there)."""
    out = np.zeros(shape, bool)
    out[:width], out[-width:], out[:, :width], out[:, -width:] = True, True, True, True
    return out


def _scaled(photo: CCPPhoto, window: tuple[int, int, int, int], h: int, w: int) -> CCPPhoto:
    """The ``window`` of ``photo`` scaled to h x w (area or linear for the image, nearest for labels)."""
    y0, y1, x0, x1 = window
    image, labels = photo.image[y0:y1, x0:x1], photo.labels[y0:y1, x0:x1]
    interp = cv2.INTER_AREA if w < image.shape[1] else cv2.INTER_LINEAR
    image = cv2.resize(np.ascontiguousarray(image), (w, h), interpolation=interp)
    labels = cv2.resize(np.ascontiguousarray(labels), (w, h), interpolation=cv2.INTER_NEAREST)
    return CCPPhoto(photo.photo_id, image, labels, photo.label_names)


class CloseUpGenerator:
    """Close-up scenes (see the module doc) of the people of ``dataset`` (a CCP split);
    ``own_background`` is the share that keeps the photo's own background."""

    def __init__(
        self,
        dataset: CCPDataset,
        seed: int,
        own_background: float = 0.5,
        backgrounds: list[np.ndarray] | None = None,
    ) -> None:
        self.dataset, self.seed, self.own_background = dataset, int(seed), float(own_background)
        self.backgrounds, self.background_sources = background_set(backgrounds)
        if not self.backgrounds:
            self.own_background = 1.0

    def describe(self) -> dict[str, Any]:
        """What the provenance file records about this data."""
        return {
            "people": f"Clothing Co-Parsing {self.dataset.split} split ({len(self.dataset)} photos), "
            "close-up windows around the silhouette at the photo's resolution (side 8-35 % of the "
            "person's height, 70 % next to hair or a hat), soft labels by mask-to-matte at the crop's "
            "resolution",
            "people_licence": LICENCE,
            "scenes": f"1 person; {self.own_background:.0%} on the photo's own background, the rest on "
            "background photos",
            "backgrounds": self.background_sources,
        }

    def scene(self, index: int, size: int | tuple[int, int] = 256) -> Scene:
        """Scene ``index`` of ``size`` (long side, or (height, width))."""
        rng = np.random.default_rng([self.seed, int(index), 41])
        h, w = (size, size) if isinstance(size, int) else size
        crop = None
        for _ in range(8):  # a window with both person and background in it
            photo = self.dataset[int(rng.integers(len(self.dataset)))]
            window = crop_window(photo, w / h, rng)
            if window is None:
                continue
            crop = _scaled(photo, window, h, w)
            if 0.05 <= float(crop.person.mean()) <= 0.95:
                break
        if crop is None:  # no silhouette found in 8 photos: the last photo, whole
            crop = _scaled(photo, (0, photo.labels.shape[0], 0, photo.labels.shape[1]), h, w)
        alpha = person_matte(crop)
        image = crop.image.astype(np.float32) / 255.0
        if rng.random() >= self.own_background:
            bg = self.backgrounds[int(rng.integers(len(self.backgrounds)))]
            canvas = background_crop(bg, h, w, rng).astype(np.float32) / 255.0
            if rng.random() < 0.5:
                canvas = cv2.GaussianBlur(canvas, (0, 0), float(rng.uniform(1.0, 4.0)))
            image = alpha[..., None] * image + (1.0 - alpha[..., None]) * canvas
        if rng.random() < 0.5:
            image, alpha = image[:, ::-1], alpha[:, ::-1]
        image = finish_photo(rng, np.ascontiguousarray(image))
        alphas = np.ascontiguousarray(alpha[None], np.float32)
        depth = np.zeros(1, np.int64)
        attrs = measure_attributes(image, alphas, depth=depth)
        return Scene(
            image=image,
            alphas=alphas,
            descriptions=describe_instances(attrs, rng),
            is_human=np.ones(1, bool),
            attributes=attrs,
            depth=depth,
            name=f"ccp-closeup-{self.seed}-{index}",
        )

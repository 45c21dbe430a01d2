"""Clothing Co-Parsing (CCP): real full-body people with pixel-level part labels, as published.

Reads a clone of ``github.com/bearpaw/clothing-co-parsing`` in its own layout::

    root/photos/NNNN.jpg
    root/annotations/pixel-level/NNNN.mat      ``groundtruth``: uint8 [H, W], 0 = background
    root/label_list.mat                        ``label_list``: 1 x 59 cell of label names

Only photos with a pixel-level annotation are used (1004 of 2098). The person mask is
``groundtruth > 0``; only the main subject is labelled, so bystanders are background.
Masks follow superpixels (binary, slightly blocky), so :func:`person_matte` turns them into
soft labels with COCO-Matting's mask-to-matte recipe, with a wider unknown band around hair
(and around hands and arms, where the superpixels cut fingers), so that thin parts stay soft.

The validation split is fixed: every tenth photo in id order (0001, 0011, 0021, ...), 101 of
the 1004; :data:`TRAIN` is the rest. Training never reads the validation ids.

Licence of the repository: Apache License 2.0 (added by its owner); the photos were collected
from a fashion website (see :data:`LICENCE`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from models.data.colours import dominant_colour
from models.data.mask_to_matte import adaptive_omega, mask_to_trimap

LICENCE = (
    "Clothing Co-Parsing (bearpaw/clothing-co-parsing, commit fe34fb7): Apache License 2.0 as "
    "stated by the repository owner; photos originally collected from a fashion website"
)
TRAIN, VALIDATION = "train", "validation"

# Labels whose pixels are thin or fuzzy at the silhouette: their edges get a wider unknown band.
SOFT_LABELS = ("hair", "skin", "hat", "scarf", "gloves")
# Garments a description may name ("the person in the black coat"), outermost first.
UPPER_GARMENTS = (
    "coat", "jacket", "blazer", "cardigan", "cape", "hoodie", "sweatshirt", "sweater", "jumper",
    "vest", "dress", "romper", "suit", "blouse", "shirt", "t-shirt", "top", "bodysuit",
)  # fmt: skip
LOWER_GARMENTS = ("jeans", "pants", "shorts", "skirt", "leggings", "tights", "stockings")


def split_of(photo_id: str) -> str:
    """The fixed split of a CCP photo id ("0001" ... "1004"): every tenth is validation."""
    return VALIDATION if (int(photo_id) - 1) % 10 == 0 else TRAIN


@dataclass
class CCPPhoto:
    """One annotated photo: ``image`` uint8 [H, W, 3] RGB; ``labels`` uint8 [H, W] (0 = background,
    else an index into ``label_names``); ``photo_id`` e.g. "0001"."""

    photo_id: str
    image: np.ndarray
    labels: np.ndarray
    label_names: list[str]

    @property
    def person(self) -> np.ndarray:
        """bool [H, W]: the labelled person."""
        return self.labels > 0

    def part(self, name: str) -> np.ndarray:
        """bool [H, W]: the pixels labelled ``name`` (all False for a name CCP does not have)."""
        if name not in self.label_names:
            return np.zeros(self.labels.shape, bool)
        return self.labels == self.label_names.index(name)


class CCPDataset(Sequence[CCPPhoto]):
    """The pixel-level annotated CCP photos under ``root`` (a clone of the public repository),
    optionally restricted to one split (``"train"`` or ``"validation"``)."""

    def __init__(self, root: str | Path, split: str | None = None) -> None:
        from scipy.io import loadmat

        self.root = Path(root)
        photos, annotations = self.root / "photos", self.root / "annotations" / "pixel-level"
        if not photos.is_dir() or not annotations.is_dir():
            raise FileNotFoundError(
                f"{self.root} is not a Clothing Co-Parsing clone (needs photos/ and annotations/pixel-level/)"
            )
        if split not in (None, TRAIN, VALIDATION):
            raise ValueError(f"split must be {TRAIN!r} or {VALIDATION!r}, got {split!r}")
        labels = loadmat(str(self.root / "label_list.mat"))["label_list"]
        self.label_names = [str(x[0]) if len(x) else "" for x in labels[0]]
        self.ids = [
            p.stem
            for p in sorted(annotations.glob("*.mat"))
            if (photos / f"{p.stem}.jpg").is_file() and (split is None or split_of(p.stem) == split)
        ]
        self.split = split

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> CCPPhoto:  # type: ignore[override]
        from scipy.io import loadmat

        photo_id = self.ids[index]
        if self.split is not None and split_of(photo_id) != self.split:
            raise AssertionError(f"{photo_id} is not in the {self.split} split")
        bgr = cv2.imread(str(self.root / "photos" / f"{photo_id}.jpg"), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"cannot read {photo_id}.jpg")
        labels = loadmat(str(self.root / "annotations" / "pixel-level" / f"{photo_id}.mat"))["groundtruth"]
        image = np.ascontiguousarray(bgr[..., ::-1])
        if labels.shape != image.shape[:2]:
            labels = cv2.resize(labels, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST)
        return CCPPhoto(photo_id, image, np.ascontiguousarray(labels, np.uint8), self.label_names)


def resize_photo(photo: CCPPhoto, long_side: int) -> CCPPhoto:
    """``photo`` scaled so its longer side is ``long_side`` (area for the image, nearest for labels)."""
    h, w = photo.labels.shape
    s = long_side / max(h, w)
    if abs(s - 1.0) < 1e-6:
        return photo
    size = (max(1, round(w * s)), max(1, round(h * s)))
    image = cv2.resize(photo.image, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    labels = cv2.resize(photo.labels, size, interpolation=cv2.INTER_NEAREST)
    return CCPPhoto(photo.photo_id, image, labels, photo.label_names)


def person_trimap(photo: CCPPhoto) -> np.ndarray:
    """Trimap uint8 [H, W] (0/128/255) of the person: COCO-Matting's adaptive band, widened to
    ``2ω`` where a soft label (hair, skin, ...) meets the background."""
    mask = photo.person.astype(np.uint8)
    omega = adaptive_omega(float(mask.sum()), max_omega=max(3, min(mask.shape) // 24))
    trimap = mask_to_trimap(mask, omega)
    soft = np.zeros(mask.shape, bool)
    for name in SOFT_LABELS:
        soft |= photo.part(name)
    if soft.any():
        wide = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * omega + 1, 2 * omega + 1))
        edge = cv2.dilate(mask, wide) - cv2.erode(mask, wide)
        near_soft = cv2.dilate(soft.astype(np.uint8), wide) > 0
        trimap[(edge > 0) & near_soft] = 128
    return trimap


def person_matte(photo: CCPPhoto) -> np.ndarray:
    """Soft alpha float32 [H, W] in [0, 1] of the labelled person: :func:`person_trimap`, then
    closed-form matting (Levin et al., pymatting) in the unknown band on the person's box."""
    from pymatting import estimate_alpha_cf

    trimap = person_trimap(photo)
    alpha = (trimap == 255).astype(np.float32)
    if not (trimap == 255).any() or not (trimap == 0).any():
        return cv2.GaussianBlur(photo.person.astype(np.float32), (0, 0), 0.7)
    ys, xs = np.nonzero(trimap > 0)
    h, w = trimap.shape
    y0, y1 = max(int(ys.min()) - 4, 0), min(int(ys.max()) + 5, h)
    x0, x1 = max(int(xs.min()) - 4, 0), min(int(xs.max()) + 5, w)
    image = photo.image[y0:y1, x0:x1].astype(np.float64) / 255.0
    crop = trimap[y0:y1, x0:x1].astype(np.float64) / 255.0
    solved = np.clip(estimate_alpha_cf(image, crop), 0.0, 1.0).astype(np.float32)
    alpha[y0:y1, x0:x1] = solved
    alpha[trimap == 255] = 1.0
    alpha[trimap == 0] = 0.0
    return alpha


@dataclass
class Outfit:
    """What a description can say about a CCP person's clothes: the upper garment's name and
    colour (``upper``/``upper_colour``), the lower garment's (``lower``/``lower_colour``)."""

    upper: str | None = None
    upper_colour: str | None = None
    lower: str | None = None
    lower_colour: str | None = None

    def phrase(self) -> str | None:
        """ "the black coat", "a red dress", or None when nothing could be measured."""
        if self.upper and self.upper_colour:
            return f"{self.upper_colour} {self.upper}"
        if self.lower and self.lower_colour:
            return f"{self.lower_colour} {self.lower}"
        return None


def measure_outfit(photo: CCPPhoto, min_fraction: float = 0.04) -> Outfit:
    """The largest upper and lower garment of ``photo`` (each covering at least ``min_fraction``
    of the person) and their dominant colour names, measured on the pixels."""
    area = max(int(photo.person.sum()), 1)
    out = Outfit()
    for kind, names in (("upper", UPPER_GARMENTS), ("lower", LOWER_GARMENTS)):
        best, best_px = None, 0
        for name in names:
            px = int(photo.part(name).sum())
            if px > best_px:
                best, best_px = name, px
        if best is None or best_px < min_fraction * area:
            continue
        found = dominant_colour(photo.image[photo.part(best)].astype(np.float32) / 255.0)
        if found is None:
            continue
        setattr(out, kind, best)
        setattr(out, f"{kind}_colour", found[0])
    return out

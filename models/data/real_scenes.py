"""Multi-person training scenes from **real people**, composited the HIM2K way.

People are cut-outs of Clothing Co-Parsing photos (:mod:`models.data.ccp`) with their soft
labels; scenes put 1–5 of them, with occlusion and scale changes (from whole bodies down to
upper bodies cut by the frame, as in everyday photos), either onto a real background photo
(:mod:`models.data.photo_backgrounds`) or into a CCP photo itself, whose own person stays an
instance and whose bystanders stay background. Compositing follows InstMatt eq. 13, back to
front: ``I = a_1 F_1 + (1 - a_1)(a_2 F_2 + ... B)``; an instance's ground truth is its visible
alpha ``a_k * prod_{j in front}(1 - a_j)``, so the alphas of a pixel sum to at most 1.

Descriptions come from the real attributes: position, and the garment CCP labels with its
measured colour ("the person on the left in the black coat"). Everything is deterministic in
``(seed, index, size)``. Instances are ordered left to right like every other :class:`Scene`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from models.data.ccp import LICENCE, CCPDataset, Outfit, measure_outfit, person_matte, resize_photo
from models.data.descriptions import describe_instances, measure_attributes
from models.data.photo_backgrounds import background_crop, background_set
from models.data.synthetic import Scene, centroid_x

CUTOUT_LONG_SIDE = 384
"""Long side at which CCP photos are prepared (scenes are at most this size)."""


@dataclass
class PersonCutout:
    """One CCP person: the photo ``image`` uint8 [H, W, 3] at the prepared size, the person's
    soft ``alpha`` float32 [H, W], its ``box`` (x0, y0, x1, y1, exclusive) and ``outfit``."""

    photo_id: str
    image: np.ndarray
    alpha: np.ndarray
    box: tuple[int, int, int, int]
    outfit: Outfit


def _box_of(alpha: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(alpha > 0.02)
    if len(ys) == 0:
        return (0, 0, alpha.shape[1], alpha.shape[0])
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


class CutoutBank:
    """Prepared cut-outs of one CCP split, cached as ``.npz`` under ``cache_dir`` (soft labels
    cost a closed-form solve each; safe for several processes, like the scene cache)."""

    def __init__(
        self, root: str | Path, split: str, cache_dir: Path | None, long_side: int = CUTOUT_LONG_SIDE
    ):
        self.dataset = CCPDataset(root, split)
        self.split, self.long_side = split, int(long_side)
        self.cache_dir = None if cache_dir is None else Path(cache_dir) / f"ccp-{split}-{long_side}px"
        if self.cache_dir is not None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)

    def __len__(self) -> int:
        return len(self.dataset)

    def cutout(self, index: int) -> PersonCutout:
        photo_id = self.dataset.ids[index]
        path = None if self.cache_dir is None else self.cache_dir / f"{photo_id}.npz"
        if path is not None and path.is_file():
            try:
                with np.load(path) as z:
                    alpha = z["alpha"].astype(np.float32) / 255.0
                    outfit = Outfit(**json.loads(str(z["outfit"])))
                    return PersonCutout(photo_id, z["image"], alpha, _box_of(alpha), outfit)
            except (OSError, ValueError, KeyError):
                pass  # torn by a killed run: prepare again
        photo = resize_photo(self.dataset[index], self.long_side)
        alpha = np.round(person_matte(photo) * 255.0) / 255.0
        cut = PersonCutout(
            photo_id, photo.image, alpha.astype(np.float32), _box_of(alpha), measure_outfit(photo)
        )
        if path is not None:
            tmp = path.with_name(f".{photo_id}.{os.getpid()}.tmp.npz")
            np.savez(
                tmp,
                image=cut.image,
                alpha=np.round(cut.alpha * 255).astype(np.uint8),
                outfit=np.array(json.dumps(cut.outfit.__dict__)),
            )
            tmp.replace(path)
        return cut


def _resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    interp = cv2.INTER_AREA if w < img.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(img, (max(1, w), max(1, h)), interpolation=interp)


@dataclass
class _Layer:
    """A placed person: premultiplied colour and alpha on the whole canvas."""

    premult: np.ndarray
    alpha: np.ndarray
    outfit: Outfit


class RealSceneGenerator:
    """Scenes of real CCP people (``bank``) over real backgrounds; ``own_photo`` is the share of
    scenes built inside a CCP photo (its person and bystanders kept), the rest on background
    photos. ``max_people`` people at most (1–5 as in HIM2K)."""

    def __init__(
        self,
        bank: CutoutBank,
        seed: int,
        own_photo: float = 0.35,
        max_people: int = 5,
        backgrounds: list[np.ndarray] | None = None,
    ) -> None:
        self.bank, self.seed = bank, int(seed)
        self.own_photo, self.max_people = float(own_photo), int(max_people)
        self.backgrounds, self.background_sources = background_set(backgrounds)
        if not self.backgrounds:
            self.own_photo = 1.0  # no background package installed: CCP photos only

    def describe(self) -> dict[str, Any]:
        """What the provenance file records about this data."""
        return {
            "people": f"Clothing Co-Parsing {self.bank.split} split ({len(self.bank)} photos), soft labels "
            "by mask-to-matte (adaptive band, wider at hair/skin, closed-form)",
            "people_licence": LICENCE,
            "scenes": f"1-{self.max_people} people, occlusion and scale 0.3-1.9 of the frame height; "
            f"{self.own_photo:.0%} inside a CCP photo (its bystanders are background)",
            "backgrounds": self.background_sources,
        }

    def scene(self, index: int, size: int | tuple[int, int] = 256) -> Scene:
        """Scene ``index`` of ``size`` (long side, or (height, width))."""
        rng = np.random.default_rng([self.seed, int(index), 23])
        h, w = (size, size) if isinstance(size, int) else size
        own = rng.random() < self.own_photo
        if own:
            base = self.bank.cutout(int(rng.integers(len(self.bank))))
            canvas, first = self._own_photo(rng, base, h, w)
            layers = [first]
            extra = int(rng.choice([0, 0, 1, 1, 2]))
        else:
            bg = self.backgrounds[int(rng.integers(len(self.backgrounds)))]
            canvas = background_crop(bg, h, w, rng).astype(np.float32) / 255.0
            if rng.random() < 0.4:
                canvas = cv2.GaussianBlur(canvas, (0, 0), float(rng.uniform(0.8, 3.0)))
            layers = []
            extra = int(rng.choice([1, 1, 2, 2, 3, 4, 5][: max(1, self.max_people + 2)]))
            extra = min(extra, self.max_people)
        for _ in range(extra):
            cut = self.bank.cutout(int(rng.integers(len(self.bank))))
            crowd = len(layers) + extra
            layers.append(self._place(rng, cut, h, w, crowd))
        # Later layers are further back, except that an own-photo person stays at the back.
        order = list(range(len(layers)))
        if own:
            order = [*order[1:], 0]
        else:
            rng.shuffle(order)
        layers = [layers[i] for i in order]  # front first
        keep, alphas = _visible(layers, h, w)
        if not keep:  # everyone cut off: place one whole person
            layers = [
                self._place(rng, self.bank.cutout(int(rng.integers(len(self.bank)))), h, w, 1, whole=True)
            ]
            keep, alphas = _visible(layers, h, w)
        layers = [layers[i] for i in keep]
        comp = canvas
        for layer in reversed(layers):  # back to front
            comp = layer.premult + (1.0 - layer.alpha[..., None]) * comp
        image = finish_photo(rng, comp)
        order_lr = np.argsort([centroid_x(a) for a in alphas], kind="stable")
        alphas = np.ascontiguousarray(alphas[order_lr])
        outfits = [layers[i].outfit for i in order_lr]
        depth = order_lr.astype(np.int64)
        attrs = measure_attributes(image, alphas, depth=depth)
        for att, outfit in zip(attrs, outfits, strict=True):
            phrase = outfit.phrase()
            if phrase is not None:
                att.colour = f"the {phrase}"
        return Scene(
            image=image,
            alphas=alphas,
            descriptions=describe_instances(attrs, rng),
            is_human=np.ones(len(alphas), bool),
            attributes=attrs,
            depth=depth,
            name=f"ccp-{self.seed}-{index}",
        )

    def _own_photo(
        self, rng: np.random.Generator, cut: PersonCutout, h: int, w: int
    ) -> tuple[np.ndarray, _Layer]:
        """A crop of ``cut``'s photo of aspect w/h around its person, scaled to h x w."""
        ph, pw = cut.alpha.shape
        x0, y0, x1, y1 = cut.box
        aspect = w / h
        # Crop height between the person's height (tight) and the whole photo; sometimes only the top.
        full_h = min(ph, pw / aspect)
        ch = rng.uniform(min(y1 - y0, full_h) * 0.6, full_h) if rng.random() < 0.3 else full_h
        ch = max(16.0, min(ch, full_h))
        cw = min(pw, ch * aspect)
        cx = rng.uniform(max(x1 - cw, 0), max(min(x0, pw - cw), max(x1 - cw, 0)) + 1e-3)
        cy = rng.uniform(0, max(ph - ch, 0) + 1e-3) if ch < full_h else max(0.0, (ph - ch) / 2)
        cx0, cy0 = int(np.clip(cx, 0, pw - cw)), int(np.clip(cy, 0, ph - ch))
        crop = (slice(cy0, cy0 + int(ch)), slice(cx0, cx0 + int(cw)))
        img = cut.image[crop]
        alpha = cut.alpha[crop]
        flip = rng.random() < 0.5
        if flip:
            img, alpha = img[:, ::-1], alpha[:, ::-1]
        img = _resize(np.ascontiguousarray(img), w, h).astype(np.float32) / 255.0
        alpha = np.clip(_resize(np.ascontiguousarray(alpha), w, h), 0.0, 1.0)
        return img, _Layer(img * alpha[..., None], alpha, cut.outfit)

    def _place(
        self, rng: np.random.Generator, cut: PersonCutout, h: int, w: int, crowd: int, whole: bool = False
    ) -> _Layer:
        """``cut``'s person scaled and placed on an h x w canvas (possibly cut by the frame)."""
        x0, y0, x1, y1 = cut.box
        fg, alpha = cut.image[y0:y1, x0:x1], cut.alpha[y0:y1, x0:x1]
        if rng.random() < 0.5:
            fg, alpha = fg[:, ::-1], alpha[:, ::-1]
        # Person height relative to the frame: whole bodies when crowded, close-ups when alone.
        hi = 1.9 if crowd <= 2 and not whole else 1.0
        rel = rng.uniform(0.3 if crowd <= 2 else 0.22, hi if crowd <= 3 else 0.75)
        ph = max(8, int(rel * h))
        pw = max(2, int(ph * (x1 - x0) / max(y1 - y0, 1)))
        fg = _resize(np.ascontiguousarray(fg), pw, ph).astype(np.float32) / 255.0
        alpha = np.clip(_resize(np.ascontiguousarray(alpha), pw, ph), 0.0, 1.0)
        gain = rng.uniform(0.85, 1.15) * rng.uniform(0.95, 1.05, 3).astype(np.float32)
        fg = np.clip(fg * gain, 0.0, 1.0)
        left = int(rng.integers(-pw // 4, max(w - 3 * pw // 4, -pw // 4 + 1)))
        # Tall people stand with their head near the top (the frame cuts their legs).
        top = int(rng.integers(0, max(h // 8, 1))) if ph > h else int(rng.integers(0, max(h - ph, 0) + 1))
        premult = np.zeros((h, w, 3), np.float32)
        full = np.zeros((h, w), np.float32)
        ys0, xs0 = max(top, 0), max(left, 0)
        ys1, xs1 = min(top + ph, h), min(left + pw, w)
        if ys1 > ys0 and xs1 > xs0:
            sub = (slice(ys0 - top, ys1 - top), slice(xs0 - left, xs1 - left))
            full[ys0:ys1, xs0:xs1] = alpha[sub]
            premult[ys0:ys1, xs0:xs1] = fg[sub] * alpha[sub][..., None]
        return _Layer(premult, full, cut.outfit)


def _visible(layers: list[_Layer], h: int, w: int) -> tuple[list[int], np.ndarray]:
    """Indices of layers (front first) worth labelling and their visible alphas [K, H, W]:
    layers drop, one at a time, while too hidden or too cut off."""
    keep = list(range(len(layers)))
    min_area = max(0.004 * h * w, 120.0)
    own = np.array([layer.alpha.sum() for layer in layers])
    while True:
        transmit = np.ones((h, w), np.float32)
        alphas = np.zeros((len(keep), h, w), np.float32)
        for k, i in enumerate(keep):
            alphas[k] = layers[i].alpha * transmit
            transmit *= 1.0 - layers[i].alpha
        if not keep:
            return keep, alphas
        vis = alphas.sum(axis=(1, 2))
        bad = (vis < min_area) | (vis < 0.25 * np.maximum(own[keep], 1.0))
        if not bad.any():
            return keep, alphas
        keep.pop(int(np.argmin(np.where(bad, vis / np.maximum(own[keep], 1.0), np.inf))))


def finish_photo(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Camera-like finish of a float [H, W, 3] composite in [0, 1]: noise, 8 bit, sometimes JPEG."""
    img = img * np.float32(255.0)
    sigma = rng.uniform(0.0, 3.0)
    if sigma > 0.5:
        img = img + rng.standard_normal(img.shape, dtype=np.float32) * np.float32(sigma)
    out = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < 0.4:
        ok, buf = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(70, 96))])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy()
    return np.ascontiguousarray(out)

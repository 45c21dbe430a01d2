"""Synthetic multi-person matting scenes, composited the HIM2K way.

Following InstMatt (eq. 13), foregrounds are composited one over another, back to front,
onto a background:  I = a_1 F_1 + (1 - a_1)(a_2 F_2 + (1 - a_2)(... B)).
The ground truth of instance k is its *visible* alpha, a_k * prod_{j in front of k}(1 - a_j),
so the instance alphas of a pixel sum to at most 1 (to 1 - prod_j (1 - a_j)).

Everything is procedural (see :mod:`models.data.people` and :mod:`models.data.backgrounds`)
and deterministic in (seed, index, size). All instances are people (``is_human`` is all
True); person-like distractors exist only inside the background and are not instances.
Instances are ordered left to right by the centroid of their visible alpha.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from models.data.backgrounds import render_background
from models.data.colours import COLOUR_NAMES
from models.data.descriptions import InstanceAttributes, describe_instances, measure_attributes
from models.data.people import PersonLayer, render_person, sample_pose, sample_style


@dataclass
class Scene:
    """One image with per-instance ground-truth alpha.

    ``image`` uint8 [H, W, 3] RGB; ``alphas`` float32 [K, H, W] visible alpha of each instance
    in [0, 1], summing to <= 1 per pixel; ``descriptions`` K strings, each identifying its
    instance; ``is_human`` bool [K]; ``attributes`` what the descriptions were built from;
    ``depth`` int [K] (0 = front-most) or None when unknown (loaded data); ``name`` an id.
    """

    image: np.ndarray
    alphas: np.ndarray
    descriptions: list[str]
    is_human: np.ndarray
    attributes: list[InstanceAttributes] = field(default_factory=list)
    depth: np.ndarray | None = None
    name: str = ""

    @property
    def num_instances(self) -> int:
        return int(self.alphas.shape[0])

    def boxes(self) -> np.ndarray:
        """[K, 4] float32 boxes (x0, y0, x1, y1), x1/y1 exclusive, of each alpha > 0 region."""
        out = np.zeros((self.num_instances, 4), np.float32)
        for k, a in enumerate(self.alphas):
            ys, xs = np.nonzero(a > 0)
            if len(ys):
                out[k] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        return out


def _motion_kernel(rng: np.random.Generator) -> np.ndarray:
    n = int(rng.integers(3, 10)) | 1
    k = np.zeros((n, n), np.float32)
    a = rng.uniform(0, np.pi)
    c = (n - 1) / 2
    dx, dy = np.cos(a) * c, np.sin(a) * c
    cv2.line(
        k,
        (round(c - dx), round(c - dy)),
        (round(c + dx), round(c + dy)),
        1.0,
        1,
        cv2.LINE_AA,
    )
    return k / k.sum()


def _blur_layer(rng: np.random.Generator, layer: PersonLayer) -> None:
    """Defocus, motion blur or a slight softening, applied to alpha and alpha*F alike."""
    r = rng.random()
    if r < 0.22:
        sigma = float(rng.uniform(0.6, 2.0))
        layer.alpha = cv2.GaussianBlur(layer.alpha, (0, 0), sigma)
        layer.premult = cv2.GaussianBlur(layer.premult, (0, 0), sigma)
        layer.top = cv2.GaussianBlur(layer.top, (0, 0), sigma)
    elif r < 0.34:
        kern = _motion_kernel(rng)
        layer.alpha = cv2.filter2D(layer.alpha, -1, kern)
        layer.premult = cv2.filter2D(layer.premult, -1, kern)
        layer.top = cv2.filter2D(layer.top, -1, kern)
    elif r < 0.7:
        sigma = float(rng.uniform(0.3, 0.6))
        layer.alpha = cv2.GaussianBlur(layer.alpha, (0, 0), sigma)
        layer.premult = cv2.GaussianBlur(layer.premult, (0, 0), sigma)
        layer.top = cv2.GaussianBlur(layer.top, (0, 0), sigma)
    np.clip(layer.alpha, 0.0, 1.0, out=layer.alpha)
    # Premultiplied colour can never exceed alpha.
    np.minimum(layer.premult, layer.alpha[..., None], out=layer.premult)
    np.clip(layer.premult, 0.0, None, out=layer.premult)


class SceneGenerator:
    """Deterministic generator: ``SceneGenerator(seed).scene(index, size=320)``.

    ``min_instances``/``max_instances`` bound K (1..5 by default); ``portrait`` is the chance
    of a half-body close-up scene; ``distractors`` the chance of person-like shapes in the
    background; ``jpeg`` the chance of JPEG compression artefacts.
    """

    def __init__(
        self,
        seed: int = 0,
        min_instances: int = 1,
        max_instances: int = 5,
        portrait: float = 0.3,
        distractors: float = 0.35,
        jpeg: float = 0.35,
    ):
        if not 1 <= min_instances <= max_instances:
            raise ValueError("need 1 <= min_instances <= max_instances")
        self.seed = int(seed)
        self.min_instances = min_instances
        self.max_instances = max_instances
        self.portrait = portrait
        self.distractors = distractors
        self.jpeg = jpeg

    def scene(self, index: int, size: int | tuple[int, int] = 320) -> Scene:
        """Scene number ``index``; ``size`` is the side or (height, width) in pixels."""
        h, w = (int(size), int(size)) if np.ndim(size) == 0 else (int(size[0]), int(size[1]))
        rng = np.random.default_rng([self.seed, int(index), h, w])
        bg = render_background(rng, h, w, distractors=self.distractors)
        image = bg.image

        portrait = rng.random() < self.portrait
        kmax = min(self.max_instances, 3) if portrait else self.max_instances
        kmin = min(self.min_instances, kmax)
        weights = np.array([0.3, 0.25, 0.2, 0.15, 0.1] + [0.05] * 10)[kmin - 1 : kmax]
        count = int(kmin + rng.choice(len(weights), p=weights / weights.sum()))
        names = [str(n) for n in rng.permutation(COLOUR_NAMES)]

        ambient = image.reshape(-1, 3).mean(axis=0)
        layers: list[PersonLayer] = []
        depth_key: list[float] = []
        slots = (np.arange(count) + rng.uniform(0.2, 0.8, count)) / count
        rng.shuffle(slots)
        for k in range(count):
            style = sample_style(rng, top_name=names[k % len(names)])
            pose = sample_pose(rng)
            x = (0.08 + 0.84 * slots[k]) * w + rng.normal(0, 0.04) * w
            if portrait:
                height = rng.uniform(1.1, 2.4) * h / (1.0 + 0.4 * (count - 1))
                head_top = rng.uniform(0.03, 0.3) * h
                pelvis_y = head_top + 0.455 * height
                key = height
            else:
                frac = rng.uniform(0.35, 1.0)
                feet_y = min(bg.horizon + frac * (h - bg.horizon) * rng.uniform(0.9, 1.6), 1.2 * h)
                height = max((feet_y - bg.horizon) * rng.uniform(1.0, 1.35) + 0.12 * h, 0.3 * h)
                pelvis_y = feet_y - 0.5 * height
                key = feet_y
            layer = render_person(rng, (h, w), (x, pelvis_y), height, style, pose)
            if layer is None:
                continue
            _blur_layer(rng, layer)
            tint = rng.uniform(0.0, 0.12)
            gain = rng.uniform(0.9, 1.1) * (1 - tint)
            layer.premult = layer.premult * gain + layer.alpha[..., None] * (ambient * tint)
            np.minimum(layer.premult, layer.alpha[..., None], out=layer.premult)
            layers.append(layer)
            depth_key.append(key)

        order = list(np.argsort(-np.asarray(depth_key), kind="stable"))  # front first
        layers = [layers[i] for i in order]
        keep, alphas, garments = self._visible_subset(layers, h, w)
        layers = [layers[i] for i in keep]
        if not layers:
            layers = [self._fallback_person(rng, h, w)]
            alphas, garments = self._visible_alphas(layers, h, w)

        # Soft contact shadows under visible feet, painted into the background.
        image = image.copy()
        for layer in layers:
            if layer.feet is not None and rng.random() < 0.7:
                _contact_shadow(image, layer.feet, layer.height, float(rng.uniform(0.2, 0.45)))

        comp = image
        for layer in reversed(layers):  # back to front
            ys, xs = layer.slices()
            comp[ys, xs] = layer.premult + (1.0 - layer.alpha[..., None]) * comp[ys, xs]

        comp = self._photometric(rng, comp)
        order_lr = np.argsort([centroid_x(a) for a in alphas], kind="stable")
        alphas = alphas[order_lr]
        garments = garments[order_lr]
        depth = order_lr.astype(np.int64)  # layers were front first, so a layer's index is its depth
        attrs = measure_attributes(comp, alphas, garments=garments, depth=depth)
        texts = describe_instances(attrs, rng)
        return Scene(
            image=comp,
            alphas=alphas,
            descriptions=texts,
            is_human=np.ones(len(alphas), bool),
            attributes=attrs,
            depth=depth,
            name=f"synthetic-{self.seed}-{index}",
        )

    @staticmethod
    def _visible_alphas(layers: list[PersonLayer], h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        """Visible alpha and visible upper-garment alpha of ``layers`` (front first): [K, H, W] each."""
        transmit = np.ones((h, w), np.float32)
        alphas = np.zeros((len(layers), h, w), np.float32)
        garments = np.zeros((len(layers), h, w), np.float32)
        for k, layer in enumerate(layers):
            ys, xs = layer.slices()
            alphas[k, ys, xs] = layer.alpha * transmit[ys, xs]
            garments[k, ys, xs] = layer.top * transmit[ys, xs]
            transmit[ys, xs] *= 1.0 - layer.alpha
        return alphas, garments

    @staticmethod
    def _visible_subset(
        layers: list[PersonLayer], h: int, w: int
    ) -> tuple[list[int], np.ndarray, np.ndarray]:
        """Layers to keep (dropping, one at a time, instances too hidden or cut off to label),
        with the kept layers' visible alphas and upper-garment alphas ([K, H, W] each)."""
        keep = list(range(len(layers)))
        min_area = max(0.004 * h * w, 120.0)
        own = np.array([layer.alpha.sum() for layer in layers])
        while True:
            alphas, garments = SceneGenerator._visible_alphas([layers[i] for i in keep], h, w)
            if not keep:
                return keep, alphas, garments
            vis = alphas.sum(axis=(1, 2))
            bad = (vis < min_area) | (vis < 0.3 * own[keep])
            if not bad.any():
                return keep, alphas, garments
            worst = int(np.argmin(np.where(bad, vis / np.maximum(own[keep], 1.0), np.inf)))
            keep.pop(worst)

    @staticmethod
    def _fallback_person(rng: np.random.Generator, h: int, w: int) -> PersonLayer:
        height = 0.8 * h
        layer = render_person(rng, (h, w), (0.5 * w, 0.52 * h), height, sample_style(rng), sample_pose(rng))
        assert layer is not None
        return layer

    def _photometric(self, rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
        """Camera-like finish: white balance, sensor noise, 8-bit, gamma, sometimes JPEG."""
        img *= (255.0 * rng.uniform(0.96, 1.04, 3)).astype(np.float32)
        sigma = rng.uniform(0.0, 0.012)
        if sigma > 0.002:
            img += _sensor_noise(rng, img.shape) * np.float32(255.0 * sigma)
        img += 0.5
        np.clip(img, 0, 255, out=img)
        out = img.astype(np.uint8)
        gamma = rng.uniform(0.9, 1.1)
        lut = np.clip(255.0 * (np.arange(256) / 255.0) ** gamma + 0.5, 0, 255).astype(np.uint8)
        out = cv2.LUT(out, lut)
        if rng.random() < self.jpeg:
            ok, buf = cv2.imencode(
                ".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(65, 96))]
            )
            if ok:
                out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy()
        return out


def _contact_shadow(image: np.ndarray, feet: tuple[float, float], height: float, strength: float) -> None:
    """Darken ``image`` ([H, W, 3], in place) with a soft ellipse under the feet."""
    h, w = image.shape[:2]
    ax, ay = max(0.12 * height, 2.0), max(0.02 * height, 1.0)
    pad = 8
    x0, x1 = int(max(feet[0] - ax - pad, 0)), int(min(feet[0] + ax + pad, w))
    y0, y1 = int(max(feet[1] - ay - pad, 0)), int(min(feet[1] + ay + pad, h))
    if x1 <= x0 or y1 <= y0:
        return
    patch = np.zeros((y1 - y0, x1 - x0), np.float32)
    centre = (int(feet[0]) - x0, int(feet[1]) - y0)
    cv2.ellipse(patch, centre, (int(ax), int(ay)), 0, 0, 360, strength, -1, cv2.LINE_AA)
    patch = cv2.GaussianBlur(patch, (0, 0), 3.0)
    image[y0:y1, x0:x1] *= 1.0 - patch[..., None]


_NOISE_TILE = 512
_noise_bank: np.ndarray | None = None


def _sensor_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Unit Gaussian noise of ``shape`` [H, W, 3]: a random crop of a fixed, lazily made tile
    (drawing fresh normals costs more than the rest of the finish); fresh for larger images."""
    global _noise_bank
    h, w = shape[0], shape[1]
    if h > _NOISE_TILE or w > _NOISE_TILE:
        return rng.standard_normal(shape, dtype=np.float32)
    if _noise_bank is None:
        _noise_bank = np.random.default_rng(20240601).standard_normal(
            (_NOISE_TILE, _NOISE_TILE, 3), dtype=np.float32
        )
    y = int(rng.integers(0, _NOISE_TILE - h + 1))
    x = int(rng.integers(0, _NOISE_TILE - w + 1))
    return _noise_bank[y : y + h, x : x + w]


def centroid_x(alpha: np.ndarray) -> float:
    """x of the alpha-weighted centroid of ``alpha`` [H, W] (instances are ordered by it)."""
    col = alpha.sum(axis=0)
    return float((col * np.arange(alpha.shape[1])).sum() / max(col.sum(), 1e-6))

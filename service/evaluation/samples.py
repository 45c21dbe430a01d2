"""Evaluation samples: one target matte in one photo, from a folder or the synthetic set."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from models.data.layouts import open_folder
from models.data.synthetic import Scene, SceneGenerator

VALIDATION_SEED = 90_210
"""Seed of the synthetic validation scenes; training uses other seeds (see models/train)."""


@dataclass
class Sample:
    """``image`` uint8 (H, W, 3) RGB; ``alpha`` float32 (H, W) target matte; ``text`` its
    description; ``everyone`` the union of all instances (the automatic-matting target)."""

    name: str
    image: np.ndarray
    alpha: np.ndarray
    text: str
    everyone: np.ndarray


def parse_source(spec: str) -> tuple[str, int, int]:
    """``synthetic:N[@SIZE]`` -> ("synthetic", N, SIZE); a folder path -> (path, 0, 0)."""
    if spec.startswith("synthetic:"):
        count, _, size = spec.removeprefix("synthetic:").partition("@")
        return "synthetic", int(count), int(size or 512)
    return spec, 0, 0


def samples(spec: str, *, max_instances: int = 3, limit: int | None = None) -> Iterator[Sample]:
    """Yield samples of ``spec``: a HIM2K-layout or image/alpha folder, or ``synthetic:N[@SIZE]``
    (N validation scenes, seed ``VALIDATION_SEED``). Up to ``max_instances`` targets per photo."""
    source, count, size = parse_source(spec)
    if source == "synthetic":
        generator = SceneGenerator(seed=VALIDATION_SEED)
        scenes: Iterator[Scene] = (generator.scene(i, size=size) for i in range(count))
    else:
        folder = open_folder(source)
        scenes = (folder[i] for i in range(len(folder)))
    produced = 0
    for scene in scenes:
        everyone = np.clip(scene.alphas.sum(axis=0), 0.0, 1.0).astype(np.float32)
        areas = scene.alphas.reshape(scene.num_instances, -1).sum(axis=1)
        for k in np.argsort(-areas)[:max_instances]:
            if areas[k] < 16:
                continue
            text = scene.descriptions[k] if k < len(scene.descriptions) else ""
            yield Sample(f"{scene.name or 'scene'}#{k}", scene.image, scene.alphas[k], text, everyone)
            produced += 1
            if limit is not None and produced >= limit:
                return

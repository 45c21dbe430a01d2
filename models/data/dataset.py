"""Torch datasets over scenes: synthetic on the fly, or any sequence of loaded scenes.

A sample is a dict of tensors (and the texts):

* ``image`` float32 [3, H, W] in [0, 1]
* ``alphas`` float32 [K, H, W] visible instance alphas; ``boxes`` float32 [K, 4] (x0, y0, x1, y1)
* ``is_human`` bool [K]; ``descriptions`` list of K strings; ``num_instances`` int
* ``target`` int (an instance chosen deterministically by index, for interactive training),
  ``target_alpha`` float32 [1, H, W], ``target_text`` str

:func:`collate_scenes` pads K across a batch and adds ``instance_mask`` bool [B, Kmax].
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from models.data.synthetic import Scene, SceneGenerator


def letterbox_scene(scene: Scene, size: int) -> Scene:
    """Scale ``scene`` so its longer side is ``size`` and pad (zeros) to ``size`` x ``size``."""
    h, w = scene.image.shape[:2]
    s = size / max(h, w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    image = np.zeros((size, size, 3), np.uint8)
    image[:nh, :nw] = cv2.resize(scene.image, (nw, nh), interpolation=interp)
    alphas = np.zeros((scene.num_instances, size, size), np.float32)
    for k, a in enumerate(scene.alphas):
        alphas[k, :nh, :nw] = np.clip(cv2.resize(a, (nw, nh), interpolation=interp), 0, 1)
    return Scene(
        image=image,
        alphas=alphas,
        descriptions=list(scene.descriptions),
        is_human=scene.is_human.copy(),
        attributes=scene.attributes,
        depth=scene.depth,
        name=scene.name,
    )


def scene_to_sample(scene: Scene, target: int) -> dict:
    """The dict sample (see module doc) of ``scene`` with instance ``target`` as the target."""
    k = scene.num_instances
    h, w = scene.image.shape[:2]
    alphas = torch.from_numpy(np.ascontiguousarray(scene.alphas, np.float32))
    target_alpha = alphas[target : target + 1].clone() if k else torch.zeros(1, h, w)
    return {
        "image": torch.from_numpy(np.ascontiguousarray(scene.image.transpose(2, 0, 1))).float() / 255.0,
        "alphas": alphas,
        "boxes": torch.from_numpy(scene.boxes()),
        "is_human": torch.from_numpy(scene.is_human.astype(bool)),
        "descriptions": list(scene.descriptions),
        "num_instances": k,
        "target": int(target),
        "target_alpha": target_alpha,
        "target_text": scene.descriptions[target] if k else "",
        "name": scene.name,
    }


class SyntheticMattingDataset(Dataset):
    """``length`` synthetic scenes of ``size`` px, generated on the fly; item i is always the same."""

    def __init__(
        self,
        seed: int = 0,
        length: int = 100_000,
        size: int | tuple[int, int] = 320,
        generator: SceneGenerator | None = None,
    ):
        self.seed = int(seed)
        self.length = int(length)
        self.size = size
        self.generator = generator if generator is not None else SceneGenerator(seed)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(index)
        scene = self.generator.scene(index, size=self.size)
        target = int(np.random.default_rng([self.seed, int(index), 7]).integers(scene.num_instances))
        return scene_to_sample(scene, target)


class SceneDataset(Dataset):
    """Wraps a sequence of scenes (e.g. :class:`~models.data.layouts.HIM2KFolder`), letterboxed
    to ``size`` when given so that items can be batched."""

    def __init__(self, scenes: Sequence[Scene], size: int | None = None, seed: int = 0):
        self.scenes = scenes
        self.size = size
        self.seed = seed

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, index: int) -> dict:
        scene = self.scenes[index]
        if self.size is not None:
            scene = letterbox_scene(scene, self.size)
        n = max(scene.num_instances, 1)
        target = int(np.random.default_rng([self.seed, int(index), 7]).integers(n))
        return scene_to_sample(scene, target)


def collate_scenes(batch: list[dict]) -> dict:
    """Batch samples of equal image size, padding instances to the batch's largest K."""
    kmax = max(max(s["num_instances"] for s in batch), 1)
    b = len(batch)
    h, w = batch[0]["image"].shape[1:]
    alphas = torch.zeros(b, kmax, h, w)
    boxes = torch.zeros(b, kmax, 4)
    mask = torch.zeros(b, kmax, dtype=torch.bool)
    for i, s in enumerate(batch):
        k = s["num_instances"]
        alphas[i, :k] = s["alphas"]
        boxes[i, :k] = s["boxes"]
        mask[i, :k] = True
    return {
        "image": torch.stack([s["image"] for s in batch]),
        "alphas": alphas,
        "boxes": boxes,
        "instance_mask": mask,
        "num_instances": torch.tensor([s["num_instances"] for s in batch]),
        "descriptions": [s["descriptions"] for s in batch],
        "target": torch.tensor([s["target"] for s in batch]),
        "target_alpha": torch.stack([s["target_alpha"] for s in batch]),
        "target_text": [s["target_text"] for s in batch],
        "name": [s["name"] for s in batch],
    }

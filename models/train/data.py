"""Training data: a disk-cached pool of procedural scenes, and deterministic per-step batches.

Scenes come from :class:`models.data.SceneGenerator` under a *training* seed (never the
validation seed 90210). Generating a scene costs ~40 ms of one core, about as much as a
tiny model's training step per image, so the trainer draws from a fixed pool of
``pool_size`` scenes that are generated once, on first use, and cached as ``.npz`` files
under ``runs/cache/`` (shared by every family and every run with the same seed and size).
Each visit draws a fresh target, fresh prompts and a random horizontal flip (descriptions
swap "left" and "right"), so the pool is not seen twice the same way.

Scenes have the long side ``size`` and a random aspect ratio; the trainer letterboxes them
to ``size x size`` exactly as the service does (``models.prompting.Letterbox``), so the
networks learn the zero padding they will see.

Batches are a pure function of ``(seed, step)``: the scenes, targets, flips and round-1
prompts of step ``t`` never depend on what ran before, which makes ``--resume`` exact and
lets a ``DataLoader`` worker build batches ahead of the training step.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from models.data.synthetic import Scene, SceneGenerator
from models.prompting import Letterbox
from schemas.prompts import Prompt

VALIDATION_SEED = 90_210
"""Seed of the synthetic validation scenes (``service.evaluation.samples.VALIDATION_SEED``)."""
DEFAULT_POOL_SIZE = 12000


def scene_shape(seed: int, index: int, size: int) -> tuple[int, int]:
    """(height, width) of pool scene ``index``: long side ``size``; half square, the rest 0.6–1.0 aspect."""
    rng = np.random.default_rng([seed, index, 99])
    if rng.random() < 0.5:
        return size, size
    short = round(size * rng.uniform(0.6, 1.0)) // 2 * 2
    return (size, short) if rng.random() < 0.5 else (short, size)


class ScenePool:
    """``pool_size`` training scenes of long side ``size`` from ``generator`` (default:
    ``SceneGenerator(seed)``, procedural people), cached on disk under ``<cache_dir>/<tag>-s<seed>-<size>px``.

    ``scene(i)`` returns the cached scene (alphas quantised to 8 bit) or generates and caches
    it. Safe for several processes: files are written to a temporary name and renamed.
    ``generator`` is anything with ``scene(index, size=(h, w)) -> Scene`` and ``describe()``.
    """

    def __init__(
        self,
        seed: int,
        size: int,
        pool_size: int,
        cache_dir: Path | None,
        generator: Any = None,
        tag: str = "scenes",
    ) -> None:
        if seed == VALIDATION_SEED:
            raise ValueError(f"seed {VALIDATION_SEED} is the validation seed; train on another")
        self.seed, self.size, self.pool_size = int(seed), int(size), int(pool_size)
        self.generator = generator if generator is not None else SceneGenerator(self.seed)
        self.tag = tag
        self.cache_dir = None if cache_dir is None else Path(cache_dir) / f"{tag}-s{seed}-{size}px"
        if self.cache_dir is not None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)

    def __len__(self) -> int:
        return self.pool_size

    def describe(self) -> dict[str, Any]:
        """What the provenance file records about the data."""
        what = (
            self.generator.describe()
            if hasattr(self.generator, "describe")
            else {"generator": "models.data.SceneGenerator (procedural people, HIM2K-style compositing)"}
        )
        return {
            **what,
            "generator_seed": self.seed,
            "scenes": self.pool_size,
            "long_side_px": self.size,
            "aspect": "half square, half 0.6-1.0 (portrait or landscape), letterboxed",
            "augmentation": "horizontal flip (descriptions swap left/right)",
        }

    def scene(self, index: int) -> Scene:
        if not 0 <= index < self.pool_size:
            raise IndexError(index)
        path = None if self.cache_dir is None else self.cache_dir / f"{index:06d}.npz"
        if path is not None and path.is_file():
            try:
                return _load_scene(path)
            except (OSError, ValueError, KeyError):
                pass  # a torn file from a killed run: regenerate it
        scene = self.generator.scene(index, size=scene_shape(self.seed, index, self.size))
        scene.alphas = np.round(scene.alphas * 255.0) / 255.0  # what the cache stores
        if path is not None:
            tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
            _save_scene(tmp, scene)
            tmp.replace(path)
        return scene


class MixedPool:
    """Scenes drawn from several pools by weight: item ``i`` picks its pool with
    ``default_rng([seed, i, 31])`` (so batches stay a pure function of the step) and takes
    scene ``i % len(pool)`` of it. ``size`` is the pools' common long side."""

    def __init__(self, pools: list[tuple[str, ScenePool, float]], seed: int) -> None:
        if not pools:
            raise ValueError("MixedPool needs at least one pool")
        sizes = {pool.size for _, pool, _ in pools}
        if len(sizes) != 1:
            raise ValueError(f"pools of different sizes {sorted(sizes)}")
        self.pools = pools
        self.size = sizes.pop()
        self.seed = int(seed)
        weights = np.array([w for _, _, w in pools], np.float64)
        if (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(f"pool weights must be >= 0 and not all 0, got {weights.tolist()}")
        self.weights = weights / weights.sum()
        self.pool_size = sum(len(pool) for _, pool, _ in pools)

    def __len__(self) -> int:
        return self.pool_size

    def scene(self, index: int) -> Scene:
        rng = np.random.default_rng([self.seed, int(index), 31])
        _, pool, _ = self.pools[int(rng.choice(len(self.pools), p=self.weights))]
        return pool.scene(int(index) % len(pool))

    def describe(self) -> dict[str, Any]:
        return {
            "mix": {
                name: round(float(w), 3) for (name, _, _), w in zip(self.pools, self.weights, strict=True)
            },
            "sources": {name: pool.describe() for name, pool, _ in self.pools},
        }


def parse_data_mix(spec: str) -> list[tuple[str, float]]:
    """``"ccp:0.7,synthetic:0.3"`` -> [("ccp", 0.7), ("synthetic", 0.3)]; a bare name weighs 1."""
    out = []
    for part in spec.split(","):
        name, _, weight = part.strip().partition(":")
        if name not in DATA_SOURCES:
            raise ValueError(f"unknown data source {name!r}; known: {', '.join(DATA_SOURCES)}")
        out.append((name, float(weight) if weight else 1.0))
    return out


DATA_SOURCES = ("synthetic", "ccp", "ccp-closeup")
"""``synthetic``: procedural people (:class:`models.data.SceneGenerator`); ``ccp``: real
Clothing Co-Parsing people over real backgrounds (:class:`models.data.real_scenes.RealSceneGenerator`);
``ccp-closeup``: close-ups of their silhouettes, hair mostly
(:class:`models.data.closeups.CloseUpGenerator`)."""


def make_pool(
    spec: str, seed: int, size: int, pool_size: int, cache_dir: Path | None, ccp_root: Path | None
) -> ScenePool | MixedPool:
    """The training pool of a data spec (:func:`parse_data_mix`); ``ccp`` reads the CCP clone
    at ``ccp_root`` (its training split only). ``pool_size`` scenes per source."""
    pools: list[tuple[str, ScenePool, float]] = []
    for name, weight in parse_data_mix(spec):
        if name == "synthetic":
            pools.append((name, ScenePool(seed, size, pool_size, cache_dir), weight))
            continue
        from models.data.ccp import TRAIN

        if ccp_root is None:
            raise ValueError(
                f"the {name} data source needs ccp_root (a clone of bearpaw/clothing-co-parsing)"
            )
        if name == "ccp-closeup":
            from models.data.ccp import CCPDataset
            from models.data.closeups import CloseUpGenerator

            generator: Any = CloseUpGenerator(CCPDataset(ccp_root, TRAIN), seed)
        else:
            from models.data.real_scenes import CutoutBank, RealSceneGenerator

            generator = RealSceneGenerator(CutoutBank(ccp_root, TRAIN, cache_dir), seed)
        pools.append((name, ScenePool(seed, size, pool_size, cache_dir, generator, tag=name), weight))
    if len(pools) == 1 and pools[0][0] == "synthetic":
        return pools[0][1]
    return MixedPool(pools, seed)


def _save_scene(path: Path, scene: Scene) -> None:
    np.savez(
        path,
        image=scene.image,
        alphas=np.round(scene.alphas * 255.0).astype(np.uint8),
        is_human=scene.is_human.astype(bool),
        descriptions=np.array(json.dumps(scene.descriptions)),
        name=np.array(scene.name),
    )


def _load_scene(path: Path) -> Scene:
    with np.load(path) as z:
        return Scene(
            image=z["image"],
            alphas=z["alphas"].astype(np.float32) / 255.0,
            descriptions=list(json.loads(str(z["descriptions"]))),
            is_human=z["is_human"],
            name=str(z["name"]),
        )


_LEFT_RIGHT = re.compile(r"\b(left|right)\b")


def flip_scene(scene: Scene) -> Scene:
    """Mirror left-right; instances stay ordered left to right and descriptions swap left/right."""
    swap = {"left": "right", "right": "left"}
    return Scene(
        image=np.ascontiguousarray(scene.image[:, ::-1]),
        alphas=np.ascontiguousarray(scene.alphas[::-1, :, ::-1]),
        descriptions=[_LEFT_RIGHT.sub(lambda m: swap[m.group(1)], d) for d in scene.descriptions[::-1]],
        is_human=scene.is_human[::-1].copy(),
        name=scene.name + ":flip",
    )


@dataclass
class Item:
    """One training example before batching (numpy, original = letterbox-inner frame).

    ``alphas`` [K, h, w] visible instance alphas; ``target`` the prompted instance;
    ``prompts`` round-1 wire prompts; ``source`` the scene's name (``ccp-...`` for real people,
    whose labels come from the mask-to-matte recipe); ``extra`` arrays a family's sampler adds (its prompt
    tensors, perturbed masks...), stacked by :func:`collate_items` when they are arrays.
    """

    image: np.ndarray
    alphas: np.ndarray
    target: int
    text: str
    box: Letterbox
    prompts: list[Prompt] = field(default_factory=list)
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


ItemSampler = Callable[[Item, np.random.Generator], None]
"""Fills ``item.prompts`` / ``item.extra`` for one family (runs in the data worker)."""


def make_item(scene: Scene, size: int, rng: np.random.Generator, flip: bool = True) -> Item:
    """A random target of ``scene`` (optionally mirrored) with its letterbox geometry at ``size``."""
    if flip and rng.random() < 0.5:
        scene = flip_scene(scene)
    h, w = scene.image.shape[:2]
    target = int(rng.integers(scene.num_instances))
    return Item(
        image=scene.image,
        alphas=scene.alphas,
        target=target,
        text=scene.descriptions[target],
        box=Letterbox(h, w, size),
        source=scene.name,
    )


def collate_items(items: list[Item]) -> dict[str, Any]:
    """Letterbox and stack a list of items into tensors.

    Returns ``image [B,3,S,S]``, ``alpha [B,1,S,S]`` (target), ``alphas [B,K,S,S]`` and
    ``valid [B,K]`` (K = most instances in the batch), ``everyone [B,1,S,S]`` (union of the
    instances), plus the items themselves (``items``), their texts and every ``extra`` key
    (arrays of one shape stacked into tensors, anything else as lists).
    """
    size = items[0].box.size
    kmax = max(it.alphas.shape[0] for it in items)
    b = len(items)
    image = np.zeros((b, 3, size, size), np.float32)
    alphas = np.zeros((b, kmax, size, size), np.float32)
    valid = np.zeros((b, kmax), np.float32)
    target = np.zeros((b, 1, size, size), np.float32)
    for i, it in enumerate(items):
        image[i] = it.box.image(it.image)
        for k, a in enumerate(it.alphas):
            alphas[i, k] = it.box.plane(a)
        valid[i, : it.alphas.shape[0]] = 1.0
        target[i, 0] = alphas[i, it.target]
    batch: dict[str, Any] = {
        "image": torch.from_numpy(image),
        "alpha": torch.from_numpy(target),
        "alphas": torch.from_numpy(alphas),
        "valid": torch.from_numpy(valid),
        "everyone": torch.from_numpy(alphas.sum(axis=1, keepdims=True).clip(0.0, 1.0)),
        "text": [it.text for it in items],
        "items": items,
    }
    for key in items[0].extra:
        values = [it.extra[key] for it in items]
        arrays = all(isinstance(v, np.ndarray) for v in values)
        if arrays and len({v.shape for v in values}) == 1:
            batch[key] = torch.from_numpy(np.stack(values))
        else:
            batch[key] = values
    return batch


class StepBatches(Dataset):
    """Item ``t`` is the whole batch of training step ``t`` (use with ``batch_size=None``).

    Scenes, targets, flips and round-1 prompts are drawn from ``default_rng([seed, t, 1])``,
    so a batch does not depend on the history of the run.
    """

    def __init__(self, pool: ScenePool, sampler: ItemSampler, batch_size: int, steps: int, seed: int) -> None:
        self.pool, self.sampler = pool, sampler
        self.batch_size, self.steps, self.seed = int(batch_size), int(steps), int(seed)

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, int(step), 1])
        indices = rng.integers(0, len(self.pool), self.batch_size)
        items = []
        for index in indices:
            item = make_item(self.pool.scene(int(index)), self.pool.size, rng)
            self.sampler(item, rng)
            items.append(item)
        batch = collate_items(items)
        batch["step"] = int(step)
        return batch

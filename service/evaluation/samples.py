"""Evaluation samples: one target matte in one photo, from a folder, the synthetic set or a
development set built from Clothing Co-Parsing's *validation* split (never trained on; the data
to choose parameters on, where ``../shared/evaldata`` is for reporting only):

``ccp-photos:N[@SIZE]`` (its first N photos in their own street backgrounds), ``ccp-scenes:N[@SIZE]``
(its people on photo backgrounds) and ``ccp-closeups:N[@SIZE]`` (frame-filling close-ups), long side
SIZE (default 640), seed :data:`VALIDATION_SEED` (:mod:`models.data.dev_sets`).

They read the clone at ``../shared/datasets/clothing-co-parsing`` (from the working directory),
or at ``?root=PATH``.

A folder spec may end in ``?column=value`` to keep the ids whose row of the folder's
``sources.csv`` has that value (``../shared/evaldata/comp1k_crops_foamliu?human_content=1``:
the human crops). A folder's ``trimap/<id>.png`` (or ``trimaps/``), where present, comes with
the sample (quantised to 0/128/255) so metrics can also be given over its unknown region.
A photo that cannot be read becomes a sample carrying its ``error``; the run goes on.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from models.data.dev_sets import DEV_SETS, dev_scenes
from models.data.layouts import open_folder
from models.data.synthetic import Scene, SceneGenerator

VALIDATION_SEED = 90_210
"""Seed of the synthetic validation scenes; training uses other seeds (see models/train)."""


@dataclass
class Sample:
    """``image`` uint8 (H, W, 3) RGB; ``alpha`` float32 (H, W) target matte; ``text`` its
    description; ``everyone`` the union of all instances (the automatic-matting target);
    ``trimap`` uint8 (H, W) 0/128/255 when the data set has one; ``instances`` every
    instance's alpha [K, H, W]; ``error`` why the sample could not be loaded (the arrays are
    then empty)."""

    name: str
    image: np.ndarray
    alpha: np.ndarray
    text: str
    everyone: np.ndarray
    trimap: np.ndarray | None = None
    instances: np.ndarray | None = None
    error: str | None = None


CCP_ROOT = Path("../shared/datasets/clothing-co-parsing")


def parse_source(spec: str) -> tuple[str, int, int]:
    """``synthetic:N[@SIZE]`` -> ("synthetic", N, SIZE), likewise the ``ccp-*`` sets (default size
    640); a folder path -> (path, 0, 0)."""
    for kind in ("synthetic", *DEV_SETS):
        if spec.startswith(f"{kind}:"):
            count, _, size = spec.removeprefix(f"{kind}:").partition("?")[0].partition("@")
            return kind, int(count), int(size or (512 if kind == "synthetic" else 640))
    return spec.partition("?")[0], 0, 0


def selected_ids(root: Path, query: str) -> set[str] | None:
    """Ids of ``root/sources.csv`` whose ``column`` equals ``value`` for a ``column=value`` query."""
    if not query:
        return None
    column, _, value = query.partition("=")
    table = root / "sources.csv"
    if not table.is_file():
        raise FileNotFoundError(f"{table}: needed for the filter {query!r}")
    with table.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and column not in rows[0]:
        raise ValueError(f"{table} has no column {column!r} (columns: {', '.join(rows[0])})")
    return {row["id"] for row in rows if row.get(column) == value}


def open_selected(spec: str):
    """The folder loader of ``spec`` (a folder, optionally ``?column=value``; see
    :func:`selected_ids`) with only the selected items."""
    source = spec.partition("?")[0]
    folder = open_folder(source)
    keep = selected_ids(Path(source), spec.partition("?")[2])
    if keep is not None:
        folder.items = [item for item in folder.items if item[2] in keep]
    return folder


def read_trimap(root: Path, name: str) -> np.ndarray | None:
    """``root/trimap[s]/<name>.png`` quantised to 0/128/255, or None."""
    for folder in ("trimap", "trimaps"):
        path = root / folder / f"{name}.png"
        if path.is_file():
            raw = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if raw is None:
                return None
            out = np.full(raw.shape, 128, np.uint8)
            out[raw < 64] = 0
            out[raw > 192] = 255
            return out
    return None


def samples(spec: str, *, max_instances: int = 3, limit: int | None = None) -> Iterator[Sample]:
    """Yield samples of ``spec``: a HIM2K-layout or image/alpha folder, ``synthetic:N[@SIZE]``
    (N validation scenes, seed ``VALIDATION_SEED``) or a CCP development set (module doc). Up to
    ``max_instances`` targets per photo."""
    source, count, size = parse_source(spec)
    root: Path | None = None
    if source == "synthetic":
        generator = SceneGenerator(seed=VALIDATION_SEED)
        scenes: Iterator[Scene | Sample] = (generator.scene(i, size=size) for i in range(count))
    elif source in DEV_SETS:
        query = spec.partition("?")[2]
        ccp_root = Path(query.removeprefix("root=")) if query.startswith("root=") else CCP_ROOT
        scenes = dev_scenes(source, ccp_root, VALIDATION_SEED, count, size)
    else:
        root = Path(source)
        folder = open_selected(spec)
        scenes = (_load(folder, i) for i in range(len(folder)))
    produced = 0
    for scene in scenes:
        if isinstance(scene, Sample):  # could not be read
            yield scene
            produced += 1
            if limit is not None and produced >= limit:
                return
            continue
        everyone = np.clip(scene.alphas.sum(axis=0), 0.0, 1.0).astype(np.float32)
        areas = scene.alphas.reshape(scene.num_instances, -1).sum(axis=1)
        trimap = None if root is None else read_trimap(root, scene.name)
        for k in np.argsort(-areas)[:max_instances]:
            if areas[k] < 16:
                continue
            text = scene.descriptions[k] if k < len(scene.descriptions) else ""
            yield Sample(
                f"{scene.name or 'scene'}#{k}",
                scene.image,
                scene.alphas[k],
                text,
                everyone,
                trimap=trimap if scene.num_instances == 1 else None,
                instances=scene.alphas,
            )
            produced += 1
            if limit is not None and produced >= limit:
                return


def _load(folder, index: int) -> Scene | Sample:
    """Scene ``index`` of ``folder``, or a Sample carrying the error when it cannot be read."""
    try:
        return folder[index]
    except (OSError, ValueError) as exc:
        name = str(folder.items[index][2])
        empty = np.zeros((0, 0), np.float32)
        return Sample(name, np.zeros((0, 0, 3), np.uint8), empty, "", empty, error=f"unreadable: {exc}")

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
A photo that cannot be read becomes a sample carrying its ``error``; the run goes on. A photo
that gives no target at all (no alpha, or none of at least :data:`MIN_TARGET_AREA` pixels) is
reported in ``skipped`` (:func:`samples`) rather than dropped silently. A spec that names no
usable data raises :class:`DataError`, with what is wrong, before anything is evaluated.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from models.data.dev_sets import DEV_SETS, ValidationPhotos, dev_generator
from models.data.layouts import HIM2KFolder, SingleInstanceFolder, open_folder
from models.data.synthetic import Scene, SceneGenerator

VALIDATION_SEED = 90_210
"""Seed of the synthetic validation scenes; training uses other seeds (see models/train)."""

MIN_TARGET_AREA = 16
"""Targets whose alpha sums to fewer pixels are not evaluated (there is nothing to find)."""

MIN_SIZE = 32
"""The smallest long side (pixels) a generated set may ask for."""

FORMS = (
    "--data takes a folder (image/ + alpha/, or HIM2K's images/ + alphas/; optionally ?column=value), "
    f"synthetic:N[@SIZE] or {'|'.join(DEV_SETS)}:N[@SIZE][?root=PATH]"
)


class DataError(ValueError):
    """A data spec that names no usable data; the message says what is wrong."""


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


@dataclass
class Skipped:
    """A photo of the data that gave no target, and why."""

    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.name} ({self.reason})"


CCP_ROOT = Path("../shared/datasets/clothing-co-parsing")


def _whole(text: str, spec: str, what: str, least: int) -> int:
    """``text`` as an int of at least ``least``, else a :class:`DataError` naming ``what``."""
    if text.strip().isdigit() and int(text) >= least:
        return int(text)
    raise DataError(f"{spec!r}: {what} must be a whole number of at least {least}, got {text!r}")


def parse_source(spec: str) -> tuple[str, int, int]:
    """``synthetic:N[@SIZE]`` -> ("synthetic", N, SIZE), likewise the ``ccp-*`` sets (default size
    640); a folder path -> (path, 0, 0). A count or size that is not a whole number (N at least 1,
    SIZE at least :data:`MIN_SIZE`) raises :class:`DataError`."""
    for kind in ("synthetic", *DEV_SETS):
        if spec.startswith(f"{kind}:"):
            count, at, size = spec.removeprefix(f"{kind}:").partition("?")[0].partition("@")
            default = 512 if kind == "synthetic" else 640
            return (
                kind,
                _whole(count, spec, "N", 1),
                _whole(size, spec, "SIZE", MIN_SIZE) if at else default,
            )
    return spec.partition("?")[0], 0, 0


def selected_ids(root: Path, query: str) -> set[str] | None:
    """Ids of ``root/sources.csv`` whose ``column`` equals ``value`` for a ``column=value`` query;
    :class:`DataError` when the query, the table or the column is not there."""
    if not query:
        return None
    column, eq, value = query.partition("=")
    table = root / "sources.csv"
    if not eq or not column:
        raise DataError(f"filter {query!r} on {root}: use ?column=value (a column of its sources.csv)")
    if not table.is_file():
        raise DataError(f"{table}: no such file, needed for the filter {query!r}")
    with table.open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        columns = reader.fieldnames or []
    if "id" not in columns:
        raise DataError(f"{table} has no column 'id' (columns: {', '.join(columns) or 'none'})")
    if column not in columns:
        raise DataError(f"{table} has no column {column!r} (columns: {', '.join(columns)})")
    return {row["id"] for row in rows if row.get(column) == value}


def open_selected(spec: str) -> HIM2KFolder | SingleInstanceFolder:
    """The folder loader of ``spec`` (a folder, optionally ``?column=value``; see
    :func:`selected_ids`) with only the selected items; :class:`DataError` when ``spec`` names
    no such folder."""
    source, _, query = spec.partition("?")
    path = Path(source)
    if not path.is_dir():
        problem = "not a folder" if path.exists() else "no such folder"
        raise DataError(f"{source}: {problem} ({FORMS})")
    try:
        folder = open_folder(path)
    except FileNotFoundError as exc:
        raise DataError(str(exc)) from None
    keep = selected_ids(path, query)
    if keep is not None:
        folder.items = [item for item in folder.items if item[2] in keep]
        folder.skipped = [name for name in folder.skipped if name in keep]
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


def ccp_root(spec: str) -> Path:
    """The Clothing Co-Parsing clone a ``ccp-*`` spec reads: ``?root=PATH`` or :data:`CCP_ROOT`;
    :class:`DataError` for another query or a folder that is not there."""
    kind, query = spec.partition(":")[0], spec.partition("?")[2]
    if query and not (query.startswith("root=") and query != "root="):
        raise DataError(f"{spec!r}: {kind} takes only ?root=PATH (the Clothing Co-Parsing clone)")
    root = Path(query.removeprefix("root=")) if query else CCP_ROOT
    if not root.is_dir():
        where = "?root=" if query else "the default, relative to the working directory"
        raise DataError(
            f"{spec!r}: no Clothing Co-Parsing clone at {root.resolve()} ({where}); "
            f"give its folder with {kind}:N?root=PATH"
        )
    return root


def samples(
    spec: str,
    *,
    max_instances: int = 3,
    limit: int | None = None,
    skipped: list[Skipped] | None = None,
) -> Iterator[Sample]:
    """Samples of ``spec``: a HIM2K-layout or image/alpha folder, ``synthetic:N[@SIZE]`` (N
    validation scenes, seed ``VALIDATION_SEED``) or a CCP development set (module doc). Up to
    ``max_instances`` targets per photo, the largest first, and at most ``limit`` in all (none
    for a limit under 1). ``spec`` is checked at once: :class:`DataError` when it names no usable
    data. Photos that give no target are appended to ``skipped`` as they are met (a folder's
    photos without an alpha at once)."""
    source, count, size = parse_source(spec)
    query = spec.partition("?")[2]
    root: Path | None = None
    if skipped is None:
        skipped = []
    scenes: Iterator[Scene | Sample]
    if source == "synthetic":
        if query:
            raise DataError(f"{spec!r}: synthetic:N[@SIZE] takes no ?{query}")
        generator = SceneGenerator(seed=VALIDATION_SEED)
        scenes = (generator.scene(i, size=size) for i in range(count))
    elif source in DEV_SETS:
        scenes = _dev_scenes(spec, source, count, size)
    else:
        root = Path(source)
        folder = open_selected(spec)
        skipped.extend(Skipped(name, "no alpha") for name in folder.skipped)
        scenes = (_load(folder, i) for i in range(len(folder)))
    targets = _targets(scenes, root, max_instances, skipped)
    return itertools.islice(targets, None if limit is None else max(limit, 0))


def _dev_scenes(spec: str, kind: str, count: int, size: int) -> Iterator[Scene | Sample]:
    """The first ``count`` scenes of development set ``kind``, opened now (so that a wrong clone
    is a :class:`DataError` at once); a scene that cannot be read is a Sample with its error."""
    root = ccp_root(spec)
    try:
        generator = dev_generator(kind, root, VALIDATION_SEED)
    except (OSError, ValueError) as exc:
        raise DataError(f"{spec!r}: {exc}") from None
    if isinstance(generator, ValidationPhotos):
        count = min(count, len(generator))

    def scenes() -> Iterator[Scene | Sample]:
        for index in range(count):
            try:
                yield generator.scene(index, size=size)
            except (OSError, ValueError) as exc:
                yield _failed(f"{kind}:{index}", f"unreadable: {exc}")

    return scenes()


def _targets(
    scenes: Iterator[Scene | Sample], root: Path | None, max_instances: int, skipped: list[Skipped]
) -> Iterator[Sample]:
    """Each scene's largest ``max_instances`` targets of at least :data:`MIN_TARGET_AREA` px."""
    for scene in scenes:
        if isinstance(scene, Sample):  # could not be read
            yield scene
            continue
        name = scene.name or "scene"
        areas = scene.alphas.sum(axis=(1, 2))
        chosen = [k for k in np.argsort(-areas)[:max_instances] if areas[k] >= MIN_TARGET_AREA]
        if not chosen:
            reason = "no alpha" if not scene.num_instances else f"no target of at least {MIN_TARGET_AREA} px"
            skipped.append(Skipped(name, reason))
            continue
        everyone = np.clip(scene.alphas.sum(axis=0), 0.0, 1.0).astype(np.float32)
        trimap = None if root is None else read_trimap(root, scene.name)
        for k in chosen:
            text = scene.descriptions[k] if k < len(scene.descriptions) else ""
            yield Sample(
                f"{name}#{k}",
                scene.image,
                scene.alphas[k],
                text,
                everyone,
                trimap=trimap if scene.num_instances == 1 else None,
                instances=scene.alphas,
            )


def _failed(name: str, error: str) -> Sample:
    """A sample that could not be loaded, carrying ``error``."""
    empty = np.zeros((0, 0), np.float32)
    return Sample(name, np.zeros((0, 0, 3), np.uint8), empty, "", empty, error=error)


def _load(folder: HIM2KFolder | SingleInstanceFolder, index: int) -> Scene | Sample:
    """Scene ``index`` of ``folder``, or a Sample carrying the error when it cannot be read."""
    try:
        return folder[index]
    except (OSError, ValueError) as exc:
        return _failed(str(folder.items[index][2]), f"unreadable: {exc}")

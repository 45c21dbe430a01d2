"""Development sets from Clothing Co-Parsing's *validation* split (never trained on).

Three kinds of scenes, each deterministic in ``(index, size)`` and read through the same
``scene(index, size=...)`` call as the training generators: ``ccp-photos`` (the validation
photos in their own street backgrounds, the labelled person as a binary instance),
``ccp-scenes`` (its people on photo backgrounds, :class:`RealSceneGenerator`) and
``ccp-closeups`` (frame-filling close-ups, :class:`CloseUpGenerator`). Training validation
(``models.train.validate``) and ``matteserve eval --data ccp-*`` both build them here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from models.data.ccp import VALIDATION, CCPDataset, resize_photo
from models.data.synthetic import Scene

DEV_SETS = ("ccp-photos", "ccp-scenes", "ccp-closeups")


class ValidationPhotos:
    """CCP's validation photos as scenes: the photo at long side ``size`` with its labelled
    person as the one instance (binary alpha)."""

    def __init__(self, dataset: CCPDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def scene(self, index: int, size: int) -> Scene:
        photo = resize_photo(self.dataset[index], size)
        person = photo.person.astype(np.float32)[None]
        return Scene(photo.image, person, ["a person"], np.ones(1, bool), name=f"ccp-{photo.photo_id}")


def dev_generator(kind: str, ccp_root: str | Path, seed: int):
    """The generator of development set ``kind`` (one of :data:`DEV_SETS`) over the CCP clone at
    ``ccp_root``, with the validation ``seed`` (the photos need none): an object with
    ``scene(index, size=...) -> Scene``."""
    if kind == "ccp-photos":
        return ValidationPhotos(CCPDataset(ccp_root, VALIDATION))
    if kind == "ccp-scenes":
        from models.data.real_scenes import CutoutBank, RealSceneGenerator

        return RealSceneGenerator(CutoutBank(ccp_root, VALIDATION, None), seed)
    if kind == "ccp-closeups":
        from models.data.closeups import CloseUpGenerator

        return CloseUpGenerator(CCPDataset(ccp_root, VALIDATION), seed)
    raise ValueError(f"unknown development set {kind!r} (one of {', '.join(DEV_SETS)})")


def dev_scenes(kind: str, ccp_root: str | Path, seed: int, count: int, size: int) -> Iterator[Scene]:
    """The first ``count`` scenes of development set ``kind`` at long side ``size`` (fewer for
    ``ccp-photos`` if the split has fewer photos)."""
    generator = dev_generator(kind, ccp_root, seed)
    if isinstance(generator, ValidationPhotos):
        count = min(count, len(generator))
    for index in range(count):
        yield generator.scene(index, size=size)

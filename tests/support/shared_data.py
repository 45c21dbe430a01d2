"""Where the workplace's shared data lives: ``../shared`` beside the checkout (``evaldata/`` for
evaluation only, ``datasets/`` for training), never copied into the project.

Looked up in ``MATTESERVE_SHARED_DIR``, then ``../shared`` next to the repository, then
``/work/shared`` (where a fresh clone in a temporary folder still finds it). Tests that need
it skip with the reason where it is absent, unless ``MATTESERVE_REQUIRE_SHARED=1`` (set by
``.ci/run``) turns that into a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from service.evaluation.samples import Sample, samples

REPO = Path(__file__).resolve().parents[2]

# Six real COCO photos of one person each (the largest of each), with halos, rims and neighbours
# of varied texture: the mark-honouring tests correct their errors.
MARKS_PHOTOS = (
    "000000000036",
    "000000000165",
    "000000000241",
    "000000000326",
    "000000000389",
    "000000000436",
)


def shared_dir() -> Path | None:
    """The shared data folder, or None when there is none on this machine."""
    candidates = [os.environ.get("MATTESERVE_SHARED_DIR"), REPO.parent / "shared", "/work/shared"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "evaldata").is_dir():
            return Path(candidate)
    return None


def require(*parts: str) -> Path:
    """``<shared>/<parts...>``; skips (or fails under MATTESERVE_REQUIRE_SHARED=1) when missing."""
    root = shared_dir()
    path = None if root is None else root.joinpath(*parts)
    if path is None or not path.exists():
        message = f"shared data {'/'.join(parts)} is not on this machine (set MATTESERVE_SHARED_DIR)"
        if os.environ.get("MATTESERVE_REQUIRE_SHARED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


def coco_people(names: tuple[str, ...] = MARKS_PHOTOS) -> list[Sample]:
    """The largest person of each named photo of ``evaldata/coco128seg_persons``, in that order
    of the folder (skips or fails as :func:`require` when the data is missing)."""
    root = require("evaldata", "coco128seg_persons")
    found = [s for s in samples(str(root), max_instances=1) if s.name.split("#")[0] in names]
    assert len(found) == len(names)
    return found

"""``eval-instances``' counting, with the real instance pipeline on the local backend: a photo
that fails counts its people as missed, an empty alpha is no person, and a photo without alphas
is skipped and reported rather than ending the run."""

from __future__ import annotations

import asyncio
from pathlib import Path

import anyio
import cv2
import numpy as np

from service.config import Settings
from service.evaluation.instances import InstanceReport, evaluate_instances, instance_folder
from service.pipelines.factory import build_registry, close_registry
from tests.support.images import two_objects


def evaluate(root: Path, settings: Settings) -> InstanceReport:
    """``evaluate_instances`` with the instance pipeline ``settings`` build (weights as shipped)."""

    async def run() -> InstanceReport:
        registry = await build_registry(settings, anyio.CapacityLimiter(1))
        try:
            assert registry.instances is not None
            return await evaluate_instances(registry.instances, instance_folder(str(root)))
        finally:
            await close_registry(registry)

    return asyncio.run(run())


def write_photos(root: Path, photos: dict[str, tuple[bool, list[np.ndarray] | None]]) -> None:
    """``image/<name>.png`` (unreadable bytes where the flag is False) and
    ``alpha/<name>/<k>.png`` (no folder for None)."""
    image, _, _ = two_objects(96, 128)
    (root / "image").mkdir(parents=True)
    (root / "alpha").mkdir()
    for name, (readable, alphas) in photos.items():
        if readable:
            cv2.imwrite(str(root / "image" / f"{name}.png"), image[..., ::-1])
        else:
            (root / "image" / f"{name}.png").write_bytes(b"not a png")
        if alphas is not None:
            (root / "alpha" / name).mkdir()
            for k, alpha in enumerate(alphas):
                cv2.imwrite(str(root / "alpha" / name / f"{k}.png"), np.round(alpha * 255).astype(np.uint8))


def two_people() -> list[np.ndarray]:
    _, target, other = two_objects(96, 128)
    return [target, other.astype(np.float32)]


def test_a_photo_that_fails_counts_its_people_as_missed(tmp_path: Path) -> None:
    people = two_people()
    # the photo cannot be read: its two people are missed
    write_photos(tmp_path / "unreadable", {"b": (False, people)})
    summary = evaluate(tmp_path / "unreadable", Settings()).summary()
    assert (summary["photos"], summary["failures"], summary["people"]) == (0, 1, 2)
    assert (summary["tp"], summary["fp"], summary["fn"]) == (0, 0, 2) and summary["rq"] == 0.0
    # the pipeline fails (the authors' InstMatt chosen, its weights not imported): the same
    write_photos(tmp_path / "readable", {"a": (True, people)})
    summary = evaluate(tmp_path / "readable", Settings(instance_matting="instmatt_official")).summary()
    assert (summary["photos"], summary["failures"], summary["people"], summary["fn"]) == (0, 1, 2, 2)


def test_an_empty_alpha_is_no_person_and_a_photo_without_alphas_is_skipped(tmp_path: Path) -> None:
    target, _ = two_people()
    empty = np.zeros_like(target)
    write_photos(
        tmp_path,
        {"a": (True, [target, empty]), "empty_folder": (True, []), "no_folder": (True, None)},
    )
    report = evaluate(tmp_path, Settings())
    summary = report.summary()
    assert (summary["photos"], summary["people"], summary["failures"]) == (1, 1, 0)
    assert summary["tp"] + summary["fn"] == 1 and summary["min_area_px"] == 16
    assert summary["skipped"] == 2 and report.skipped == ["empty_folder", "no_folder"]

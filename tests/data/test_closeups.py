"""Close-up scenes of real CCP people (models.data.closeups), on the shared CCP clone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.data.ccp import TRAIN, VALIDATION, CCPDataset
from models.data.closeups import MIN_CROP_PX, CloseUpGenerator, crop_window
from models.train.data import make_pool
from tests.support.shared_data import require


@pytest.fixture(scope="module")
def ccp_root() -> Path:
    return require("datasets", "clothing-co-parsing")


@pytest.fixture(scope="module")
def generator(ccp_root: Path) -> CloseUpGenerator:
    return CloseUpGenerator(CCPDataset(ccp_root, TRAIN), seed=5)


def test_closeups_are_deterministic_single_people_with_valid_alpha(generator: CloseUpGenerator) -> None:
    a, b = generator.scene(2, size=(160, 128)), generator.scene(2, size=(160, 128))
    assert np.array_equal(a.image, b.image) and np.array_equal(a.alphas, b.alphas)
    assert a.descriptions == b.descriptions
    soft_scenes, own_and_other = 0, set()
    for index in range(16):
        scene = generator.scene(index, size=160)
        assert scene.image.shape == (160, 160, 3) and scene.image.dtype == np.uint8
        assert scene.alphas.shape == (1, 160, 160) and scene.num_instances == 1
        alpha = scene.alphas[0]
        assert alpha.min() >= 0.0 and alpha.max() <= 1.0
        # A close-up: person and background both in the frame, the person large.
        assert 0.03 < (alpha >= 0.5).mean() < 0.97
        soft_scenes += int(((alpha > 0.05) & (alpha < 0.95)).mean() > 0.002)
        assert scene.is_human.all() and len(scene.descriptions) == 1 and scene.descriptions[0]
        own_and_other.add(scene.name)
    assert soft_scenes >= 12  # labels are soft at the silhouette, not binary masks
    assert len(own_and_other) == 16


def test_crop_window_is_a_close_up_around_the_silhouette(ccp_root: Path) -> None:
    photo = CCPDataset(ccp_root, TRAIN)[4]
    ys, _ = np.nonzero(photo.person)
    person_h = ys.max() - ys.min() + 1
    rng = np.random.default_rng(0)
    for _ in range(20):
        y0, y1, x0, x1 = crop_window(photo, 0.75, rng)
        h, w = y1 - y0, x1 - x0
        assert w >= MIN_CROP_PX * 0.75 - 1 and min(MIN_CROP_PX, photo.labels.shape[0]) <= h
        assert h <= max(0.35 * person_h, MIN_CROP_PX) + 1 and abs(w / h - 0.75) < 0.02
        assert 0 <= y0 < y1 <= photo.labels.shape[0] and 0 <= x0 < x1 <= photo.labels.shape[1]
        inside = photo.person[y0:y1, x0:x1]
        assert inside.any() and not inside.all()  # the silhouette runs through the window


def test_closeup_source_reads_the_training_split_only(ccp_root: Path, tmp_path: Path) -> None:
    pool = make_pool("ccp-closeup:0.5,synthetic:0.5", 3, 128, 8, tmp_path, ccp_root)
    (_, closeups, _), _ = pool.pools
    assert closeups.generator.dataset.split == TRAIN
    validation = set(CCPDataset(ccp_root, VALIDATION).ids)
    assert not validation & set(closeups.generator.dataset.ids)
    assert closeups.describe()["people"].startswith("Clothing Co-Parsing train split")
    scene = pool.scene(0)
    assert scene.image.shape[2] == 3 and scene.alphas.max() <= 1.0
    with pytest.raises(ValueError, match="ccp_root"):
        make_pool("ccp-closeup", 3, 128, 8, tmp_path, None)


def test_closeup_validation_targets_come_from_the_validation_split(ccp_root: Path) -> None:
    from models.train.validate import ccp_closeup_validation_targets

    targets = ccp_closeup_validation_targets(ccp_root, count=3, size=128)
    assert len(targets) == 3 and all(t.name.startswith("ccp-closeup-90210-") for t in targets)
    assert all(t.alphas.shape[0] == 1 and t.image.shape[:2] == t.alpha.shape for t in targets)
    again = ccp_closeup_validation_targets(ccp_root, count=3, size=128)
    assert all(np.array_equal(a.alpha, b.alpha) for a, b in zip(targets, again, strict=True))

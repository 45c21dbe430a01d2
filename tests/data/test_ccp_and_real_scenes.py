"""The Clothing Co-Parsing loader and the real-people compositor, on the shared CCP clone."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from models.data.ccp import (
    TRAIN,
    VALIDATION,
    CCPDataset,
    measure_outfit,
    person_matte,
    person_trimap,
    resize_photo,
    split_of,
)
from models.data.mask_to_matte import adaptive_omega, mask_to_trimap
from models.data.real_scenes import CutoutBank, RealSceneGenerator
from tests.support.shared_data import require


@pytest.fixture(scope="module")
def ccp_root() -> Path:
    return require("datasets", "clothing-co-parsing")


def test_loader_reads_the_published_layout_with_a_fixed_disjoint_split(ccp_root: Path) -> None:
    everything = CCPDataset(ccp_root)
    train, validation = CCPDataset(ccp_root, TRAIN), CCPDataset(ccp_root, VALIDATION)
    assert len(everything) == 1004
    assert len(train) + len(validation) == 1004
    assert not set(train.ids) & set(validation.ids)
    assert validation.ids[:3] == ["0001", "0011", "0021"]
    assert all(split_of(i) == VALIDATION for i in validation.ids)
    assert everything.label_names[0] == "null" and "hair" in everything.label_names
    photo = train[0]
    assert photo.image.dtype == np.uint8 and photo.image.shape[2] == 3
    assert photo.labels.shape == photo.image.shape[:2]
    assert 0.05 < photo.person.mean() < 0.9  # one full-body person
    with pytest.raises(ValueError):
        CCPDataset(ccp_root, "test")


def test_soft_labels_keep_the_mask_and_soften_its_edge(ccp_root: Path) -> None:
    photo = resize_photo(CCPDataset(ccp_root, TRAIN)[3], 320)
    alpha = person_matte(photo)
    assert alpha.dtype == np.float32 and alpha.shape == photo.person.shape
    assert alpha.min() >= 0.0 and alpha.max() <= 1.0
    soft = (alpha > 0.02) & (alpha < 0.98)
    assert soft.any()
    inside = (alpha >= 0.5) == photo.person
    assert inside.mean() > 0.97  # the matte follows the labelled person
    # The unknown band is wider than the plain recipe's where hair meets the background.
    assert photo.part("hair").any()
    plain = mask_to_trimap(
        photo.person, adaptive_omega(float(photo.person.sum()), max_omega=min(photo.person.shape) // 24)
    )
    assert (person_trimap(photo) == 128).sum() > (plain == 128).sum()
    outfit = measure_outfit(photo)
    assert outfit.upper in photo.label_names and photo.part(outfit.upper).any()
    assert re.fullmatch(r"[a-z]+ [a-z-]+", outfit.phrase() or "")


@pytest.fixture(scope="module")
def generator(ccp_root: Path, tmp_path_factory: pytest.TempPathFactory) -> RealSceneGenerator:
    bank = CutoutBank(ccp_root, TRAIN, tmp_path_factory.mktemp("ccp-cache"), long_side=256)
    return RealSceneGenerator(bank, seed=7)


def test_scenes_are_deterministic_and_alphas_are_valid(generator: RealSceneGenerator) -> None:
    a, b = generator.scene(3, size=(192, 160)), generator.scene(3, size=(192, 160))
    assert np.array_equal(a.image, b.image) and np.array_equal(a.alphas, b.alphas)
    assert a.descriptions == b.descriptions
    counts = set()
    for index in range(24):
        scene = generator.scene(index, size=192)
        counts.add(scene.num_instances)
        assert scene.image.shape == (192, 192, 3) and scene.image.dtype == np.uint8
        assert 1 <= scene.num_instances <= 5
        assert scene.alphas.min() >= 0.0 and scene.alphas.max() <= 1.0
        assert scene.alphas.sum(axis=0).max() <= 1.0 + 1e-5  # visible alphas of a pixel sum to <= 1
        assert scene.is_human.all() and len(scene.descriptions) == scene.num_instances
    assert len(counts) >= 3  # single people and groups


def test_descriptions_identify_their_instance(generator: RealSceneGenerator) -> None:
    checked = 0
    for index in range(40):
        scene = generator.scene(index, size=192)
        texts = scene.descriptions
        assert len(set(texts)) == len(texts)  # unique within the scene
        xs = [att.centroid[0] for att in scene.attributes]
        assert xs == sorted(xs)  # instances ordered left to right
        for k, text in enumerate(texts):
            if scene.num_instances >= 2 and text.startswith("the person on the left"):
                assert k == 0
                checked += 1
            if scene.num_instances >= 2 and text.startswith("the person on the right"):
                assert k == scene.num_instances - 1
                checked += 1
            garment = re.search(r"(?:in|wearing) the (\w+) ([\w-]+)$", text)
            if garment and "next to" not in text and "behind" not in text and "in front of" not in text:
                assert scene.attributes[k].colour == f"the {garment.group(1)} {garment.group(2)}"
                checked += 1
    assert checked >= 10

"""Shared fixtures for the data tests: a few synthetic scenes, generated once per session."""

import pytest

from models.data.synthetic import SceneGenerator


@pytest.fixture(scope="session")
def generator() -> SceneGenerator:
    return SceneGenerator(seed=1234)


@pytest.fixture(scope="session")
def scenes(generator):
    """24 scenes at 160 px: enough variety (1-5 people, occlusions, crops), cheap to make."""
    return [generator.scene(i, size=160) for i in range(24)]

"""``service.engines.geodesic.path_costs`` gives scikit-image's ``MCP_Geometric`` distances, bit for
bit, on the path costs of real photos (walls, several starts), and stops at a limit exactly."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage.graph import MCP_Geometric

from service.engines.geodesic import path_costs
from service.engines.marks import edge_costs
from tests.support.shared_data import require

PHOTOS = ("000000000036", "000000000165", "000000000241")


@pytest.fixture(scope="module")
def costs() -> list[np.ndarray]:
    root = require("evaldata", "coco128seg_persons")
    out = []
    for name in PHOTOS:
        image = cv2.cvtColor(cv2.imread(str(root / "image" / f"{name}.jpg")), cv2.COLOR_BGR2RGB)
        out.append(edge_costs(image).astype(np.float64))
    return out


def _walled(cost: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``cost`` with a wall band and random blocked pixels (inf), as the searches' domains make."""
    out = cost.copy()
    h, w = out.shape
    out[h // 3 : h // 3 + 4, w // 5 :] = np.inf
    out[rng.random(out.shape) < 0.05] = np.inf
    return out


@pytest.mark.parametrize("count", [1, 5, 200])
def test_the_same_distances_as_scikit_image(costs: list[np.ndarray], count: int) -> None:
    rng = np.random.default_rng(count)
    for cost in costs:
        walled = _walled(cost, rng)
        open_pixels = np.argwhere(np.isfinite(walled))
        starts = open_pixels[rng.choice(len(open_pixels), count, replace=False)]
        expected, _ = MCP_Geometric(walled).find_costs(starts)
        found = path_costs(walled, starts)
        assert np.array_equal(found, expected)
        assert np.isinf(found[np.isinf(walled)]).all() and np.isfinite(found).mean() > 0.5


def test_a_limit_keeps_the_exact_costs_within_it_and_none_beyond(costs: list[np.ndarray]) -> None:
    rng = np.random.default_rng(7)
    for cost in costs:
        starts = np.argwhere(rng.random(cost.shape) < 2e-4)
        full = path_costs(cost, starts)
        for limit in (5.0, 60.0, float(np.median(full))):
            bounded = path_costs(cost, starts, limit)
            within = full <= limit
            assert np.array_equal(bounded[within], full[within])
            assert np.isinf(bounded[~within]).all()


def test_starts_on_walls_or_outside_are_ignored() -> None:
    cost = np.ones((5, 6))
    cost[2, 2] = np.inf
    found = path_costs(cost, np.array([[2, 2], [-1, 0], [9, 9], [0, 0]]))
    assert found[0, 0] == 0.0 and np.isinf(found[2, 2])
    assert found[0, 5] == pytest.approx(5.0) and found[4, 0] == pytest.approx(4.0)
    assert np.isinf(path_costs(cost, np.array([[2, 2]]))).all()

"""The mark honouring's bounded geodesic searches give the same mattes as searching everywhere.

:func:`service.engines.marks.honour_marks` stops its minimum-cost-path searches where the marks'
reach ends and keeps them to the boxes and the ring of background evidence around them;
``bounded_search=False`` searches every pixel of each region.
On real COCO photos, with the errors DFIMat's simulator corrects (a halo, a missed rim, a missed
half, a wrongly included neighbour, a shifted matte with several clicks), with and without a box,
for the learned pipelines' reach and the classical engine's unbounded split, the two agree on
every pixel. The speed-up is measured by ``python -m bench.corrections``, not here.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from models.eval.simulator import deepest_point, error_regions
from schemas.prompts import BoxPrompt, ClickPrompt, Prompt
from service.engines.marks import LOCAL_REACH, edge_costs, honour_marks
from service.evaluation.samples import Sample
from tests.support.shared_data import coco_people


@pytest.fixture(scope="module")
def people() -> list[Sample]:
    return coco_people()


def _box(mask: np.ndarray) -> BoxPrompt:
    """The mask's bounding box grown by 10 % of its size on every side, clipped to the photo."""
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    dy, dx = 0.1 * (ys.max() - ys.min()), 0.1 * (xs.max() - xs.min())
    return BoxPrompt(
        x0=max(0.0, xs.min() - dx),
        y0=max(0.0, ys.min() - dy),
        x1=min(w - 1.0, xs.max() + dx),
        y1=min(h - 1.0, ys.max() + dy),
    )


def _clicks(matte: np.ndarray, gt: np.ndarray, count: int) -> list[Prompt]:
    """A click at the deepest point of each of the ``count`` largest error regions."""
    found: list[Prompt] = []
    for region in error_regions(matte, gt.astype(np.float32), limit=count):
        x, y, _ = deepest_point(region.mask)
        found.append(ClickPrompt(x=x, y=y, label=region.label))
    return found


def _situations(person: Sample) -> list[tuple[str, np.ndarray, list[Prompt]]]:
    """(name, matte float32 [H, W], marks) for one person: errors the simulator's clicks correct."""
    gt = person.alpha >= 0.5
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (25, 25))
    halo = cv2.dilate(gt.astype(np.uint8), disc).astype(np.float32)
    rim = cv2.erode(gt.astype(np.uint8), disc).astype(np.float32)
    ys, xs = np.nonzero(gt)
    half = gt.copy()
    half[(ys.min() + ys.max()) // 2 :] = False
    neighbour = gt.copy()
    neighbour[ys.min() : ys.max() + 1, xs.max() : min(gt.shape[1], xs.max() + (xs.max() - xs.min()) // 2)] = (
        True
    )
    shift = max(4, (ys.max() - ys.min()) // 12)
    shifted = np.zeros_like(gt)
    shifted[shift:, shift:] = gt[:-shift, :-shift]
    x, y, _ = deepest_point(gt)
    inner = ClickPrompt(x=x, y=y, label="fg")
    out = []
    for name, matte, count in (
        ("halo", halo, 1),
        ("rim", rim, 1),
        ("missed half", half.astype(np.float32), 1),
        ("neighbour", neighbour.astype(np.float32), 1),
        ("shifted", shifted.astype(np.float32), 3),
    ):
        clicks = _clicks(matte, gt, count)
        out.append((name, matte, clicks))
        out.append((f"{name} + box", matte, [_box(gt), *clicks]))
    out.append(("halo + inner click", halo, [*_clicks(halo, gt, 1), inner]))
    return out


@pytest.mark.parametrize("reach", [LOCAL_REACH, None], ids=["local reach", "unbounded"])
def test_bounded_searches_give_the_same_matte_as_searching_everywhere(
    people: list[Sample], reach: float | None
) -> None:
    changed = 0
    for person in people:
        costs = edge_costs(person.image)
        for name, matte, prompts in _situations(person):
            bounded = honour_marks(person.image, matte, prompts, costs, reach)
            everywhere = honour_marks(person.image, matte, prompts, costs, reach, bounded_search=False)
            assert np.array_equal(bounded, everywhere), (person.name, name)
            changed += int(np.abs(bounded - matte).sum() > 100)  # more than the clicks' own pixels
    assert changed >= len(people) * 8, changed  # the corrections had work to do

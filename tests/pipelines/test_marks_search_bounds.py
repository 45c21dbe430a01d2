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

import numpy as np
import pytest

from models.eval.error_mattes import corrective_clicks, erroneous_mattes
from models.eval.simulator import deepest_point, gt_box
from schemas.prompts import ClickPrompt, Prompt
from service.engines.marks import LOCAL_REACH, edge_costs, honour_marks
from service.evaluation.samples import Sample
from tests.support.shared_data import coco_people


@pytest.fixture(scope="module")
def people() -> list[Sample]:
    return coco_people()


def _situations(person: Sample) -> list[tuple[str, np.ndarray, list[Prompt]]]:
    """(name, matte float32 [H, W], marks) for one person: errors the simulator's clicks correct,
    with and without the person's box."""
    truth = person.alpha >= 0.5
    box = gt_box(person.alpha, 0.5)
    assert box is not None
    out = []
    mattes = erroneous_mattes(truth, 12)
    for name, matte in mattes.items():
        clicks = corrective_clicks(matte, truth, 3 if name == "shifted" else 1)
        out.append((name, matte, clicks))
        out.append((f"{name} + box", matte, [box, *clicks]))
    x, y, _ = deepest_point(truth)
    inner = ClickPrompt(x=x, y=y, label="fg")
    out.append(("halo + inner click", mattes["halo"], [*corrective_clicks(mattes["halo"], truth, 1), inner]))
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

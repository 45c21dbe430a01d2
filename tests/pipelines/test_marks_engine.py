"""The mark-honouring correction (``service.engines.marks``) on its own and as every pipeline runs it.

The path costs depend on the photo alone: a session computes them once per replica and every
later round reuses them, with the same matte as computing them afresh. The full-resolution part
of the correction touches only the changed region and the marks' own pixels.
"""

from __future__ import annotations

import numpy as np
import pytest

from schemas.prompts import BoxPrompt, ClickPrompt, Prompt, ScribblePrompt
from service.engines.marks import edge_costs, honour_marks
from service.pipelines.base import MARKS_COSTS, FeatureCache, RoundInput
from tests.support.images import two_objects
from tests.support.pipelines import GivenMattes


def _wrong_matte(height: int, width: int) -> np.ndarray:
    """Both objects of ``two_objects`` included, as a pipeline that took the wrong one too would."""
    _, target, distractor = two_objects(height, width)
    return np.maximum(target, distractor.astype(np.float32))


def _marks(height: int, width: int) -> list[Prompt]:
    return [
        BoxPrompt(x0=4, y0=4, x1=width - 4, y1=height - 4),
        ClickPrompt(x=width * 0.7 + 0.5, y=height * 0.5 + 0.5, label="bg"),  # on the distractor; rounding
        ClickPrompt(x=width * 0.3, y=height * 0.5, label="fg"),  # on the target
        ScribblePrompt(points=[[1.0, 1.0], [width * 0.2, 3.5]], radius=2.5, label="bg"),  # at the border
    ]


@pytest.mark.parametrize("size", [(90, 120), (720, 960)])  # below and above the working size
def test_kept_costs_give_the_same_matte_as_fresh_ones(size: tuple[int, int]) -> None:
    image, _, _ = two_objects(*size)
    alpha, prompts = _wrong_matte(*size), _marks(*size)
    fresh = honour_marks(image, alpha, prompts)
    kept = honour_marks(image, alpha, prompts, edge_costs(image))
    assert kept.dtype == np.float32 and fresh.shape == alpha.shape
    assert np.array_equal(fresh, kept)


@pytest.mark.parametrize("size", [(90, 120), (720, 960)])
def test_marks_hold_and_only_the_marked_region_changes(size: tuple[int, int]) -> None:
    height, width = size
    image, target, distractor = two_objects(height, width)
    alpha, prompts = _wrong_matte(height, width), _marks(height, width)
    out = honour_marks(image, alpha, prompts)
    bg_click, fg_click = prompts[1], prompts[2]
    assert out[round(bg_click.y), round(bg_click.x)] == 0.0
    assert out[round(fg_click.y), round(fg_click.x)] == 1.0
    assert out[1, 1] == 0.0 and out[3, round(width * 0.1)] == 0.0  # the scribble at the border
    assert out[distractor].mean() < 0.5  # the wrongly included piece goes
    core = target > 0.99
    assert (out[core] == alpha[core]).mean() > 0.9  # the target stays as it was


@pytest.mark.anyio
async def test_a_session_computes_the_costs_once_and_every_round_reuses_them() -> None:
    image, _, _ = two_objects(300, 400)
    alpha, prompts = _wrong_matte(300, 400), _marks(300, 400)
    cache = FeatureCache.in_memory()
    kept: list[str] = []
    keep = cache.keep
    cache.keep = lambda name, arrays: (kept.append(name), keep(name, arrays))[1]
    pipeline = GivenMattes([alpha])
    mattes = []
    for index in range(3):
        request = RoundInput(image, prompts, prompts[-1:], None, None, cache, index)
        mattes.append((await pipeline.run_round(request)).alpha)
    assert kept == [MARKS_COSTS]
    assert not cache.recall(MARKS_COSTS)["array"].flags.writeable
    assert all(np.array_equal(mattes[0], m) for m in mattes[1:])
    assert np.array_equal(mattes[0], honour_marks(image, alpha, prompts))

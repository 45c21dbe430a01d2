"""Progressive merge (``service.engines.progressive_merge``): a corrective round's matte replaces
the previous one only in the changed regions that its new marks touch, on its own and as every
multi-round pipeline runs it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from schemas.prompts import BoxPrompt, ClickPrompt, Prompt, ScribblePrompt, TextPrompt
from service.engines.marks import honour_marks
from service.engines.progressive_merge import blend, is_corrective, kept_weight, merge_changes
from service.pipelines.base import FeatureCache, RoundInput
from tests.support.images import soft_disc, two_objects
from tests.support.pipelines import GivenMattes


def _rounds(height: int, width: int) -> tuple[np.ndarray, np.ndarray, ClickPrompt, np.ndarray, np.ndarray]:
    """A previous matte (a disc), and a new one that grew a part where the click is (``near``) and,
    far from it, dropped a blob of the disc's edge and added a spurious blob (``far``)."""
    side, cx, cy = min(height, width), width // 3, height // 2
    previous = soft_disc(height, width, (cx, cy), side // 4)
    near = soft_disc(height, width, (cx, cy - side // 4), side // 10)
    far_add = soft_disc(height, width, (width * 4 // 5, height // 5), side // 10)
    far_drop = soft_disc(height, width, (cx, cy + side // 4), side // 12)
    new = np.clip(np.maximum(previous, np.maximum(near, far_add)) - far_drop, 0.0, 1.0)
    click = ClickPrompt(x=cx, y=cy - side // 4 - side // 20, label="fg")
    return previous, new.astype(np.float32), click, near > 0.5, (far_add > 0.5) | (far_drop > 0.5)


@pytest.mark.parametrize("size", [(90, 120), (720, 960)])  # below and above the working size
def test_only_the_change_the_marks_touch_is_kept(size: tuple[int, int]) -> None:
    previous, new, click, near, far = _rounds(*size)
    out = merge_changes(previous, new, [click])
    assert out.shape == new.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    inner_near = near & (previous < 0.01)
    assert np.allclose(out[inner_near], new[inner_near], atol=1e-3)  # the part the click asked for
    assert (out[far] >= 0.5).sum() == (previous[far] >= 0.5).sum()  # both far changes undone
    assert np.abs(out - previous)[far].max() < 0.05


@pytest.mark.parametrize("size", [(90, 120), (866, 1155), (3000, 4000), (1001, 333)])
def test_the_blend_on_the_weights_box_is_the_whole_images(size: tuple[int, int]) -> None:
    previous, new, click, _, _ = _rounds(*size)
    weight = kept_weight(previous, new, [click])
    assert weight is not None and weight.max() == 1.0 and weight.min() == 0.0
    whole = cv2.resize(weight, size[::-1], interpolation=cv2.INTER_LINEAR)
    assert np.abs(blend(previous, new, weight) - (previous + whole * (new - previous))).max() < 1e-3


def test_a_change_nowhere_near_the_marks_is_undone_entirely() -> None:
    previous, new, _, _, _ = _rounds(360, 480)
    away = ScribblePrompt(points=[[470.0, 350.0], [475.0, 355.0]], radius=2, label="bg")  # a corner
    assert np.allclose(merge_changes(previous, new, [away]), previous, atol=1e-6)


@pytest.mark.parametrize("label", ["fg", "bg"])
def test_a_change_against_the_marks_label_is_undone(label: str) -> None:
    """A foreground click beside a part the new round dropped (or a background click beside a part
    it added) did not ask for that change: the previous matte stays there."""
    previous, new, _, _, _ = _rounds(360, 480)
    side, cx, cy = 360, 480 // 3, 360 // 2
    dropped = soft_disc(360, 480, (cx, cy + side // 4), side // 12) > 0.5  # ``far_drop`` of _rounds
    added = soft_disc(360, 480, (480 * 4 // 5, 360 // 5), side // 10) > 0.5  # ``far_add``
    region, wanted = (dropped, "bg") if label == "fg" else (added, "fg")
    ys, xs = np.nonzero(region)
    on_it = ClickPrompt(x=float(xs.mean()), y=float(ys.mean()), label=label)
    kept = merge_changes(previous, new, [on_it])
    assert np.abs(kept - previous)[region].max() < 0.05  # the change against the label is undone
    asked = merge_changes(previous, new, [on_it.model_copy(update={"label": wanted})])
    assert (asked[region] >= 0.5).mean() == (new[region] >= 0.5).mean()  # with the label, kept


@pytest.mark.parametrize(
    "new_prompts",
    [
        [],
        [BoxPrompt(x0=10, y0=10, x1=200, y1=200)],
        [TextPrompt(text="the person on the left")],
        [BoxPrompt(x0=10, y0=10, x1=200, y1=200), ClickPrompt(x=5, y=5, label="bg")],
    ],
)
def test_a_round_that_redefines_the_target_is_not_merged(new_prompts: list[Prompt]) -> None:
    previous, new, _, _, _ = _rounds(360, 480)
    assert not is_corrective(new_prompts)
    assert merge_changes(previous, new, new_prompts) is new


def test_without_a_previous_matte_of_the_same_size_the_round_is_kept() -> None:
    previous, new, click, _, _ = _rounds(360, 480)
    assert merge_changes(None, new, [click]) is new
    assert merge_changes(previous[:-1], new, [click]) is new


@pytest.mark.anyio
@pytest.mark.parametrize(("merge", "multi_round"), [(True, True), (False, True), (True, False)])
async def test_a_multi_round_pipeline_merges_a_corrective_round_before_honouring_the_marks(
    merge: bool, multi_round: bool
) -> None:
    image, _, _ = two_objects(360, 480)
    previous, new, click, _, _ = _rounds(360, 480)
    pipeline = GivenMattes([previous, new])
    pipeline.progressive_merge, pipeline.multi_round = merge, multi_round
    prompts: list[Prompt] = [BoxPrompt(x0=2, y0=2, x1=478, y1=358), click]
    request = RoundInput(image, prompts, [click], previous, None, FeatureCache.in_memory(), 1)
    out = (await pipeline.run_round(request)).alpha
    expected = merge_changes(previous, new, [click]) if merge and multi_round else new
    assert np.array_equal(out, honour_marks(image, expected, prompts))

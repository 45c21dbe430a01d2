import numpy as np
import pytest

from models.eval.simulator import UserSimulator, aggregate_rounds, error_regions, gt_box, place_scribble
from schemas.prompts import BoxPrompt, ClickPrompt, ScribblePrompt, TextPrompt


def _target():
    gt = np.zeros((60, 80), np.float32)
    gt[10:50, 10:40] = 1.0  # big body
    gt[20:24, 40:70] = 1.0  # thin arm
    gt[9, 20] = 0.3  # a wisp of hair, below the click threshold but inside the box
    return gt


def test_first_click_is_inside_largest_error_with_right_label():
    gt = _target()
    pred = gt.copy()
    pred[10:50, 10:25] = 0.0  # misses the left half of the body (600 px)
    pred[52:60, 5:75] = 1.0  # spurious band (560 px): second largest, larger than what the first click leaves
    sim = UserSimulator("click", seed=0)
    clicks = sim.round_prompts(1, gt, pred)
    assert len(clicks) == 3 and all(isinstance(c, ClickPrompt) for c in clicks)
    first = clicks[0]
    assert first.label == "fg" and 10 <= first.y < 50 and 10 <= first.x < 25
    # far from the region's boundary: near the middle column of the missed strip
    assert 14 <= first.x <= 21
    second = clicks[1]
    assert second.label == "bg" and 52 <= second.y < 60 and 5 <= second.x < 75


def test_false_positive_click_is_background():
    gt = _target()
    pred = gt.copy()
    pred[0:8, 50:80] = 1.0
    (first,) = UserSimulator("click", clicks_per_round=1).round_prompts(1, gt, pred)
    assert first.label == "bg" and first.y < 8 and first.x >= 50


def test_round_one_click_protocol_clicks_the_target():
    gt = _target()
    clicks = UserSimulator("click").round_prompts(0, gt, None)
    assert clicks[0].label == "fg" and gt[int(clicks[0].y), int(clicks[0].x)] == 1.0


def test_box_and_text_from_ground_truth_in_round_one():
    gt = _target()
    box = gt_box(gt)
    assert (box.x0, box.y0, box.x1, box.y1) == (10, 9, 70, 50)
    prompts = UserSimulator("mix").round_prompts(0, gt, None, text="the person on the left")
    assert prompts[0] == box and isinstance(prompts[0], BoxPrompt)
    assert prompts[1] == TextPrompt(text="the person on the left")
    assert UserSimulator("box").round_prompts(0, gt) == [box]
    with pytest.raises(ValueError, match="text"):
        UserSimulator("text").round_prompts(0, gt)
    with pytest.raises(ValueError, match="unknown protocol"):
        UserSimulator("telepathy")


def test_scribbles_stay_inside_the_region():
    gt = _target()
    scribbles = UserSimulator("scribble", seed=3).round_prompts(0, gt, None)
    assert len(scribbles) == 2 and all(isinstance(s, ScribblePrompt) for s in scribbles)
    for s in scribbles:
        assert s.label == "fg" and len(s.points) >= 2 and s.radius >= 1
        for x, y in s.points:
            assert gt[int(y), int(x)] == 1.0
    longest = max(scribbles, key=lambda s: len(s.points))
    xs = [p[0] for p in longest.points]
    ys = [p[1] for p in longest.points]
    assert max(max(xs) - min(xs), max(ys) - min(ys)) > 15  # a stroke, not a dot
    points, radius = place_scribble(np.ones((1, 1), bool))
    assert points == [(0.0, 0.0)] and radius > 0


def test_deterministic_by_seed():
    gt = _target()
    pred = np.zeros_like(gt)
    pred[30:60, 0:30] = 1.0
    a = UserSimulator("mix", seed=7).round_prompts(2, gt, pred)
    b = UserSimulator("mix", seed=7).round_prompts(2, gt, pred)
    assert a == b
    kinds = {UserSimulator("mix", seed=s).correction_kind(2) for s in range(20)}
    assert kinds == {"click", "scribble"}


def test_no_error_no_corrections():
    gt = _target()
    assert UserSimulator("click").round_prompts(3, gt, gt) == []
    assert error_regions(gt, gt) == []


def test_simulate_multi_round_and_aggregated():
    gt = _target()
    seen: list[int] = []

    def predict(prompts, r):
        seen.append(len(prompts))
        out = np.zeros_like(gt)
        out[10:50, 10:40] = 1.0 if r >= 1 else 0.0
        return out

    sim = UserSimulator("box", seed=1, rounds=3)
    res = sim.simulate(gt, predict)
    assert [len(r) for r in res.rounds] == [1, 3, 3]
    assert seen == [1, 3, 3]
    assert res.clicks == [0, 3, 6] and res.interactions == [1, 4, 7]
    assert res.ious[0] == 0.0 and 0 < res.ious[1] < 1
    seen.clear()
    res2 = sim.simulate(gt, predict, multi_round=False)
    assert seen == [1, 4, 7]
    assert aggregate_rounds(res2.rounds, 2) == res2.rounds[0] + res2.rounds[1]
    assert res2.rounds == res.rounds

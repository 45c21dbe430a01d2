"""The training-time prompt samplers produce valid wire prompts in the right places."""

from __future__ import annotations

import numpy as np
import pytest

from models.data import SceneGenerator
from models.prompting import Letterbox, iscn_prompt_tensors
from models.train import prompts as P
from models.train.data import VALIDATION_SEED, ScenePool, flip_scene, make_item
from schemas.prompts import BoxPrompt, ClickPrompt, Prompt, ScribblePrompt, TextPrompt

H, W = 72, 96


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """Two instances: a body with an arm (target 0) and a block (target 1), alphas [2, H, W]."""
    alphas = np.zeros((2, H, W), np.float32)
    alphas[0, 10:60, 10:35] = 1.0
    alphas[0, 25:30, 35:55] = 1.0
    alphas[0, 9, 10:35] = 0.4  # a soft edge
    alphas[1, 20:70, 65:90] = 1.0
    return alphas, (alphas[0] >= 0.5)


def _inside(mask: np.ndarray, x: float, y: float) -> bool:
    return bool(mask[round(y), round(x)])


@pytest.mark.parametrize("seed", range(5))
def test_clicks_land_inside_the_target_and_bg_clicks_outside(seed: int) -> None:
    alphas, mask = _scene()
    rng = np.random.default_rng(seed)
    clicks = P.sample_clicks(mask, rng, 3, "fg")
    assert len(clicks) == 3
    assert all(c.label == "fg" and _inside(mask, c.x, c.y) for c in clicks)
    others = alphas[1] >= 0.5
    region = P.background_region(mask, others, rng)
    (bg,) = P.sample_clicks(region, rng, 1, "bg", deepest_first=False)
    assert bg.label == "bg" and not _inside(mask, bg.x, bg.y)


def test_scribbles_stay_inside_their_region() -> None:
    _, mask = _scene()
    for seed in range(5):
        stroke = P.sample_scribble(mask, np.random.default_rng(seed), "fg")
        assert isinstance(stroke, ScribblePrompt) and stroke.label == "fg"
        assert 1.0 <= stroke.radius <= 4.0 and len(stroke.points) >= 1
        assert all(_inside(mask, x, y) for x, y in stroke.points)
    assert P.sample_scribble(np.zeros_like(mask), np.random.default_rng(0)) is None


def test_boxes_are_valid_and_near_the_ground_truth_box() -> None:
    alphas, _ = _scene()
    exact = BoxPrompt(x0=10, y0=9, x1=55, y1=60)
    for seed in range(20):
        box = P.sample_box(alphas[0], np.random.default_rng(seed), jitter=0.05)
        assert box is not None
        assert 0 <= box.x0 < box.x1 <= W and 0 <= box.y0 < box.y1 <= H
        for a, b, side in ((box.x0, exact.x0, 45), (box.x1, exact.x1, 45), (box.y0, exact.y0, 51)):
            assert abs(a - b) <= 0.25 * side
    assert P.sample_box(alphas[0], np.random.default_rng(0), jitter=0.0) == exact


@pytest.mark.parametrize("mode", [*P.ROUND_ONE_MODES, "none"])
def test_round_one_modes_give_the_kinds_they_name(mode: str) -> None:
    alphas, mask = _scene()
    for seed in range(4):
        prompts = P.round_one_prompts(mode, alphas, 0, "the person on the left", np.random.default_rng(seed))
        kinds = P.count_kinds(prompts)
        wanted = {"click", "scribble", "box", "text"} & set(mode.split("+"))
        assert wanted <= set(kinds), (mode, kinds)
        assert set(kinds) <= wanted, (mode, kinds)
        for p in prompts:
            if isinstance(p, TextPrompt):
                assert p.text == "the person on the left"
            if isinstance(p, ClickPrompt):
                assert _inside(mask, p.x, p.y) == (p.label == "fg")
        maps, slots = iscn_prompt_tensors(prompts, Letterbox(H, W, 64))
        marks = [p for p in prompts if not isinstance(p, TextPrompt)]
        assert int((slots > 0).sum()) == len(marks)
        assert all(maps[i].any() for i in range(len(marks)))


def test_corrections_target_the_largest_error() -> None:
    alphas, mask = _scene()
    previous = alphas[0].copy()
    previous[10:60, 10:22] = 0.0  # missed the left part of the body
    for seed in range(4):
        fixes: list[Prompt] = list(
            P.correction_prompts(previous, alphas[0], np.random.default_rng(seed), "click")
        )
        assert 1 <= len(fixes) <= 3
        first = fixes[0]
        assert (
            isinstance(first, ClickPrompt)
            and first.label == "fg"
            and first.x < 22
            and _inside(mask, first.x, first.y)
        )
    scribbles = P.correction_prompts(previous, alphas[0], np.random.default_rng(0), "scribble")
    assert scribbles and all(isinstance(s, ScribblePrompt) for s in scribbles)
    assert P.correction_prompts(alphas[0], alphas[0], np.random.default_rng(0)) == []


def test_perturbed_masks_are_wrong_but_close() -> None:
    _, mask = _scene()
    ious = []
    for seed in range(30):
        m = P.perturb_mask(mask, np.random.default_rng(seed))
        assert m.shape == mask.shape and m.dtype == np.float32 and set(np.unique(m)) <= {0.0, 1.0}
        inter = np.logical_and(m > 0.5, mask).sum()
        ious.append(inter / max(1, np.logical_or(m > 0.5, mask).sum()))
    assert np.mean(ious) > 0.6 and min(ious) > 0.2
    assert np.mean(np.asarray(ious) < 0.999) > 0.8  # almost always actually perturbed


def test_flip_swaps_left_and_right_in_descriptions() -> None:
    scene = SceneGenerator(3, min_instances=2, max_instances=3).scene(1, size=96)
    flipped = flip_scene(scene)
    assert np.array_equal(flipped.image, scene.image[:, ::-1])
    assert np.array_equal(flipped.alphas[0], scene.alphas[-1][:, ::-1])
    for a, b in zip(scene.descriptions[::-1], flipped.descriptions, strict=True):
        assert a.replace("left", "L").replace("right", "left").replace("L", "right") == b


def test_pool_caches_scenes_and_refuses_the_validation_seed(tmp_path) -> None:
    pool = ScenePool(5, 64, 3, tmp_path)
    first = pool.scene(1)
    again = ScenePool(5, 64, 3, tmp_path).scene(1)  # read back from the cache
    assert np.array_equal(first.image, again.image)
    assert np.allclose(first.alphas, again.alphas, atol=1e-6)
    assert first.descriptions == again.descriptions
    assert max(first.image.shape[:2]) == 64
    item = make_item(first, 64, np.random.default_rng(0))
    assert item.box.size == 64 and item.text in (*first.descriptions, *flip_scene(first).descriptions)
    with pytest.raises(ValueError):
        ScenePool(VALIDATION_SEED, 64, 3, None)


@pytest.mark.parametrize(
    ("source", "band_weight"), [("ccp-0-7", 0.0), ("ccp-closeup-0-3:flip", 0.25), ("synthetic-0-7", 1.0)]
)
def test_mrn_weighs_only_real_labels_soft_band(source: str, band_weight: float) -> None:
    """Real people's soft values come from the mask-to-matte recipe, not a measurement: MRN's
    loss weighs that band by ``real_band_weight``; a procedural scene's true alpha weighs 1."""
    from models.train.data import Item
    from models.train.tasks import MRNSampler

    alphas, _ = _scene()
    box = Letterbox(H, W, 128)
    item = Item(np.zeros((H, W, 3), np.uint8), alphas, 0, "the person", box, source=source)
    sampler = MRNSampler(max_slots=8, real_band_weight=0.25 if "closeup" in source else 0.0)
    sampler(item, np.random.default_rng(0))
    weight = item.extra["label_weight"]
    assert weight.shape == (128, 128)
    band = box.plane(((alphas[0] > 0) & (alphas[0] < 1)).astype(np.float32))  # resized: soft at its ends
    assert (band == 1.0).any()
    assert np.allclose(weight[band == 1.0], band_weight)
    assert np.allclose(weight[band == 0.0], 1.0)  # the rest of the photo and the letterbox
    assert ((weight >= band_weight - 1e-6) & (weight <= 1.0 + 1e-6)).all()


def test_the_mrn_loss_ignores_what_its_weight_leaves_out() -> None:
    import torch

    from models import losses

    gt = torch.zeros(2, 1, 16, 16)
    right = {k: gt.clone() for k in ("alpha_os1", "alpha_os4", "alpha_os8")}
    wrong = {k: v.clone() for k, v in right.items()}
    for v in wrong.values():
        v[:, :, :4] = 0.5  # wrong only in the first four rows
    weight = torch.ones_like(gt)
    assert float(losses.mrn_loss(wrong, gt)) > 0.1
    assert torch.equal(losses.mrn_loss(wrong, gt, weight=weight), losses.mrn_loss(wrong, gt))
    weight[:, :, :4] = 0.0
    assert float(losses.mrn_loss(wrong, gt, weight=weight)) == 0.0
    assert float(losses.mrn_loss(right, gt, weight=weight)) == 0.0

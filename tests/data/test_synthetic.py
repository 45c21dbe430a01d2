import re

import numpy as np

from models.data.colours import COLOUR_NAMES, colour_name
from models.data.descriptions import POSITION_PHRASES
from models.data.synthetic import SceneGenerator


def test_same_seed_and_index_give_identical_scenes(generator):
    a = generator.scene(5, size=128)
    b = SceneGenerator(seed=1234).scene(5, size=128)
    assert np.array_equal(a.image, b.image)
    assert np.array_equal(a.alphas, b.alphas)
    assert a.descriptions == b.descriptions


def test_different_index_or_seed_give_different_scenes(generator):
    a = generator.scene(5, size=128)
    assert not np.array_equal(a.image, generator.scene(6, size=128).image)
    assert not np.array_equal(a.image, SceneGenerator(seed=99).scene(5, size=128).image)


def test_shapes_types_and_ranges(scenes):
    for s in scenes:
        h, w = s.image.shape[:2]
        assert s.image.dtype == np.uint8 and s.image.shape == (160, 160, 3)
        assert s.alphas.dtype == np.float32 and s.alphas.shape[1:] == (h, w)
        assert 1 <= s.num_instances <= 5
        assert len(s.descriptions) == len(s.is_human) == len(s.attributes) == s.num_instances
        assert s.is_human.all()
        assert s.alphas.min() >= 0.0 and s.alphas.max() <= 1.0


def test_rectangular_size():
    s = SceneGenerator(seed=3).scene(0, size=(96, 144))
    assert s.image.shape == (96, 144, 3) and s.alphas.shape[1:] == (96, 144)


def test_visible_alphas_sum_to_at_most_one(scenes):
    for s in scenes:
        assert s.alphas.sum(axis=0).max() <= 1.0 + 1e-6


def test_fractional_alpha_and_every_instance_visible(scenes):
    fractional = 0
    for s in scenes:
        for a in s.alphas:
            assert (a > 0.5).sum() > 20  # no instance is hidden or cropped away entirely
            fractional += int(((a > 0.05) & (a < 0.95)).sum())
    assert fractional > 1000
    assert any(((a > 0.05) & (a < 0.95)).mean() > 0.01 for s in scenes for a in s.alphas)


def test_instance_counts_vary(scenes):
    counts = {s.num_instances for s in scenes}
    assert len(counts) >= 3 and max(counts) >= 3


def test_instances_ordered_left_to_right(scenes):
    for s in scenes:
        xs = [a.centroid[0] for a in s.attributes]
        assert xs == sorted(xs)


def test_descriptions_unique_within_scene(scenes):
    for s in scenes:
        assert len(set(s.descriptions)) == len(s.descriptions)
        assert all(d.startswith("the ") for d in s.descriptions)


def _phrase_rank(text: str, count: int) -> int | None:
    """Left-to-right rank named by a description's position phrase, if it has one."""
    ordinals = {"second": 1, "third": 2}
    m = re.search(r"the (second|third) person from the (left|right)", text)
    if m:
        r = ordinals[m.group(1)]
        return r if m.group(2) == "left" else count - 1 - r
    for rank, phrase in enumerate(POSITION_PHRASES[count]):
        if phrase and f"person {phrase}" in text:
            return rank
    return None


def test_description_position_and_colour_match_the_pixels(scenes):
    checked_pos = checked_col = 0
    for s in scenes:
        order = np.argsort([a.centroid[0] for a in s.attributes])
        for k, (text, att) in enumerate(zip(s.descriptions, s.attributes, strict=True)):
            rank = _phrase_rank(text, s.num_instances)
            if rank is not None and " behind " not in text and " in front of " not in text:
                assert order[rank] == k, (text, [a.centroid for a in s.attributes])
                checked_pos += 1
            words = [c for c in COLOUR_NAMES if re.search(rf"\b{c}\b", text)]
            if words:
                own = [c for c in words if c == att.colour]
                assert own or " behind " in text or " in front of " in text or " next to " in text, text
                if own:
                    # The colour is that of the instance's clothing as it appears in the image.
                    assert colour_name(np.array(att.colour_rgb)) == att.colour
                    checked_col += 1
    assert checked_pos > 5 and checked_col > 5


def test_colour_words_name_a_colour_unique_to_the_relation_target(scenes):
    for s in scenes:
        colours = [a.colour for a in s.attributes]
        for text in s.descriptions:
            m = re.search(r"(?:behind|in front of|next to) the person in (\w+)$", text)
            if m:
                assert colours.count(m.group(1)) == 1

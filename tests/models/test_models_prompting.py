"""models/prompting.py: letterbox geometry, rasterisation of each mark kind, ISCN slot priority,
SMat's prompt mask and SEMat's box."""

from __future__ import annotations

import numpy as np
import pytest

from models.prompting import (
    KIND_BG_CLICK,
    KIND_BG_SCRIBBLE,
    KIND_BOX,
    KIND_FG_CLICK,
    KIND_FG_SCRIBBLE,
    KIND_PAD,
    Letterbox,
    iscn_prompt_tensors,
    semat_box,
    smat_prompt_mask,
)
from schemas.prompts import BoxPrompt, ClickPrompt, ScribblePrompt, TextPrompt


@pytest.mark.parametrize(("h", "w"), [(300, 400), (400, 300), (256, 256), (100, 37)])
def test_letterbox_geometry_and_round_trip(h: int, w: int) -> None:
    box = Letterbox(h, w, 128)
    ih, iw = box.inner
    assert max(ih, iw) == 128 and abs(ih / iw - h / w) < 0.05
    image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    frame = box.image(image)
    assert frame.shape == (3, 128, 128) and frame.dtype == np.float32
    assert frame.min() >= 0.0 and frame.max() <= 1.0
    assert not frame[:, ih:, :].any() and not frame[:, :, iw:].any()  # zero padding bottom/right
    # A smooth map survives letterbox -> (S/4) -> original with small error.
    yy, xx = np.mgrid[0:h, 0:w]
    plane = (np.sin(xx / w * 3) * np.cos(yy / h * 2) * 0.5 + 0.5).astype(np.float32)
    for stride in (1, 4):
        small = box.plane(plane, stride=stride)
        assert small.shape == (128 // stride, 128 // stride)
        back = box.to_original(small)
        assert back.shape == (h, w)
        assert np.abs(back - plane).mean() < 0.03
    assert box.crop(np.zeros((32, 32))).shape == (max(1, round(ih / 4)), max(1, round(iw / 4)))


def test_each_mark_kind_is_rasterised_where_it_was_drawn() -> None:
    box = Letterbox(200, 400, 256)  # scale 0.64; S/4 = 64, so one S/4 cell = 6.25 px of the photo
    prompts = [
        ClickPrompt(x=100, y=50, label="fg"),
        ClickPrompt(x=300, y=150, label="bg"),
        ScribblePrompt(points=[(20, 20), (120, 20)], label="fg", radius=4),
        ScribblePrompt(points=[(200, 100), (200, 180)], label="bg", radius=4),
        BoxPrompt(x0=50, y0=25, x1=150, y1=175),
        TextPrompt(text="the person"),  # not a mark: no slot
    ]
    maps, kinds = iscn_prompt_tensors(prompts, box, max_slots=8)
    assert maps.shape == (8, 64, 64) and kinds.shape == (8,)
    assert (
        list(kinds)
        == [KIND_BOX, KIND_FG_CLICK, KIND_BG_CLICK, KIND_FG_SCRIBBLE, KIND_BG_SCRIBBLE] + [KIND_PAD] * 3
    )
    assert set(np.unique(maps)) <= {0.0, 1.0}
    s = 0.64 / 4

    def on(slot: int, x: float, y: float) -> bool:
        return bool(maps[slot, int(y * s), int(x * s)])

    assert on(0, 100, 100) and not on(0, 200, 100)  # box filled, nothing outside
    assert on(1, 100, 50) and maps[1].sum() < 30  # a small disk
    assert on(2, 300, 150)
    assert on(3, 20, 20) and on(3, 70, 20) and on(3, 120, 20) and not on(3, 70, 60)
    assert on(4, 200, 140) and not on(4, 260, 140)
    assert not maps[5:].any()


def test_slot_priority_keeps_boxes_then_the_latest_marks() -> None:
    box = Letterbox(100, 100, 64)
    clicks = [ClickPrompt(x=5 + 4 * i, y=50) for i in range(20)]
    prompts = [clicks[0], BoxPrompt(x0=10, y0=10, x1=60, y1=60), *clicks[1:]]
    maps, kinds = iscn_prompt_tensors(prompts, box, max_slots=16)
    assert kinds[0] == KIND_BOX and (kinds[1:] == KIND_FG_CLICK).all()
    # The 15 most recent clicks (5..19) fill the other slots, oldest first.
    scale = 0.64 / 4
    for slot, click in zip(range(1, 16), clicks[5:], strict=True):
        assert maps[slot, int(click.y * scale), int(click.x * scale)] == 1.0
    empty_maps, empty_kinds = iscn_prompt_tensors([TextPrompt(text="x")], box)
    assert not empty_maps.any() and not empty_kinds.any()


def test_smat_mask_uses_foreground_marks_only() -> None:
    box = Letterbox(100, 200, 128)  # scale 0.64
    assert not smat_prompt_mask([], box).any()  # automatic mode
    assert not smat_prompt_mask([ClickPrompt(x=50, y=50, label="bg")], box).any()
    mask = smat_prompt_mask([ClickPrompt(x=100, y=50)], box)
    assert mask.shape == (1, 128, 128)
    half = round(20 * 0.64)
    assert mask.sum() == (2 * half + 1) ** 2  # SMat's 41 px square, scaled
    boxed = smat_prompt_mask([BoxPrompt(x0=10, y0=10, x1=110, y1=60)], box)
    assert boxed[0, 10, 10] == 1.0 and boxed[0, 50, 10] == 0.0
    stroke = smat_prompt_mask([ScribblePrompt(points=[(20, 80), (180, 80)], radius=2)], box)
    assert stroke[0, 51, 13:115].all() and not stroke[0, 20].any()


def test_semat_box_is_the_union_in_the_frame() -> None:
    box = Letterbox(100, 200, 128)
    assert semat_box([ClickPrompt(x=1, y=1)], box) is None
    xyxy = semat_box([BoxPrompt(x0=10, y0=20, x1=50, y1=60), BoxPrompt(x0=40, y0=10, x1=300, y1=90)], box)
    assert xyxy is not None and xyxy.dtype == np.float32
    np.testing.assert_allclose(xyxy, [6.4, 6.4, 128.0, 57.6], rtol=1e-5)


def test_smat_prompts_always_reach_the_token_grid() -> None:
    """A click too small to cover one of SMat's nearest samples still sets one (else SMat pools
    an all-zero feature); a mark that covers samples is drawn as it is."""
    box = Letterbox(1000, 1000, 256)  # a click square is 11 px, the token grid samples every 16 px
    click = ClickPrompt(x=530, y=530, label="fg")  # (135, 135): no multiple of 16 within ±5
    plain = smat_prompt_mask([click], box)[0]
    assert plain.any() and not plain[::16, ::16].any()
    anchored = smat_prompt_mask([click], box, grid_stride=16)[0]
    assert anchored[::16, ::16].sum() == 1 and anchored[128, 128] == 1.0
    big = BoxPrompt(x0=100, y0=100, x1=600, y1=700)
    np.testing.assert_array_equal(smat_prompt_mask([big], box, grid_stride=16), smat_prompt_mask([big], box))

"""ISCN: conflict-map (CRM) semantics, prompt encoding, prompt-less instance queries."""

from __future__ import annotations

import torch

from models.io_spec import example_inputs
from models.iscn import ContrastiveReasoning, build_iscn, compute_conflict_map
from models.iscn.config import (
    CONFLICT_BG_OVER_FG,
    CONFLICT_FG_OVER_BG,
    CONFLICT_NONE,
    KIND_BG_CLICK,
    KIND_BOX,
    KIND_FG_CLICK,
    KIND_FG_SCRIBBLE,
)

SMALL = 64


def _marks(h: int, spots: list[tuple[int, int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    maps = torch.zeros(1, 4, h, h)
    kinds = torch.zeros(1, 4, dtype=torch.long)
    for i, (kind, y, x) in enumerate(spots):
        maps[0, i, y : y + 2, x : x + 2] = 1.0
        kinds[0, i] = kind
    return maps, kinds


def test_conflict_map_values() -> None:
    h = 16
    prev = torch.zeros(1, 1, h, h)
    prev[..., :8, :] = 1.0  # previous mask: top half foreground
    maps, kinds = _marks(
        h,
        [
            (KIND_FG_CLICK, 12, 2),  # fg mark over previous bg -> 1
            (KIND_BG_CLICK, 2, 2),  # bg mark over previous fg -> 2
            (KIND_FG_SCRIBBLE, 2, 10),  # fg over fg -> no conflict
            (KIND_BOX, 12, 10),  # boxes never conflict
        ],
    )
    c = compute_conflict_map(prev, maps, kinds, torch.ones(1, 1))
    assert c[0, 0, 12, 2] == CONFLICT_FG_OVER_BG
    assert c[0, 0, 2, 2] == CONFLICT_BG_OVER_FG
    assert c[0, 0, 2, 10] == CONFLICT_NONE
    assert c[0, 0, 12, 10] == CONFLICT_NONE
    assert int((c > 0).sum()) == 8  # exactly the two 2x2 marks
    # Round 1 (no previous prediction): no conflicts at all.
    assert compute_conflict_map(prev, maps, kinds, torch.zeros(1, 1)).abs().sum() == 0


def test_crm_adds_the_embedding_of_each_conflict_value() -> None:
    crm = ContrastiveReasoning((5, 3))
    fine = torch.randn(1, 5, 8, 8)
    coarse = torch.randn(1, 3, 2, 2)
    conflict = torch.zeros(1, 1, 8, 8)
    conflict[..., 0, 0] = 1
    conflict[..., 7, 7] = 2
    out_fine, out_coarse = crm(conflict, [fine, coarse])
    e = crm.embeds[0].weight
    delta = out_fine - fine
    torch.testing.assert_close(delta[0, :, 0, 0], e[1])
    torch.testing.assert_close(delta[0, :, 7, 7], e[2])
    torch.testing.assert_close(delta[0, :, 3, 4], e[0])
    # The coarse level gets the area-weighted mixture: cell (0,0) holds 1 pixel of value 1 in 16.
    e2 = crm.embeds[1].weight
    torch.testing.assert_close((out_coarse - coarse)[0, :, 0, 0], (15 * e2[0] + e2[1]) / 16)
    # Integer-typed maps give the same result as float ones.
    torch.testing.assert_close(crm(conflict.long(), [fine, coarse])[0], out_fine)


def _decoder_inputs(batch: int = 2) -> tuple[torch.Tensor, ...]:
    return example_inputs("iscn_decoder", SMALL, batch=batch, seed=3)


def test_object_queries_ignore_prompts_and_padding_slots_are_ignored() -> None:
    model = build_iscn("tiny").eval()
    inputs = list(_decoder_inputs())
    feats, mfeats, maps, kinds, text, has_text, conflict, prev, has_prev = inputs
    with torch.no_grad():
        base = model.decoder(*inputs)
        # Other prompts (same conflict map): instance outputs unchanged, prompted mask changes.
        other = model.decoder(
            feats,
            mfeats,
            torch.rand_like(maps),
            (kinds + 1) % 6,
            -text,
            1 - has_text,
            conflict,
            prev,
            has_prev,
        )
        torch.testing.assert_close(other["instance_logits"], base["instance_logits"])
        torch.testing.assert_close(other["instance_class_logits"], base["instance_class_logits"])
        assert not torch.allclose(other["mask_logits"], base["mask_logits"])
        # Content of padding slots (kind 0) and of an unset text does not matter.
        maps2 = maps.clone()
        maps2[kinds == 0] = torch.rand_like(maps2[kinds == 0])
        text2 = torch.where(has_text > 0.5, text, torch.randn_like(text))
        padded = model.decoder(feats, mfeats, maps2, kinds, text2, has_text, conflict, prev, has_prev)
        torch.testing.assert_close(padded["mask_logits"], base["mask_logits"])


def test_promptless_call_gives_instances() -> None:
    model = build_iscn("tiny").eval()
    s = SMALL
    image = torch.rand(1, 3, s, s)
    nv = model.cfg.max_visual_prompts
    with torch.no_grad():
        out = model(
            image,
            torch.zeros(1, nv, s // 4, s // 4),
            torch.zeros(1, nv, dtype=torch.long),
            torch.zeros(1, 384),
            torch.zeros(1, 1),
            torch.zeros(1, 1, s // 4, s // 4),
            torch.zeros(1, 1, s // 4, s // 4),
            torch.zeros(1, 1),
        )
    assert out["instance_logits"].shape == (1, model.cfg.num_queries, s // 4, s // 4)
    assert out["instance_class_logits"].shape == (1, model.cfg.num_queries, 2)
    assert all(torch.isfinite(v).all() for v in out.values())


def test_previous_mask_gates_the_target_attention() -> None:
    model = build_iscn("tiny").eval()
    inputs = list(_decoder_inputs(batch=1))
    inputs[6] = torch.zeros_like(inputs[6])  # no conflicts
    inputs[7] = torch.zeros_like(inputs[7])
    inputs[7][..., :4, :4] = 1.0
    with torch.no_grad():
        inputs[8] = torch.zeros(1, 1)
        first = model.decoder(*inputs)["mask_logits"]
        inputs[8] = torch.ones(1, 1)
        later = model.decoder(*inputs)["mask_logits"]
    assert not torch.allclose(first, later)

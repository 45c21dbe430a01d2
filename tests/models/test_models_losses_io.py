"""Loss terms and the I/O spec conventions."""

from __future__ import annotations

import re

import pytest
import torch

from models import losses
from models.io_spec import EXPORTED_MODELS, all_model_io, example_inputs, model_io
from models.registry import PRESETS, build_model, family_of


def test_basic_loss_terms() -> None:
    a = torch.rand(2, 1, 32, 32)
    assert losses.gradient_loss(a, a) == 0
    assert losses.laplacian_loss(a, a) == 0
    target = torch.zeros(1, 100)
    pred = torch.zeros(1, 100)
    pred[0, :30] = 1.0  # 30 % wrong by 1
    assert losses.hard_l1(pred, target) == pytest.approx(1.0)
    logits = torch.full((1, 8, 8), -20.0)
    mask = torch.zeros(1, 8, 8)
    logits[:, :4], mask[:, :4] = 20.0, 1.0
    assert float(losses.dice_loss(logits, mask)) < 1e-3


def test_iscn_matching_prefers_the_right_assignment() -> None:
    nq, h = 4, 8
    gt = torch.zeros(1, 2, h, h)
    gt[0, 0, :4], gt[0, 1, 4:] = 1.0, 1.0
    logits = torch.full((1, nq, h, h), -10.0)
    logits[0, 2] = gt[0, 0] * 20 - 10  # query 2 predicts instance 0, query 0 instance 1
    logits[0, 0] = gt[0, 1] * 20 - 10
    cls = torch.zeros(1, nq, 2)
    cls[0, [0, 2], 1] = 5.0
    cls[0, [1, 3], 0] = 5.0
    out = {
        "mask_logits": logits[:, :1],
        "class_logits": torch.tensor([[0.0, 5.0]]),
        "instance_logits": logits,
        "instance_class_logits": cls,
    }
    good = losses.iscn_loss(out, gt[:, 1:2], torch.tensor([1]), gt, torch.ones(1, 2))
    swapped = dict(out, instance_class_logits=cls.flip(1))
    assert good < losses.iscn_loss(swapped, gt[:, 1:2], torch.tensor([1]), gt, torch.ones(1, 2))


@pytest.mark.parametrize("name", EXPORTED_MODELS)
def test_io_names_follow_the_pytorch_backend_convention(name: str) -> None:
    io = model_io(name, 320)
    for group in (io.inputs, io.outputs):
        for i, spec in enumerate(group):
            assert re.fullmatch(rf"[a-z_]+__{i}", spec.name), spec.name
    for spec, x in zip(io.inputs, example_inputs(name, 64, batch=3), strict=True):
        assert x.dtype == spec.torch_dtype
        assert tuple(x.shape) == (3, *model_io(name, 64).input(spec.base_name).dims)


def test_io_spec_sizes() -> None:
    io = all_model_io(512)
    assert io["iscn_decoder"].input("prompt_maps").dims[1:] == (128, 128)
    assert io["mrn"].output("alpha").dims == (1, 512, 512)
    assert io["instmatt"].input("masks").dims == (8, 512, 512)
    with pytest.raises(ValueError):
        model_io("mrn", 500)


@pytest.mark.parametrize("family", sorted({family_of(n) for n in EXPORTED_MODELS}))
def test_every_preset_builds(family: str) -> None:
    for preset in PRESETS:
        with torch.device("meta"):
            model = build_model(family, preset)
        n = sum(p.numel() for p in model.parameters())
        assert n > 0
    with torch.device("meta"):
        tiny = sum(p.numel() for p in build_model(family, "tiny").parameters())
    assert tiny < 2_500_000

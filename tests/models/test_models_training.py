"""A few optimiser steps on a fixed batch lower each model's paper loss."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from models import losses
from models.io_spec import example_inputs
from models.registry import build_model

SMALL = 64
B = 2


def _blob(batch: int, k: int = 1, seed: int = 0) -> torch.Tensor:
    """Soft-edged ellipses ``[batch,k,S,S]`` in [0,1] (a stand-in alpha)."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(SMALL).float(), torch.arange(SMALL).float(), indexing="ij")
    out = torch.zeros(batch, k, SMALL, SMALL)
    for b in range(batch):
        for i in range(k):
            cy, cx = (torch.rand(2, generator=g) * SMALL * 0.6 + SMALL * 0.2).tolist()
            r = float(torch.rand(1, generator=g)) * SMALL * 0.15 + SMALL * 0.1
            d = ((ys - cy) ** 2 + (xs - cx) ** 2).sqrt()
            out[b, i] = (r - d).clamp(-2, 2) / 4 + 0.5
    return out


def _iscn_case() -> tuple[torch.nn.Module, Callable[[torch.nn.Module], torch.Tensor]]:
    model = build_model("iscn")
    image = torch.rand(B, 3, SMALL, SMALL)
    _, _, maps, kinds, text, has_text, conflict, prev, has_prev = example_inputs(
        "iscn_decoder", SMALL, B, seed=2
    )
    target = (_blob(B, seed=1) > 0.5).float()
    instances = (_blob(B, k=3, seed=2) > 0.5).float()
    valid = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])

    def loss(m: torch.nn.Module) -> torch.Tensor:
        out = m(image, maps, kinds, text, has_text, conflict, prev, has_prev)
        return losses.iscn_loss(out, target, torch.tensor([1, 0]), instances, valid)

    return model, loss


def _mrn_case() -> tuple[torch.nn.Module, Callable[[torch.nn.Module], torch.Tensor]]:
    model = build_model("mrn")
    image = torch.rand(B, 3, SMALL, SMALL)
    gt = _blob(B, seed=3)

    def loss(m: torch.nn.Module) -> torch.Tensor:
        return losses.mrn_loss(m(image, (gt > 0.5).float()), gt)

    return model, loss


def _semat_case() -> tuple[torch.nn.Module, Callable[[torch.nn.Module], torch.Tensor]]:
    model = build_model("semat")
    image = torch.rand(B, 3, SMALL, SMALL)
    gt = _blob(B, seed=4)
    trimap = torch.where(gt <= 0.01, 0.0, torch.where(gt >= 0.99, 2.0, 1.0))
    box = torch.tensor([[4.0, 4.0, 60.0, 60.0], [10.0, 2.0, 50.0, 62.0]])

    def loss(m: torch.nn.Module) -> torch.Tensor:
        return losses.semat_loss(m(image, box), gt, trimap)

    return model, loss


def _smat_case() -> tuple[torch.nn.Module, Callable[[torch.nn.Module], torch.Tensor]]:
    model = build_model("smat")
    image = torch.rand(B, 3, SMALL, SMALL)
    gt = _blob(B, seed=5)
    prompt = torch.zeros(B, 1, SMALL, SMALL)
    prompt[0, :, 24:40, 24:40] = 1.0  # item 1 stays automatic

    def loss(m: torch.nn.Module) -> torch.Tensor:
        return losses.smat_loss(m(image, prompt), gt)

    return model, loss


def _instmatt_case() -> tuple[torch.nn.Module, Callable[[torch.nn.Module], torch.Tensor]]:
    model = build_model("instmatt")
    k = model.cfg.max_instances
    gt = _blob(B, k=k, seed=6)
    valid = torch.zeros(B, k)
    valid[0, :3] = 1
    valid[1, :2] = 1
    gt = gt * valid[:, :, None, None]
    fg = torch.rand(B, k, 3, SMALL, SMALL)
    bg = torch.rand(B, 3, SMALL, SMALL)
    a = gt.unsqueeze(2)
    image = ((a * fg).sum(1) + (1 - a.sum(1)) * bg).clamp(0, 1)

    def loss(m: torch.nn.Module) -> torch.Tensor:
        return losses.instmatt_loss(m(image, (gt > 0.5).float(), valid), gt, valid, image, fg, bg)

    return model, loss


CASES = {
    "iscn": _iscn_case,
    "mrn": _mrn_case,
    "semat": _semat_case,
    "smat": _smat_case,
    "instmatt": _instmatt_case,
}


@pytest.mark.parametrize("family", list(CASES))
def test_few_steps_lower_the_loss(family: str) -> None:
    torch.manual_seed(0)
    model, loss_fn = CASES[family]()
    model.train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    with torch.no_grad():
        torch.manual_seed(1)
        before = float(loss_fn(model))
    for _ in range(6):
        opt.zero_grad()
        loss = loss_fn(model)
        assert torch.isfinite(loss)
        loss.backward()
        opt.step()
    with torch.no_grad():
        torch.manual_seed(1)
        after = float(loss_fn(model))
    assert after < before, (family, before, after)

"""InstMatt: tri-masks, permutation equivariance over instances, padded slots."""

from __future__ import annotations

import torch

from models.instmatt import build_instmatt, tri_masks

SMALL = 64


def _inputs(k: int, n_valid: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    s = SMALL
    image = torch.rand(1, 3, s, s, generator=g)
    masks = torch.zeros(1, k, s, s)
    for i in range(k):
        y, x = (int(v) for v in torch.randint(0, s // 2, (2,), generator=g))
        masks[0, i, y : y + s // 3, x : x + s // 3] = 1.0
    valid = torch.zeros(1, k)
    valid[0, :n_valid] = 1.0
    return image, masks, valid


def test_tri_masks() -> None:
    masks = torch.zeros(1, 3, 4, 4)
    masks[0, 0, 0, :2] = 1
    masks[0, 1, 0, 1:3] = 1
    masks[0, 2] = 1  # padded slot: must not count
    tri = tri_masks(masks, torch.tensor([[1.0, 1.0, 0.0]]))
    assert tri[0, 0, 0, 0, 1] == 1 and tri[0, 0, 1, 0, 1] == 1  # target and the other overlap at (0,1)
    assert tri[0, 0, 2, 0, 1] == -1  # background = 1 - sum, not clipped
    assert tri[0, 0, 2, 3, 3] == 1 and tri[0, 1, 1, 3, 3] == 0


def test_refinement_is_permutation_equivariant() -> None:
    model = build_instmatt("tiny").eval()
    torch.nn.init.normal_(model.refiner.head.weight, std=0.1)  # make the refiner's effect non-zero
    k = model.cfg.max_instances
    image, masks, valid = _inputs(k, n_valid=5)
    perm = torch.randperm(k, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(image, masks, valid)
        out_p = model(image, masks[:, perm], valid[:, perm])
    for key in ("alpha", "trimatte"):
        torch.testing.assert_close(out_p[key], out[key][:, perm], atol=1e-5, rtol=1e-5)


def test_padded_slots_are_ignored_and_zero() -> None:
    model = build_instmatt("tiny").eval()
    torch.nn.init.normal_(model.refiner.head.weight, std=0.1)
    k = model.cfg.max_instances
    image, masks, valid = _inputs(k, n_valid=3)
    garbage = masks.clone()
    garbage[:, 3:] = torch.rand_like(garbage[:, 3:])
    with torch.no_grad():
        out = model(image, masks, valid)
        out_g = model(image, garbage, valid)
    torch.testing.assert_close(out_g["alpha"][:, :3], out["alpha"][:, :3], atol=1e-6, rtol=0)
    assert out["alpha"][:, 3:].abs().max() == 0
    assert out_g["trimatte"][:, 3:].abs().max() == 0
    # And the refiner does couple the valid instances: changing instance 1 changes instance 0.
    moved = masks.clone()
    moved[:, 1] = torch.roll(moved[:, 1], shifts=9, dims=-1)
    with torch.no_grad():
        out_m = model(image, moved, valid)
    assert not torch.allclose(out_m["alpha"][:, 0], out["alpha"][:, 0])

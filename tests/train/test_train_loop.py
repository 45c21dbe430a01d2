"""Short training runs: every family's task lowers its loss; checkpoints resume exactly; the end
of a run writes fp16 weights the export loads, with provenance and validation figures."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from models.export import build_for_export
from models.registry import build_model
from models.train.data import StepBatches
from models.train.loop import TrainConfig, Trainer, train, warmup_cosine
from models.train.tasks import FAMILIES

SIZE = 64


@pytest.fixture(scope="module")
def iscn_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An (untrained) ISCN state dict in the shipped fp16 format, for MRN and InstMatt."""
    torch.manual_seed(0)
    state = {k: v.half() if v.is_floating_point() else v for k, v in build_model("iscn").state_dict().items()}
    path = tmp_path_factory.mktemp("weights") / "iscn.pt"
    torch.save(state, path)
    return path


def _config(tmp_path: Path, family: str, iscn_weights: Path | None = None, **kw: object) -> TrainConfig:
    settings: dict[str, object] = {
        "size": SIZE,
        "batch_size": 2,
        "steps": 100,
        "pool_size": 4,
        "out": tmp_path / "runs",
        "weights_out": None,
        "iscn_weights": iscn_weights,
        "num_workers": 0,
        "threads": 1,
        "val_targets": 0,
        "warmup": 1,
        "log_every": 1,
    }
    settings.update(kw)
    return TrainConfig(family=family, **settings)  # type: ignore[arg-type]


@pytest.mark.parametrize("family", FAMILIES)
def test_a_few_steps_lower_the_loss(tmp_path: Path, iscn_weights: Path, family: str) -> None:
    trainer = Trainer(_config(tmp_path, family, iscn_weights, lr=2e-3))
    batch = StepBatches(trainer.pool, trainer.task.sampler, 2, 100, 0)[0]

    def loss() -> float:
        with torch.no_grad():
            value, _ = trainer.task.loss(batch, np.random.default_rng(0))
        return float(value)

    trainer.model.train()
    before = loss()
    for _ in range(8):
        value, logs = trainer.train_step(batch)
        assert math.isfinite(value) and math.isfinite(logs["grad_norm"])
    after = loss()
    assert after < before, (family, before, after)


@pytest.mark.parametrize("family", ["smat", "iscn"])
def test_resume_continues_exactly(tmp_path: Path, family: str) -> None:
    straight = Trainer(_config(tmp_path / "a", family, steps=4))
    straight.run()
    first = Trainer(_config(tmp_path / "b", family, steps=4, stop_at=2))
    assert first.run()["step"] == 2
    assert (tmp_path / "b" / "runs" / family / "last.pt").is_file()
    resumed = Trainer(_config(tmp_path / "b", family, steps=4, resume=True))
    assert resumed.run()["step"] == 4
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert straight.scheduler.get_last_lr() == resumed.scheduler.get_last_lr()
    sa, sb = straight.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    assert all(torch.equal(sa[i]["exp_avg"], sb[i]["exp_avg"]) for i in sa)


def test_a_finished_run_ships_fp16_weights_with_provenance(tmp_path: Path) -> None:
    weights = tmp_path / "weights"
    cfg = _config(tmp_path, "smat", steps=3, weights_out=weights, val_targets=2, val_sizes=(SIZE,))
    summary = train(cfg)
    assert summary["step"] == 3
    figures = summary["validation"][f"at_{SIZE}px"]
    assert {"box_iou", "box_sad", "click_iou", "auto_iou", "auto_sad"} <= set(figures)
    assert all(0.0 <= figures[k] <= 1.0 for k in figures if k.endswith("iou"))
    state = torch.load(weights / "smat.pt", weights_only=True)
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    provenance = json.loads((weights / "smat.json").read_text())
    assert provenance["steps"] == 3 and provenance["seed"] == 0
    assert (
        provenance["data"]["generator_seed"] == 0 and provenance["data"]["validation_seed_excluded"] == 90210
    )
    assert provenance["validation"][f"at_{SIZE}px"] == figures
    assert {"command", "git_commit", "batch_size", "optimizer", "wall_time_s", "final_train"} <= set(
        provenance
    )
    model, status, prov = build_for_export("smat", "tiny", weights_dir=weights)
    assert status == "trained" and prov == "smat.json"
    loaded = model.state_dict()
    assert torch.equal(
        loaded["decoder.matting_head.matting_convs.3.bias"],
        state["decoder.matting_head.matting_convs.3.bias"].float(),
    )


def test_a_time_budget_ends_the_run_with_a_full_cosine(tmp_path: Path) -> None:
    cfg = _config(tmp_path, "smat", steps=10**6, time_budget_s=0.5, warmup=2, checkpoint_every=10**6)
    summary = train(cfg)
    assert 2 < summary["step"] == summary["steps"] < 10**6
    log = (tmp_path / "runs" / "smat" / "log.jsonl").read_text().splitlines()
    lrs = [json.loads(line)["lr"] for line in log]
    assert lrs[-1] < 0.2 * max(lrs)


def test_warmup_cosine_schedule() -> None:
    f = warmup_cosine(10, 110, 0.02)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.51, abs=0.01)
    assert f(110) == pytest.approx(0.02) and f(500) == pytest.approx(0.02)

"""``matteserve train`` passes its options through to the trainer and writes checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from service.cli import app


def test_matteserve_train_runs_the_trainer(tmp_path: Path) -> None:
    args = ["train", "smat", "--steps", "2", "--size", "64", "--batch-size", "2", "--out", str(tmp_path)]
    args += ["--no-weights", "--val-targets", "0", "--num-workers", "0", "--threads", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "smat" / "last.pt").is_file()
    log = [json.loads(line) for line in (tmp_path / "smat" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 2


def test_matteserve_train_rejects_an_unknown_family(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", "resnet", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert not any(tmp_path.iterdir())

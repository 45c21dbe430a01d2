"""``matteserve calibrate-auto``: auto's routing table comes from measurements."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from service.cli import app
from service.pipelines.routing import load_routes


def test_calibration_picks_the_best_trained_pipeline_per_situation(tmp_path: Path) -> None:
    out = tmp_path / "auto_routes.json"
    table = tmp_path / "auto_routes.md"
    result = CliRunner().invoke(
        app,
        [
            "calibrate-auto",
            "--data",
            "synthetic:1@192",
            "--limit",
            "2",
            "--out",
            str(out),
            "--markdown-out",
            str(table),
        ],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert set(document["situations"]) == {"none", "box", "click", "scribble", "text", "mix"}
    for situation, entry in document["situations"].items():
        candidates = [c for c in entry["candidates"] if c["trained"] and c["final"] is not None]
        if not candidates:
            assert situation not in document["routes"]
            continue
        best = min(candidates, key=lambda c: (c["final"]["sad"], -c["final"]["iou"]))
        assert document["routes"][situation] == entry["chosen"] == best["model"]
    assert document["routes"]["box"] in {"classical", "dfimat", "semat", "smat"}
    assert "| box | box ×1 | classical |" in table.read_text()
    # The service reads the same file.
    routes = load_routes(None, out)
    assert all(routes[k] == v for k, v in document["routes"].items())

"""``matteserve calibrate-auto``: auto's routing table comes from measurements, and never routes
to a learned pipeline that loses to the classical engine on any of the data sets."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from service.cli import app
from service.evaluation.routing import Candidate, DataSet, choose
from service.evaluation.runner import ModelSummary
from service.pipelines.routing import load_routes


def _score(figures: dict, soft: bool) -> float:
    return figures["sad"] if soft else 1.0 - figures["iou"]


def test_calibration_picks_by_the_rule_and_the_service_reads_it(tmp_path: Path) -> None:
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
    assert set(document["situations"]) == {"none", "box", "click", "scribble", "text", "marks", "mix"}
    for situation, entry in document["situations"].items():
        soft = {d["name"]: d["scored_by"] == "sad" for d in entry["data"]}
        usable = {c["model"]: c for c in entry["candidates"] if c["trained"]}
        if not usable:
            assert situation not in document["routes"]
            continue
        chosen = document["routes"][situation]
        assert chosen == entry["chosen"] and chosen in usable
        if "classical" in usable and chosen != "classical":
            for data, figures in usable[chosen]["per_data"].items():
                base = usable["classical"]["per_data"][data]["final"]
                assert _score(figures["final"], soft[data]) < _score(base, soft[data])
    assert "| box | box ×1 | synthetic:1@192 | classical |" in table.read_text()
    routes = load_routes(None, out)  # the service reads the same file
    assert all(routes[k] == v for k, v in document["routes"].items())


def _candidate(model: str, per_data: dict[str, tuple[float, float]]) -> Candidate:
    return Candidate(
        model,
        True,
        {
            name: ModelSummary(model, 1, 0, [{"sad": sad, "iou": iou_}], None, None)
            for name, (sad, iou_) in per_data.items()
        },
    )


def test_a_learned_pipeline_must_beat_classical_on_every_data_set() -> None:
    composites = DataSet("composites", [], soft=True)
    coco = DataSet("coco", [], soft=False)
    classical = _candidate("classical", {"composites": (10.0, 0.80), "coco": (5.0, 0.60)})
    wins_one = _candidate("dfimat", {"composites": (8.0, 0.82), "coco": (6.0, 0.55)})
    wins_both = _candidate("semat", {"composites": (9.0, 0.81), "coco": (4.0, 0.65)})
    assert choose([classical, wins_one], [composites, coco]) == "classical"
    assert choose([classical, wins_one, wins_both], [composites, coco]) == "semat"
    # Without a classical candidate (text, no prompt), the best mean rank wins; here each wins one
    # set, so the first set's figure breaks the tie (SAD 8 < 9).
    assert choose([wins_one, wins_both], [composites, coco]) == "dfimat"
    assert choose([wins_one, wins_both], [coco, composites]) == "semat"
    assert choose([wins_one], [composites]) == "dfimat"


def test_a_situation_left_without_a_route_is_named(tmp_path: Path) -> None:
    """A model repository without networks leaves the classical engine alone: the situations it
    cannot serve (no prompt, text) get no route, and the table says so instead of leaving them
    out silently. A real run of the engine on one small synthetic scene."""
    empty = tmp_path / "no_networks"
    empty.mkdir()
    out = tmp_path / "auto_routes.json"
    result = CliRunner().invoke(
        app,
        ["calibrate-auto", "--data", "synthetic:1@96", "--out", str(out)],
        env={"COLUMNS": "1000", "MATTESERVE_MODEL_REPOSITORY": str(empty)},
    )
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert document["routes"] == dict.fromkeys(("click", "scribble", "box", "marks"), "classical")
    assert document["unrouted"] == dict.fromkeys(("none", "text", "mix"), "no pipeline here can serve it")
    for situation in ("none", "text", "mix"):
        assert f"no route for {situation}: no pipeline here can serve it" in result.output

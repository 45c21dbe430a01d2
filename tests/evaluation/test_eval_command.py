"""``matteserve eval`` end to end: simulated users through the service pipelines."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from models.data.ccp import VALIDATION, split_of
from service.cli import app
from service.evaluation.samples import parse_source, samples
from tests.support.images import two_objects
from tests.support.shared_data import require


def test_eval_on_synthetic_scenes_writes_table_json_and_plot(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--data",
            "synthetic:2@192",
            "--model",
            "classical",
            "--protocol",
            "box",
            "--rounds",
            "3",
            "--limit",
            "3",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "eval_box.json").read_text())
    assert report["config"]["protocol"] == "box" and report["config"]["targets"] == 3
    summary = report["models"][0]
    assert summary["model"] == "classical" and summary["failures"] == 0
    assert len(summary["per_round"]) == 3
    first, last = summary["per_round"][0], summary["per_round"][-1]
    assert last["sad"] >= 0 and 0 <= last["mse"] <= 1 and 0 <= last["iou"] <= 1
    assert last["iou"] >= first["iou"] - 0.05, "corrective clicks should not make things much worse"
    assert (tmp_path / "eval_box.png").stat().st_size > 10_000
    assert "SAD" in result.output


def test_eval_reads_an_image_alpha_folder_and_reports_unusable_prompts(tmp_path: Path) -> None:
    image, target, _ = two_objects(180, 240)
    (tmp_path / "data" / "image").mkdir(parents=True)
    (tmp_path / "data" / "alpha").mkdir()
    cv2.imwrite(str(tmp_path / "data" / "image" / "one.png"), image[..., ::-1])
    cv2.imwrite(str(tmp_path / "data" / "alpha" / "one.png"), np.round(target * 255).astype(np.uint8))
    ok = CliRunner().invoke(
        app,
        [
            "eval",
            "--data",
            str(tmp_path / "data"),
            "--model",
            "classical",
            "--protocol",
            "click",
            "--rounds",
            "2",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert ok.exit_code == 0, ok.output
    summary = json.loads((tmp_path / "o" / "eval_click.json").read_text())["models"][0]
    assert summary["samples"] == 1 and summary["per_round"][-1]["iou"] > 0.8
    # Text prompts cannot be used by the classical engine: counted as failures, not crashes.
    text = CliRunner().invoke(
        app,
        [
            "eval",
            "--data",
            str(tmp_path / "data"),
            "--model",
            "classical",
            "--protocol",
            "text",
            "--rounds",
            "1",
            "--out",
            str(tmp_path / "t"),
        ],
    )
    assert text.exit_code == 0, text.output
    summary = json.loads((tmp_path / "t" / "eval_text.json").read_text())["models"][0]
    assert summary["failures"] == 1 and "unsupported_prompt" in summary["failure_examples"][0]


def _eval(data: str, out: Path, *extra: str) -> dict:
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--data",
            data,
            "--model",
            "classical",
            "--protocol",
            "box",
            "--rounds",
            "1",
            "--out",
            str(out),
            *extra,
        ],
    )
    assert result.exit_code == 0, result.output
    return json.loads((out / "eval_box.json").read_text())


def test_eval_reads_per_image_instance_folders_and_counts_a_broken_photo_as_failed(tmp_path: Path) -> None:
    """The COCO persons layout (``image/<id>.jpg`` + ``alpha/<id>/<k>.png``): one unreadable photo
    is a failed sample with its error, and the run goes on."""
    image, target, other = two_objects(160, 200)
    root = tmp_path / "coco"
    for name in ("a", "b"):
        (root / "alpha" / name).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "alpha" / name / "0.png"), np.round(target * 255).astype(np.uint8))
        cv2.imwrite(str(root / "alpha" / name / "1.png"), np.round(other * 255).astype(np.uint8))
    (root / "image").mkdir()
    cv2.imwrite(str(root / "image" / "a.jpg"), image[..., ::-1])
    (root / "image" / "b.jpg").write_bytes(b"not a jpeg at all")
    report = _eval(str(root), tmp_path / "out", "--max-instances", "2")
    summary = report["models"][0]
    assert summary["samples"] == 3 and summary["failures"] == 1
    assert any("unreadable" in e for e in summary["failure_examples"])
    assert summary["per_round"][0]["n"] == 2


def test_eval_reports_photos_without_a_target_and_runs_each_model_once(tmp_path: Path) -> None:
    """A multi-instance folder where photos lack an alpha folder, have an empty one or only an
    empty alpha: the run goes on, says which photos gave no target, and a model named twice
    (with spaces) is one row."""
    image, target, other = two_objects(160, 200)
    root = tmp_path / "coco"
    (root / "image").mkdir(parents=True)
    for name in ("a", "empty_folder", "no_folder", "zero"):
        cv2.imwrite(str(root / "image" / f"{name}.jpg"), image[..., ::-1])
    for name, alphas in (("a", (target, other)), ("empty_folder", ()), ("zero", (np.zeros_like(target),))):
        (root / "alpha" / name).mkdir(parents=True)
        for k, alpha in enumerate(alphas):
            cv2.imwrite(str(root / "alpha" / name / f"{k}.png"), np.round(alpha * 255).astype(np.uint8))
    out = tmp_path / "out"
    args = ["--data", str(root), "--model", "classical, classical", "--max-instances", "2", "--rounds", "1"]
    result = CliRunner().invoke(app, ["eval", *args, "--out", str(out)], env={"COLUMNS": "1000"})
    assert result.exit_code == 0, result.output
    report = json.loads((out / "eval_box.json").read_text())
    assert report["config"]["models"] == ["classical"] and len(report["models"]) == 1
    assert report["models"][0]["samples"] == 2 and report["config"]["targets"] == 2
    assert report["config"]["skipped"] == [
        {"name": "empty_folder", "reason": "no alpha"},
        {"name": "no_folder", "reason": "no alpha"},
        {"name": "zero", "reason": "no target of at least 16 px"},
    ]
    assert "skipped 3 photos" in result.output and "zero (no target of at least 16 px)" in result.output


def test_eval_filters_by_sources_csv_and_scores_the_trimap_region(tmp_path: Path) -> None:
    image, target, _ = two_objects(160, 200)
    root = tmp_path / "crops"
    for folder in ("image", "alpha", "trimap"):
        (root / folder).mkdir(parents=True)
    trimap = np.full(target.shape, 128, np.uint8)
    trimap[target > 0.99] = 255
    trimap[cv2.dilate((target > 0).astype(np.uint8), np.ones((9, 9), np.uint8)) == 0] = 0
    for name in ("keep", "drop"):
        cv2.imwrite(str(root / "image" / f"{name}.png"), image[..., ::-1])
        cv2.imwrite(str(root / "alpha" / f"{name}.png"), np.round(target * 255).astype(np.uint8))
        cv2.imwrite(str(root / "trimap" / f"{name}.png"), trimap)
    (root / "sources.csv").write_text("id,human_content\nkeep,1\ndrop,0\n")
    report = _eval(f"{root}?human_content=1", tmp_path / "out")
    summary = report["models"][0]
    assert summary["samples"] == 1 and summary["failures"] == 0
    last = summary["per_round"][-1]
    assert 0 <= last["sad_unknown"] <= last["sad"]


def test_eval_waits_for_the_text_encoder_before_its_first_text_round(tmp_path: Path) -> None:
    """A server loads MiniLM in the background and answers ``model_not_ready`` meanwhile; an
    evaluation must not race that load, or its first samples count as failed."""
    args = ["--data", "synthetic:1@192", "--model", "dfimat", "--protocol", "mix", "--rounds", "1"]
    result = CliRunner().invoke(app, ["eval", *args, "--limit", "1", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "eval_mix.json").read_text())["models"][0]
    assert summary["samples"] == 1 and summary["failures"] == 0, summary["failure_examples"]


@pytest.mark.parametrize("kind", ["ccp-photos", "ccp-scenes", "ccp-closeups"])
def test_the_ccp_development_sets_come_from_its_validation_split(kind: str) -> None:
    root = require("datasets", "clothing-co-parsing")
    found = list(samples(f"{kind}:2@256?root={root}", max_instances=2))
    assert found and all(s.error is None for s in found)
    for sample in found:
        assert max(sample.image.shape[:2]) == 256 and sample.alpha.shape == sample.image.shape[:2]
        assert sample.alpha.dtype == np.float32 and 0.0 < sample.alpha.mean() < 1.0
    ids = {s.name.split("#")[0].removeprefix("ccp-") for s in found}
    if kind == "ccp-photos":  # the photos themselves: their ids are validation ids, never training ones
        assert all(split_of(i) == VALIDATION for i in ids), ids
    assert parse_source(f"{kind}:3") == (kind, 3, 640)


def test_eval_runs_on_a_ccp_development_set(tmp_path: Path) -> None:
    root = require("datasets", "clothing-co-parsing")
    args = ["eval", "--data", f"ccp-photos:1@256?root={root}", "--protocol", "click", "--rounds", "2"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "eval_click.json").read_text())["models"][0]
    assert summary["failures"] == 0 and len(summary["per_round"]) == 2

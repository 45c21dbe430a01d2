"""The evaluation commands refuse wrong arguments before loading a model or evaluating anything: a
one-line usage error (exit code 2), never a traceback and never a run that ends in one."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from service.cli import app
from service.evaluation.runner import model_names
from tests.support.images import two_objects


@pytest.fixture(autouse=True)
def nothing_is_computed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every case here must stop before the models are loaded."""

    async def build_registry(*args: object, **kwargs: object) -> None:
        raise AssertionError("the command went on to load the models")

    monkeypatch.setattr("service.pipelines.factory.build_registry", build_registry)


def folder(root: Path, *, sources: str | None = None) -> Path:
    """One photo with one person, in the image/ + alpha/ layout."""
    image, target, _ = two_objects(64, 80)
    (root / "image").mkdir(parents=True)
    (root / "alpha").mkdir()
    cv2.imwrite(str(root / "image" / "a.png"), image[..., ::-1])
    cv2.imwrite(str(root / "alpha" / "a.png"), np.round(target * 255).astype(np.uint8))
    if sources is not None:
        (root / "sources.csv").write_text(sources)
    return root


def refused(args: list[str], option: str) -> str:
    result = CliRunner().invoke(app, args, env={"COLUMNS": "1000"})  # one line, as a terminal shows it
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert f"Invalid value for '{option}'" in result.output, result.output
    return result.output


COMMANDS = ["eval", "eval-stages", "eval-instances", "calibrate-auto"]


def _bad_data(tmp_path: Path) -> dict[str, str]:
    """Wrong ``--data`` values, each with what the message must say."""
    data = folder(tmp_path / "data", sources="id,human_content\na,1\n")
    plain = folder(tmp_path / "plain")
    (tmp_path / "bare").mkdir()
    return {
        str(tmp_path / "missing"): "no such folder",
        "synthetic:abc": "N must be",
        "synthetic:1@abc": "SIZE must be",
        "ccp-photos:abc": "N must be",
        str(tmp_path / "bare"): "no image folder",
        f"{plain}?human_content=1": "sources.csv",
        f"{data}?nothing=1": "no column 'nothing'",
        f"{data}?human_content": "column=value",
    }


@pytest.mark.parametrize("command", COMMANDS)
def test_wrong_data_is_a_usage_error_in_every_command(command: str, tmp_path: Path) -> None:
    for spec, message in _bad_data(tmp_path).items():
        output = refused([command, "--data", spec], "--data")
        assert message in output, (spec, output)


@pytest.mark.parametrize("command", ["eval", "eval-stages", "calibrate-auto"])
def test_a_missing_ccp_clone_says_where_it_looked(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("service.evaluation.samples.CCP_ROOT", tmp_path / "clothing-co-parsing")
    output = refused([command, "--data", "ccp-photos:2"], "--data")
    assert f"no Clothing Co-Parsing clone at {tmp_path / 'clothing-co-parsing'}" in output
    assert "ccp-photos:N?root=PATH" in output


def test_eval_instances_needs_a_folder_with_photos(tmp_path: Path) -> None:
    assert "reads a folder" in refused(["eval-instances", "--data", "synthetic:2"], "--data")
    assert "reads a folder" in refused(["eval-instances", "--data", "ccp-photos:2"], "--data")
    (tmp_path / "empty" / "image").mkdir(parents=True)
    (tmp_path / "empty" / "alpha").mkdir()
    assert "no samples" in refused(["eval-instances", "--data", str(tmp_path / "empty")], "--data")
    data = folder(tmp_path / "data", sources="id,human_content\na,1\n")
    assert "no samples" in refused(["eval-instances", "--data", f"{data}?human_content=0"], "--data")


def _outputs(tmp_path: Path) -> list[tuple[list[str], str]]:
    """Commands whose output path cannot be written, with the option to blame."""
    a_file = tmp_path / "a_file"
    a_file.write_text("in the way")
    taken = tmp_path / "taken"
    (taken / "eval_box.json").mkdir(parents=True)
    data = str(folder(tmp_path / "data"))
    return [
        (["eval", "--data", "synthetic:1@96", "--out", str(a_file)], "--out"),
        (["eval", "--data", "synthetic:1@96", "--out", str(a_file / "sub")], "--out"),
        (["eval", "--data", "synthetic:1@96", "--out", str(taken)], "--out"),
        (
            ["eval-stages", "--data", "synthetic:1@96", "--markdown-out", str(a_file / "t.md")],
            "--markdown-out",
        ),
        (["eval-stages", "--data", "synthetic:1@96", "--markdown-out", str(tmp_path)], "--markdown-out"),
        (["eval-instances", "--data", data, "--out", str(tmp_path)], "--out"),
        (["eval-instances", "--data", data, "--out", str(a_file / "x.json")], "--out"),
        (["calibrate-auto", "--data", "synthetic:1@96", "--out", str(a_file / "r.json")], "--out"),
        (["calibrate-auto", "--data", "synthetic:1@96", "--out", str(tmp_path)], "--out"),
        (
            [
                "calibrate-auto",
                "--data",
                "synthetic:1@96",
                "--out",
                str(tmp_path / "r.json"),
                "--markdown-out",
                str(tmp_path),
            ],
            "--markdown-out",
        ),
    ]


def test_an_output_path_that_cannot_be_written_is_refused_before_the_run(tmp_path: Path) -> None:
    for args, option in _outputs(tmp_path):
        refused(args, option)
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("model", ["nosuch", "", " , ", "classical,nosuch", "dfimat, Classical"])
def test_an_unknown_model_is_a_usage_error(model: str) -> None:
    refused(["eval", "--data", "synthetic:1@96", "--model", model], "--model")


def test_model_names_are_stripped_and_each_given_once() -> None:
    assert model_names("dfimat, classical") == ["dfimat", "classical"]
    assert model_names("classical,classical, classical") == ["classical"]
    assert model_names("auto,smat,") == ["auto", "smat"]


@pytest.mark.parametrize("command", ["eval", "eval-stages", "calibrate-auto"])
@pytest.mark.parametrize("limit", ["0", "-1"])
def test_limit_must_be_at_least_one(command: str, limit: str) -> None:
    refused([command, "--data", "synthetic:2@96", "--limit", limit], "--limit")


def test_calibrating_on_data_that_cannot_be_read_writes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "bad"
    (root / "image").mkdir(parents=True)
    (root / "alpha").mkdir()
    for name in ("a", "b"):
        (root / "image" / f"{name}.png").write_bytes(b"not a png")
        cv2.imwrite(str(root / "alpha" / f"{name}.png"), np.full((8, 8), 255, np.uint8))
    shipped = tmp_path / "auto_routes.json"
    shipped.write_text('{"routes": {"box": "classical"}}\n')
    output = refused(["calibrate-auto", "--data", str(root), "--out", str(shipped)], "--data")
    assert "could be read" in output
    assert shipped.read_text() == '{"routes": {"box": "classical"}}\n'

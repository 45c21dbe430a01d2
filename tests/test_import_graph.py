"""The import graph keeps the design's shape: ``lint-imports`` checks the contracts of
``pyproject.toml`` (service layers routes -> serving -> pipelines -> backends/engines, the
networks and schemas independent of the service, no cycles between sibling modules)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from service.process import REPO

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_import_graph_keeps_every_contract() -> None:
    done = _lint()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 kept, 0 broken" in done.stdout


def test_the_linter_sees_an_arrow_running_back_up(tmp_path: Path) -> None:
    """The same tool, told that pipelines sit above serving, finds serving's import of the
    pipelines: the contracts above are checked against this code, not vacuously kept."""
    config = tmp_path / "upside_down.toml"
    config.write_text(
        "[tool.importlinter]\n"
        'root_packages = ["service"]\n'
        "[[tool.importlinter.contracts]]\n"
        'name = "upside down"\n'
        'type = "layers"\n'
        'layers = ["service.pipelines", "service.serving"]\n'
    )
    done = _lint("--config", str(config))
    assert done.returncode == 1
    assert "service.serving -> service.pipelines" in done.stdout

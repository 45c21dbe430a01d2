"""Which pipeline ``model=auto`` runs for a given set of prompt kinds.

The table maps a prompt situation to a pipeline: ``none`` (no prompt: automatic matting),
one prompt kind (``click``, ``scribble``, ``box``, ``text``), ``marks`` (several kinds without
text: a box refined by clicks or scribbles, the usual session) or ``mix`` (several kinds,
text among them). It is configuration, decided by the evaluation figures: the
evaluation harness writes it next to the shipped weights (``triton_repo/auto_routes.json``)
and ``MATTESERVE_AUTO_ROUTES`` may override it (a path to such a JSON file, or inline
``kind=pipeline,...`` pairs). A pipeline that is untrained, not ready or cannot use all the
prompt kinds present is never chosen; then the first usable pipeline of ``FALLBACK_ORDER`` is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import get_args

from schemas.prompts import PromptKind
from schemas.sessions import PipelineName

SITUATIONS = ("none", "click", "scribble", "box", "text", "marks", "mix")
DEFAULT_ROUTES: dict[str, str] = {
    "none": "smat",
    "click": "classical",
    "scribble": "classical",
    "box": "classical",
    "text": "dfimat",
    "marks": "classical",
    "mix": "dfimat",
}
FALLBACK_ORDER = ("dfimat", "smat", "semat", "classical")


def situation(kinds: Iterable[PromptKind]) -> str:
    """The routing-table row for a set of prompt kinds."""
    present = set(kinds)
    if not present:
        return "none"
    if len(present) == 1:
        return next(iter(present))
    return "mix" if "text" in present else "marks"


def load_routes(spec: str | None, default_file: Path | None) -> dict[str, str]:
    """Build the routing table: defaults, then ``default_file`` if it exists, then ``spec``.
    Raises ``ValueError`` (naming ``MATTESERVE_AUTO_ROUTES`` or the file) for an entry that
    names no situation or no pipeline, or a file that cannot be read as such a table: a typo
    must not silently send users to the fallback."""
    routes = dict(DEFAULT_ROUTES)
    if default_file is not None and default_file.is_file():
        routes.update(_from_file(default_file, str(default_file)))
    if spec:
        path = Path(spec)
        if path.suffix == ".json" or path.is_file():
            routes.update(_from_file(path, f"MATTESERVE_AUTO_ROUTES ({spec})"))
        else:
            for pair in spec.split(","):
                kind, sep, name = (part.strip() for part in pair.partition("="))
                if not sep:
                    raise ValueError(f"MATTESERVE_AUTO_ROUTES: bad entry {pair!r}; use situation=pipeline")
                routes.update(_checked({kind: name}, "MATTESERVE_AUTO_ROUTES"))
    return routes


def _from_file(path: Path, where: str) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
        table = data.get("routes", data) if isinstance(data, dict) else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{where}: cannot read a routing table from {str(path)!r}: {exc}") from None
    if not isinstance(table, dict):
        raise ValueError(f"{where}: {str(path)!r} holds no situation -> pipeline table")
    return _checked(table, where)


def _checked(table: dict[object, object], where: str) -> dict[str, str]:
    """``table`` as situation -> pipeline, each checked against the known names."""
    pipelines = get_args(PipelineName)
    for kind, name in table.items():
        if kind not in SITUATIONS:
            raise ValueError(f"{where}: unknown situation {kind!r}; one of {', '.join(SITUATIONS)}")
        if name not in pipelines:
            raise ValueError(f"{where}: unknown pipeline {name!r} for {kind}; one of {', '.join(pipelines)}")
    return {str(kind): str(name) for kind, name in table.items()}

"""Parsing JSON that arrives inside a form field or a WebSocket frame (not a JSON body,
which FastAPI parses itself).

``pydantic_core.from_json`` rather than ``json.loads``: it refuses nesting deeper than a
fixed limit with an error instead of raising ``RecursionError``, and it refuses lone UTF-16
surrogates (``"\\ud800"``), which ``json.loads`` accepts and which then fail to serialise
when an answer echoes them back.
"""

from __future__ import annotations

from typing import Any

import pydantic_core

from service.errors import BadInput


def parse_json(text: str | bytes, what: str) -> Any:
    """Parse ``text`` as JSON; ``BadInput`` (400 ``invalid_json``) naming ``what`` otherwise."""
    try:
        return pydantic_core.from_json(text, allow_inf_nan=True)
    except ValueError as exc:
        raise BadInput(f"{what} is not valid JSON: {exc}.", code="invalid_json") from exc

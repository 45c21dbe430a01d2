"""Interaction protocols of the DFIMat user simulator.

A protocol says which prompts the simulated user gives in round 1 from the ground truth
(a box, a text description, both, or none), and how every round corrects the previous
prediction (3 clicks, 2 scribbles, or either drawn at random per round). Protocols:

* ``click``: each round, from round 1 (against an empty prediction), adds 3 clicks.
* ``scribble``: each round, from round 1, adds 2 scribbles.
* ``box``: round 1 is the ground-truth box; later rounds add 3 clicks.
* ``text``: round 1 is the instance's description; later rounds add 3 clicks.
* ``mix``: round 1 is box + text; each later round adds 3 clicks or 2 scribbles (random).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Correction = Literal["click", "scribble", "random"]
ProtocolName = Literal["box", "click", "scribble", "text", "mix"]


@dataclass(frozen=True)
class ProtocolSpec:
    """``first_round``: prompt kinds taken from the ground truth in round 1; ``corrections``:
    what each round adds; ``correct_first_round``: whether round 1 also adds corrections
    (placed against an empty prediction, i.e. inside the target)."""

    name: str
    first_round: tuple[Literal["box", "text"], ...]
    corrections: Correction
    correct_first_round: bool


PROTOCOLS: dict[str, ProtocolSpec] = {
    "click": ProtocolSpec("click", (), "click", True),
    "scribble": ProtocolSpec("scribble", (), "scribble", True),
    "box": ProtocolSpec("box", ("box",), "click", False),
    "text": ProtocolSpec("text", ("text",), "click", False),
    "mix": ProtocolSpec("mix", ("box", "text"), "random", False),
}


def get_protocol(protocol: str | ProtocolSpec) -> ProtocolSpec:
    """The spec of a protocol name (or the spec itself)."""
    if isinstance(protocol, ProtocolSpec):
        return protocol
    try:
        return PROTOCOLS[protocol]
    except KeyError:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}") from None

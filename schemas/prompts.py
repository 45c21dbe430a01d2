"""Prompt objects of the wire protocol.

Coordinates are in original image pixels, origin top-left, x to the right, y down.
The four prompt kinds form a discriminated union on ``type``. Structural checks live
here (types, required fields, bounded sizes); checks that need the image (coordinates
in range, non-inverted boxes, finite numbers) are the service's, so that they answer
400 naming the offending prompt rather than a schema error.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat

MAX_SCRIBBLE_POINTS = 4096
MAX_TEXT_CHARS = 300

Label = Literal["fg", "bg"]
# A JSON number (an integer is taken as a float); the string "5" or true is refused (422) rather
# than coerced, as a client sending them has a bug to hear about.
Coordinate = StrictFloat


class _Prompt(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClickPrompt(_Prompt):
    """A single click: ``label`` says whether the pixel belongs to the target (fg) or not (bg)."""

    type: Literal["click"] = "click"
    x: Coordinate
    y: Coordinate
    label: Label = "fg"


class ScribblePrompt(_Prompt):
    """A polyline of ``points`` ([x, y] pairs) drawn with a brush of ``radius`` pixels."""

    type: Literal["scribble"] = "scribble"
    points: list[tuple[Coordinate, Coordinate]] = Field(max_length=MAX_SCRIBBLE_POINTS)
    label: Label = "fg"
    radius: Coordinate = 4.0


class BoxPrompt(_Prompt):
    """An axis-aligned box around the target: (x0, y0) top-left, (x1, y1) bottom-right."""

    type: Literal["box"] = "box"
    x0: Coordinate
    y0: Coordinate
    x1: Coordinate
    y1: Coordinate


class TextPrompt(_Prompt):
    """A description of the target, e.g. "the woman in the red coat"."""

    type: Literal["text"] = "text"
    text: str = Field(max_length=MAX_TEXT_CHARS)


Prompt = Annotated[
    ClickPrompt | ScribblePrompt | BoxPrompt | TextPrompt,
    Field(discriminator="type"),
]

PromptKind = Literal["click", "scribble", "box", "text"]

"""Responses of the model listing, one-shot and instance routes."""

from __future__ import annotations

from pydantic import BaseModel, Field

from schemas.prompts import PromptKind
from schemas.sessions import PipelineName


class NetworkStatus(BaseModel):
    """One exported network a pipeline runs (a Triton model)."""

    name: str
    ready: bool
    weights: str = Field(description='"trained", "untrained" or "missing".')
    preset: str | None = Field(
        None,
        description='Network size: "tiny" (the shipped weights), "paper" (the papers\' scale) or "parity".',
    )
    origin: str | None = Field(
        None,
        description='"ours" (trained by this project; provenance in models/weights/) or "official" '
        "(imported from the authors' released checkpoint).",
    )
    source: str | None = Field(
        None, description="For official weights: the authors' file name and its sha256."
    )
    licence: str | None = Field(None, description="The licence of the weights, as their authors state it.")


class ModelInfo(BaseModel):
    """A pipeline users can choose with ``model``."""

    name: PipelineName
    description: str
    backend: str = Field(description='"local" (in-process TorchScript), "triton", or "none" (weight-free).')
    ready: bool
    trained: bool = Field(description="False while any of its networks holds untrained initial weights.")
    prompt_kinds: list[PromptKind]
    automatic: bool = Field(description="Whether it runs with no prompt at all.")
    multi_round: bool
    networks: list[NetworkStatus] = Field(default_factory=list)
    detail: str | None = None


class InstanceMattingInfo(BaseModel):
    """Status of automatic human instance matting (``POST /v1/instances``)."""

    description: str
    backend: str
    ready: bool
    trained: bool
    networks: list[NetworkStatus] = Field(default_factory=list)


class ModelsResponse(BaseModel):
    """Answer to ``GET /v1/models``: the pipelines, what ``auto`` picks per prompt situation
    (``none`` = no prompt, a prompt kind, ``marks`` = box + clicks/scribbles, ``mix`` = several
    kinds with text), and instance matting's status."""

    models: list[ModelInfo]
    auto: dict[str, PipelineName]
    instances: InstanceMattingInfo | None = None


class InstanceMatte(BaseModel):
    """One human instance found by ``POST /v1/instances``."""

    id: int
    score: float
    box: tuple[int, int, int, int] = Field(
        description="x0, y0, x1, y1 of the alpha > 0 region (x1, y1 exclusive)."
    )
    alpha_png_base64: str


class InstancesResponse(BaseModel):
    width: int
    height: int
    instances: list[InstanceMatte]
    timings_ms: dict[str, float] = Field(default_factory=dict)


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)

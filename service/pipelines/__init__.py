"""Matting pipelines (``model`` on the wire) and the registry that resolves ``auto``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from schemas.prompts import Prompt
from service.errors import ApiError, BadInput, ModelNotReady, Unavailable, UnsupportedPrompt
from service.pipelines.base import FeatureCache, Pipeline, RoundInput, RoundOutput, Timer
from service.pipelines.routing import FALLBACK_ORDER, situation

if TYPE_CHECKING:
    from models.text import MiniLMEncoder
    from service.backends import InferenceBackend
    from service.pipelines.instances import InstanceMatting

__all__ = [
    "FeatureCache",
    "Pipeline",
    "PipelineRegistry",
    "RoundInput",
    "RoundOutput",
    "Timer",
    "not_ready_error",
]
log = logging.getLogger(__name__)


class PipelineRegistry:
    """The pipelines this process serves, and the ``auto`` routing table."""

    def __init__(
        self,
        pipelines: Sequence[Pipeline],
        routes: dict[str, str],
        backend: InferenceBackend | None = None,
        instances: InstanceMatting | None = None,
        text: MiniLMEncoder | None = None,
    ) -> None:
        self.pipelines = {p.name: p for p in pipelines}
        self.routes = routes
        self.backend = backend
        self.instances = instances
        self.text = text

    async def backend_checks(self) -> dict[str, str]:
        """Readiness of the inference backend and of the text encoder (empty when only
        weight-free pipelines run): ``ok`` or a reason."""
        checks = await self.backend.health() if self.backend is not None else {}
        if self.text is not None:
            checks["text_encoder"] = self.text.status
        return checks

    def get(self, name: str) -> Pipeline:
        try:
            return self.pipelines[name]
        except KeyError:
            raise BadInput(f"Unknown model {name!r}.", code="unknown_model") from None

    async def resolve(self, requested: str, prompts: Sequence[Prompt]) -> Pipeline:
        """The pipeline to run for ``requested`` (a pipeline name or ``auto``) given every
        prompt of the session so far.

        A named pipeline is returned as it is (a backend outage then answers 503 from its
        call). ``auto`` takes the routing table's choice, or, when that one is untrained, not
        ready or cannot use the prompts, the first usable pipeline of ``FALLBACK_ORDER`` (the
        round's ``model`` says which ran). When the only pipelines that could use the prompts
        are not ready (a Triton outage, a mismatched network), it raises their 503
        (``backend_unavailable`` or ``model_not_ready``); ``UnsupportedPrompt`` when no
        pipeline here can use them at all."""
        if requested != "auto":
            pipeline = self.get(requested)
            pipeline.check_prompts(prompts)
            return pipeline
        kinds = {p.type for p in prompts}
        preferred = self.routes.get(situation(kinds))
        order = ([preferred] if preferred else []) + [n for n in FALLBACK_ORDER if n != preferred]
        unready: list[Pipeline] = []
        for name in order:
            pipeline = self.pipelines.get(name)
            if pipeline is None or not pipeline.trained or not kinds <= pipeline.prompt_kinds:
                continue
            if not kinds and not pipeline.automatic:
                continue
            if await pipeline.ready():
                if unready:
                    log.info(
                        "auto: %s is not ready, %s runs instead", ", ".join(p.name for p in unready), name
                    )
                return pipeline
            unready.append(pipeline)
        if unready:
            raise await not_ready_error(unready[0])
        if not kinds:
            raise UnsupportedPrompt(
                "No trained model can matte without prompts here; give a box, clicks or scribbles.",
                code="prompt_required",
            )
        raise UnsupportedPrompt(
            f"No trained, ready model can use {', '.join(sorted(kinds))} prompts together; "
            "drop the text prompt or choose a model explicitly."
        )

    async def auto_table(self) -> dict[str, str]:
        """What ``auto`` currently resolves to for each situation (for /v1/models); ``marks`` is
        shown for box + clicks, ``mix`` for box + text + clicks."""
        table: dict[str, str] = {}
        for row, kinds in (
            ("none", []),
            ("click", ["click"]),
            ("scribble", ["scribble"]),
            ("box", ["box"]),
            ("text", ["text"]),
            ("marks", ["box", "click"]),
            ("mix", ["box", "text", "click"]),
        ):
            prompts = [_example(kind) for kind in kinds]
            try:
                table[row] = (await self.resolve("auto", prompts)).name
            except (UnsupportedPrompt, Unavailable):
                continue
        return table


async def not_ready_error(pipeline: Pipeline | InstanceMatting) -> ApiError:
    """The 503 to answer when ``pipeline`` (or the instance matting) should run but is not
    ready: its backend's error for the first network that cannot run (``backend_unavailable``
    when the server is away, ``model_not_ready`` while it loads)."""
    backend = getattr(pipeline, "backend", None)
    for network in getattr(pipeline, "networks", ()):
        error = await backend.unready_error(network) if backend is not None else None
        if error is not None:
            return error
    return ModelNotReady(f"Model {pipeline.name!r} is not ready; try again shortly.")


def _example(kind: str) -> Prompt:
    from schemas.prompts import BoxPrompt, ClickPrompt, ScribblePrompt, TextPrompt

    return {
        "click": ClickPrompt(x=0, y=0),
        "scribble": ScribblePrompt(points=[(0, 0)]),
        "box": BoxPrompt(x0=0, y0=0, x1=1, y1=1),
        "text": TextPrompt(text="x"),
    }[kind]

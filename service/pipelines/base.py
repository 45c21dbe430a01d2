"""What every matting pipeline provides to the serving layer.

A pipeline turns (image, marks so far, previous round) into an alpha matte. Pipelines do
not touch Redis or HTTP: the serving layer hands them the decoded image, the prompts, the
previous round's matte and state, and a ``FeatureCache`` through which they keep per-session
image features (computed once, reused by every later round).
"""

from __future__ import annotations

import abc
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from schemas.prompts import Prompt, PromptKind
from schemas.system import ModelInfo
from service.errors import UnsupportedPrompt


@dataclass
class FeatureCache:
    """Per-session storage for image features, keyed by network name (bytes in, bytes out)."""

    load: Callable[[str], Awaitable[bytes | None]]
    save: Callable[[str, bytes], Awaitable[object]]

    @classmethod
    def in_memory(cls) -> FeatureCache:
        """A cache held in a dict, for work without a session (one-shot, evaluation)."""
        store: dict[str, bytes] = {}

        async def load(name: str) -> bytes | None:
            return store.get(name)

        async def save(name: str, value: bytes) -> None:
            store[name] = value

        return cls(load, save)


@dataclass
class RoundInput:
    """Everything a pipeline needs to compute one round.

    ``image`` is (H, W, 3) uint8 RGB at original size; ``prompts`` every round's marks in
    order, the current round's (``new_prompts``) last; ``previous_alpha`` (H, W) float32 in
    [0, 1] or None in round 1; ``previous_state`` what the pipeline returned last round.
    """

    image: np.ndarray
    prompts: list[Prompt]
    new_prompts: list[Prompt]
    previous_alpha: np.ndarray | None
    previous_state: bytes | None
    features: FeatureCache
    round_index: int


@dataclass
class RoundOutput:
    """A round's result: alpha (H, W) float32 in [0, 1] at original size, an optional
    confidence, state for the next round, and stage timings in milliseconds."""

    alpha: np.ndarray
    score: float | None
    state: bytes | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)


class Timer:
    """Collects named stage durations in milliseconds."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.ms[name] = self.ms.get(name, 0.0) + (time.perf_counter() - start) * 1000.0


class Pipeline(abc.ABC):
    """One user-selectable matting pipeline (``model`` on the wire)."""

    name: str
    description: str
    prompt_kinds: frozenset[PromptKind]
    automatic: bool = False
    multi_round: bool = True

    def check_prompts(self, prompts: Sequence[Prompt]) -> None:
        """Raise ``UnsupportedPrompt`` if this pipeline cannot use ``prompts`` (all rounds)."""
        unsupported = sorted({p.type for p in prompts} - set(self.prompt_kinds))
        if unsupported:
            raise UnsupportedPrompt(
                f"Model {self.name!r} cannot use {', '.join(unsupported)} prompts; it takes "
                f"{', '.join(sorted(self.prompt_kinds))}."
            )
        if not prompts and not self.automatic:
            raise UnsupportedPrompt(f"Model {self.name!r} needs at least one prompt.", code="prompt_required")

    async def prepare(self, image: np.ndarray, features: FeatureCache) -> dict[str, float]:
        """Compute and cache per-session image features at session creation. Returns timings."""
        return {}

    @abc.abstractmethod
    async def run_round(self, request: RoundInput) -> RoundOutput:
        """Compute one round's matte."""

    @abc.abstractmethod
    async def info(self) -> ModelInfo:
        """Readiness and training status for ``GET /v1/models``."""

    @property
    def trained(self) -> bool:
        """Whether the weights it runs earn their place (weight-free pipelines count as trained)."""
        return True

    async def ready(self) -> bool:
        return (await self.info()).ready

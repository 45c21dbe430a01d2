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

import anyio
import numpy as np

from schemas.prompts import Prompt, PromptKind
from schemas.system import ModelInfo
from service.engines.marks import LOCAL_REACH, edge_costs, has_marks, honour_marks
from service.engines.progressive_merge import is_corrective, merge_changes
from service.errors import UnsupportedPrompt
from service.prompts import focus_region, shift_prompt

MARKS_COSTS = "marks_costs"  # the process-cache name of the marks' path costs (depend on the photo only)
FOCUS_CONTEXT = 0.25  # margin around the boxes a focused pipeline sees, fraction of their size
_FOCUS_MAGIC = b"MSFOCUS1"


Arrays = dict[str, np.ndarray]


def _forget(name: str) -> Arrays | None:
    return None


def _drop(name: str, arrays: Arrays) -> None:
    return None


@dataclass
class FeatureCache:
    """Per-session storage for image features, keyed by network name: ``load``/``save`` the
    bytes every replica shares (Redis), ``recall``/``keep`` the decoded arrays in this process
    (none by default), so a later round on the same replica neither reads nor unpacks them."""

    load: Callable[[str], Awaitable[bytes | None]]
    save: Callable[[str, bytes], Awaitable[object]]
    recall: Callable[[str], Arrays | None] = _forget
    keep: Callable[[str, Arrays], None] = _drop

    @classmethod
    def in_memory(cls) -> FeatureCache:
        """A cache held in a dict, for work without a session (one-shot, evaluation)."""
        store: dict[str, bytes] = {}
        decoded: dict[str, Arrays] = {}

        async def load(name: str) -> bytes | None:
            return store.get(name)

        async def save(name: str, value: bytes) -> None:
            store[name] = value

        def keep(name: str, arrays: Arrays) -> None:
            decoded[name] = arrays

        return cls(load, save, decoded.get, keep)

    def scoped(self, scope: str) -> FeatureCache:
        """The same store with names suffixed by ``@scope`` (features of a region of the photo)."""
        return FeatureCache(
            lambda name: self.load(f"{name}@{scope}"),
            lambda name, v: self.save(f"{name}@{scope}", v),
            lambda name: self.recall(f"{name}@{scope}"),
            lambda name, arrays: self.keep(f"{name}@{scope}", arrays),
        )


async def kept_array(features: FeatureCache, name: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """``compute()`` (a value of the photo alone: a resized copy, path costs), computed in a worker
    thread once per session and replica and kept in this process (``FeatureCache.keep``; cheaper
    to compute again elsewhere than to ship through Redis). Read-only."""
    kept = features.recall(name)
    if kept is not None:
        return kept["array"]
    array = await anyio.to_thread.run_sync(compute)
    array.flags.writeable = False
    features.keep(name, {"array": array})
    return array


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
    focus_on_boxes: bool = False
    """Run on the region of the session's boxes (plus context) instead of the whole photo, so a
    small person's box gets the network's whole input size (see :meth:`run_round`)."""
    progressive_merge: bool = True
    """In a multi-round pipeline, keep a corrective round's change only where its new marks touch
    it, the previous round's matte elsewhere (``service.engines.progressive_merge``;
    ``MATTESERVE_PROGRESSIVE_MERGE``). A single-round pipeline re-predicts from all marks."""
    marks_reach: float | None = LOCAL_REACH
    """How far honouring a mark may change the matte, in multiples of the mark's depth in the
    region it corrects (``service.engines.marks``); None for no bound. A network's matte is kept
    beyond it: the mark corrects its own region, not the whole body it lies on."""

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

    async def run_round(self, request: RoundInput) -> RoundOutput:
        """One round's matte: :meth:`compute_round`; in a corrective round of a multi-round
        pipeline, merged into the previous round's matte where the new marks touch the change
        (:attr:`progressive_merge`); then every click and scribble of the session honoured
        (``service.engines.marks``: 1 under foreground marks, 0 under background ones, and the
        region each corrects follows it), whatever the pipeline."""
        region = self._focus(request)
        if region is None:
            output = await self.compute_round(request)
        else:
            output = await self._compute_focused(request, region)
        timer = Timer()
        merge = self.progressive_merge and self.multi_round and request.previous_alpha is not None
        if merge and is_corrective(request.new_prompts):
            with timer.stage("merge"):
                output.alpha = await anyio.to_thread.run_sync(
                    merge_changes, request.previous_alpha, output.alpha, request.new_prompts
                )
        if has_marks(request.prompts):
            with timer.stage("marks"):
                costs = await kept_array(request.features, MARKS_COSTS, lambda: edge_costs(request.image))
                output.alpha = await anyio.to_thread.run_sync(
                    honour_marks, request.image, output.alpha, request.prompts, costs, self.marks_reach
                )
        output.timings_ms = {**output.timings_ms, **timer.ms}
        return output

    def _focus(self, request: RoundInput) -> tuple[int, int, int, int] | None:
        """(y0, y1, x0, x1) of the boxes' region with context (their foreground marks included),
        or None when the pipeline does not focus or there is no box."""
        if not self.focus_on_boxes:
            return None
        return focus_region(request.image.shape[:2], request.prompts, FOCUS_CONTEXT)

    async def _compute_focused(self, request: RoundInput, region: tuple[int, int, int, int]) -> RoundOutput:
        """:meth:`compute_round` on the region's crop (prompts shifted, previous matte cropped,
        features cached per region, state kept with its region), pasted into a full-size matte
        that is 0 outside the region (outside every box is background)."""
        y0, y1, x0, x1 = region
        header = np.asarray(region, np.int32).tobytes()
        state = request.previous_state
        if state is not None:
            same = state.startswith(_FOCUS_MAGIC) and state[8:24] == header
            state = state[24:] if same else None
        crop = RoundInput(
            image=np.ascontiguousarray(request.image[y0:y1, x0:x1]),
            prompts=[shift_prompt(p, x0, y0) for p in request.prompts],
            new_prompts=[shift_prompt(p, x0, y0) for p in request.new_prompts],
            previous_alpha=None if request.previous_alpha is None else request.previous_alpha[y0:y1, x0:x1],
            previous_state=state,
            features=request.features.scoped(f"{y0},{y1},{x0},{x1}"),
            round_index=request.round_index,
        )
        output = await self.compute_round(crop)
        alpha = np.zeros(request.image.shape[:2], np.float32)
        alpha[y0:y1, x0:x1] = output.alpha
        output.alpha = alpha
        if output.state is not None:
            output.state = _FOCUS_MAGIC + header + output.state
        return output

    @abc.abstractmethod
    async def compute_round(self, request: RoundInput) -> RoundOutput:
        """Compute one round's matte from the pipeline's own engine or networks."""

    @abc.abstractmethod
    async def info(self) -> ModelInfo:
        """Readiness and training status for ``GET /v1/models``."""

    @property
    def trained(self) -> bool:
        """Whether the weights it runs earn their place (weight-free pipelines count as trained)."""
        return True

    async def ready(self) -> bool:
        return (await self.info()).ready

"""Serving logic: sessions, rounds, mattes and cut-outs, independent of HTTP or WebSocket.

Routes (``service.api``) parse requests and call ``MattingService``; it validates input
against the session, serialises rounds through the store's lock, runs the chosen pipeline
and commits the result. Data flows one way: routes -> this module -> pipelines -> backends.
"""

from __future__ import annotations

import base64
import contextlib
import time
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import anyio
import numpy as np
from pydantic import TypeAdapter

from schemas.prompts import Prompt
from schemas.sessions import RoundInfo, RoundRequest, RoundResult, SessionCreated, SessionInfo, UndoResult
from schemas.system import InstanceMatte, InstancesResponse, ModelsResponse
from service.config import Settings
from service.cutout import cutout_rgba
from service.errors import Conflict, ModelNotReady, NotFound, TooLarge
from service.imaging import alpha_to_u8, decode_alpha_png, decode_image, encode_png, peek_pixels
from service.metrics import Metrics
from service.pipelines import FeatureCache, PipelineRegistry, RoundInput, Timer, not_ready_error
from service.pixel_budget import PixelBudget
from service.prompts import compact_marks, mark_points, validate_prompts
from service.rate_limit import RateLimiter
from service.store import RoundRecord, SessionMeta, SessionStore

_PROMPTS = TypeAdapter(list[Prompt])
COMMIT_ATTEMPTS = 3


Cached = np.ndarray | bytes | dict[str, np.ndarray]


class ProcessCache:
    """Per-session values kept in process memory (decoded images, decoded features), keyed by
    ``(session_id, name)``, least recently used first out.

    Redis holds the source of truth; what is cached here never changes once written (the
    uploaded image, features computed from it, the 8-bit matte of a committed round record), so
    a replica that ran a session's earlier round reads none of it again: no re-decoding of a
    large JPEG, no feature bytes and no previous matte from Redis per round."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, str], Cached] = OrderedDict()
        self._bytes = 0

    @staticmethod
    def _size(value: Cached) -> int:
        if isinstance(value, dict):
            return sum(a.nbytes for a in value.values())
        return value.nbytes if isinstance(value, np.ndarray) else len(value)

    def get(self, sid: str, name: str) -> Any:
        item = self._items.get((sid, name))
        if item is not None:
            self._items.move_to_end((sid, name))
        return item

    def put(self, sid: str, name: str, value: Cached) -> None:
        size = self._size(value)
        if (sid, name) in self._items or size > self.max_bytes:
            return
        self._items[(sid, name)] = value
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, dropped = self._items.popitem(last=False)
            self._bytes -= self._size(dropped)

    def discard(self, sid: str, name: str) -> None:
        """Forget one value of session ``sid`` (nothing if it is not here)."""
        item = self._items.pop((sid, name), None)
        if item is not None:
            self._bytes -= self._size(item)

    def drop(self, sid: str) -> None:
        """Forget everything of session ``sid``."""
        for _, name in [k for k in self._items if k[0] == sid]:
            self.discard(sid, name)


def _quantised_png(alpha: np.ndarray) -> tuple[np.ndarray, bytes]:
    """A matte's 8-bit form and its PNG."""
    u8 = alpha_to_u8(alpha)
    return u8, encode_png(u8)


def _alpha_key(record: RoundRecord) -> str:
    """The process-cache name of a committed round's 8-bit matte. Rounds are renumbered by undo,
    so the name carries the record's creation time as well as its number."""
    return f"alpha/{record.round}/{record.created_at}"


def _ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 2)


class MattingService:
    """The operations of the v1 API, for one authenticated user at a time."""

    def __init__(
        self,
        settings: Settings,
        store: SessionStore,
        registry: PipelineRegistry,
        metrics: Metrics,
        limiter: anyio.CapacityLimiter,
    ) -> None:
        self.settings = settings
        self.store = store
        self.registry = registry
        self.metrics = metrics
        self.limiter = limiter
        self.cache = ProcessCache(max_bytes=768 * 1024 * 1024)
        self.rate_limiter = RateLimiter(store)
        self.budget = PixelBudget(settings.max_concurrent_pixels, wait_s=settings.round_wait_timeout_s)

    # ----------------------------------------------------------------- helpers
    async def _decode(self, data: bytes) -> np.ndarray:
        if len(data) > self.settings.max_upload_bytes:
            raise TooLarge(
                f"The image is {len(data)} bytes; the limit is {self.settings.max_upload_bytes}.",
                code="upload_too_large",
            )
        return await anyio.to_thread.run_sync(
            lambda: decode_image(data, max_pixels=self.settings.max_pixels), limiter=self.limiter
        )

    async def _image(self, sid: str) -> np.ndarray:
        image = self.cache.get(sid, "image")
        if image is None:
            image = await self._decode(await self.store.image(sid))
            self.cache.put(sid, "image", image)
        return image

    def _features(self, sid: str) -> FeatureCache:
        """The session's feature cache: bytes in Redis (shared by replicas), the decoded arrays
        in this process's memory."""

        async def save(name: str, data: bytes) -> bool:
            return await self.store.put_features(sid, name, data)

        def recall(name: str) -> dict[str, np.ndarray] | None:
            return self.cache.get(sid, f"features/{name}")

        def keep(name: str, arrays: dict[str, np.ndarray]) -> None:
            self.cache.put(sid, f"features/{name}", arrays)

        return FeatureCache(
            load=lambda name: self.store.features(sid, name), save=save, recall=recall, keep=keep
        )

    async def _previous_alpha(self, sid: str, n: int, history: list[RoundRecord]) -> np.ndarray | None:
        """Round ``n``'s matte (float32 (H, W), as its 8-bit PNG holds it), or None before round 1:
        from this replica's memory when it committed that round, else decoded from Redis."""
        if n < 1:
            return None
        if len(history) == n:
            kept = self.cache.get(sid, _alpha_key(history[-1]))
            if kept is not None:
                return kept.astype(np.float32) / np.float32(255.0)
        data = await self.store.alpha(sid, n)
        return decode_alpha_png(data) if data else None

    @staticmethod
    def _urls(sid: str, n: int) -> tuple[str, str]:
        base = f"/v1/sessions/{sid}/rounds/{n}"
        return f"{base}/alpha.png", f"{base}/cutout.png"

    def _result(self, meta: SessionMeta, record: RoundRecord) -> RoundResult:
        alpha_url, cutout_url = self._urls(meta.session_id, record.round)
        return RoundResult(
            session_id=meta.session_id,
            round=record.round,
            model=record.model,
            score=record.score,
            timings_ms=record.timings_ms,
            alpha_url=alpha_url,
            cutout_url=cutout_url,
            width=meta.width,
            height=meta.height,
        )

    # ---------------------------------------------------------------- sessions
    async def create_session(self, user: str, data: bytes, model: str) -> SessionCreated:
        """Decode and check the upload, store it, and compute the chosen pipeline's features."""
        async with self.budget.hold(peek_pixels(data)):
            return await self._create_session(user, data, model)

    async def _create_session(self, user: str, data: bytes, model: str) -> SessionCreated:
        timer = Timer()
        with timer.stage("decode"):
            image = await self._decode(data)
        height, width = image.shape[:2]
        with timer.stage("store"):
            meta = await self.store.create(user=user, image=data, width=width, height=height, model=model)
        self.cache.put(meta.session_id, "image", image)
        prepare_for = model if model != "auto" else self.registry.routes.get("click", "classical")
        pipeline = self.registry.pipelines.get(prepare_for)
        if pipeline is not None and (model != "auto" or pipeline.trained):
            try:
                with timer.stage("features"):
                    timer.ms.update(await pipeline.prepare(image, self._features(meta.session_id)))
            except BaseException:
                # The client gets an error and no session id: keep nothing of it (a retry would
                # otherwise store the upload again each time).
                self.cache.drop(meta.session_id)
                with contextlib.suppress(Exception):
                    await self.store.delete(meta.session_id)
                raise
        return SessionCreated(
            session_id=meta.session_id,
            width=width,
            height=height,
            model=model,
            expires_at=meta.expires_at,
            timings_ms={k: round(v, 2) for k, v in timer.ms.items()},
        )

    async def session_info(self, user: str, sid: str) -> SessionInfo:
        meta = await self.store.get(sid, user)
        rounds = []
        for record in await self.store.rounds(sid):
            alpha_url, cutout_url = self._urls(sid, record.round)
            rounds.append(
                RoundInfo(
                    round=record.round,
                    model=record.model,
                    prompts=_PROMPTS.validate_python(record.prompts),
                    score=record.score,
                    timings_ms=record.timings_ms,
                    created_at=datetime.fromisoformat(record.created_at),
                    request_id=record.request_id,
                    alpha_url=alpha_url,
                    cutout_url=cutout_url,
                )
            )
        return SessionInfo(
            session_id=sid,
            width=meta.width,
            height=meta.height,
            model=meta.model,
            created_at=meta.created_at,
            expires_at=meta.expires_at,
            rounds=rounds,
        )

    async def delete_session(self, user: str, sid: str) -> None:
        await self.store.get(sid, user)
        await self.store.delete(sid)
        self.cache.drop(sid)

    # ------------------------------------------------------------------ rounds
    async def run_round(self, user: str, sid: str, request: RoundRequest) -> RoundResult:
        """Apply one round: serialised per session, applied exactly once, retried on a lost
        fencing check. A repeated ``request_id`` returns the round it already produced."""
        start = time.perf_counter()
        meta = await self.store.get(sid, user)
        validate_prompts(
            request.prompts, meta.width, meta.height, max_prompts=self.settings.max_prompts_per_round
        )
        request = request.model_copy(update={"prompts": compact_marks(request.prompts)})
        if request.request_id:
            done = await self._replay(meta, request.request_id)
            if done is not None:
                return done
        wait = time.perf_counter()
        async with self.store.lock(sid, wait_s=self.settings.round_wait_timeout_s):
            waited_ms = _ms_since(wait)
            if request.request_id:
                done = await self._replay(meta, request.request_id)
                if done is not None:
                    return done
            for attempt in range(COMMIT_ATTEMPTS):
                try:
                    async with self.budget.hold(meta.width * meta.height):
                        result = await self._compute_and_commit(meta, request)
                except Conflict as exc:
                    if exc.code != "round_conflict" or attempt == COMMIT_ATTEMPTS - 1:
                        raise
                    if request.request_id:
                        done = await self._replay(meta, request.request_id)
                        if done is not None:
                            return done
                    continue
                result.timings_ms["lock_wait"] = waited_ms
                result.timings_ms["total"] = _ms_since(start)
                self.metrics.observe_round(result.model, result.timings_ms)
                return result
        raise AssertionError("unreachable")

    async def _replay(self, meta: SessionMeta, request_id: str) -> RoundResult | None:
        n = await self.store.round_for_request(meta.session_id, request_id)
        if n is None:
            return None
        record = await self.store.round(meta.session_id, n)
        return self._result(meta, record) if record is not None else None

    async def _compute_and_commit(self, meta: SessionMeta, request: RoundRequest) -> RoundResult:
        sid = meta.session_id
        timer = Timer()
        with timer.stage("load"):
            n = await self.store.round_count(sid)
            if n >= self.settings.max_rounds_per_session:
                raise Conflict(
                    f"A session holds at most {self.settings.max_rounds_per_session} rounds; undo or "
                    "start a new session.",
                    code="too_many_rounds",
                )
            history = await self.store.rounds(sid)
            earlier: list[Prompt] = [
                p for record in history for p in _PROMPTS.validate_python(record.prompts)
            ]
            prompts = earlier + list(request.prompts)
            if mark_points(prompts) > self.settings.max_session_mark_points:
                raise TooLarge(
                    f"A session keeps at most {self.settings.max_session_mark_points} mark "
                    f"coordinates (scribble points after simplification, clicks, box corners); "
                    f"this round would bring it to {mark_points(prompts)}. Undo rounds or start "
                    "a new session.",
                    code="session_too_large",
                )
            pipeline = await self.registry.resolve(request.model or meta.model, prompts)
            image = await self._image(sid)
            previous_alpha = await self._previous_alpha(sid, n, history)
            previous_state = await self.store.state(sid, n)
        output = await pipeline.run_round(
            RoundInput(
                image=image,
                prompts=prompts,
                new_prompts=list(request.prompts),
                previous_alpha=previous_alpha,
                previous_state=previous_state,
                features=self._features(sid),
                round_index=n + 1,
            )
        )
        timer.ms.update(output.timings_ms)
        with timer.stage("encode"):
            alpha_u8, alpha_png = await anyio.to_thread.run_sync(lambda: _quantised_png(output.alpha))
        record = RoundRecord(
            round=n + 1,
            model=pipeline.name,
            prompts=[p.model_dump(mode="json") for p in request.prompts],
            score=None if output.score is None else round(float(output.score), 4),
            timings_ms={},
            created_at=datetime.now(UTC).isoformat(),
            request_id=request.request_id,
        )
        with timer.stage("store"):
            record.timings_ms = {k: round(v, 2) for k, v in timer.ms.items()}
            committed = await self.store.commit_round(
                sid, expected_rounds=n, record=record, alpha_png=alpha_png, state=output.state
            )
        record.round = committed
        if committed == n + 1:  # the next round's previous matte; the one before is not needed again
            if history:
                self.cache.discard(sid, _alpha_key(history[-1]))
            self.cache.put(sid, _alpha_key(record), alpha_u8)
        result = self._result(meta, record)
        result.timings_ms = {k: round(v, 2) for k, v in timer.ms.items()}
        return result

    async def undo(self, user: str, sid: str) -> UndoResult:
        await self.store.get(sid, user)
        async with self.store.lock(sid, wait_s=self.settings.round_wait_timeout_s):
            left = await self.store.undo(sid)
        return UndoResult(session_id=sid, round=left, dropped=left + 1)

    # ------------------------------------------------------------------ status
    async def readiness(self) -> dict[str, str]:
        """Named checks for /readyz: ``ok`` or a reason."""
        checks: dict[str, str] = {"redis": await self.store.health()}
        checks.update(await self.registry.backend_checks())
        return checks

    async def models(self) -> ModelsResponse:
        infos = [await pipeline.info() for pipeline in self.registry.pipelines.values()]
        instances = await self.registry.instances.info() if self.registry.instances else None
        return ModelsResponse(models=infos, auto=await self.registry.auto_table(), instances=instances)

    async def instances(self, data: bytes, min_score: float | None = None) -> InstancesResponse:
        """Every human in the photo with its own alpha matte (no prompts); ``min_score`` in [0, 1]
        the least "is human" score kept (the server's setting when None)."""
        async with self.budget.hold(peek_pixels(data)):
            return await self._instances(data, min_score)

    async def _instances(self, data: bytes, min_score: float | None) -> InstancesResponse:
        matting = self.registry.instances
        if matting is None:
            raise ModelNotReady(
                "Instance matting is not available: its networks are not loaded on this server."
            )
        if not await matting.ready():
            raise await not_ready_error(matting)
        timer = Timer()
        with timer.stage("decode"):
            image = await self._decode(data)
        found, timings = await matting.matte(image, min_score)
        timer.ms.update(timings)
        with timer.stage("encode"):
            pngs = await anyio.to_thread.run_sync(
                lambda: [base64.b64encode(encode_png(alpha_to_u8(i.alpha))).decode() for i in found]
            )
        self.metrics.observe_round("instmatt", timer.ms)
        return InstancesResponse(
            width=image.shape[1],
            height=image.shape[0],
            instances=[
                InstanceMatte(id=k, score=round(i.score, 4), box=i.box, alpha_png_base64=png)
                for k, (i, png) in enumerate(zip(found, pngs, strict=True))
            ],
            timings_ms={k: round(v, 2) for k, v in timer.ms.items()},
        )

    # ------------------------------------------------------------------ images
    async def alpha_png(self, user: str, sid: str, n: int) -> bytes:
        return (await self._alpha(user, sid, n))[1]

    async def _alpha(self, user: str, sid: str, n: int) -> tuple[SessionMeta, bytes]:
        meta = await self.store.get(sid, user)
        data = await self.store.alpha(sid, n)
        if data is None:
            raise NotFound(f"Session {sid!r} has no round {n}.", code="round_not_found")
        return meta, data

    async def cutout_png(self, user: str, sid: str, n: int) -> bytes:
        """The RGBA cut-out of round ``n``, computed on first request and cached with the session."""
        meta, alpha_data = await self._alpha(user, sid, n)
        cached = await self.store.cutout(sid, n)
        if cached is not None:
            return cached
        async with self.budget.hold(meta.width * meta.height):
            image = await self._image(sid)
            data = await anyio.to_thread.run_sync(
                lambda: encode_png(
                    cutout_rgba(
                        image, decode_alpha_png(alpha_data), max_pixels=self.settings.cutout_max_pixels
                    )
                ),
                limiter=self.limiter,
            )
        await self.store.put_cutout(sid, n, data, alpha_data)
        return data

    async def matte_once(
        self, data: bytes, prompts: Sequence[Prompt], model: str, output: str
    ) -> tuple[bytes, dict[str, float], str]:
        """One-shot matting without a session. Returns (PNG bytes, timings, pipeline name)."""
        async with self.budget.hold(peek_pixels(data)):
            return await self._matte_once(data, prompts, model, output)

    async def _matte_once(
        self, data: bytes, prompts: Sequence[Prompt], model: str, output: str
    ) -> tuple[bytes, dict[str, float], str]:
        timer = Timer()
        with timer.stage("decode"):
            image = await self._decode(data)
        height, width = image.shape[:2]
        validate_prompts(prompts, width, height, max_prompts=self.settings.max_prompts_per_round)
        alpha, name, timings = await matte_image(self.registry, image, prompts, model)
        timer.ms.update(timings)
        with timer.stage("encode"):
            if output == "alpha":
                png = await anyio.to_thread.run_sync(lambda: encode_png(alpha_to_u8(alpha)))
            else:
                png = await anyio.to_thread.run_sync(
                    lambda: encode_png(cutout_rgba(image, alpha, max_pixels=self.settings.cutout_max_pixels)),
                    limiter=self.limiter,
                )
        self.metrics.observe_round(name, timer.ms)
        return png, timer.ms, name


async def matte_image(
    registry: PipelineRegistry, image: np.ndarray, prompts: Sequence[Prompt], model: str
) -> tuple[np.ndarray, str, dict[str, float]]:
    """Run one round on ``image`` (H, W, 3 uint8) without a session (features kept in memory).

    Returns (alpha (H, W) float32, pipeline name, stage timings in ms). Used by ``/v1/matte``
    and by ``matteserve cutout``."""
    pipeline = await registry.resolve(model, list(prompts))
    result = await pipeline.run_round(
        RoundInput(
            image=image,
            prompts=list(prompts),
            new_prompts=list(prompts),
            previous_alpha=None,
            previous_state=None,
            features=FeatureCache.in_memory(),
            round_index=1,
        )
    )
    return result.alpha, pipeline.name, result.timings_ms

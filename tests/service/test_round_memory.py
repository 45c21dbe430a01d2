"""What a replica keeps of a session between rounds: the previous round's matte.

In process, against the real Redis: the serving layer (``MattingService``) with the classical
pipeline, so the test is about what is read, not about a network."""

from __future__ import annotations

import anyio
import numpy as np
import pytest
from redis import asyncio as aioredis

from schemas.prompts import BoxPrompt, ClickPrompt
from schemas.sessions import RoundRequest
from service.config import Settings
from service.imaging import decode_alpha_png, encode_png
from service.metrics import Metrics
from service.pipelines.factory import build_registry, close_registry
from service.serving import MattingService
from service.store import SessionStore, keys
from tests.support.images import encode, two_objects


@pytest.fixture()
async def service(redis_url: str):
    client = aioredis.from_url(redis_url)
    limiter = anyio.CapacityLimiter(2)
    settings = Settings(redis_url=redis_url)
    registry = await build_registry(settings, limiter)
    yield MattingService(settings, SessionStore(client, ttl_s=300), registry, Metrics(), limiter)
    await close_registry(registry)
    await client.aclose()


@pytest.mark.anyio
async def test_the_previous_matte_comes_from_memory_on_the_replica_that_made_it(service, redis_url) -> None:
    image, _, _ = two_objects(120, 160)
    sid = (await service.create_session("alice", encode(image), "classical")).session_id
    box = BoxPrompt(x0=10, y0=10, x1=110, y1=100)
    await service.run_round("alice", sid, RoundRequest(prompts=[box]))
    history = await service.store.rounds(sid)
    from_redis = decode_alpha_png(await service.store.alpha(sid, 1))
    kept = await service._previous_alpha(sid, 1, history)
    assert kept.dtype == np.float32 and np.array_equal(kept, from_redis)

    # The replica does not read round 1's matte from Redis again: a different one there is not seen.
    client = aioredis.from_url(redis_url)
    await client.set(keys.alpha(sid, 1), encode_png(np.zeros(image.shape[:2], np.uint8)))
    assert np.array_equal(await service._previous_alpha(sid, 1, history), from_redis)
    # Another replica (an empty process cache) reads Redis.
    service.cache.drop(sid)
    assert not (await service._previous_alpha(sid, 1, history)).any()

    # After undo, a new round 1 is another record: never confused with the undone one.
    await client.set(keys.alpha(sid, 1), encode_png(np.round(from_redis * 255).astype(np.uint8)))
    await service.undo("alice", sid)
    click = ClickPrompt(x=40, y=50, label="fg")
    await service.run_round("alice", sid, RoundRequest(prompts=[box, click]))
    history = await service.store.rounds(sid)
    again = decode_alpha_png(await service.store.alpha(sid, 1))
    assert np.array_equal(await service._previous_alpha(sid, 1, history), again)
    # Round 2 moves the kept matte on: round 1's leaves memory.
    await service.run_round("alice", sid, RoundRequest(prompts=[ClickPrompt(x=150, y=110, label="bg")]))
    assert sum(1 for (s, name) in service.cache._items if s == sid and name.startswith("alpha/")) == 1
    await client.aclose()

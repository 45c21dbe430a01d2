"""A paused Redis (SIGSTOP) during and between rounds, against real processes: answers come
quickly, an error answer on a round says whether it was applied, a retry with the same
request_id applies it exactly once, and no lock is left behind."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import signal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import cv2
import httpx
import numpy as np
import pytest
import redis

from service.process import ServerProcess, start_server
from service.redis_runtime import RedisProcess
from service.store import RoundRecord, keys
from tests.conftest import ALICE, server_env
from tests.service.test_sessions_http import create_session, run_round
from tests.support.waiting import wait_until

CLICK = {"type": "click", "x": 700, "y": 500, "label": "fg"}


@pytest.fixture()
def server(private_redis: RedisProcess) -> Iterator[ServerProcess]:
    process = start_server(
        server_env(
            private_redis.url,
            MATTESERVE_REDIS_TIMEOUT_S="1",
            MATTESERVE_ROUND_LOCK_TIMEOUT_S="3",
        )
    )
    yield process
    process.stop()


@contextmanager
def paused(redis_process: RedisProcess) -> Iterator[None]:
    os.kill(redis_process.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(redis_process.process.pid, signal.SIGCONT)


def textured(height: int = 1000, width: int = 1400) -> np.ndarray:
    """A smooth-textured photo-sized image (compresses well, so it stays under the upload limit)."""
    rng = np.random.default_rng(7)
    coarse = rng.integers(0, 90, (height // 50, width // 50, 3)).astype(np.uint8)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    image[height // 4 : height * 4 // 5, width * 2 // 7 : width * 5 // 7] += 140
    return image


def test_paused_redis_gives_503_fast_and_readiness_recovers(
    server: ServerProcess, private_redis: RedisProcess
) -> None:
    sid = create_session(server, textured(200, 280), ALICE, model="classical")["session_id"]
    with paused(private_redis):
        # Answered (not held for the pause): the client's timeout is far above the server's.
        ready = httpx.get(f"{server.url}/readyz", timeout=60)
        assert ready.status_code == 503 and ready.json()["checks"]["redis"] == "unavailable"
        assert int(ready.headers["Retry-After"]) >= 1
        response = httpx.get(f"{server.url}/v1/sessions/{sid}", headers=ALICE, timeout=60)
        assert response.status_code == 503
        body = response.json()["error"]
        assert body["code"] == "store_unavailable"
        assert "127.0.0.1" not in body["message"] and str(private_redis.port) not in body["message"]
        assert int(response.headers["Retry-After"]) >= 1
    assert wait_until(lambda: httpx.get(f"{server.url}/readyz", timeout=60).status_code == 200, 30)


def test_a_round_interrupted_by_a_paused_redis_is_applied_exactly_once_on_retry(
    server: ServerProcess, private_redis: RedisProcess
) -> None:
    watcher = redis.Redis.from_url(private_redis.url)
    sid = create_session(server, textured(), ALICE, model="classical")["session_id"]
    box = {"type": "box", "x0": 380, "y0": 230, "x1": 1020, "y1": 820}
    assert run_round(server, sid, [box], ALICE).status_code == 200
    lock_key = keys.lock(sid)
    answer = None
    request_id = ""
    for _ in range(3):  # a round that finishes before the pause lands proves nothing: again
        request_id = uuid.uuid4().hex
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            future = pool.submit(run_round, server, sid, [CLICK], ALICE, request_id=request_id)
            assert wait_until(lambda f=future: watcher.exists(lock_key) or f.done(), 60, step_s=0.002)
            if future.done():
                continue
            with paused(private_redis):
                answer = future.result(timeout=120)
        if answer.status_code != 200:
            break
    assert answer is not None and answer.status_code == 503, "every round finished before the pause"
    code = answer.json()["error"]["code"]
    assert code in {"store_unavailable", "round_outcome_unknown"}
    applied_before_retry = int(watcher.hget(keys.meta(sid), "rounds"))
    if code == "store_unavailable":  # documented: nothing was applied
        assert applied_before_retry == (len(_rounds(server, sid)))
        assert request_id not in [r["request_id"] for r in _rounds(server, sid)]

    retried = run_round(server, sid, [CLICK], ALICE, request_id=request_id)
    assert retried.status_code == 200, retried.text
    again = run_round(server, sid, [CLICK], ALICE, request_id=request_id)
    assert again.json()["round"] == retried.json()["round"]
    ids = [r["request_id"] for r in _rounds(server, sid)]
    assert ids.count(request_id) == 1

    # No lock was left behind: a new round goes through at once, not after a lease.
    fresh = run_round(server, sid, [CLICK], ALICE, request_id=uuid.uuid4().hex)
    assert fresh.status_code == 200 and fresh.json()["round"] == len(ids) + 1
    watcher.close()


def _record(request_id: str) -> RoundRecord:
    """A round's record with nothing in it but its request id (the store's own tests)."""
    return RoundRecord(
        round=0,
        model="classical",
        prompts=[],
        score=None,
        timings_ms={},
        created_at="",
        request_id=request_id,
    )


def _rounds(server: ServerProcess, sid: str) -> list[dict]:
    response = httpx.get(f"{server.url}/v1/sessions/{sid}", headers=ALICE, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()["rounds"]


@pytest.mark.anyio
async def test_a_commit_sent_to_a_paused_redis_is_reported_unknown_and_lands_once(
    private_redis: RedisProcess,
) -> None:
    """The case the API test above can only hit by chance: Redis stops after the commit was
    sent. The answer says "outcome unknown"; when Redis resumes it applies the commit once,
    even though the client resent it (the commit token makes the resend a no-op), and the
    request id then maps to that round, which is what a retry returns."""
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff

    from service.errors import RoundOutcomeUnknown
    from service.store import SessionStore

    client = aioredis.from_url(
        private_redis.url,
        socket_timeout=0.5,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=1),
    )
    store = SessionStore(client, ttl_s=600, lock_lease_s=3)
    meta = await store.create(user="alice", image=b"png", width=4, height=4, model="classical")

    sid = meta.session_id
    assert (
        await store.commit_round(sid, expected_rounds=0, record=_record("r-1"), alpha_png=b"a", state=None)
        == 1
    )
    with paused(private_redis), pytest.raises(RoundOutcomeUnknown) as raised:
        await store.commit_round(sid, expected_rounds=1, record=_record("r-2"), alpha_png=b"a", state=None)
    assert "same request_id" in raised.value.message
    checker = redis.Redis.from_url(private_redis.url)
    assert wait_until(lambda: checker.hget(keys.meta(sid), "rounds") == b"2", 10)
    assert checker.llen(keys.rounds(sid)) == 2
    checker.close()
    assert await store.round_for_request(sid, "r-2") == 2

    # Redis resumes between the timed-out first delivery and the resend: the resend must
    # answer the applied round, not a fencing failure that would make the caller recompute
    # and apply the round a second time.
    os.kill(private_redis.process.pid, signal.SIGSTOP)
    try:
        pending = asyncio.ensure_future(
            store.commit_round(sid, expected_rounds=2, record=_record("r-3"), alpha_png=b"a", state=None)
        )
        await asyncio.sleep(0.75)
    finally:
        os.kill(private_redis.process.pid, signal.SIGCONT)
    # The resend may time out too on a slow machine: still applied exactly once below.
    with contextlib.suppress(RoundOutcomeUnknown):
        assert await pending == 3
    checker = redis.Redis.from_url(private_redis.url)
    assert wait_until(lambda: checker.hget(keys.meta(sid), "rounds") == b"3", 10)
    assert checker.llen(keys.rounds(sid)) == 3
    checker.close()
    await client.aclose()


@pytest.mark.anyio
async def test_an_undo_resent_to_a_paused_redis_drops_one_round(private_redis: RedisProcess) -> None:
    """An undo whose first delivery timed out on a stalled Redis is resent by the client
    (redis-py's retry); when Redis resumes it runs both deliveries. Without the undo token the
    second dropped another round: one undo lost two. Now the resend answers what the first left."""
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff

    from service.errors import StoreUnavailable
    from service.store import SessionStore

    client = aioredis.from_url(
        private_redis.url,
        socket_timeout=1.0,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=1),
    )
    store = SessionStore(client, ttl_s=600, lock_lease_s=3)
    sid = (await store.create(user="alice", image=b"png", width=4, height=4, model="classical")).session_id
    for n in range(4):
        await store.commit_round(sid, expected_rounds=n, record=_record(f"r-{n}"), alpha_png=b"a", state=None)
    # Load the script first: on a Redis that has not seen it, both deliveries answer NOSCRIPT
    # and redis-py's EVAL fallback then runs it once, which hides the double drop.
    assert await store.undo(sid) == 3

    os.kill(private_redis.process.pid, signal.SIGSTOP)
    try:
        pending = asyncio.ensure_future(store.undo(sid))
        await asyncio.sleep(1.5)  # past the socket timeout: the first delivery was given up and resent
    finally:
        os.kill(private_redis.process.pid, signal.SIGCONT)
    with contextlib.suppress(StoreUnavailable):  # the resend may time out too on a slow machine
        assert await pending == 2
    checker = redis.Redis.from_url(private_redis.url)
    assert wait_until(lambda: checker.hget(keys.meta(sid), "rounds") == b"2", 10)
    checker.ping()  # a later command on another connection: both deliveries have run before it
    assert checker.hget(keys.meta(sid), "rounds") == b"2"
    assert checker.llen(keys.rounds(sid)) == 2
    assert checker.exists(keys.alpha(sid, 2)) and not checker.exists(keys.alpha(sid, 3))
    assert await store.undo(sid) == 1  # a new undo still drops one
    checker.close()
    await client.aclose()


@pytest.mark.anyio
async def test_a_cutout_made_from_an_undone_round_is_not_kept_for_the_new_one(
    private_redis: RedisProcess,
) -> None:
    """A cut-out is computed from round n's alpha outside the round lock (seconds at 12 MP). An
    undo and a new round n in that time made the store keep the undone round's cut-out under
    the new round's number for the session's life (found by a load probe, two replicas). The
    store now keeps a cut-out only while round n's alpha is the one it was made from."""
    import redis.asyncio as aioredis

    from service.store import SessionStore

    client = aioredis.from_url(private_redis.url)
    store = SessionStore(client, ttl_s=600, lock_lease_s=3)
    sid = (await store.create(user="alice", image=b"png", width=4, height=4, model="classical")).session_id
    for n, alpha in enumerate((b"alpha-1", b"alpha-2")):
        await store.commit_round(
            sid, expected_rounds=n, record=_record(f"r-{n}"), alpha_png=alpha, state=None
        )

    read = await store.alpha(sid, 2)  # a cut-out request reads round 2 and starts computing
    assert await store.undo(sid) == 1
    await store.commit_round(
        sid, expected_rounds=1, record=_record("r-new"), alpha_png=b"alpha-2b", state=None
    )
    assert not await store.put_cutout(sid, 2, b"cutout of the undone round", read)
    assert await store.cutout(sid, 2) is None
    assert await store.put_cutout(sid, 2, b"cutout of round 2", await store.alpha(sid, 2))
    assert await store.cutout(sid, 2) == b"cutout of round 2"
    # ...and one made before the undo that lands after it is not kept either.
    assert await store.undo(sid) == 1
    assert not await store.put_cutout(sid, 2, b"late", b"alpha-2b")
    assert await store.cutout(sid, 2) is None
    await client.aclose()


def test_a_full_redis_still_serves_reads_and_deletes_and_refuses_writes_whole(
    server: ServerProcess, private_redis: RedisProcess
) -> None:
    """Redis over ``maxmemory`` with ``noeviction`` (the shipped setting) refuses writes. Every
    call touched the session first (its index ZADD is such a write), so reads and DELETE — the
    call that frees memory — answered 503 too; and an undo's script dropped the round before its
    count update was refused (found by a probe of operations). Now reads and deletes work, and a
    round or an undo is refused whole, saying the store is full."""
    watcher = redis.Redis.from_url(private_redis.url)
    sid = create_session(server, textured(200, 280), ALICE, model="classical")["session_id"]
    box = {"type": "box", "x0": 60, "y0": 40, "x1": 220, "y1": 170}
    assert run_round(server, sid, [box], ALICE).status_code == 200
    stored = sorted(watcher.keys(f"ms:{{{sid}}}:*"))
    watcher.config_set("maxmemory", 1)
    try:
        session = httpx.get(f"{server.url}/v1/sessions/{sid}", headers=ALICE, timeout=60)
        assert session.status_code == 200, session.text
        alpha = httpx.get(f"{server.url}/v1/sessions/{sid}/rounds/1/alpha.png", headers=ALICE, timeout=60)
        assert alpha.status_code == 200
        for refused in (
            run_round(server, sid, [{"type": "click", "x": 140, "y": 100}], ALICE),
            httpx.post(f"{server.url}/v1/sessions/{sid}/undo", headers=ALICE, timeout=60),
        ):
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "store_unavailable"
            assert "full" in refused.json()["error"]["message"]
        assert sorted(watcher.keys(f"ms:{{{sid}}}:*")) == stored, "nothing was written or dropped"
        assert watcher.hget(keys.meta(sid), "rounds") == b"1" and watcher.llen(keys.rounds(sid)) == 1
        deleted = httpx.delete(f"{server.url}/v1/sessions/{sid}", headers=ALICE, timeout=60)
        assert deleted.status_code == 204, deleted.text
        assert watcher.keys(f"ms:{{{sid}}}:*") == []
    finally:
        watcher.config_set("maxmemory", 0)
        watcher.close()


@pytest.mark.anyio
async def test_readiness_tells_a_misconfigured_redis_from_an_unavailable_one(
    private_redis: RedisProcess,
) -> None:
    """A wrong password or database number left /readyz at "unavailable" forever, which reads as
    an outage to wait out (found by a probe of operations); a paused or absent one still is."""
    import redis.asyncio as aioredis

    from service.store import SessionStore

    async def health(url: str) -> str:
        client = aioredis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        try:
            return await SessionStore(client, ttl_s=60).health()
        finally:
            await client.aclose()

    assert await health(private_redis.url) == "ok"
    base = private_redis.url.rsplit("/", 1)[0]
    assert (await health(f"{base}/99")).startswith("refused: ")  # Redis has 16 databases
    admin = redis.Redis.from_url(private_redis.url)
    admin.config_set("requirepass", "s3cret")
    try:
        assert (await health(private_redis.url)).startswith("authentication failed")
        assert (await health(private_redis.url.replace("redis://", "redis://:wrong@"))).startswith(
            "authentication failed"
        )
        assert await health(private_redis.url.replace("redis://", "redis://:s3cret@")) == "ok"
    finally:
        authed = redis.Redis.from_url(private_redis.url.replace("redis://", "redis://:s3cret@"))
        authed.config_set("requirepass", "")
        authed.close()
        admin.close()
    with paused(private_redis):
        assert await health(private_redis.url) == "unavailable"

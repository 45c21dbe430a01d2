"""Idle expiry, rate limiting, and a Redis outage, each against real processes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis

from service.process import ServerProcess, start_server
from service.redis_runtime import RedisProcess, start_redis
from service.store import keys
from tests.conftest import ALICE, server_env
from tests.service.test_sessions_http import BOX, create_session, run_round
from tests.support.images import encode, two_objects
from tests.support.waiting import wait_until

TTL_S = 5
# Rate-limit counters live in the shared Redis, so this server gets users of its own.
RUN = uuid.uuid4().hex[:8]
DAVE = {"Authorization": "Bearer dave-key"}
ERIN = {"Authorization": "Bearer erin-key"}
FRANK = {"Authorization": "Bearer frank-key"}


@pytest.fixture(scope="module")
def short_lived_server(redis_url: str) -> Iterator[ServerProcess]:
    """Sessions idle out after 5 s; each user may make 6 requests a minute."""
    users = f"dave-key:dave-{RUN},erin-key:erin-{RUN},frank-key:frank-{RUN}"
    server = start_server(
        server_env(
            redis_url,
            MATTESERVE_SESSION_TTL_S=str(TTL_S),
            MATTESERVE_RATE_LIMIT_PER_MINUTE="6",
            MATTESERVE_API_KEYS=users,
        )
    )
    yield server
    server.stop()


def test_idle_sessions_expire_and_use_refreshes_the_ttl(
    short_lived_server: ServerProcess, redis_client: redis.Redis
) -> None:
    """Checked through Redis's own PTTL, not against wall-clock margins (issue 11.12: the old
    polling version failed on a busy machine)."""
    image, _, _ = two_objects(120, 160)
    sid = create_session(short_lived_server, image, DAVE)["session_id"]
    url = f"{short_lived_server.url}/v1/sessions/{sid}"
    session_keys = [k.decode() for k in redis_client.smembers(keys.key_set(sid))] + [keys.key_set(sid)]
    assert keys.meta(sid) in session_keys and keys.image(sid) in session_keys
    # Every key has an idle TTL of at most TTL_S (-1 would be a key without one) ...
    assert all(-1 != redis_client.pttl(k) <= TTL_S * 1000 for k in session_keys)
    # ... and any use sets every key back to it: give the keys an hour, then touch the
    # session. A key the touch missed would keep its hour; a refreshed one has at most TTL_S
    # left, or is already gone (-2), whatever the machine's speed.
    for key in session_keys:
        redis_client.pexpire(key, 3_600_000)
    assert httpx.get(url, headers=DAVE).status_code == 200
    for key in session_keys:
        assert redis_client.pttl(key) <= TTL_S * 1000, key
    # Left alone, every key of it disappears and the API says 404.
    assert wait_until(lambda: not list(redis_client.scan_iter(match=keys.session_pattern(sid))), 60)
    response = httpx.get(url, headers=DAVE)
    assert response.status_code == 404 and response.json()["error"]["code"] == "session_not_found"


def test_rate_limit_answers_429_per_user(short_lived_server: ServerProcess) -> None:
    statuses = [httpx.get(f"{short_lived_server.url}/v1/models", headers=ERIN).status_code for _ in range(8)]
    if 429 not in statuses or statuses.count(200) > 6:
        # The fixed minute window rolled over mid-burst (its two halves each stayed within the
        # limit, or a 429 came before the new window's 200s); the next burst is in one window.
        statuses = [
            httpx.get(f"{short_lived_server.url}/v1/models", headers=ERIN).status_code for _ in range(8)
        ]
    assert statuses.count(200) <= 6 and 429 in statuses
    limited = httpx.get(f"{short_lived_server.url}/v1/models", headers=ERIN)
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limited"
    # Another user is not affected.
    assert httpx.get(f"{short_lived_server.url}/v1/models", headers=FRANK).status_code == 200


def test_redis_outage_gives_503_and_the_session_survives_a_restart(private_redis: RedisProcess) -> None:
    server = start_server(server_env(private_redis.url))
    try:
        image, _, _ = two_objects()
        sid = create_session(server, image, ALICE)["session_id"]
        assert run_round(server, sid, [BOX], ALICE).status_code == 200
        client = redis.Redis.from_url(private_redis.url)
        client.save()  # snapshot, so the restarted server has the session
        client.close()
        port = private_redis.port
        private_redis.process.terminate()
        private_redis.process.wait(timeout=10)

        response = run_round(server, sid, [{"type": "click", "x": 340, "y": 185, "label": "bg"}], ALICE)
        assert response.status_code == 503 and response.json()["error"]["code"] == "store_unavailable"
        created = httpx.post(
            f"{server.url}/v1/sessions", files={"image": ("a.png", encode(image), "image/png")}, headers=ALICE
        )
        assert created.status_code == 503 and created.json()["error"]["code"] == "store_unavailable"
        ready = httpx.get(f"{server.url}/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["redis"] != "ok"
        assert httpx.get(f"{server.url}/healthz").status_code == 200

        restarted = start_redis(port=port, data_dir=private_redis.workdir)
        try:
            assert wait_until(lambda: httpx.get(f"{server.url}/readyz").status_code == 200, 20)
            response = run_round(server, sid, [{"type": "click", "x": 340, "y": 185, "label": "bg"}], ALICE)
            assert response.status_code == 200, response.text
            assert response.json()["round"] == 2, "the failed round was not applied"
        finally:
            restarted.stop()
    finally:
        server.stop()

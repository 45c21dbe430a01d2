"""Fixtures shared by every suite: a real Redis and real matteserve server processes."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import redis

from service.process import ServerProcess, start_server
from service.redis_runtime import DEFAULT_LOCAL_URL, RedisProcess, answers, start_redis
from tests.support.waiting import wait_until

API_KEYS = "alice-key:alice,bob-key:bob,carol-key:carol"
ALICE = {"Authorization": "Bearer alice-key"}
BOB = {"Authorization": "Bearer bob-key"}
MAX_UPLOAD_BYTES = 3 * 1024 * 1024


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The Redis on 127.0.0.1:6379 when it answers (development machines, CI), else one we start."""
    if answers(DEFAULT_LOCAL_URL):
        yield DEFAULT_LOCAL_URL
        return
    process = start_redis()
    try:
        yield process.url
    finally:
        process.stop()


@pytest.fixture()
def private_redis() -> Iterator[RedisProcess]:
    """A Redis of this test's own, which it may stop, pause or restart."""
    process = start_redis()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def server_env(redis_url: str, **extra: str) -> dict[str, str]:
    """Environment of a test server: API keys, no anonymous access, a small upload limit."""
    env = {
        "MATTESERVE_REDIS_URL": redis_url,
        "MATTESERVE_API_KEYS": API_KEYS,
        "MATTESERVE_ALLOW_ANONYMOUS": "false",
        "MATTESERVE_MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES),
        "MATTESERVE_RATE_LIMIT_PER_MINUTE": "100000",
        "MATTESERVE_BACKEND": "local",
    }
    env.update(extra)
    return env


def ready_server(env: dict[str, str]) -> ServerProcess:
    """A server started with ``env`` once ``/readyz`` says everything is loaded (the text encoder
    loads in the background after ``/healthz`` answers; a text round before that gets 503)."""
    server = start_server(env)
    if not wait_until(lambda: httpx.get(f"{server.url}/readyz", timeout=5).status_code == 200, 120):
        server.stop()
        raise RuntimeError(f"server not ready within 120 s:\n{server.log()}")
    return server


@pytest.fixture(scope="session")
def api_server(redis_url: str) -> Iterator[ServerProcess]:
    """One real server process for the whole run."""
    server = ready_server(server_env(redis_url))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def second_server(redis_url: str) -> Iterator[ServerProcess]:
    """A second server process sharing the same Redis (stateless replicas)."""
    server = ready_server(server_env(redis_url))
    yield server
    server.stop()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"

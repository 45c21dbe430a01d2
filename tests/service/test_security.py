"""Issue 11.9 against real server processes: keys stay out of the logs, key guessing is
throttled (also while Redis is down), 401/429/503 carry the headers clients need, and
browser pages from foreign origins cannot open a session's socket."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from service.process import ServerProcess, start_server
from service.redis_runtime import RedisProcess
from tests.conftest import ALICE, server_env
from tests.service.test_sessions_http import create_session
from tests.support.images import two_objects

IMAGE, _, _ = two_objects(120, 160)
ALLOWED = "https://editor.example.com"


@pytest.fixture()
def strict_server(private_redis: RedisProcess) -> Iterator[ServerProcess]:
    """Logs every request (info), 5 failed credentials a minute per address, 8 requests a
    minute per user, one extra allowed WebSocket origin."""
    server = start_server(
        server_env(
            private_redis.url,
            MATTESERVE_AUTH_FAILURES_PER_MINUTE="5",
            MATTESERVE_RATE_LIMIT_PER_MINUTE="8",
            MATTESERVE_WS_ALLOWED_ORIGINS=ALLOWED,
        ),
        log_level="info",
    )
    yield server
    server.stop()


def test_api_keys_in_the_socket_url_are_not_logged(strict_server: ServerProcess) -> None:
    sid = create_session(strict_server, IMAGE, ALICE)["session_id"]
    with connect(f"{strict_server.ws_url}/v1/sessions/{sid}/ws?api_key=alice-key") as ws:
        assert '"ready"' in ws.recv(timeout=30)
    httpx.get(f"{strict_server.url}/v1/models?api_key=alice-key", headers=ALICE)
    log = strict_server.log_path.read_text(errors="replace")
    assert "api_key=***" in log and "WebSocket" in log
    assert "alice-key" not in log


def test_guessing_keys_is_throttled_and_valid_keys_still_work(strict_server: ServerProcess) -> None:
    statuses = []
    for k in range(12):
        response = httpx.get(f"{strict_server.url}/v1/models", headers={"Authorization": f"Bearer guess-{k}"})
        statuses.append(response.status_code)
    assert set(statuses) <= {401, 429} and 429 in statuses
    assert statuses.count(401) <= 5 + 5  # a minute boundary may fall inside the burst
    limited = httpx.get(f"{strict_server.url}/v1/models", headers={"Authorization": "Bearer guess-x"})
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    # The throttle counts failures only: the right key from the same address is answered.
    assert httpx.get(f"{strict_server.url}/v1/models", headers=ALICE).status_code == 200


def test_limits_hold_while_redis_is_down(strict_server: ServerProcess, private_redis: RedisProcess) -> None:
    private_redis.stop()
    # /v1/models needs no Redis, so it is answered during the outage — but not without limit.
    statuses = [httpx.get(f"{strict_server.url}/v1/models", headers=ALICE).status_code for _ in range(20)]
    assert set(statuses) <= {200, 429} and 429 in statuses
    assert statuses.count(200) <= 8 + 8  # a minute boundary may fall inside the burst


def test_sockets_from_foreign_origins_are_refused(strict_server: ServerProcess) -> None:
    sid = create_session(strict_server, IMAGE, ALICE)["session_id"]
    url = f"{strict_server.ws_url}/v1/sessions/{sid}/ws?api_key=alice-key"
    with pytest.raises(InvalidStatus) as refused:
        connect(url, origin="https://evil.example.net")
    assert refused.value.response.status_code == 403
    for origin in (ALLOWED, strict_server.url, None):  # listed, the API's own page, no browser
        with connect(url, origin=origin) as ws:
            assert '"ready"' in ws.recv(timeout=30), origin


def test_unauthorized_answers_name_the_scheme(strict_server: ServerProcess) -> None:
    response = httpx.get(f"{strict_server.url}/v1/models")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="matteserve"'

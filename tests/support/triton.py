"""Real Triton servers and API processes on them, for the Triton test modules' fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from service.process import ServerProcess, start_server
from service.triton_local import TritonLocalServer
from tests.conftest import server_env


def serve_repository(repository: Path) -> Iterator[TritonLocalServer]:
    """A real Triton server on ``repository`` for a module fixture; killed (as a crash would)
    and its working folder removed afterwards."""
    server = TritonLocalServer(repository, die_with_parent=True, startup_timeout=300)
    server.start()
    yield server
    server.close(graceful=False)


def api_on_triton(redis_url: str, triton: TritonLocalServer, **env: str) -> Iterator[ServerProcess]:
    """A matteserve API process on the Triton backend of ``triton`` (extra settings in ``env``)."""
    server = start_server(
        server_env(
            redis_url,
            MATTESERVE_BACKEND="triton",
            MATTESERVE_TRITON_URL=triton.grpc_url.removeprefix("grpc://"),
            MATTESERVE_TRITON_TIMEOUT_S="120",
            **env,
        )
    )
    yield server
    server.stop()

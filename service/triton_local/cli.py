"""`matteserve triton-local`: a real Triton server on this machine serving `triton_repo/`."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from service.triton_local.repository import RepositoryError
from service.triton_local.server import TritonLocalError, TritonLocalServer, default_cache_dir


def main(
    http_port: int | None = 8000,
    grpc_port: int | None = 8001,
    metrics_port: int | None = 8002,
    repository: Path | str = Path("triton_repo"),
    *,
    host: str = "127.0.0.1",
    instance_count: int | None = None,
    torch_threads: int | None = None,
    log_path: Path | str | None = None,
    startup_timeout: float = 180.0,
    log_verbose: int = 0,
) -> int:
    """Serve `repository` with the bundled tritonserver until SIGINT/SIGTERM; the exit code.

    Ports 0 or None are chosen free and printed. The server log goes to `log_path`
    (default: `~/.cache/matteserve/triton-local/tritonserver.log`). Returns 0 after a
    requested shutdown, 1 when the server cannot start or dies on its own, 130 when
    interrupted before it was ready.
    """
    log_file = Path(log_path) if log_path else default_cache_dir() / "tritonserver.log"
    stop = threading.Event()
    serving = threading.Event()
    previous: dict[int, object] = {}
    if threading.current_thread() is threading.main_thread():

        def request_stop(signum: int, frame: FrameType | None) -> None:
            stop.set()
            if not serving.is_set():
                raise KeyboardInterrupt  # interrupts the wait for readiness

        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, request_stop)
    try:
        server = TritonLocalServer(
            repository,
            http_port=http_port,
            grpc_port=grpc_port,
            metrics_port=metrics_port,
            host=host,
            log_path=log_file,
            instance_count=instance_count,
            torch_threads=torch_threads,
            startup_timeout=startup_timeout,
            log_verbose=log_verbose,
            die_with_parent=threading.current_thread() is threading.main_thread(),
        )
        with server:
            models = ", ".join(f"{m.name} ({m.kind})" for m in server.models)
            print(
                f"Triton ready in {server.startup_seconds:.1f} s serving {server.repository}: {models}\n"
                f"  grpc    {server.grpc_url}  (MATTESERVE_BACKEND=triton "
                f"MATTESERVE_TRITON_URL={server.grpc_url})\n"
                f"  http    {server.http_url}\n"
                f"  metrics {server.metrics_url}\n"
                f"  log     {server.log_path}\n"
                "Ctrl-C stops it.",
                flush=True,
            )
            serving.set()
            while not stop.is_set():
                code = server.wait(timeout=0.5)
                if code is not None:
                    print(
                        f"error: tritonserver exited with code {code}\n{server.diagnosis()}", file=sys.stderr
                    )
                    return 1
        return 0
    except (TritonLocalError, RepositoryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted while starting", file=sys.stderr)
        return 130
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]

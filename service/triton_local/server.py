"""Run the `tritonserver` bundled with `nvidia-pytriton` on a translated model repository.

What the bundled server needs on a machine like ours (all set up by `TritonLocalServer`):

- a backend directory whose `python/` folder holds `libtriton_python.so`, the
  `triton_python_backend_utils.py` beside it, and the `triton_python_backend_stub` built
  for our Python version (the package keeps the stubs apart, in `python_backend_stubs/`):
  `assemble_backend_directory` links them into our working directory, so the installed
  package is never modified;
- `LD_LIBRARY_PATH` starting with the running interpreter's `LIBDIR`: the stub links
  `libpython3.X.so.1.0` and otherwise picks up the system one, which fails under a pyenv
  interpreter with `'_thread.RLock' object has no attribute '_recursion_count'`; then
  the package's `nvidia_pytriton.libs` (the symlinked backend's RPATH does not reach it);
- `PATH` starting with our virtualenv's `bin`: the stub's embedded interpreter ignores
  PYTHONPATH, but finds itself as the first `python3` on PATH and then uses that
  virtualenv's site-packages (torch, numpy<2) — see `stub_python_bin`.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib.metadata
import importlib.util
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType

from service.triton_local.repository import TranslatedModel, build_python_repository

log = logging.getLogger(__name__)

TORCH_THREADS_ENV = "MATTESERVE_TRITON_TORCH_THREADS"
STUB_NAME = "triton_python_backend_stub"
_SHM_DIR = Path("/dev/shm")
_PR_SET_PDEATHSIG = 1
_MAX_LOG_BYTES = 20 * 1024 * 1024
_RUN_MARKER = "\n==== matteserve triton-local start "
# Logged by the bundled server on every machine without a CUDA driver.
_HARMLESS_ERRORS = ("CudaDriverHelper has not been initialized",)


class TritonLocalError(RuntimeError):
    """The local Triton server could not be started, or stopped working."""


def _pytriton_root() -> Path:
    """The installed `pytriton` package directory (without importing it)."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise TritonLocalError(
            "the tritonserver binary comes with the PyPI package nvidia-pytriton, which is not "
            "installed: pip install 'matteserve[triton-local]' (or nvidia-pytriton==0.7.0)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def find_tritonserver() -> Path:
    """Path of the `tritonserver` binary bundled with nvidia-pytriton."""
    binary = _pytriton_root() / "tritonserver" / "bin" / "tritonserver"
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise TritonLocalError(f"no executable tritonserver at {binary}")
    return binary


def _distribution_dirs(binary: Path) -> tuple[Path, Path]:
    """The bundled server's root directory and its shared-library directory."""
    root = binary.resolve().parent.parent
    libs = root.parent.parent / "nvidia_pytriton.libs"
    return root, libs


def _stub_for_this_python(root: Path) -> Path:
    """The Python-backend stub built for the running interpreter's Python version."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = root / "python_backend_stubs" / version / STUB_NAME
    if not stub.is_file():
        raise TritonLocalError(f"nvidia-pytriton ships no Python-backend stub for Python {version} ({stub})")
    return stub


def assemble_backend_directory(binary: Path, target: Path) -> Path:
    """Create `target/python/` with the Python backend and the stub for this interpreter.

    Returns `target`, to pass as `--backend-directory`.
    """
    root, _ = _distribution_dirs(binary)
    source = root / "backends" / "python"
    if not (source / "libtriton_python.so").is_file():
        raise TritonLocalError(f"the Triton Python backend is missing from {source}")
    python_dir = target / "python"
    if python_dir.exists():
        shutil.rmtree(python_dir)
    python_dir.mkdir(parents=True)
    for entry in source.iterdir():
        if entry.is_file():
            (python_dir / entry.name).symlink_to(entry.resolve())
    (python_dir / STUB_NAME).symlink_to(_stub_for_this_python(root).resolve())
    return target


def _numpy_major() -> int:
    """Major version of the numpy installed for this interpreter (0 when none is)."""
    try:
        return int(importlib.metadata.version("numpy").split(".")[0])
    except importlib.metadata.PackageNotFoundError:
        return 0


def default_cache_dir() -> Path:
    """Where matteserve keeps what it builds for the local Triton server across runs."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "matteserve" / "triton-local"


def stub_python_bin(cache_dir: Path | None = None, *, force_separate: bool = False) -> Path:
    """Directory whose `python3` the backend stub will take as its interpreter.

    The stub's embedded interpreter ignores PYTHONPATH but looks itself up as `python3` on
    PATH, and takes the site-packages of the virtualenv it finds that way. Normally that is
    the running interpreter's. The bundled stub needs numpy<2, so where this environment
    has numpy 2 (or with `force_separate`), a small virtualenv of its own is created once
    in the cache with only numpy<2, and a `.pth` file that adds this environment's
    site-packages after it (for torch and the rest).
    """
    if _numpy_major() < 2 and not force_separate:
        return Path(sys.executable).parent
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    env_dir = (cache_dir or default_cache_dir()) / f"stub-env-py{version}"
    bin_dir = env_dir / "bin"
    if (env_dir / ".ready").is_file():
        return bin_dir
    shutil.rmtree(env_dir, ignore_errors=True)
    log.info("creating the Python-backend stub environment (numpy<2) in %s", env_dir)
    try:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
        site = Path(
            subprocess.run(
                [str(bin_dir / "python3"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
        )
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(site), "numpy>=1.26,<2"],
            check=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        raise TritonLocalError(
            f"could not create the stub environment with numpy<2 in {env_dir}: {exc}; "
            "install numpy<2 in this environment instead"
        ) from exc
    paths = sysconfig.get_paths()
    parent_dirs = dict.fromkeys([paths["purelib"], paths["platlib"]])
    (site / "matteserve_parent_env.pth").write_text("\n".join(parent_dirs))
    (env_dir / ".ready").write_text(sys.executable)
    return bin_dir


def pick_free_ports(count: int, exclude: Iterable[int] = ()) -> list[int]:
    """`count` distinct TCP ports that are free right now on all interfaces."""
    ports: list[int] = []
    taken = set(exclude)
    while len(ports) < count:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("", 0))
            port = sock.getsockname()[1]
        if port not in taken:
            taken.add(port)
            ports.append(port)
    return ports


def parse_model_metrics(text: str, model: str) -> dict[str, float]:
    """Sum Triton's per-model Prometheus counters of one model over its versions.

    Keys are the metric names without the `nv_inference_` prefix, e.g. `request_success`,
    `request_failure`, `count` (inferences, i.e. batch items) and `exec_count` (model
    executions: fewer than `request_success` when the dynamic batcher merged requests).
    """
    from prometheus_client.parser import text_string_to_metric_families

    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("nv_inference_"):
            continue
        key = family.name.removeprefix("nv_inference_")
        # The parser reports Triton's counters under the name `<family>_total`.
        names = {family.name, f"{family.name}_total"}
        for sample in family.samples:
            if sample.name in names and sample.labels.get("model") == model:
                totals[key] = totals.get(key, 0.0) + sample.value
    return totals


def _group_has_live_process(pgid: int) -> bool:
    """Whether a process group still has a member that is not a zombie (reads /proc)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _parent_death_signal_setter() -> Callable[[], None]:
    """A `preexec_fn` asking Linux to SIGTERM the child when its parent thread dies.

    libc is resolved here, before the fork, so the child only makes the system call.
    """
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def set_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return set_signal


def _stop_at_exit(ref: weakref.ReferenceType[TritonLocalServer]) -> None:
    """Interpreter-exit hook that stops a server the program forgot to stop."""
    server = ref()
    if server is not None:
        server.close()


class TritonLocalServer:
    """A `tritonserver` subprocess serving a libtorch repository through the Python backend.

    Use as a context manager (`with TritonLocalServer(repo) as server:`), or call `start()`
    and `close()`. `stop()` ends the process but keeps the ports, so that `start()` brings
    the same server back on the same addresses (what clients see as an outage). Ports given
    as 0 or None are chosen free once, at construction.

    The server and its backend stubs run in a process group of their own, which `stop()`
    ends (SIGTERM to the server, then SIGKILL to the group); the stubs' shared-memory
    regions are removed with it. With `die_with_parent`, the server also gets SIGTERM if
    the thread that started it dies (Linux's parent-death signal), so a killed test
    run leaves no server behind; keep it off when starting from short-lived threads.

    `separate_stub_env` makes the backend stub use a small virtualenv with numpy<2 in
    `cache_dir` even where this environment's numpy would do (see `stub_python_bin`).
    """

    def __init__(
        self,
        repository: Path | str,
        *,
        http_port: int | None = None,
        grpc_port: int | None = None,
        metrics_port: int | None = None,
        host: str = "127.0.0.1",
        workdir: Path | str | None = None,
        log_path: Path | str | None = None,
        instance_count: int | None = None,
        torch_threads: int | None = None,
        startup_timeout: float = 180.0,
        stop_timeout: float = 30.0,
        log_verbose: int = 0,
        die_with_parent: bool = False,
        separate_stub_env: bool = False,
        cache_dir: Path | str | None = None,
        binary: Path | str | None = None,
    ) -> None:
        self.repository = Path(repository).resolve()
        wanted = [http_port, grpc_port, metrics_port]
        free = iter(pick_free_ports(sum(1 for p in wanted if not p), exclude=[p for p in wanted if p]))
        self.http_port, self.grpc_port, self.metrics_port = (p if p else next(free) for p in wanted)
        self.host = host
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="matteserve-triton-local-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = Path(log_path) if log_path else self.workdir / "tritonserver.log"
        self.instance_count = instance_count
        self.torch_threads = torch_threads
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.log_verbose = log_verbose
        self.die_with_parent = die_with_parent
        self.separate_stub_env = separate_stub_env
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.binary = Path(binary) if binary else None
        self.models: list[TranslatedModel] = []
        self.startup_seconds: float | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._stub_bin = Path(sys.executable).parent
        self._shm_prefix = f"matteserve_triton_{os.getpid()}_{secrets.token_hex(4)}_"
        atexit.register(_stop_at_exit, weakref.ref(self))

    @property
    def http_url(self) -> str:
        """`host:port` of the HTTP/REST endpoint (tritonclient.http's `url`)."""
        return f"{self._client_host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        """`host:port` of the gRPC endpoint (tritonclient.grpc's `url`, MATTESERVE_TRITON_URL)."""
        return f"{self._client_host}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        """Full URL of the Prometheus metrics endpoint."""
        return f"http://{self._client_host}:{self.metrics_port}/metrics"

    @property
    def _client_host(self) -> str:
        return "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host

    @property
    def pid(self) -> int | None:
        """Process id of the running tritonserver, None when not running."""
        return self._process.pid if self.is_running() else None

    def is_running(self) -> bool:
        """Whether the tritonserver process is alive (not necessarily ready)."""
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        """The last lines the server logged since it was last started."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        run = text.rsplit(_RUN_MARKER, 1)[-1].splitlines()
        if _RUN_MARKER in text:
            run = run[1:]
        return "\n".join(run[-lines:])

    def diagnosis(self, lines: int = 25) -> str:
        """What to show when the server failed: its error lines and the end of its log."""
        run = self.log_tail(lines=100_000).splitlines()
        errors = [
            line[:1000]
            for line in run
            if line.startswith("E") and not any(noise in line for noise in _HARMLESS_ERRORS)
        ]
        # The option and backend tables at the end of a failed start say nothing about why.
        tail = [line[:1000] for line in run if line.strip() and line[0] not in "|+"][-lines:]
        parts = [f"log: {self.log_path}"]
        if errors:
            parts += ["errors:", *errors[-15:]]
        parts += ["last lines:", *tail]
        return "\n".join(parts)

    def _environment(self, binary: Path) -> dict[str, str]:
        """Environment of the server process (inherited by its backend stubs)."""
        env = dict(os.environ)
        _, libs = _distribution_dirs(binary)
        lib_dirs = [str(sysconfig.get_config_var("LIBDIR") or ""), str(libs), env.get("LD_LIBRARY_PATH", "")]
        env["LD_LIBRARY_PATH"] = os.pathsep.join(d for d in lib_dirs if d)
        env["PATH"] = os.pathsep.join(d for d in [str(self._stub_bin), env.get("PATH", "")] if d)
        if self.torch_threads:
            env[TORCH_THREADS_ENV] = str(self.torch_threads)
        return env

    def _command(self, binary: Path, repository: Path, backends: Path) -> list[str]:
        """The tritonserver command line."""
        python_config = {
            "shm-region-prefix-name": self._shm_prefix,
            "shm-default-byte-size": 16 * 1024 * 1024,
            "shm-growth-byte-size": 16 * 1024 * 1024,
            "stub-timeout-seconds": 120,
        }
        return [
            str(binary),
            f"--model-repository={repository}",
            f"--backend-directory={backends}",
            *(f"--backend-config=python,{key}={value}" for key, value in python_config.items()),
            "--disable-auto-complete-config",
            "--strict-readiness=true",
            "--exit-on-error=true",
            "--exit-timeout-secs=10",
            f"--http-address={self.host}",
            f"--http-port={self.http_port}",
            f"--grpc-address={self.host}",
            f"--grpc-port={self.grpc_port}",
            "--allow-metrics=true",
            "--allow-gpu-metrics=false",
            f"--metrics-address={self.host}",
            f"--metrics-port={self.metrics_port}",
            f"--log-verbose={self.log_verbose}",
        ]

    def start(self) -> TritonLocalServer:
        """Translate the repository, start tritonserver and wait until all models are ready.

        Raises `TritonLocalError` (with the tail of the server log) if the binary is
        missing, the server exits early, or it is not ready within `startup_timeout`;
        `RepositoryError` if the repository cannot be translated.
        """
        if self.is_running():
            return self
        began = time.monotonic()
        binary = self.binary or find_tritonserver()
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            raise TritonLocalError(f"no executable tritonserver at {binary}")
        repository = self.workdir / "repository"
        self.models = build_python_repository(self.repository, repository, instance_count=self.instance_count)
        backends = assemble_backend_directory(binary, self.workdir / "backends")
        self._stub_bin = stub_python_bin(self.cache_dir, force_separate=self.separate_stub_env)
        command = self._command(binary, repository, backends)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            if self.log_path.stat().st_size > _MAX_LOG_BYTES:
                self.log_path.replace(self.log_path.with_name(self.log_path.name + ".1"))
        with self.log_path.open("ab") as log_file:
            started = time.strftime("%Y-%m-%d %H:%M:%S")
            log_file.write(f"{_RUN_MARKER}{started}: {' '.join(command)}\n".encode())
            log_file.flush()
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=self._environment(binary),
                cwd=self.workdir,
                start_new_session=True,
                preexec_fn=_parent_death_signal_setter() if self.die_with_parent else None,
            )
        log.info("tritonserver pid %d starting (log: %s)", self._process.pid, self.log_path)
        try:
            self._wait_ready(began)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        log.info(
            "tritonserver ready in %.1f s: http %s, grpc %s, metrics %s",
            self.startup_seconds,
            self.http_url,
            self.grpc_url,
            self.metrics_url,
        )
        return self

    def _wait_ready(self, began: float) -> None:
        """Poll the HTTP health endpoints until the server and every model are ready."""
        import tritonclient.http as httpclient

        deadline = began + self.startup_timeout
        client = httpclient.InferenceServerClient(self.http_url, connection_timeout=2.0, network_timeout=5.0)
        try:
            while True:
                assert self._process is not None
                code = self._process.poll()
                if code is not None:
                    raise TritonLocalError(
                        f"tritonserver exited with code {code} while starting\n{self.diagnosis()}"
                    )
                with contextlib.suppress(Exception):
                    if client.is_server_ready() and all(client.is_model_ready(m.name) for m in self.models):
                        return
                if time.monotonic() > deadline:
                    raise TritonLocalError(
                        f"tritonserver was not ready after {self.startup_timeout:.0f} s\n{self.diagnosis()}"
                    )
                time.sleep(0.25)
        finally:
            client.close()

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the server process to exit; its exit code, or None on timeout."""
        if self._process is None:
            return None
        try:
            return self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, *, graceful: bool = True) -> None:
        """Stop the server and its backend stubs (the whole process group); keeps the ports.

        Graceful: SIGTERM, so Triton finishes in-flight requests and unloads its models
        (a few seconds per model on this machine), then SIGKILL after `stop_timeout`.
        Not graceful: SIGKILL at once, as a crash would; clients see the same outage.
        """
        process, self._process = self._process, None
        if process is not None:
            if graceful:
                # Only the server: it finalizes its backend stubs itself while unloading.
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
                try:
                    process.wait(self.stop_timeout)
                except subprocess.TimeoutExpired:
                    log.warning("tritonserver pid %d still running after SIGTERM, killing it", process.pid)
            # Also ends backend stubs of a server that died abruptly: they are in its group.
            self._signal_group(process, signal.SIGKILL)
            process.wait()
            deadline = time.monotonic() + 10
            while _group_has_live_process(process.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        for region in _SHM_DIR.glob(f"{self._shm_prefix}*"):
            with contextlib.suppress(OSError):
                region.unlink()

    @staticmethod
    def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
        """Send a signal to the server's process group, if any process of it is left."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signum)

    def close(self, *, graceful: bool = True) -> None:
        """Stop the server and remove its working directory if this object created it."""
        self.stop(graceful=graceful)
        if self._own_workdir and self.workdir.exists():
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> TritonLocalServer:
        try:
            return self.start()
        except BaseException:
            self.close(graceful=False)
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def metrics_text(self) -> str:
        """The raw Prometheus metrics page of the server."""
        import urllib.request

        with urllib.request.urlopen(self.metrics_url, timeout=5) as response:
            return response.read().decode()

    def model_metrics(self, model: str) -> dict[str, float]:
        """Triton's inference counters for one model (see `parse_model_metrics`)."""
        return parse_model_metrics(self.metrics_text(), model)

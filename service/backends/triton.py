"""The ``triton`` backend: a Triton Inference Server over gRPC (tritonclient, asyncio).

Requests carry the io-spec names (``image__0``...). Errors are mapped by gRPC status code
(:func:`_translate`):

=========================================================  ===================================
gRPC status                                                 API error
=========================================================  ===================================
``NOT_FOUND``; ``UNAVAILABLE`` naming an unknown/unready    ``ModelNotReady`` 503
model
``UNAVAILABLE``, ``RESOURCE_EXHAUSTED``,                    ``BackendUnavailable`` 503
``DEADLINE_EXCEEDED``, ``CANCELLED``, connection failures
``INVALID_ARGUMENT``, ``INTERNAL``, anything else           ``BackendFailed`` 500 (logged)
=========================================================  ===================================

The 503s carry ``Retry-After``; the round is not committed, and the session continues when
Triton is back. Messages meant for API users never name the Triton address; the details go
to the log.

Triton's model configurations are compared with the API's io spec (``models/io_spec.py``:
tensor names, data types, per-item dims, batching) at start-up and again every
``CONFIG_RECHECK_S`` seconds when a network is used or readiness is asked: a network whose
configuration differs (a partial rebuild, a repository of another version) is not ready,
its calls answer 503 ``model_not_ready`` without reaching Triton, and readiness reports
``{"triton:<network>": "config mismatch: input image__0 is FP16, expected UINT8"}``.

The channel reconnects quickly (1 s maximum backoff) so recovery is not delayed by gRPC's
default exponential backoff of up to two minutes. An inference call is idempotent (the networks
are pure functions of their inputs), so one that fails with ``UNAVAILABLE`` (a dropped
connection, a Triton restart, a full queue: see ``models.io_spec.BatchingSpec``) is retried once
after ``RETRY_DELAY_S``; every call has the deadline ``MATTESERVE_TRITON_TIMEOUT_S``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tritonclient.grpc.aio as grpcclient
from tritonclient.grpc import KeepAliveOptions
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from models.io_spec import ModelIO, TensorSpec, to_wire
from service.backends.base import InferenceBackend, NetworkInfo
from service.errors import ApiError, BackendFailed, BackendUnavailable, ModelNotReady

log = logging.getLogger(__name__)
_INT32_MAX = 2**31 - 1
# exc.status() of tritonclient's gRPC clients is str(grpc.StatusCode.X): "StatusCode.X".
UNAVAILABLE_STATUSES = frozenset(
    {
        "StatusCode.UNAVAILABLE",
        "StatusCode.RESOURCE_EXHAUSTED",
        "StatusCode.DEADLINE_EXCEEDED",
        "StatusCode.CANCELLED",
    }
)
NOT_FOUND_STATUS = "StatusCode.NOT_FOUND"
# What Triton says of a model it does not serve (now): "Request for unknown model: 'x' is not
# found", "... has no available versions", "... version 1 is not at ready state".
_MODEL_NOT_READY_TEXT = ("unknown model", "unavailable model", "no available versions", "not at ready state")
CONFIG_RECHECK_S = 10.0
RETRY_DELAY_S = 0.05
_PROBE_TIMEOUT_S = 5.0
# After a readiness probe found the server away, the probes of this long answer that at once:
# a status page probes every network one after another, and a paused server made each wait its
# full timeout (/v1/models took 75 s). Inference calls always try the server.
UNREACHABLE_MEMORY_S = 2.0


def grpc_channel_args(max_reconnect_backoff_ms: int = 1000) -> list[tuple[str, int]]:
    """``channel_args`` for tritonclient gRPC clients that must ride out server restarts:
    tritonclient's defaults plus a short reconnect backoff."""
    keepalive = KeepAliveOptions()
    return [
        ("grpc.max_send_message_length", _INT32_MAX),
        ("grpc.max_receive_message_length", _INT32_MAX),
        ("grpc.keepalive_time_ms", keepalive.keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", keepalive.keepalive_timeout_ms),
        ("grpc.keepalive_permit_without_calls", int(keepalive.keepalive_permit_without_calls)),
        ("grpc.http2.max_pings_without_data", keepalive.http2_max_pings_without_data),
        ("grpc.initial_reconnect_backoff_ms", min(200, max_reconnect_backoff_ms)),
        ("grpc.min_reconnect_backoff_ms", min(200, max_reconnect_backoff_ms)),
        ("grpc.max_reconnect_backoff_ms", max_reconnect_backoff_ms),
    ]


def config_mismatches(io: ModelIO, config: mc.ModelConfig) -> list[str]:
    """How Triton's ``config`` of a network differs from the API's io spec ``io`` (empty when
    the API can call it): expected inputs and outputs missing or of another data type or
    per-item dims (``-1`` in Triton's dims matches any size), required inputs the API does not
    send, and no batching (the API sends ``[B, *dims]``)."""
    problems = []
    if config.max_batch_size < 1:
        problems.append(f"max_batch_size is {config.max_batch_size}, expected batching")
    for kind, expected, served in (("input", io.inputs, config.input), ("output", io.outputs, config.output)):
        by_name = {tensor.name: tensor for tensor in served}
        for spec in expected:
            tensor = by_name.pop(spec.name, None)
            if tensor is None:
                problems.append(f"{kind} {spec.name} is missing")
                continue
            dtype = mc.DataType.Name(tensor.data_type).removeprefix("TYPE_")
            if dtype != spec.dtype:
                problems.append(f"{kind} {spec.name} is {dtype}, expected {spec.dtype}")
            dims = [int(d) for d in tensor.dims]
            if len(dims) != len(spec.dims) or any(
                d not in (-1, e) for d, e in zip(dims, spec.dims, strict=False)
            ):
                problems.append(f"{kind} {spec.name} has dims {dims}, expected {list(spec.dims)}")
        if kind == "input":
            problems += [
                f"input {name} is required but unknown to the API"
                for name, t in by_name.items()
                if not t.optional
            ]
    return problems


@dataclass
class _ConfigCheck:
    checked_at: float  # time.monotonic()
    problem: str | None  # None: the configuration matches the io spec


class TritonBackend(InferenceBackend):
    name = "triton"

    def __init__(self, url: str, networks: dict[str, NetworkInfo], timeout_s: float) -> None:
        super().__init__(networks)
        self.url = url
        self.timeout_s = timeout_s
        self.probe_timeout_s = min(_PROBE_TIMEOUT_S, timeout_s)
        self.client: grpcclient.InferenceServerClient | None = None
        self._unreachable: tuple[float, BackendUnavailable] | None = None  # when, and what the probe said
        self._checks: dict[str, _ConfigCheck] = {}
        self._check_locks: dict[str, asyncio.Lock] = {}
        self._logged_problems: dict[str, str | None] = {}
        self._logged_health: str | None = None

    async def start(self) -> None:
        self.client = grpcclient.InferenceServerClient(self.url, channel_args=grpc_channel_args())
        results = await asyncio.gather(
            *(self._config_problem(name, probe=True) for name in self.networks), return_exceptions=True
        )
        unreachable = [r for r in results if isinstance(r, ApiError)]
        if unreachable:
            # Not fatal: Triton may start after the API; configurations are checked on first use.
            log.warning(
                "could not check %d of %d Triton model configurations at %s at start-up: %s",
                len(unreachable),
                len(results),
                self.url,
                unreachable[0].message,
            )
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, ApiError):
                raise result

    def _client(self) -> grpcclient.InferenceServerClient:
        if self.client is None:
            raise BackendUnavailable("The Triton backend was not started.")
        return self.client

    def _error(self, model: str, exc: InferenceServerException, *, probe: bool = False) -> ApiError:
        """``_translate``, and forget the checked configurations when the server is away (it may
        come back with another repository)."""
        error = _translate(model, exc, probe=probe)
        if isinstance(error, BackendUnavailable):
            self._checks.clear()
            if probe:
                self._unreachable = (time.monotonic(), error)
        return error

    def _recently_unreachable(self) -> BackendUnavailable | None:
        """What a readiness probe said less than ``UNREACHABLE_MEMORY_S`` ago when it found the
        server away, else None."""
        if self._unreachable is not None and time.monotonic() - self._unreachable[0] < UNREACHABLE_MEMORY_S:
            return self._unreachable[1]
        return None

    async def _config_problem(self, model: str, *, probe: bool = False) -> str | None:
        """Why Triton's configuration of ``model`` does not fit the io spec (None if it fits),
        checked at most every ``CONFIG_RECHECK_S`` seconds. Raises the translated error when the
        configuration cannot be read."""
        check = self._checks.get(model)
        if check is not None and time.monotonic() - check.checked_at < CONFIG_RECHECK_S:
            return check.problem
        lock = self._check_locks.setdefault(model, asyncio.Lock())
        async with lock:
            check = self._checks.get(model)
            if check is not None and time.monotonic() - check.checked_at < CONFIG_RECHECK_S:
                return check.problem
            try:
                response = await self._client().get_model_config(model, client_timeout=self.probe_timeout_s)
            except InferenceServerException as exc:
                raise self._error(model, exc, probe=probe) from exc
            problems = config_mismatches(self.networks[model].io, response.config)
            problem = "; ".join(problems) or None
            self._checks[model] = _ConfigCheck(time.monotonic(), problem)
        if problem != self._logged_problems.get(model):
            if problem is not None:
                log.error(
                    "Triton model %s does not match the API's io spec (%s); its pipelines stay not "
                    "ready until the model repository is redeployed",
                    model,
                    problem,
                )
            elif model in self._logged_problems:
                log.warning("Triton model %s matches the API's io spec again", model)
            self._logged_problems[model] = problem
        return problem

    def _forget_config(self, model: str) -> None:
        self._checks.pop(model, None)

    async def _infer(
        self, model: str, inputs: dict[str, np.ndarray], outputs: Sequence[str] | None
    ) -> dict[str, np.ndarray]:
        info = self.networks.get(model)
        if info is None:
            raise ModelNotReady(f"Model {model!r} is not in the model repository.")
        problem = await self._config_problem(model)
        if problem is not None:
            raise _mismatch_error(model, problem)
        io = info.io
        request = []
        for spec in io.inputs:
            array = to_wire(spec, inputs[spec.base_name])
            tensor = grpcclient.InferInput(spec.name, list(array.shape), np_to_triton_dtype(array.dtype))
            tensor.set_data_from_numpy(array)
            request.append(tensor)
        wanted = [spec for spec in io.outputs if outputs is None or spec.base_name in outputs]
        try:
            result = await self._infer_with_retry(model, request, wanted)
        except InferenceServerException as exc:
            if str(exc.status()) == "StatusCode.INVALID_ARGUMENT":
                # The configuration may have changed since it was checked (a model reloaded).
                self._forget_config(model)
                try:
                    problem = await self._config_problem(model, probe=True)
                except ApiError:
                    problem = None
                if problem is not None:
                    raise _mismatch_error(model, problem) from exc
            raise self._error(model, exc) from exc
        return {spec.base_name: result.as_numpy(spec.name) for spec in wanted}

    async def _infer_with_retry(
        self, model: str, request: list[grpcclient.InferInput], wanted: list[TensorSpec]
    ) -> grpcclient.InferResult:
        """One inference call, retried once when Triton answers ``UNAVAILABLE``."""
        for attempt in (1, 2):
            try:
                return await self._client().infer(
                    model,
                    request,
                    outputs=[grpcclient.InferRequestedOutput(spec.name) for spec in wanted],
                    client_timeout=self.timeout_s,
                )
            except InferenceServerException as exc:
                if attempt == 2 or str(exc.status()) != "StatusCode.UNAVAILABLE":
                    raise
                log.info("Triton call of %s unavailable (%s); retrying once", model, _message(exc))
                await asyncio.sleep(RETRY_DELAY_S)
        raise AssertionError("unreachable")

    async def ready(self, model: str) -> bool:
        return await self.unready_error(model) is None

    async def unready_error(self, model: str) -> ApiError | None:
        if model not in self.networks:
            return ModelNotReady(f"Model {model!r} is not in the model repository.")
        if (away := self._recently_unreachable()) is not None:
            return away
        try:
            problem = await self._config_problem(model, probe=True)
            if problem is not None:
                return _mismatch_error(model, problem)
            if not await self._client().is_model_ready(model, client_timeout=self.probe_timeout_s):
                return ModelNotReady(
                    f"Network {model!r} is not ready on the Triton server; try again shortly."
                )
        except InferenceServerException as exc:
            return self._error(model, exc, probe=True)
        except ApiError as exc:
            return exc
        return None

    async def health(self) -> dict[str, str]:
        """``triton``: ``ok``, ``not ready`` or ``unavailable``; while it answers, one
        ``triton:<network>`` entry per network: ``ok``, ``not ready`` or ``config mismatch: ...``.
        Addresses and Triton's messages go to the log only (/readyz is public)."""
        try:
            if (away := self._recently_unreachable()) is not None:
                raise away
            live = await self._client().is_server_ready(client_timeout=self.probe_timeout_s)
        except (InferenceServerException, BackendUnavailable) as exc:
            self._checks.clear()
            if isinstance(exc, InferenceServerException):
                self._error("triton", exc, probe=True)  # remembered when the server is away
            self._log_health("unavailable", _message(exc))
            return {"triton": "unavailable"}
        state = "ok" if live else "not ready"
        self._log_health(state, "the server reports it is not ready" if not live else "")
        checks = {"triton": state}
        names = list(self.networks)
        errors = await asyncio.gather(*(self.unready_error(name) for name in names))
        for name, error in zip(names, errors, strict=True):
            checks[f"triton:{name}"] = _health_entry(name, error, self._checks.get(name))
        return checks

    def _log_health(self, state: str, detail: str) -> None:
        if state == self._logged_health:
            return
        if state == "ok":
            if self._logged_health is not None:
                log.warning("Triton at %s is ready again", self.url)
        else:
            log.warning("Triton at %s is %s: %s", self.url, state, detail)
        self._logged_health = state

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None


def _health_entry(model: str, error: ApiError | None, check: _ConfigCheck | None) -> str:
    if error is None:
        return "ok"
    if check is not None and check.problem is not None:
        return f"config mismatch: {check.problem}"
    if isinstance(error, BackendUnavailable):
        return "unavailable"
    if isinstance(error, BackendFailed):
        return "failed"
    return "not ready"


def _mismatch_error(model: str, problem: str) -> ModelNotReady:
    return ModelNotReady(
        f"Network {model!r} on the Triton server does not match this API ({problem}); it stays "
        "unavailable until the model repository is redeployed."
    )


def _message(exc: Exception) -> str:
    text = exc.message() if isinstance(exc, InferenceServerException) else str(exc)
    return (text or type(exc).__name__).strip().splitlines()[0][:300]


def _translate(model: str, exc: InferenceServerException, *, probe: bool = False) -> ApiError:
    """The API error for a failed Triton call on network ``model``, by gRPC status (see the
    module docstring). The user-facing message is generic; Triton's message is logged (at debug
    level for the 503s of a readiness ``probe``, which ``health`` reports on change)."""
    status = str(exc.status() or "")
    message = _message(exc)
    lowered = message.lower()
    level = logging.DEBUG if probe else logging.WARNING
    if status == NOT_FOUND_STATUS or (
        status in ("", "StatusCode.UNAVAILABLE") and any(text in lowered for text in _MODEL_NOT_READY_TEXT)
    ):
        log.log(level, "Triton cannot run model %s now (%s): %s", model, status or "no status", message)
        return ModelNotReady(f"Network {model!r} is not ready on the Triton server; try again shortly.")
    if status in UNAVAILABLE_STATUSES or "failed to connect" in lowered:
        log.log(level, "Triton unavailable for model %s (%s): %s", model, status or "no status", message)
        return BackendUnavailable("The Triton inference server is unavailable; try again shortly.")
    log.error("Triton failed to run model %s (%s): %s", model, status or "no status", message)
    return BackendFailed(
        f"The inference server failed to run network {model!r}; the details are in the service log."
    )

"""The ``triton`` backend: a Triton Inference Server over gRPC (tritonclient, asyncio).

Requests carry the io-spec names (``image__0``...). Connection failures, timeouts and an
unready server become ``BackendUnavailable`` (503) so the API reports an outage in words and
loses nothing: the round is not committed, and the session continues when Triton is back.
The channel reconnects quickly (1 s maximum backoff) so recovery is not delayed by gRPC's
default exponential backoff of up to two minutes.
"""

from __future__ import annotations

import logging

import numpy as np
import tritonclient.grpc.aio as grpcclient
from tritonclient.grpc import KeepAliveOptions
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from service.backends.base import InferenceBackend, NetworkInfo
from service.errors import BackendUnavailable, ModelNotReady

log = logging.getLogger(__name__)
_INT32_MAX = 2**31 - 1
UNAVAILABLE_STATUSES = ("StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED", "StatusCode.CANCELLED")


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


class TritonBackend(InferenceBackend):
    name = "triton"

    def __init__(self, url: str, networks: dict[str, NetworkInfo], timeout_s: float) -> None:
        super().__init__(networks)
        self.url = url
        self.timeout_s = timeout_s
        self.client: grpcclient.InferenceServerClient | None = None

    async def start(self) -> None:
        self.client = grpcclient.InferenceServerClient(self.url, channel_args=grpc_channel_args())

    def _client(self) -> grpcclient.InferenceServerClient:
        if self.client is None:
            raise BackendUnavailable("The Triton backend was not started.")
        return self.client

    async def infer(self, model: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        info = self.networks.get(model)
        if info is None:
            raise ModelNotReady(f"Model {model!r} is not in the model repository.")
        io = info.io
        request = []
        for spec in io.inputs:
            array = np.ascontiguousarray(inputs[spec.base_name], dtype=spec.numpy_dtype)
            tensor = grpcclient.InferInput(spec.name, list(array.shape), np_to_triton_dtype(array.dtype))
            tensor.set_data_from_numpy(array)
            request.append(tensor)
        outputs = [grpcclient.InferRequestedOutput(spec.name) for spec in io.outputs]
        try:
            result = await self._client().infer(
                model, request, outputs=outputs, client_timeout=self.timeout_s
            )
        except InferenceServerException as exc:
            raise _translate(model, exc) from exc
        return {spec.base_name: result.as_numpy(spec.name) for spec in io.outputs}

    async def ready(self, model: str) -> bool:
        try:
            return bool(await self._client().is_model_ready(model, client_timeout=5))
        except (InferenceServerException, BackendUnavailable):
            return False

    async def health(self) -> dict[str, str]:
        try:
            live = await self._client().is_server_ready(client_timeout=5)
        except (InferenceServerException, BackendUnavailable) as exc:
            return {"triton": f"unavailable at {self.url}: {_message(exc)}"}
        return {"triton": "ok" if live else f"not ready at {self.url}"}

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None


def _message(exc: Exception) -> str:
    text = exc.message() if isinstance(exc, InferenceServerException) else str(exc)
    return (text or type(exc).__name__).strip().splitlines()[0][:300]


def _translate(model: str, exc: InferenceServerException) -> Exception:
    status = str(exc.status() or "")
    if status in UNAVAILABLE_STATUSES or "failed to connect" in _message(exc).lower():
        return BackendUnavailable(f"The Triton server is unavailable ({_message(exc)}); try again shortly.")
    if "not found" in _message(exc).lower() or "unavailable model" in _message(exc).lower():
        return ModelNotReady(f"Triton cannot run model {model!r}: {_message(exc)}.")
    return BackendUnavailable(f"Triton failed to run {model!r}: {_message(exc)}.")

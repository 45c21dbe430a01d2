"""How Triton's failures reach API users: by gRPC status code, with no Triton address in any
answer, and model configurations checked against the API's io spec.

The server tests run ``matteserve triton-local`` on a copy of ``triton_repo/`` whose ``semat``
configuration was altered the way a partial rebuild would leave it (``image__0`` FP16), while
the API reads the real ``triton_repo/``: so ``semat`` must stay not ready, and its rounds answer
503 ``model_not_ready`` rather than failing every call. The API runs with
``MATTESERVE_AUTO_ROUTES=box=semat`` so that ``auto`` has a not-ready choice to fall back from.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.utils import InferenceServerException
from websockets.sync.client import connect

from models.io_spec import model_io
from service.backends.base import read_networks
from service.backends.triton import TritonBackend, _translate, config_mismatches
from service.config import REPO_ROOT
from service.errors import BackendFailed, BackendUnavailable, ModelNotReady
from service.pixel_budget import WAIT_RESIDENT_SHARE
from service.process import ServerProcess
from service.triton_local import TritonLocalServer, read_model_config
from tests.conftest import ALICE, BOB
from tests.service.test_sessions_http import BOX, create_session, run_round
from tests.support.images import encode, two_objects
from tests.support.triton import api_on_triton, serve_repository
from tests.support.waiting import wait_until

REPOSITORY = REPO_ROOT / "triton_repo"
TEXT = {"type": "text", "text": "the large object on the left"}
MISMATCH = "input image__0 is FP16, expected UINT8"

# ------------------------------------------------------------------ without a server


@pytest.mark.parametrize(
    ("status", "message", "error", "http", "code"),
    [
        (
            "StatusCode.INVALID_ARGUMENT",
            "unexpected shape for input 'image__0'",
            BackendFailed,
            500,
            "backend_error",
        ),
        ("StatusCode.INTERNAL", "RuntimeError: shape mismatch", BackendFailed, 500, "backend_error"),
        ("StatusCode.UNKNOWN", "something", BackendFailed, 500, "backend_error"),
        ("StatusCode.UNIMPLEMENTED", "no such RPC", BackendFailed, 500, "backend_error"),
        ("StatusCode.PERMISSION_DENIED", "denied", BackendFailed, 500, "backend_error"),
        (None, "client-side error", BackendFailed, 500, "backend_error"),
        (
            "StatusCode.NOT_FOUND",
            "Request for unknown model: 'mrn' is not found",
            ModelNotReady,
            503,
            "model_not_ready",
        ),
        (
            "StatusCode.UNAVAILABLE",
            "Request for unknown model: 'mrn' has no available versions",
            ModelNotReady,
            503,
            "model_not_ready",
        ),
        (
            "StatusCode.UNAVAILABLE",
            "failed to connect to all addresses; last error: UNKNOWN: ipv4:10.1.2.3:8001: Connection refused",
            BackendUnavailable,
            503,
            "backend_unavailable",
        ),
        ("StatusCode.RESOURCE_EXHAUSTED", "queue full", BackendUnavailable, 503, "backend_unavailable"),
        ("StatusCode.DEADLINE_EXCEEDED", "Deadline Exceeded", BackendUnavailable, 503, "backend_unavailable"),
        (
            "StatusCode.CANCELLED",
            "Locally cancelled by application!",
            BackendUnavailable,
            503,
            "backend_unavailable",
        ),
    ],
)
def test_translate_maps_grpc_status_codes(
    status: str | None, message: str, error: type, http: int, code: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="service.backends.triton")
    translated = _translate("mrn", InferenceServerException(msg=message, status=status))
    assert type(translated) is error
    assert (translated.status, translated.code) == (http, code)
    assert message not in translated.message and "10.1.2.3" not in translated.message
    assert translated.headers() == ({} if http == 500 else {"Retry-After": "2"})
    logged = [r for r in caplog.records if message in r.getMessage() and "mrn" in r.getMessage()]
    assert logged and logged[0].levelno == (logging.ERROR if http == 500 else logging.WARNING)


def test_config_mismatches_name_each_difference() -> None:
    config = read_model_config(REPOSITORY / "semat" / "config.pbtxt")
    io = model_io("semat", int(config.parameters["matteserve_input_size"].string_value))
    assert config_mismatches(io, config) == []
    config.input[0].data_type = mc.TYPE_FP16
    config.output[1].dims[1] = 7
    del config.input[1:]
    config.input.add(name="extra__9", data_type=mc.TYPE_FP32, dims=[1])
    config.input.add(name="optional__10", data_type=mc.TYPE_FP32, dims=[1], optional=True)
    s4 = io.size // 4
    assert config_mismatches(io, config) == [
        MISMATCH,
        "input box__1 is missing",
        "input extra__9 is required but unknown to the API",
        f"output trimap_logits__1 has dims [3, 7, {s4}], expected [3, {s4}, {s4}]",
    ]
    config.max_batch_size = 0
    assert config_mismatches(io, config)[0] == "max_batch_size is 0, expected batching"
    wildcard = read_model_config(REPOSITORY / "semat" / "config.pbtxt")
    wildcard.input[0].dims[1] = -1
    assert config_mismatches(io, wildcard) == []


# ------------------------------------------------------------------ on a real Triton server


def _mismatched_copy(target: Path) -> Path:
    """``triton_repo/`` with the same TorchScript files (linked) and ``semat``'s ``image__0``
    declared FP16 (its FP32 warm-up dropped, or the model would not load)."""
    for model_dir in sorted(p for p in REPOSITORY.iterdir() if (p / "config.pbtxt").is_file()):
        (target / model_dir.name).mkdir(parents=True)
        (target / model_dir.name / "1").symlink_to((model_dir / "1").resolve(), target_is_directory=True)
        config = read_model_config(model_dir / "config.pbtxt")
        if model_dir.name == "semat":
            config.input[0].data_type = mc.TYPE_FP16
            config.ClearField("model_warmup")
        (target / model_dir.name / "config.pbtxt").write_text(text_format.MessageToString(config))
    return target


@pytest.fixture(scope="module")
def mismatched_triton(
    tmp_path_factory: pytest.TempPathFactory, tritonserver_binary: Path
) -> Iterator[TritonLocalServer]:
    yield from serve_repository(_mismatched_copy(tmp_path_factory.mktemp("mismatched_repo")))


@pytest.fixture(scope="module")
def api(redis_url: str, mismatched_triton: TritonLocalServer) -> Iterator[ServerProcess]:
    yield from api_on_triton(redis_url, mismatched_triton, MATTESERVE_AUTO_ROUTES="box=semat")


def _no_address(text: str, triton: TritonLocalServer) -> bool:
    return str(triton.grpc_port) not in text and "127.0.0.1" not in text


def _ws_round(api: ServerProcess, sid: str, message: dict) -> dict:
    with connect(f"{api.ws_url}/v1/sessions/{sid}/ws?api_key=alice-key") as ws:
        assert json.loads(ws.recv(timeout=30))["type"] == "ready"
        ws.send(json.dumps({"type": "round", **message}))
        answer = json.loads(ws.recv(timeout=120))
        if answer["type"] == "result":
            assert isinstance(ws.recv(timeout=30), bytes)
        return answer


def _matte(api: ServerProcess, prompts: list[dict], model: str = "auto") -> httpx.Response:
    image, _, _ = two_objects()
    return httpx.post(
        f"{api.url}/v1/matte",
        files={"image": ("photo.png", encode(image), "image/png")},
        data={"prompts": json.dumps(prompts), "model": model, "output": "alpha"},
        headers=ALICE,
        timeout=120,
    )


def test_a_mismatched_config_keeps_its_pipeline_not_ready(
    api: ServerProcess, mismatched_triton: TritonLocalServer
) -> None:
    ready = httpx.get(f"{api.url}/readyz")
    assert ready.status_code == 503 and _no_address(ready.text, mismatched_triton)
    checks = ready.json()["checks"]
    assert checks["triton"] == "ok"
    assert checks["triton:semat"] == f"config mismatch: {MISMATCH}"
    assert {k: v for k, v in checks.items() if k.startswith("triton:") and k != "triton:semat"} == {
        f"triton:{name}": "ok" for name in read_networks(REPOSITORY) if name != "semat"
    }
    models = {m["name"]: m for m in httpx.get(f"{api.url}/v1/models", headers=ALICE).json()["models"]}
    assert not models["semat"]["ready"] and models["dfimat"]["ready"]

    image, _, _ = two_objects()
    sid = create_session(api, image, ALICE, model="semat")["session_id"]
    response = run_round(api, sid, [BOX], ALICE)
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "model_not_ready"
    assert response.headers["Retry-After"] == "2"
    assert _no_address(response.text, mismatched_triton)
    assert _ws_round(api, sid, {"prompts": [BOX]})["error"]["code"] == "model_not_ready"
    assert httpx.get(f"{api.url}/v1/sessions/{sid}", headers=ALICE).json()["rounds"] == []

    # auto's choice for a box is semat here: not ready, so the next usable pipeline runs, and says so.
    response = run_round(api, sid, [BOX], ALICE, model="auto")
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "dfimat"
    assert "Triton model semat does not match the API's io spec (input image__0 is FP16" in api.log()


def test_invalid_argument_from_triton_is_a_logged_500(
    mismatched_triton: TritonLocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="service.backends.triton")
    backend = TritonBackend(mismatched_triton.grpc_url, read_networks(REPOSITORY), timeout_s=60)

    async def scenario() -> tuple[Exception, bool, bool, dict[str, str]]:
        await backend.start()
        try:
            # Half the size the io spec and Triton's config declare: Triton answers INVALID_ARGUMENT.
            wrong = {
                "image": np.zeros((1, 3, 16, 16), np.float32),
                "mask": np.zeros((1, 1, 16, 16), np.float32),
            }
            with pytest.raises(BackendFailed) as failed:
                await backend.infer("mrn", wrong)
            with pytest.raises(ModelNotReady):
                await backend.infer("semat", {"image": np.zeros((1, 3, 16, 16)), "box": np.zeros((1, 4))})
            return (
                failed.value,
                await backend.ready("mrn"),
                await backend.ready("semat"),
                await backend.health(),
            )
        finally:
            await backend.close()

    error, mrn_ready, semat_ready, health = asyncio.run(scenario())
    assert (error.status, error.code) == (500, "backend_error")
    assert "unexpected shape" not in error.message and _no_address(error.message, mismatched_triton)
    logged = [
        r for r in caplog.records if r.levelno == logging.ERROR and "unexpected shape" in r.getMessage()
    ]
    assert logged and "mrn" in logged[0].getMessage() and "INVALID_ARGUMENT" in logged[0].getMessage()
    start_up = [
        r.getMessage() for r in caplog.records if r.levelno == logging.ERROR and "semat" in r.getMessage()
    ]
    assert start_up and MISMATCH in start_up[0]
    assert (mrn_ready, semat_ready) == (True, False)
    assert health["triton"] == "ok" and health["triton:semat"] == f"config mismatch: {MISMATCH}"


def test_an_outage_answers_503_with_retry_after_and_auto_falls_back_where_it_can(
    api: ServerProcess, mismatched_triton: TritonLocalServer
) -> None:
    image, _, _ = two_objects()
    sid = create_session(api, image, ALICE, model="auto")["session_id"]
    mismatched_triton.stop(graceful=False)
    try:
        # A named learned model: 503 backend_unavailable, over HTTP and WS, nothing applied.
        response = run_round(api, sid, [BOX], ALICE, model="dfimat")
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "backend_unavailable"
        assert response.headers["Retry-After"] == "2"
        assert "Triton" in response.json()["error"]["message"]
        assert _no_address(response.text, mismatched_triton)
        assert (
            _ws_round(api, sid, {"prompts": [BOX], "model": "dfimat"})["error"]["code"]
            == "backend_unavailable"
        )
        assert _matte(api, [BOX], model="dfimat").status_code == 503

        ready = httpx.get(f"{api.url}/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["triton"] == "unavailable"
        assert _no_address(ready.text, mismatched_triton)
        # The orchestrator's probe: the API itself is still ready (503 JSON per request, above).
        local = httpx.get(f"{api.url}/readyz", params={"scope": "local"})
        assert local.status_code == 200 and local.json()["checks"]["triton"] == "unavailable"
        assert httpx.get(f"{api.url}/v1/models", headers=ALICE).status_code == 200

        # auto: prompts the classical engine can use fall back to it, and the answer names it...
        response = run_round(api, sid, [BOX], ALICE)
        assert response.status_code == 200, response.text
        assert response.json()["model"] == "classical"
        ws_result = _ws_round(api, sid, {"prompts": [BOX]})
        assert (ws_result["type"], ws_result["model"]) == ("result", "classical")
        one_shot = _matte(api, [BOX])
        assert one_shot.status_code == 200 and one_shot.headers["X-Matteserve-Model"] == "classical"
        # ...prompts only a learned model can use (text, none at all) answer 503, never 400.
        fresh = create_session(api, image, ALICE, model="auto")["session_id"]
        for prompts in ([TEXT], []):
            response = run_round(api, fresh, prompts, ALICE)
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "backend_unavailable"
            assert response.headers["Retry-After"] == "2"
            assert _ws_round(api, fresh, {"prompts": prompts})["error"]["code"] == "backend_unavailable"
            assert _matte(api, prompts).status_code == 503
        assert httpx.get(f"{api.url}/v1/sessions/{fresh}", headers=ALICE).json()["rounds"] == []
    finally:
        mismatched_triton.start()
    assert wait_until(lambda: httpx.get(f"{api.url}/readyz").json()["checks"]["triton"] == "ok", 60)
    response = run_round(api, sid, [BOX], ALICE, model="dfimat")
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "dfimat"


def test_the_queue_is_bounded_and_an_unavailable_call_is_retried_once(
    mismatched_triton: TritonLocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The real server runs the exported queue policy; a call Triton cannot take (here: the server
    died after the configuration check) is tried twice, then answers 503. Last in this module: it
    leaves the server stopped."""
    import tritonclient.grpc as grpc_sync

    caplog.set_level(logging.INFO, logger="service.backends.triton")
    client = grpc_sync.InferenceServerClient(mismatched_triton.grpc_url.removeprefix("grpc://"))
    config = client.get_model_config("mrn").config
    client.close()
    policy = config.dynamic_batching.default_queue_policy
    expected = model_io("mrn", 256).batching
    assert (policy.max_queue_size, policy.default_timeout_microseconds) == (
        expected.max_queue_size,
        expected.queue_timeout_us,
    )
    assert policy.timeout_action == mc.ModelQueuePolicy.TimeoutAction.REJECT
    assert sorted(w.batch_size for w in config.model_warmup) == list(expected.warmup_batch_sizes())

    backend = TritonBackend(mismatched_triton.grpc_url, read_networks(REPOSITORY), timeout_s=60)
    inputs = {"image": np.zeros((1, 3, 256, 256), np.float32), "mask": np.zeros((1, 1, 256, 256), np.float32)}

    async def scenario() -> None:
        await backend.start()
        try:
            assert (await backend.infer("mrn", inputs))["alpha"].shape == (1, 1, 256, 256)
            mismatched_triton.stop(graceful=False)
            with pytest.raises(BackendUnavailable):
                await backend.infer("mrn", inputs)
        finally:
            await backend.close()

    asyncio.run(scenario())
    retries = [r for r in caplog.records if "retrying once" in r.getMessage()]
    assert len(retries) == 1 and "mrn" in retries[0].getMessage()


@pytest.mark.anyio
async def test_probes_of_a_server_found_away_answer_at_once_for_a_moment(
    mismatched_triton: TritonLocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A status page probes every network one after another; against a paused server each
    probe waited its full timeout (/v1/models took 75 s, found by a probe of the Triton path).
    Now, once a readiness probe finds the server away, the probes of the next
    ``UNREACHABLE_MEMORY_S`` answer ``backend_unavailable`` without calling it, and the probes'
    deadline is never above the calls' (``MATTESERVE_TRITON_TIMEOUT_S``). The server is a real
    Triton paused with SIGSTOP; the spies count the real client's probe calls and call through.
    The memory is set long, then to zero, so that no step depends on how fast the machine is."""
    import service.backends.triton as triton

    if not mismatched_triton.is_running():  # the test above leaves it stopped
        mismatched_triton.start()
    backend = TritonBackend(mismatched_triton.grpc_url, read_networks(REPOSITORY), timeout_s=0.5)
    assert backend.probe_timeout_s == 0.5
    assert mismatched_triton.pid is not None
    os.kill(mismatched_triton.pid, signal.SIGSTOP)
    try:
        await backend.start()  # logs that the configurations could not be checked; not fatal
        calls: list[str] = []
        client = backend._client()
        for name in ("get_model_config", "is_model_ready", "is_server_ready"):
            real = getattr(client, name)

            def counted(*args, _real=real, _name=name, **kwargs):
                calls.append(_name)
                return _real(*args, **kwargs)

            monkeypatch.setattr(client, name, counted)
        monkeypatch.setattr(triton, "UNREACHABLE_MEMORY_S", 3600.0)
        errors = [await backend.unready_error(name) for name in backend.networks]
        assert all(isinstance(e, BackendUnavailable) for e in errors), errors
        assert calls == [], "start-up found the server away: no probe needs to call it again"
        assert (await backend.health()) == {"triton": "unavailable"} and calls == []

        monkeypatch.setattr(triton, "UNREACHABLE_MEMORY_S", 0.0)
        first = next(iter(backend.networks))
        assert isinstance(await backend.unready_error(first), BackendUnavailable)
        assert calls == ["get_model_config"], "the memory has passed: the server is asked again"
    finally:
        os.kill(mismatched_triton.pid, signal.SIGCONT)
        await backend.close()


def _metric(api: ServerProcess, name: str) -> float:
    for line in httpx.get(f"{api.url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not exported")


def test_a_round_waiting_on_a_paused_triton_does_not_hold_the_pixel_budget(
    redis_url: str, mismatched_triton: TritonLocalServer
) -> None:
    """The budget fits one photo and a waiting round's resident share, not two photos. A dfimat
    round waits on a paused Triton (SIGSTOP: the call hangs until the 120 s deadline); meanwhile
    another user's classical round must run, not queue behind it until
    ``MATTESERVE_ROUND_WAIT_TIMEOUT_S`` and answer 503 (found by a probe of the Triton path).
    Ordered by the exported gauges, never by sleeps."""
    if not mismatched_triton.is_running():  # an earlier test leaves it stopped
        mismatched_triton.start()
    image, _, _ = two_objects()
    pixels = image.shape[0] * image.shape[1]
    resident = math.ceil(WAIT_RESIDENT_SHARE * pixels)
    serve = contextlib.contextmanager(api_on_triton)
    with (
        serve(
            redis_url,
            mismatched_triton,
            MATTESERVE_MAX_PIXELS=str(pixels),
            MATTESERVE_MAX_CONCURRENT_PIXELS=str(pixels + resident),
            MATTESERVE_ROUND_WAIT_TIMEOUT_S="20",
        ) as api,
        ThreadPoolExecutor(1) as pool,
    ):
        learned = create_session(api, image, ALICE, model="dfimat")["session_id"]
        classical = create_session(api, image, BOB, model="classical")["session_id"]
        assert mismatched_triton.pid is not None
        os.kill(mismatched_triton.pid, signal.SIGSTOP)
        try:
            waiting = pool.submit(run_round, api, learned, [BOX], ALICE)
            assert wait_until(lambda: _metric(api, "matteserve_pixels_lent") == pixels - resident, 60)
            response = run_round(api, classical, [BOX], BOB)
            assert response.status_code == 200, response.text
            assert not waiting.done(), "the learned round is still waiting on the paused server"
            assert _metric(api, "matteserve_pixels_held") == resident
        finally:
            os.kill(mismatched_triton.pid, signal.SIGCONT)
        response = waiting.result(timeout=120)
        assert response.status_code == 200, response.text
        assert response.json()["model"] == "dfimat"
        assert (_metric(api, "matteserve_pixels_held"), _metric(api, "matteserve_pixels_lent")) == (0, 0)

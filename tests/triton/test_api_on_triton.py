"""The full API with ``MATTESERVE_BACKEND=triton`` against a real Triton server.

The server is ``matteserve triton-local``'s: the tritonserver bundled with nvidia-pytriton,
serving ``triton_repo/`` (same model names, inputs, outputs and dynamic batching) on CPU.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import numpy as np
import pytest
import redis

from models.io_spec import example_inputs
from service.backends.base import read_networks
from service.backends.local import LocalBackend
from service.backends.triton import TritonBackend
from service.config import REPO_ROOT
from service.process import ServerProcess
from service.store import keys
from service.triton_local import TritonLocalServer
from tests.conftest import ALICE
from tests.service.test_sessions_http import BOX, create_session, fetch_alpha, run_round
from tests.support.images import encode, two_objects
from tests.support.triton import api_on_triton, serve_repository
from tests.support.waiting import wait_until

REPOSITORY = REPO_ROOT / "triton_repo"


@pytest.fixture(scope="module")
def triton_models(tritonserver_binary: Path) -> Iterator[TritonLocalServer]:
    yield from serve_repository(REPOSITORY)


@pytest.fixture(scope="module")
def triton_api(redis_url: str, triton_models: TritonLocalServer) -> Iterator[ServerProcess]:
    yield from api_on_triton(redis_url, triton_models)


def test_models_and_readiness_come_from_triton(triton_api: ServerProcess) -> None:
    models = httpx.get(f"{triton_api.url}/v1/models", headers=ALICE).json()
    learned = [m for m in models["models"] if m["name"] != "classical"]
    assert learned and all(m["backend"] == "triton" and m["ready"] for m in learned)
    ready = httpx.get(f"{triton_api.url}/readyz").json()
    assert ready["checks"]["triton"] == "ok"


@pytest.mark.parametrize(("model", "prompts"), [("dfimat", [BOX]), ("semat", [BOX]), ("smat", [BOX])])
def test_a_round_gives_the_same_alpha_as_the_local_backend(
    triton_api: ServerProcess, api_server: ServerProcess, model: str, prompts: list[dict]
) -> None:
    image, _, distractor = two_objects()
    ys, xs = np.nonzero(distractor)
    later = [{"type": "click", "x": float(xs.mean()), "y": float(ys.mean()), "label": "bg"}]
    alphas = []
    for server in (triton_api, api_server):
        sid = create_session(server, image, ALICE, model=model)["session_id"]
        assert run_round(server, sid, prompts, ALICE).status_code == 200
        rounds = [fetch_alpha(server, sid, 1, ALICE)]
        if model == "dfimat":  # multi-round: the cached features and the round state travel too
            assert run_round(server, sid, later, ALICE).status_code == 200
            rounds.append(fetch_alpha(server, sid, 2, ALICE))
        alphas.append(rounds)
    for on_triton, local in zip(*alphas, strict=True):
        assert np.abs(on_triton - local).max() <= 2 / 255 + 1e-6


@pytest.mark.anyio
async def test_backends_return_only_the_outputs_asked_for(triton_models: TritonLocalServer) -> None:
    """A pipeline names the outputs it uses; Triton then sends only those (the decoder's 16
    instance masks stay on the server in a dfimat round)."""
    networks = read_networks(REPOSITORY)
    inputs = {
        spec.base_name: tensor.numpy()
        for spec, tensor in zip(
            networks["iscn_decoder"].io.inputs, example_inputs("iscn_decoder", 256, batch=1), strict=True
        )
    }
    triton = TritonBackend(triton_models.grpc_url.removeprefix("grpc://"), networks, timeout_s=60)
    local = LocalBackend(REPOSITORY, networks, anyio.CapacityLimiter(1), threads=1)
    await triton.start()
    await local.start()
    try:
        for backend in (triton, local):
            everything = await backend.infer("iscn_decoder", inputs)
            assert set(everything) == {"mask_logits", "class_score", "instance_logits", "instance_scores"}
            only = await backend.infer("iscn_decoder", inputs, outputs=("mask_logits",))
            assert set(only) == {"mask_logits"}
            np.testing.assert_allclose(only["mask_logits"], everything["mask_logits"], atol=1e-5)
    finally:
        await triton.close()
        await local.close()


def test_concurrent_requests_are_batched_by_triton(
    triton_api: ServerProcess, triton_models: TritonLocalServer
) -> None:
    image, _, _ = two_objects()
    sessions = [create_session(triton_api, image, ALICE, model="dfimat")["session_id"] for _ in range(8)]
    before = {name: triton_models.model_metrics(name) for name in ("iscn_decoder", "mrn")}
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda sid: run_round(triton_api, sid, [BOX], ALICE), sessions))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.status_code != 200]
    executions = requests = 0.0
    for name, earlier in before.items():
        now = triton_models.model_metrics(name)
        requests += now["request_success"] - earlier.get("request_success", 0.0)
        executions += now["exec_count"] - earlier.get("exec_count", 0.0)
    assert requests == 16
    assert executions < requests, f"{executions} executions for {requests} requests: nothing was batched"


def test_triton_outage_gives_503_and_the_session_continues(
    triton_api: ServerProcess, triton_models: TritonLocalServer, redis_client: redis.Redis
) -> None:
    image, _, distractor = two_objects()
    sid = create_session(triton_api, image, ALICE, model="dfimat")["session_id"]
    assert run_round(triton_api, sid, [BOX], ALICE).json()["round"] == 1
    ys, xs = np.nonzero(distractor)
    click = [{"type": "click", "x": float(xs.mean()), "y": float(ys.mean()), "label": "bg"}]
    triton_models.stop(graceful=False)
    try:
        response = run_round(triton_api, sid, click, ALICE)
        assert response.status_code == 503, response.text
        error = response.json()["error"]
        assert error["code"] == "backend_unavailable" and "Triton" in error["message"]
        assert httpx.get(f"{triton_api.url}/readyz").status_code == 503
        info = httpx.get(f"{triton_api.url}/v1/sessions/{sid}", headers=ALICE).json()
        assert len(info["rounds"]) == 1, "the failed round was not applied"
        # A session that could not be created (its features need Triton) leaves nothing in Redis.
        odd_size = two_objects(97, 131)[0]
        created = httpx.post(
            f"{triton_api.url}/v1/sessions",
            files={"image": ("photo.png", encode(odd_size), "image/png")},
            data={"model": "dfimat"},
            headers=ALICE,
            timeout=60,
        )
        assert created.status_code == 503 and created.json()["error"]["code"] == "backend_unavailable"
        assert not [
            sid
            for sid in redis_client.zrange(keys.SESSIONS_INDEX, 0, -1)
            if redis_client.hmget(keys.meta(sid.decode()), "width", "height") == [b"131", b"97"]
        ], "the failed creation kept its session"
        # /v1/instances says the server is away, as rounds do (it said model_not_ready).
        instances = httpx.post(
            f"{triton_api.url}/v1/instances",
            files={"image": ("photo.png", encode(image), "image/png")},
            headers=ALICE,
            timeout=60,
        )
        assert instances.status_code == 503 and instances.json()["error"]["code"] == "backend_unavailable"
    finally:
        triton_models.start()
    assert wait_until(lambda: httpx.get(f"{triton_api.url}/readyz").status_code == 200, 60)
    response = run_round(triton_api, sid, click, ALICE)
    assert response.status_code == 200, response.text
    assert response.json()["round"] == 2

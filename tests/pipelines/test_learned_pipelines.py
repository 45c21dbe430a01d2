"""The learned pipelines on the local backend (the TorchScript files of triton_repo/).

These check behaviour that does not depend on how well the networks are trained: shapes,
feature caching, round state, prompt support, routing; the quality of trained weights is
the evaluation's business (``matteserve eval``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence

import anyio
import httpx
import numpy as np
import pytest
import redis

from models.text import MiniLMEncoder
from service.backends.base import read_networks
from service.backends.local import LocalBackend
from service.config import REPO_ROOT
from service.pipelines.base import FeatureCache, RoundInput
from service.pipelines.dfimat import DFIMatPipeline
from service.pipelines.networks import pack_arrays, stability_score, unpack_arrays
from service.pipelines.smat import SMatPipeline
from service.process import ServerProcess
from service.store import keys
from tests.conftest import ALICE
from tests.service.test_sessions_http import BOX, create_session, fetch_alpha, run_round
from tests.support.images import decode_png, encode, two_objects

REPOSITORY = REPO_ROOT / "triton_repo"


class CountingBackend(LocalBackend):
    """The real local backend, counting the calls per network."""

    def __init__(self) -> None:
        super().__init__(REPOSITORY, read_networks(REPOSITORY), anyio.CapacityLimiter(2), threads=2)
        self.calls: dict[str, int] = {}

    async def infer(
        self, model: str, inputs: dict[str, np.ndarray], outputs: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        self.calls[model] = self.calls.get(model, 0) + 1
        return await super().infer(model, inputs, outputs)


@pytest.mark.anyio
async def test_dfimat_encodes_once_and_rounds_reuse_features_and_state() -> None:
    backend = CountingBackend()
    await backend.start()
    pipeline = DFIMatPipeline(backend, text=None, limiter=anyio.CapacityLimiter(2))  # type: ignore[arg-type]
    image, _, _ = two_objects(180, 240)
    features = FeatureCache.in_memory()
    await pipeline.prepare(image, features)
    assert backend.calls == {"iscn_encoder": 1}
    cached = unpack_arrays(await features.load("iscn_encoder"))
    assert cached["features"].shape[0] == backend.network("iscn_decoder").io.input("features").dims[0]

    from schemas.prompts import BoxPrompt, ClickPrompt

    box = BoxPrompt(x0=20, y0=30, x1=150, y1=150)
    first = await pipeline.run_round(RoundInput(image, [box], [box], None, None, features, 1))
    click = ClickPrompt(x=190, y=90, label="bg")
    second = await pipeline.run_round(
        RoundInput(image, [box, click], [click], first.alpha, first.state, features, 2)
    )
    # With a box the pipeline focuses on the box's region: its features are computed in round 1
    # (once) and reused by round 2, whose marks leave the region unchanged.
    assert backend.calls == {"iscn_encoder": 2, "iscn_decoder": 2, "mrn": 2}, (
        "rounds reuse the cached features"
    )
    region = ",".join(
        str(v) for v in pipeline._focus(RoundInput(image, [box], [box], None, None, features, 1))
    )
    assert await features.load(f"iscn_encoder@{region}") is not None
    for output in (first, second):
        assert output.alpha.shape == (180, 240) and output.alpha.dtype == np.float32
        assert output.alpha.min() >= 0.0 and output.alpha.max() <= 1.0
        assert 0.0 <= output.score <= 1.0
        s4 = pipeline.size // 4
        assert output.state.startswith(b"MSFOCUS1")
        assert unpack_arrays(output.state[24:])["prev_mask"].shape == (s4, s4)
    # Later rounds neither read nor unpack the feature bytes: the decoded arrays are kept.
    loads: list[str] = []
    shared = FeatureCache.in_memory()
    kept = FeatureCache(lambda n: loads.append(n) or shared.load(n), shared.save, shared.recall, shared.keep)
    for n in (1, 2, 3):
        await pipeline.run_round(RoundInput(image, [box, click], [click], None, None, kept, n))
    assert len(loads) == 1, "only round 1 looks in the shared store"
    decoded = shared.recall(f"iscn_encoder@{region}")
    assert decoded["features"].dtype == np.float16 and not decoded["features"].flags.writeable
    assert np.array_equal(
        decoded["features"],
        unpack_arrays(await shared.load(f"iscn_encoder@{region}"), floats=np.float16)["features"],
    )
    # Without a box, the session's own features serve every round.
    click = ClickPrompt(x=60, y=90, label="fg")
    await pipeline.run_round(RoundInput(image, [click], [click], None, None, features, 1))
    assert backend.calls["iscn_encoder"] == 3  # the new cache computed the region's once
    await backend.close()


@pytest.mark.anyio
async def test_smat_runs_automatic_without_prompts_and_caches_its_encoder() -> None:
    backend = CountingBackend()
    await backend.start()
    pipeline = SMatPipeline(backend, anyio.CapacityLimiter(2))
    image, _, _ = two_objects(120, 200)
    features = FeatureCache.in_memory()
    pipeline.check_prompts([])  # automatic mode is allowed
    for n in (1, 2):
        output = await pipeline.run_round(RoundInput(image, [], [], None, None, features, n))
        assert output.alpha.shape == (120, 200)
    assert backend.calls == {"smat_encoder": 1, "smat_decoder": 2}


def test_feature_packing_is_compact_and_lossless_to_fp16() -> None:
    rng = np.random.default_rng(0)
    arrays = {"features": rng.normal(size=(8, 16, 16)).astype(np.float32), "kinds": np.arange(4)}
    back = unpack_arrays(pack_arrays(arrays))
    assert back["features"].dtype == np.float32 and back["kinds"].dtype == arrays["kinds"].dtype
    assert np.array_equal(back["features"], arrays["features"].astype(np.float16).astype(np.float32))
    assert np.array_equal(back["kinds"], arrays["kinds"])
    as_packed = unpack_arrays(pack_arrays(arrays), floats=np.float16)
    assert as_packed["features"].dtype == np.float16
    assert np.array_equal(as_packed["features"], arrays["features"].astype(np.float16))
    assert stability_score(np.zeros((4, 4))) == 1.0
    assert stability_score(np.full((4, 4), 0.5)) == 0.0


def test_models_report_untrained_networks_and_auto_avoids_them(api_server: ServerProcess) -> None:
    models = httpx.get(f"{api_server.url}/v1/models", headers=ALICE).json()
    by_name = {m["name"]: m for m in models["models"]}
    assert {"classical", "dfimat", "semat", "smat"} <= set(by_name)
    networks = {n["name"]: n for m in models["models"] for n in m["networks"]}
    assert set(networks) >= {"iscn_encoder", "iscn_decoder", "mrn", "semat", "smat_encoder", "smat_decoder"}
    for name in ("dfimat", "semat", "smat"):
        model = by_name[name]
        assert model["backend"] == "local" and model["ready"]
        if not model["trained"]:
            assert model["detail"] and "untrained" in model["detail"]
            assert name not in models["auto"].values(), "auto never routes to an untrained model"
    assert models["instances"]["networks"][-1]["name"] == "instmatt"


def test_dfimat_session_caches_features_in_redis_and_runs_rounds(
    api_server: ServerProcess, redis_client: redis.Redis
) -> None:
    image, _, distractor = two_objects()
    session = create_session(api_server, image, ALICE, model="dfimat")
    sid = session["session_id"]
    assert "iscn_encoder" in session["timings_ms"]
    feature_key = keys.features(sid, "iscn_encoder")
    stored = redis_client.get(feature_key)
    assert stored is not None and 0 < len(stored) < 2_000_000
    first = run_round(api_server, sid, [BOX], ALICE)
    assert first.status_code == 200, first.text
    assert first.json()["model"] == "dfimat" and {"iscn_decoder", "mrn"} <= first.json()["timings_ms"].keys()
    ys, xs = np.nonzero(distractor)
    second = run_round(
        api_server,
        sid,
        [{"type": "click", "x": float(xs.mean()), "y": float(ys.mean()), "label": "bg"}],
        ALICE,
    )
    assert second.status_code == 200 and second.json()["round"] == 2
    assert redis_client.get(feature_key) == stored, "features are computed once per session"
    assert redis_client.exists(keys.state(sid, 2))
    assert fetch_alpha(api_server, sid, 2, ALICE).shape == image.shape[:2]
    # Switching pipelines mid-session: classical continues from dfimat's matte.
    third = run_round(api_server, sid, [], ALICE, model="classical")
    assert third.status_code == 200 and third.json()["model"] == "classical"


def test_model_specific_prompt_support(api_server: ServerProcess) -> None:
    image, _, _ = two_objects()
    sid = create_session(api_server, image, ALICE, model="semat")["session_id"]
    refused = run_round(api_server, sid, [{"type": "click", "x": 100, "y": 100}], ALICE)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "unsupported_prompt"
    assert run_round(api_server, sid, [BOX], ALICE).json()["model"] == "semat"
    automatic = httpx.post(
        f"{api_server.url}/v1/matte",
        files={"image": ("a.png", encode(image), "image/png")},
        data={"model": "smat", "output": "alpha", "prompts": "[]"},
        headers=ALICE,
        timeout=60,
    )
    assert automatic.status_code == 200 and decode_png(automatic.content).shape == image.shape[:2]
    needs_prompt = httpx.post(
        f"{api_server.url}/v1/matte",
        files={"image": ("a.png", encode(image), "image/png")},
        data={"model": "dfimat", "prompts": "[]"},
        headers=ALICE,
        timeout=60,
    )
    assert needs_prompt.status_code == 400 and needs_prompt.json()["error"]["code"] == "prompt_required"


def test_instances_route_answers_the_documented_shape(api_server: ServerProcess) -> None:
    image, _, _ = two_objects()
    response = httpx.post(
        f"{api_server.url}/v1/instances",
        files={"image": ("a.png", encode(image), "image/png")},
        headers=ALICE,
        timeout=120,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["width"], body["height"]) == (480, 360)
    assert {"iscn_encoder", "iscn_decoder"} <= body["timings_ms"].keys()
    for instance in body["instances"]:
        x0, y0, x1, y1 = instance["box"]
        assert 0 <= x0 < x1 <= 480 and 0 <= y0 < y1 <= 360 and 0 <= instance["score"] <= 1
        import base64

        assert decode_png(base64.b64decode(instance["alpha_png_base64"])).shape == (360, 480)
    bad = httpx.post(
        f"{api_server.url}/v1/instances", files={"image": ("a.txt", b"nope", "text/plain")}, headers=ALICE
    )
    assert bad.status_code == 415
    assert json.loads(bad.text)["error"]["code"] == "unsupported_media_type"


def _post_instances(server: ServerProcess, image: np.ndarray, form: dict[str, str]) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/instances",
        files={"image": ("a.png", encode(image), "image/png")},
        data=form,
        headers=ALICE,
        timeout=120,
    )


def test_instances_min_score_trades_false_detections_for_missed_people(api_server: ServerProcess) -> None:
    """``min_score`` on real COCO photos of several people: every instance returned scores at least
    the threshold, a higher threshold returns no more people than a lower one (fewer over the
    photos), and a value outside [0, 1] or not a number is a clear 422."""
    from service.evaluation.samples import samples
    from tests.support.shared_data import require

    root = require("evaldata", "coco128seg_persons")
    photos = [s.image for s in samples(str(root), max_instances=1)][:4]
    counts: dict[float | None, list[int]] = {}
    for threshold in (0.0, None, 0.9):
        data = {} if threshold is None else {"min_score": str(threshold)}
        counts[threshold] = []
        for image in photos:
            response = _post_instances(api_server, image, data)
            assert response.status_code == 200, response.text
            scores = [i["score"] for i in response.json()["instances"]]
            # The server's default, 0.5, when no threshold is sent.
            assert all(score >= (0.5 if threshold is None else threshold) - 1e-4 for score in scores)
            counts[threshold].append(len(scores))
    for low, high in ((0.0, None), (None, 0.9)):
        assert all(a >= b for a, b in zip(counts[low], counts[high], strict=True)), counts
    assert sum(counts[0.0]) > sum(counts[0.9]), counts
    for bad in ("1.5", "-0.1", "nan", "high"):
        response = _post_instances(api_server, photos[0], {"min_score": bad})
        assert response.status_code == 422, (bad, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid_request" and "min_score" in error["message"]


@pytest.mark.anyio
async def test_a_network_that_fails_to_load_answers_503_without_server_paths(tmp_path, caplog) -> None:
    """The reason (the file path and the loader's error) goes to the log, not to the client."""
    import shutil

    from service.errors import ModelNotReady

    shutil.copytree(REPOSITORY / "mrn", tmp_path / "mrn")
    (tmp_path / "mrn" / "1" / "model.pt").write_bytes(b"not a torchscript archive")
    backend = LocalBackend(tmp_path, read_networks(tmp_path), anyio.CapacityLimiter(1), threads=1)
    await backend.start()
    assert not await backend.ready("mrn")
    with pytest.raises(ModelNotReady) as refused:
        await backend.infer("mrn", {})
    assert str(tmp_path) not in refused.value.message and "model.pt" not in refused.value.message
    assert refused.value.status == 503
    assert str(tmp_path) in caplog.text


def test_a_replica_reads_a_sessions_features_from_redis_once(
    api_server: ServerProcess, second_server: ServerProcess, redis_client: redis.Redis
) -> None:
    """Features live in Redis (shared by replicas) and, once read or computed, in the replica's
    memory: a later round on the same replica does not read them again (deleting the Redis copy
    shows it: nothing recomputes it), while another replica reads Redis and, finding nothing,
    recomputes and stores them."""
    image, _, _ = two_objects()
    sid = create_session(api_server, image, ALICE, model="dfimat")["session_id"]
    key = keys.features(sid, "iscn_encoder")
    assert redis_client.exists(key)
    click = {"type": "click", "x": 170, "y": 180, "label": "fg"}
    assert run_round(api_server, sid, [click], ALICE).status_code == 200
    redis_client.delete(key)
    second = {"type": "click", "x": 200, "y": 200, "label": "fg"}
    assert run_round(api_server, sid, [second], ALICE).status_code == 200
    assert not redis_client.exists(key), "the same replica used its own copy"
    third = {"type": "click", "x": 150, "y": 160, "label": "fg"}
    assert run_round(second_server, sid, [third], ALICE).status_code == 200
    assert redis_client.exists(key), "another replica recomputed and shared them"


class SlowMiniLM(MiniLMEncoder):
    """The real encoder whose loading waits until the test lets it go (a slow start-up)."""

    def __init__(self) -> None:
        super().__init__()
        self.go = threading.Event()

    def load(self) -> None:
        self.go.wait(120)
        super().load()


@pytest.mark.anyio
async def test_a_text_round_while_the_text_encoder_loads_answers_503_not_a_hang() -> None:
    from schemas.prompts import TextPrompt
    from service.errors import ModelNotReady
    from service.pipelines import PipelineRegistry

    backend = LocalBackend(REPOSITORY, read_networks(REPOSITORY), anyio.CapacityLimiter(2), threads=1)
    await backend.start()
    text = SlowMiniLM()
    pipeline = DFIMatPipeline(backend, text=text, limiter=anyio.CapacityLimiter(2))
    registry = PipelineRegistry([pipeline], {}, backend=backend, text=text)
    text.start_loading()
    image, _, _ = two_objects(120, 160)
    prompt = TextPrompt(text="the person on the left")
    request = RoundInput(image, [prompt], [prompt], None, None, FeatureCache.in_memory(), 1)
    assert (await registry.backend_checks())["text_encoder"] == "loading"
    # The load is held for up to 120 s: a round that waited for it would take that long; the bound
    # only tells waiting from answering, so it is far from the round's own time on a busy machine.
    with anyio.fail_after(45), pytest.raises(ModelNotReady) as refused:
        await pipeline.run_round(request)
    assert refused.value.status == 503 and refused.value.retry_after_s > 0
    text.go.set()
    await anyio.to_thread.run_sync(text._loader.join, 60)
    assert (await registry.backend_checks())["text_encoder"] == "ok" and text.loaded
    assert (await pipeline.run_round(request)).alpha.shape == (120, 160)
    await backend.close()


@pytest.mark.anyio
async def test_a_pipeline_whose_network_is_not_exported_says_which_in_its_status() -> None:
    """``MATTESERVE_DFIMAT_REFINER=mgmatting`` without the imported weights: /v1/models said
    "untrained: initial weights" (found by a probe of the configuration); it names the network."""
    from service.config import Settings
    from service.pipelines.factory import build_registry, close_registry

    registry = await build_registry(Settings(dfimat_refiner="mgmatting"), anyio.CapacityLimiter(1))
    try:
        info = await registry.pipelines["dfimat"].info()
    finally:
        await close_registry(registry)
    assert not info.ready and not info.trained
    assert info.detail is not None and "mgmatting" in info.detail
    assert "not in the model repository" in info.detail

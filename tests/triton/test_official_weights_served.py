"""Imported official weights served through the API, on the local backend and on a real Triton server.

The repository is the committed ``triton_repo/`` plus the parity fixtures of
``tests/fixtures/official/`` imported with ``matteserve import-checkpoint`` and exported with
``matteserve export --weights`` (the commands a user runs with the authors' files). The API
runs dfimat with the MGMatting refiner, instance matting with InstMatt's official network and
smat with the authors' SMat at native resolution; the exported ``semat`` is the authors' SEMat
(SAM variant; a second repository serves its SAM2 variant).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from service.cli import app
from service.config import REPO_ROOT
from service.process import ServerProcess, start_server
from service.triton_local import TritonLocalServer
from tests.conftest import ALICE, server_env
from tests.fixtures.official.files import CHECKPOINTS, FIXTURES
from tests.service.test_sessions_http import create_session, fetch_alpha, run_round
from tests.support.shared_data import require
from tests.support.triton import api_on_triton, serve_repository

OFFICIAL_ENV = {
    "MATTESERVE_DFIMAT_REFINER": "mgmatting",
    "MATTESERVE_INSTANCE_MATTING": "instmatt_official",
    "MATTESERVE_SMAT_NETWORKS": "official",
}
PHOTO = "000000000036"  # one person, box (167, 162, 479, 629)


def official_repository(root: Path, imports: list[tuple[str, Path, str]]) -> Path:
    """The committed repository plus each ``(family, checkpoint, variant)`` imported and exported
    with the CLI, as a user does with the authors' files."""
    repo = root / "repo"
    shutil.copytree(REPO_ROOT / "triton_repo", repo)
    runner = CliRunner()
    for family, checkpoint, variant in imports:
        args = ["import-checkpoint", family, str(checkpoint), "--variant", variant, "--preset", "parity"]
        result = runner.invoke(app, [*args, "--out-dir", str(root / "weights")])
        assert result.exit_code == 0, result.output
        weights = root / "weights" / f"{family}-{variant}.pt"
        result = runner.invoke(app, ["export", "--repo", str(repo), "--weights", str(weights)])
        assert result.exit_code == 0, result.output
    return repo


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    imports = [(family, checkpoint, "parity") for family, checkpoint in CHECKPOINTS.items()]
    return official_repository(tmp_path_factory.mktemp("official"), imports)


@pytest.fixture(scope="module")
def local_api(redis_url: str, repository: Path) -> Iterator[ServerProcess]:
    server = start_server(server_env(redis_url, MATTESERVE_MODEL_REPOSITORY=str(repository), **OFFICIAL_ENV))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def triton_server(tritonserver_binary: Path, repository: Path) -> Iterator[TritonLocalServer]:
    yield from serve_repository(repository)


@pytest.fixture(scope="module")
def triton_api(redis_url: str, triton_server: TritonLocalServer, repository: Path) -> Iterator[ServerProcess]:
    yield from api_on_triton(
        redis_url, triton_server, MATTESERVE_MODEL_REPOSITORY=str(repository), **OFFICIAL_ENV
    )


def photo() -> np.ndarray:
    path = require("evaldata", "coco128seg_persons", "image", f"{PHOTO}.jpg")
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def test_models_name_the_official_files_their_hash_and_licence(local_api: ServerProcess) -> None:
    listing = httpx.get(f"{local_api.url}/v1/models", headers=ALICE).json()
    dfimat = next(m for m in listing["models"] if m["name"] == "dfimat")
    networks = {n["name"]: n for n in dfimat["networks"]}
    assert set(networks) == {"iscn_encoder", "iscn_decoder", "mgmatting"} and dfimat["ready"]
    sha = hashlib.sha256(CHECKPOINTS["mgmatting"].read_bytes()).hexdigest()
    assert networks["mgmatting"]["origin"] == "official" and networks["mgmatting"]["preset"] == "parity"
    assert networks["iscn_encoder"]["preset"] == "tiny"
    assert networks["mgmatting"]["source"] == f"latest_model.pth (sha256 {sha})"
    assert "CC BY-NC 2.0" in networks["mgmatting"]["licence"]
    assert (
        networks["iscn_encoder"]["origin"] == "ours" and "Apache-2.0" in networks["iscn_encoder"]["licence"]
    )
    instances = {n["name"]: n for n in listing["instances"]["networks"]}
    assert {"instmatt_official", "instmatt_refiner"} <= set(instances) and listing["instances"]["ready"]
    assert "no licence file" in instances["instmatt_official"]["licence"]


def rounds(
    server: ServerProcess, image: np.ndarray, model: str = "dfimat"
) -> tuple[list[np.ndarray], list[dict]]:
    """A session on ``image``: the person's box, then a background click (SEMat: a second box)."""
    sid = create_session(server, image, ALICE, model=model)["session_id"]
    answers, alphas = [], []
    box = {"type": "box", "x0": 167, "y0": 162, "x1": 479, "y1": 629}
    click = {"type": "click", "x": 60, "y": 80, "label": "bg"}
    second = {"type": "box", "x0": 150, "y0": 150, "x1": 470, "y1": 620} if model == "semat" else click
    for n, prompts in enumerate(([box], [second]), start=1):
        response = run_round(server, sid, prompts, ALICE)
        assert response.status_code == 200, response.text
        answers.append(response.json())
        alphas.append(fetch_alpha(server, sid, n, ALICE))
    return alphas, answers


def test_dfimat_rounds_run_the_imported_mgmatting_at_native_resolution(local_api: ServerProcess) -> None:
    image = photo()
    alphas, answers = rounds(local_api, image)
    for alpha, answer in zip(alphas, answers, strict=True):
        assert alpha.shape == image.shape[:2]
        assert {"prepare_mgmatting", "mgmatting"} <= answer["timings_ms"].keys()
        assert "mrn" not in answer["timings_ms"]


def test_smat_runs_the_imported_networks_at_native_resolution(local_api: ServerProcess) -> None:
    listing = httpx.get(f"{local_api.url}/v1/models", headers=ALICE).json()
    smat = next(m for m in listing["models"] if m["name"] == "smat")
    assert [n["name"] for n in smat["networks"]] == ["smat_official_encoder", "smat_official_decoder"]
    assert all(n["origin"] == "official" and "non-commercial" in n["licence"] for n in smat["networks"])
    image = photo()
    alphas, answers = rounds(local_api, image, model="smat")
    assert all(a.shape == image.shape[:2] for a in alphas)
    assert all({"smat_encoder", "smat_decoder"} <= a["timings_ms"].keys() for a in answers)
    auto = httpx.post(
        f"{local_api.url}/v1/matte",
        files={"image": ("p.png", cv2.imencode(".png", image[:, :, ::-1])[1].tobytes(), "image/png")},
        data={"model": "smat"},
        headers=ALICE,
        timeout=120,
    )
    assert auto.status_code == 200, auto.text  # automatic mode (no prompt)


def test_semat_runs_the_imported_weights_with_the_official_contract(local_api: ServerProcess) -> None:
    listing = httpx.get(f"{local_api.url}/v1/models", headers=ALICE).json()
    semat = next(m for m in listing["models"] if m["name"] == "semat")
    (network,) = semat["networks"]
    assert network["origin"] == "official" and "CC BY-NC 4.0" in network["licence"] and semat["ready"]
    assert network["source"].startswith("SEMat_SAM.pth (sha256 ")
    image = photo()
    sid = create_session(local_api, image, ALICE, model="semat")["session_id"]
    box = {"type": "box", "x0": 167, "y0": 162, "x1": 479, "y1": 629}
    response = run_round(local_api, sid, [box], ALICE)
    assert response.status_code == 200, response.text
    assert fetch_alpha(local_api, sid, 1, ALICE).shape == image.shape[:2]


def test_instances_run_the_official_instmatt_generator_and_refiner(local_api: ServerProcess) -> None:
    image = photo()
    response = httpx.post(
        f"{local_api.url}/v1/instances",
        files={"image": ("p.png", cv2.imencode(".png", image[:, :, ::-1])[1].tobytes(), "image/png")},
        headers=ALICE,
        timeout=120,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["instances"] and (body["width"], body["height"]) == (image.shape[1], image.shape[0])
    assert {"instmatt_official", "instmatt_refiner"} <= body["timings_ms"].keys()


def test_concurrent_instance_requests_do_not_starve_the_refiner(local_api: ServerProcess) -> None:
    """More requests than inference threads (2): the refiner's window loop must not hold an
    inference slot while it waits for the window calls (that deadlocked)."""
    encoded = cv2.imencode(".png", photo()[:, :, ::-1])[1].tobytes()

    def post(_: int) -> int:
        files = {"image": ("p.png", encoded, "image/png")}
        return httpx.post(f"{local_api.url}/v1/instances", files=files, headers=ALICE, timeout=90).status_code

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        assert list(pool.map(post, range(4))) == [200] * 4


def test_triton_serves_the_official_networks_with_the_local_backend_results(
    triton_api: ServerProcess, local_api: ServerProcess
) -> None:
    image = photo()
    for model in ("dfimat", "smat", "semat"):
        triton_alphas, _ = rounds(triton_api, image, model)
        local_alphas, _ = rounds(local_api, image, model)
        for ours, theirs in zip(triton_alphas, local_alphas, strict=True):
            assert np.abs(ours - theirs).max() <= 2 / 255, model
    listing = httpx.get(f"{triton_api.url}/v1/models", headers=ALICE).json()
    dfimat = next(m for m in listing["models"] if m["name"] == "dfimat")
    assert dfimat["backend"] == "triton" and dfimat["ready"]
    encoded = cv2.imencode(".png", image[:, :, ::-1])[1].tobytes()
    answers = [
        httpx.post(
            f"{server.url}/v1/instances",
            files={"image": ("p.png", encoded, "image/png")},
            headers=ALICE,
            timeout=120,
        ).json()
        for server in (triton_api, local_api)
    ]
    assert [i["box"] for i in answers[0]["instances"]] == [i["box"] for i in answers[1]["instances"]]


@pytest.fixture(scope="module")
def sam2_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed repository with ``semat`` replaced by SEMat's SAM2 variant (the fixture)."""
    imports = [("semat", FIXTURES / "semat" / "SEMat_SAM2.pth", "sam2")]
    return official_repository(tmp_path_factory.mktemp("official_sam2"), imports)


@pytest.fixture(scope="module")
def sam2_local_api(redis_url: str, sam2_repository: Path) -> Iterator[ServerProcess]:
    server = start_server(server_env(redis_url, MATTESERVE_MODEL_REPOSITORY=str(sam2_repository)))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sam2_triton_api(
    redis_url: str, tritonserver_binary: Path, sam2_repository: Path
) -> Iterator[ServerProcess]:
    for triton in serve_repository(sam2_repository):
        yield from api_on_triton(redis_url, triton, MATTESERVE_MODEL_REPOSITORY=str(sam2_repository))


def test_semat_sam2_is_served_on_the_local_backend_and_on_triton(
    sam2_local_api: ServerProcess, sam2_triton_api: ServerProcess
) -> None:
    """SEMat's SAM2 variant, imported and exported as ``semat``: the API names the file and its
    licence, and a box session gives the same mattes on the local backend and on Triton."""
    for api in (sam2_local_api, sam2_triton_api):
        listing = httpx.get(f"{api.url}/v1/models", headers=ALICE).json()
        (network,) = next(m for m in listing["models"] if m["name"] == "semat")["networks"]
        assert network["origin"] == "official" and "CC BY-NC 4.0" in network["licence"]
        assert network["source"].startswith("SEMat_SAM2.pth (sha256 ")
    image = photo()
    local_alphas, _ = rounds(sam2_local_api, image, "semat")
    triton_alphas, _ = rounds(sam2_triton_api, image, "semat")
    assert all(a.shape == image.shape[:2] for a in local_alphas)
    for ours, theirs in zip(triton_alphas, local_alphas, strict=True):
        assert np.abs(ours - theirs).max() <= 2 / 255
    assert float(local_alphas[0].std()) > 0.05  # the random-weight matte is not flat

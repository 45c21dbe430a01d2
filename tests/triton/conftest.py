"""Fixtures for the local Triton server tests: a tiny libtorch repository and a server on it.

The repository mimics what `matteserve export` writes into `triton_repo/`: TorchScript
files with `config.pbtxt` files of the libtorch platform, GPU instance groups and inputs
and outputs named `<name>__<index>`.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from service.triton_local import TritonLocalError, TritonLocalServer, find_tritonserver

IMAGE_SIZE = 32


class PairNet(torch.nn.Module):
    """Two inputs, two outputs, like a matting decoder: (image, mask) -> (alpha, score)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 8, 3, padding=1)
        self.head = torch.nn.Conv2d(8, 1, 1)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = torch.relu(self.conv(torch.cat([image, mask], dim=1)))
        return torch.sigmoid(self.head(features)), features.mean(dim=(2, 3))


class Affine(torch.nn.Module):
    """One input of variable length, one output: x -> 2x + 1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2.0 + 1.0


PAIR_CONFIG = f"""
name: "pair"
platform: "pytorch_libtorch"
max_batch_size: 8
input [
  {{ name: "image__0" data_type: TYPE_FP32 dims: [3, {IMAGE_SIZE}, {IMAGE_SIZE}] }},
  {{ name: "mask__1" data_type: TYPE_FP32 dims: [1, {IMAGE_SIZE}, {IMAGE_SIZE}] }}
]
output [
  {{ name: "alpha__0" data_type: TYPE_FP32 dims: [1, {IMAGE_SIZE}, {IMAGE_SIZE}] }},
  {{ name: "score__1" data_type: TYPE_FP32 dims: [8] }}
]
dynamic_batching {{ preferred_batch_size: [4, 8] max_queue_delay_microseconds: 100000 }}
instance_group [ {{ kind: KIND_GPU count: 1 }} ]
parameters {{ key: "letterbox" value: {{ string_value: "{IMAGE_SIZE}" }} }}
"""

AFFINE_CONFIG = """
name: "affine"
platform: "pytorch_libtorch"
max_batch_size: 4
input [ { name: "x__0" data_type: TYPE_FP32 dims: [-1] } ]
output [ { name: "y__0" data_type: TYPE_FP32 dims: [-1] } ]
dynamic_batching { max_queue_delay_microseconds: 2000 }
instance_group [ { kind: KIND_GPU count: 2 gpus: [0] } ]
model_warmup [
  {
    name: "zeros"
    batch_size: 2
    inputs { key: "x__0" value: { data_type: TYPE_FP32 dims: [5] zero_data: true } }
  }
]
"""


def write_model(repo: Path, name: str, module: torch.nn.Module, config: str) -> Path:
    """Script `module` into `repo/<name>/1/model.pt` and write its `config.pbtxt`."""
    version_dir = repo / name / "1"
    version_dir.mkdir(parents=True, exist_ok=True)
    torch.jit.script(module.eval()).save(str(version_dir / "model.pt"))
    (repo / name / "config.pbtxt").write_text(textwrap.dedent(config))
    return repo / name


def make_repository(repo: Path) -> Path:
    """A repository with the `pair` and `affine` models, deterministic weights."""
    torch.manual_seed(0)
    write_model(repo, "pair", PairNet(), PAIR_CONFIG)
    write_model(repo, "affine", Affine(), AFFINE_CONFIG)
    return repo


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The two-model libtorch repository (shared, read-only for the tests)."""
    return make_repository(tmp_path_factory.mktemp("triton_repo"))


@pytest.fixture
def repo_factory() -> Callable[[Path], Path]:
    """Writes a fresh copy of the two-model repository into a given directory."""
    return make_repository


@pytest.fixture(scope="session")
def tritonserver_binary() -> Path:
    """The bundled tritonserver, or skip when nvidia-pytriton is not installed."""
    try:
        return find_tritonserver()
    except TritonLocalError as exc:
        pytest.skip(str(exc))


@pytest.fixture
def make_server(tritonserver_binary: Path) -> Iterator[Callable[..., TritonLocalServer]]:
    """Creates not yet started servers on free ports; closes them all after the test."""
    servers: list[TritonLocalServer] = []

    def make(repo: Path, **kwargs: Any) -> TritonLocalServer:
        kwargs.setdefault("torch_threads", 1)
        kwargs.setdefault("startup_timeout", 240.0)
        server = TritonLocalServer(repo, die_with_parent=True, **kwargs)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close(graceful=False)


@pytest.fixture(scope="module")
def triton(tiny_repo: Path, tritonserver_binary: Path) -> Iterator[TritonLocalServer]:
    """A running server on the tiny repository, shared by the tests of a module."""
    server = TritonLocalServer(tiny_repo, torch_threads=1, startup_timeout=240.0, die_with_parent=True)
    try:
        yield server.start()
    finally:
        server.close(graceful=False)

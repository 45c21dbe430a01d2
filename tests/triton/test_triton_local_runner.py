"""The generic Python-backend model (`torchscript_model.py`) run in-process.

Triton's `triton_python_backend_utils` only exists inside the backend stub, so a minimal
stand-in is installed for these tests; the real stub is exercised by `test_triton_local_server.py`.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from service.triton_local.repository import RUNNER_SOURCE

_NUMPY_TYPES = {
    "TYPE_FP32": np.float32,
    "TYPE_INT64": np.int64,
    "TYPE_UINT8": np.uint8,
    "TYPE_BOOL": np.bool_,
}


class FakeTensor:
    """Stand-in for `pb_utils.Tensor`."""

    def __init__(self, name: str, array: np.ndarray) -> None:
        self.name = name
        self.array = array

    def as_numpy(self) -> np.ndarray:
        return self.array


class FakeRequest:
    """Stand-in for `pb_utils.InferenceRequest` holding named input arrays (read-only, as in shm)."""

    def __init__(self, **inputs: np.ndarray) -> None:
        self.inputs = {}
        for name, array in inputs.items():
            array = np.array(array)
            array.flags.writeable = False
            self.inputs[name] = FakeTensor(name, array)


class FakeResponse:
    """Stand-in for `pb_utils.InferenceResponse`."""

    def __init__(self, output_tensors: list[FakeTensor] | None = None, error: Any = None) -> None:
        self.outputs = {t.name: t.array for t in output_tensors or []}
        self.error = error


class FakeError:
    """Stand-in for `pb_utils.TritonError`."""

    def __init__(self, message: str) -> None:
        self.message = message


def _fake_pb_utils() -> types.ModuleType:
    module = types.ModuleType("triton_python_backend_utils")
    module.Tensor = FakeTensor  # type: ignore[attr-defined]
    module.InferenceResponse = FakeResponse  # type: ignore[attr-defined]
    module.TritonError = FakeError  # type: ignore[attr-defined]
    module.triton_string_to_numpy = _NUMPY_TYPES.__getitem__  # type: ignore[attr-defined]
    module.get_input_tensor_by_name = lambda request, name: request.inputs.get(name)  # type: ignore[attr-defined]
    return module


class Pair(torch.nn.Module):
    """Two inputs, two outputs."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return a + b, (a * b).sum(dim=1, keepdim=True)


class CallCounter:
    """Wraps a loaded module to record the batch size of every forward call."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.calls: list[int] = []

    def __call__(self, *args: torch.Tensor) -> Any:
        self.calls.append(args[0].shape[0])
        return self.module(*args)


class Difference(torch.nn.Module):
    """Order-sensitive: a - b."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a - b


class DictOut(torch.nn.Module):
    """Returns its outputs as a dict, by output name."""

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"double": x * 2, "negated": -x}


@pytest.fixture
def runner_module(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """`torchscript_model.py` imported beside a stand-in `triton_python_backend_utils`."""
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", _fake_pb_utils())
    spec = importlib.util.spec_from_file_location("matteserve_test_runner", RUNNER_SOURCE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _model(runner_module: types.ModuleType, tmp_path: Path, module: torch.nn.Module, config: dict) -> Any:
    """An initialised runner for `module` (saved as TorchScript) with the given config."""
    (tmp_path / "1").mkdir()
    torch.jit.script(module).save(str(tmp_path / "1" / "model.pt"))
    model = runner_module.TritonPythonModel()
    model.initialize(
        {"model_config": json.dumps(config), "model_repository": str(tmp_path), "model_version": "1"}
    )
    return model


PAIR = {
    "max_batch_size": 8,
    # Deliberately listed out of index order: forward order comes from the `__<index>` suffix.
    "input": [
        {"name": "b__1", "data_type": "TYPE_FP32", "dims": [3]},
        {"name": "a__0", "data_type": "TYPE_FP32", "dims": [3]},
    ],
    "output": [
        {"name": "prod__1", "data_type": "TYPE_FP32", "dims": [1]},
        {"name": "sum__0", "data_type": "TYPE_FP32", "dims": [3]},
    ],
}


def test_a_dynamic_batch_runs_in_one_forward_and_is_split_back(
    runner_module: types.ModuleType, tmp_path: Path
) -> None:
    model = _model(runner_module, tmp_path, Pair(), PAIR)
    model.module = counter = CallCounter(model.module)
    rng = np.random.default_rng(0)
    requests = [
        FakeRequest(a__0=rng.random((n, 3), dtype=np.float32), b__1=rng.random((n, 3), dtype=np.float32))
        for n in (1, 3, 2)
    ]

    responses = model.execute(requests)

    assert [r.error for r in responses] == [None, None, None]
    for request, response in zip(requests, responses, strict=True):
        a, b = request.inputs["a__0"].array, request.inputs["b__1"].array
        np.testing.assert_allclose(response.outputs["sum__0"], a + b, rtol=0, atol=1e-6)
        np.testing.assert_allclose(response.outputs["prod__1"], (a * b).sum(1, keepdims=True), atol=1e-6)
    assert counter.calls == [6]


def test_requests_of_different_item_shapes_run_in_separate_groups(
    runner_module: types.ModuleType, tmp_path: Path
) -> None:
    config = {
        "max_batch_size": 4,
        "input": [{"name": "x__0", "data_type": "TYPE_FP32", "dims": [-1]}],
        "output": [
            {"name": "double", "data_type": "TYPE_FP32", "dims": [-1]},
            {"name": "negated", "data_type": "TYPE_FP32", "dims": [-1]},
        ],
    }
    model = _model(runner_module, tmp_path, DictOut(), config)
    inputs = [np.arange(n, dtype=np.float32)[None] for n in (2, 5, 2)]

    responses = model.execute([FakeRequest(x__0=x) for x in inputs])

    for x, response in zip(inputs, responses, strict=True):
        np.testing.assert_array_equal(response.outputs["double"], x * 2)
        np.testing.assert_array_equal(response.outputs["negated"], -x)


def test_a_bad_request_fails_alone(runner_module: types.ModuleType, tmp_path: Path) -> None:
    model = _model(runner_module, tmp_path, Pair(), PAIR)
    good = FakeRequest(a__0=np.ones((1, 3), np.float32), b__1=np.ones((1, 3), np.float32))
    missing = FakeRequest(a__0=np.ones((1, 3), np.float32))

    responses = model.execute([good, missing])

    assert responses[0].error is None
    np.testing.assert_array_equal(responses[0].outputs["sum__0"], np.full((1, 3), 2, np.float32))
    assert "b__1" in responses[1].error.message


def test_a_failing_forward_fails_its_group_with_the_exception(
    runner_module: types.ModuleType, tmp_path: Path
) -> None:
    model = _model(runner_module, tmp_path, Pair(), PAIR)
    wrong = FakeRequest(a__0=np.ones((2, 3), np.float32), b__1=np.ones((2, 4), np.float32))

    (response,) = model.execute([wrong])

    assert response.outputs == {}
    assert "RuntimeError" in response.error.message


def test_outputs_are_cast_to_the_configured_data_type(
    runner_module: types.ModuleType, tmp_path: Path
) -> None:
    config = {
        "max_batch_size": 0,
        "input": [{"name": "x__0", "data_type": "TYPE_FP32", "dims": [3]}],
        "output": [
            {"name": "double", "data_type": "TYPE_UINT8", "dims": [3]},
            {"name": "negated", "data_type": "TYPE_FP32", "dims": [3]},
        ],
    }
    model = _model(runner_module, tmp_path, DictOut(), config)

    (response,) = model.execute([FakeRequest(x__0=np.array([1.0, 2.0, 3.0], np.float32))])

    assert response.outputs["double"].dtype == np.uint8
    np.testing.assert_array_equal(response.outputs["double"], [2, 4, 6])


def test_inputs_named_like_forward_arguments_go_by_name(
    runner_module: types.ModuleType, tmp_path: Path
) -> None:
    config = {
        "max_batch_size": 2,
        "input": [
            {"name": "b", "data_type": "TYPE_FP32", "dims": [3]},
            {"name": "a", "data_type": "TYPE_FP32", "dims": [3]},
        ],
        "output": [{"name": "out__0", "data_type": "TYPE_FP32", "dims": [3]}],
    }
    model = _model(runner_module, tmp_path, Difference(), config)

    (response,) = model.execute(
        [FakeRequest(a=np.full((1, 3), 5, np.float32), b=np.ones((1, 3), np.float32))]
    )

    np.testing.assert_array_equal(response.outputs["out__0"], np.full((1, 3), 4, np.float32))

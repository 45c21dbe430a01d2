"""The bundled tritonserver serving a tiny libtorch repository through the Python backend."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
import tritonclient.http as httpclient
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.utils import InferenceServerException

from service.backends.triton import grpc_channel_args
from service.triton_local import TritonLocalError, TritonLocalServer, read_model_config

ATOL = 1e-6
PAIR_OUTPUTS = ("alpha__0", "score__1")


def pair_inputs(batch: int, seed: int) -> dict[str, np.ndarray]:
    """Random `pair` model inputs with a batch dimension."""
    rng = np.random.default_rng(seed)
    return {
        "image__0": rng.random((batch, 3, 32, 32), dtype=np.float32),
        "mask__1": rng.random((batch, 1, 32, 32), dtype=np.float32),
    }


def reference(repo: Path, model: str, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Outputs of the original TorchScript file, run in this process."""
    module = torch.jit.load(str(repo / model / "1" / "model.pt")).eval()
    with torch.inference_mode():
        result = module(*(torch.from_numpy(a) for a in inputs.values()))
    result = result if isinstance(result, tuple) else (result,)
    return [t.numpy() for t in result]


def grpc_request(module: object, inputs: dict[str, np.ndarray]) -> list:
    """InferInput objects of `module` (tritonclient.grpc, .grpc.aio or .http) for `inputs`."""
    tensors = []
    for name, array in inputs.items():
        tensor = module.InferInput(name, list(array.shape), "FP32")  # type: ignore[attr-defined]
        tensor.set_data_from_numpy(array)
        tensors.append(tensor)
    return tensors


def infer_pair(client: grpcclient.InferenceServerClient, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run `pair` through a synchronous gRPC client."""
    result = client.infer("pair", grpc_request(grpcclient, inputs))
    return [result.as_numpy(name) for name in PAIR_OUTPUTS]


def server_processes(marker: str) -> list[int]:
    """Pids of live (non-zombie) processes whose command line contains `marker`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            pids.append(int(entry.name))
    return pids


def process_group_alive(pgid: int) -> bool:
    """Whether a live (non-zombie) process is left in a process group."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def answers(client: grpcclient.InferenceServerClient) -> bool:
    """Whether the server behind a client answers that it is ready."""
    try:
        return client.is_server_ready()
    except InferenceServerException:
        return False


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll `condition` until it holds or `timeout` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_grpc_and_http_outputs_match_the_torchscript_file(triton: TritonLocalServer, tiny_repo: Path) -> None:
    inputs = pair_inputs(batch=3, seed=1)
    expected = reference(tiny_repo, "pair", inputs)

    with grpcclient.InferenceServerClient(triton.grpc_url) as client:
        via_grpc = infer_pair(client, inputs)
    http = httpclient.InferenceServerClient(triton.http_url)
    try:
        result = http.infer("pair", grpc_request(httpclient, inputs))
        via_http = [result.as_numpy(name) for name in PAIR_OUTPUTS]
    finally:
        http.close()

    async def via_aio() -> list[np.ndarray]:
        async with grpcaio.InferenceServerClient(triton.grpc_url) as client:
            result = await client.infer("pair", grpc_request(grpcaio, inputs))
            return [result.as_numpy(name) for name in PAIR_OUTPUTS]

    for outputs in (via_grpc, via_http, asyncio.run(via_aio())):
        for got, want in zip(outputs, expected, strict=True):
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)


def test_variable_length_model_with_two_cpu_instances(triton: TritonLocalServer, tiny_repo: Path) -> None:
    with grpcclient.InferenceServerClient(triton.grpc_url) as client:
        for length in (1, 5, 7):
            x = np.arange(2 * length, dtype=np.float32).reshape(2, length)
            tensor = grpcclient.InferInput("x__0", [2, length], "FP32")
            tensor.set_data_from_numpy(x)
            y = client.infer("affine", [tensor]).as_numpy("y__0")
            np.testing.assert_array_equal(y, reference(tiny_repo, "affine", {"x__0": x})[0])


def test_served_configuration_is_the_repository_one(triton: TritonLocalServer, tiny_repo: Path) -> None:
    with grpcclient.InferenceServerClient(triton.grpc_url) as client:
        served = client.get_model_config("pair").config
        metadata = client.get_model_metadata("pair")
    original = read_model_config(tiny_repo / "pair" / "config.pbtxt")

    assert served.name == "pair"
    assert served.max_batch_size == original.max_batch_size
    assert served.dynamic_batching == original.dynamic_batching
    assert [(t.name, t.data_type, list(t.dims)) for t in served.input] == [
        (t.name, t.data_type, list(t.dims)) for t in original.input
    ]
    assert [(t.name, t.data_type, list(t.dims)) for t in served.output] == [
        (t.name, t.data_type, list(t.dims)) for t in original.output
    ]
    assert served.parameters["letterbox"].string_value == "32"
    assert served.backend == "python"
    assert {g.kind for g in served.instance_group} == {mc.ModelInstanceGroup.KIND_CPU}
    assert [t.name for t in metadata.inputs] == ["image__0", "mask__1"]


def test_concurrent_requests_are_batched_and_match_single_requests(
    triton: TritonLocalServer, tiny_repo: Path
) -> None:
    requests = 16
    items = [pair_inputs(batch=1, seed=100 + i) for i in range(requests)]
    before = triton.model_metrics("pair")

    async def send_all() -> list[list[np.ndarray]]:
        async with grpcaio.InferenceServerClient(triton.grpc_url) as client:
            results = await asyncio.gather(
                *(client.infer("pair", grpc_request(grpcaio, item)) for item in items)
            )
        return [[r.as_numpy(name) for name in PAIR_OUTPUTS] for r in results]

    batched = asyncio.run(send_all())
    assert wait_for(
        lambda: triton.model_metrics("pair")["request_success"] - before["request_success"] >= requests
    )
    after = triton.model_metrics("pair")
    executions = after["exec_count"] - before["exec_count"]
    successes = after["request_success"] - before["request_success"]

    assert successes == requests
    assert after["count"] - before["count"] == requests
    assert executions < requests, f"{requests} requests ran in {executions} executions: no batching"
    with grpcclient.InferenceServerClient(triton.grpc_url) as client:
        for item, outputs in list(zip(items, batched, strict=True))[:4]:
            for got, single in zip(outputs, infer_pair(client, item), strict=True):
                np.testing.assert_allclose(got, single, rtol=0, atol=ATOL)
    for item, outputs in zip(items, batched, strict=True):
        for got, want in zip(outputs, reference(tiny_repo, "pair", item), strict=True):
            np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)


@pytest.mark.parametrize("graceful", [True, False], ids=["sigterm", "crash"])
def test_stop_and_start_again_on_the_same_ports(
    make_server: Callable[..., TritonLocalServer], tiny_repo: Path, graceful: bool
) -> None:
    server = make_server(tiny_repo).start()
    ports = (server.http_port, server.grpc_port, server.metrics_port)
    pgid = server.pid
    assert pgid is not None
    inputs = pair_inputs(batch=1, seed=7)
    client = grpcclient.InferenceServerClient(server.grpc_url, channel_args=grpc_channel_args())
    try:
        first = infer_pair(client, inputs)

        server.stop(graceful=graceful)
        assert not server.is_running()
        assert not process_group_alive(pgid), "tritonserver or a backend stub outlived stop()"
        assert not list(Path("/dev/shm").glob(f"{server._shm_prefix}*"))
        with pytest.raises(InferenceServerException, match="UNAVAILABLE"):
            infer_pair(client, inputs)

        server.start()
        assert (server.http_port, server.grpc_port, server.metrics_port) == ports
        # The client from before the outage reconnects by itself within its short backoff.
        assert wait_for(lambda: answers(client), timeout=5)
        again = infer_pair(client, inputs)
    finally:
        client.close()
    for got, want in zip(again, first, strict=True):
        np.testing.assert_array_equal(got, want)


def test_a_model_that_fails_to_load_gives_its_error_and_leaves_nothing_running(
    make_server: Callable[..., TritonLocalServer], repo_factory: Callable[[Path], Path], tmp_path: Path
) -> None:
    repo = repo_factory(tmp_path / "repo")
    shutil.rmtree(repo / "affine")  # a lone model: Triton unloads the others before it exits
    (repo / "pair" / "1" / "model.pt").write_bytes(b"this is not TorchScript")
    server = make_server(repo)

    with pytest.raises(TritonLocalError) as failure:
        server.start()

    message = str(failure.value)
    assert "exited with code" in message
    assert "failed to load 'pair'" in message
    assert not server.is_running()
    assert server_processes(str(server.workdir)) == []


def test_a_server_that_cannot_bind_its_port_exits_with_a_clear_error(
    make_server: Callable[..., TritonLocalServer], tiny_repo: Path
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        server = make_server(tiny_repo, grpc_port=busy.getsockname()[1])

        with pytest.raises(TritonLocalError, match="exited with code"):
            server.start()

    assert server_processes(str(server.workdir)) == []


def test_missing_binary_or_repository(make_server: Callable[..., TritonLocalServer], tmp_path: Path) -> None:
    with pytest.raises(TritonLocalError, match="no executable tritonserver"):
        make_server(tmp_path, binary=tmp_path / "tritonserver").start()
    server = make_server(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="does not exist"), server:
        pass
    assert not server.workdir.exists()


def test_command_serves_until_sigterm_and_leaves_no_process(
    tiny_repo: Path, tmp_path: Path, tritonserver_binary: Path
) -> None:
    command = [
        sys.executable,
        "-m",
        "service.triton_local",
        "--repository",
        str(tiny_repo),
        "--http-port",
        "0",
        "--grpc-port",
        "0",
        "--metrics-port",
        "0",
        "--torch-threads",
        "1",
        "--log-path",
        str(tmp_path / "triton.log"),
    ]
    root = Path(__file__).resolve().parents[2]
    with subprocess.Popen(
        command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as cli:
        try:
            assert cli.stdout is not None
            lines = []
            for line in cli.stdout:
                lines.append(line)
                if line.startswith("Ctrl-C"):
                    break
            output = "".join(lines)
            grpc = re.search(r"^\s+grpc\s+(\S+)", output, re.MULTILINE)
            assert grpc, output
            with grpcclient.InferenceServerClient(grpc[1]) as client:
                assert client.is_model_ready("pair")
                assert client.is_model_ready("affine")
            cli.send_signal(signal.SIGTERM)
            assert cli.wait(timeout=60) == 0
        finally:
            if cli.poll() is None:
                cli.terminate()
                cli.wait(timeout=60)
    port = grpc[1].rsplit(":", 1)[1]
    assert wait_for(lambda: server_processes(f"--grpc-port={port}") == [], timeout=5)


def test_requests_from_many_threads(triton: TritonLocalServer, tiny_repo: Path) -> None:
    items = [pair_inputs(batch=2, seed=200 + i) for i in range(8)]

    def one(item: dict[str, np.ndarray]) -> list[np.ndarray]:
        with grpcclient.InferenceServerClient(triton.grpc_url) as client:
            return infer_pair(client, item)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, items))
    for item, outputs in zip(items, results, strict=True):
        for got, want in zip(outputs, reference(tiny_repo, "pair", item), strict=True):
            np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("MATTESERVE_SLOW_TESTS") != "1", reason="installs numpy<2 from PyPI")
def test_separate_stub_environment_with_numpy_1(
    make_server: Callable[..., TritonLocalServer], tiny_repo: Path, tmp_path: Path
) -> None:
    server = make_server(tiny_repo, separate_stub_env=True, cache_dir=tmp_path / "cache").start()
    inputs = pair_inputs(batch=1, seed=3)

    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        outputs = infer_pair(client, inputs)

    for got, want in zip(outputs, reference(tiny_repo, "pair", inputs), strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)
    assert list((tmp_path / "cache").glob("stub-env-py*/lib/python*/site-packages/numpy-1.*.dist-info"))

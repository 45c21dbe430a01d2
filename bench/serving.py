"""The dfimat serving benchmark: what a refinement round costs, batching, overhead, memory.

One run starts Redis (or uses the configured one), a real Triton server (``triton-local``)
serving ``triton_repo/`` plus un-batched twins of the per-round networks, and the API on the
Triton backend, then measures on ~1 MP photos:

(a) mean latency of rounds 2..5 / (session creation + round 1), client-side over HTTP;
(b) throughput of dfimat rounds (iscn_decoder + mrn) at concurrency 8 with Triton's dynamic
    batching on vs off — the same server, the same inputs, one run, alternating;
(c) end-to-end round latency / the backend's own compute time for that round (Triton's
    compute counters, input + infer + output, summed over the round's networks);
(d) Redis bytes of a session with a 1 MP photo after 5 rounds (``MEMORY USAGE``);
plus the median latency of a later round at 1 MP and at 12 MP, the rounds' stage breakdown
(their ``timings_ms``), and the seconds from the API process's start to ``/healthz`` and to
``/readyz``.

Photos: ``--data DIR`` (images, with alpha mattes if the folder has a matting layout) or,
by default, synthetic people scenes at 1152x864. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
import redis
import tritonclient.grpc as grpcclient
from rich.console import Console
from rich.table import Table

from models.data.layouts import open_folder
from models.data.synthetic import SceneGenerator
from models.eval.simulator import UserSimulator
from models.export import config_text, parse_config
from models.io_spec import to_wire
from models.prompting import Letterbox, iscn_prompt_tensors
from models.text import TEXT_DIM
from service.backends.base import read_networks
from service.config import REPO_ROOT
from service.process import ServerProcess
from service.redis_runtime import free_port, resolve_redis
from service.store import keys
from service.triton_local import TritonLocalServer

ROUND_NETWORKS = ("iscn_decoder", "mrn")
UNBATCHED = "_nobatch"
console = Console(width=150)


def bench_repository(source: Path, target: Path) -> Path:
    """``source`` plus a copy of each per-round network without ``dynamic_batching`` (``<name>_nobatch``)."""
    for model_dir in source.iterdir():
        if (model_dir / "config.pbtxt").is_file():
            shutil.copytree(model_dir, target / model_dir.name, symlinks=True)
    for name in ROUND_NETWORKS:
        config = parse_config((source / name / "config.pbtxt").read_text())
        config.name = name + UNBATCHED
        config.ClearField("dynamic_batching")
        twin = target / config.name
        (twin / "1").mkdir(parents=True)
        (twin / "1" / "model.pt").symlink_to((source / name / "1" / "model.pt").resolve())
        (twin / "config.pbtxt").write_text(config_text(config))
    return target


def photos(data: str | None, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(image, target alpha) pairs: from ``data`` or synthetic 1152x864 scenes."""
    if data:
        folder = open_folder(data)
        scenes = [folder[i] for i in range(min(count, len(folder)))]
    else:
        generator = SceneGenerator(seed=4242)
        scenes = [generator.scene(i, size=(864, 1152)) for i in range(count)]
    out = []
    for scene in scenes:
        areas = scene.alphas.reshape(scene.num_instances, -1).sum(axis=1)
        out.append((scene.image, scene.alphas[int(np.argmax(areas))]))
    return out


def compute_us(server: TritonLocalServer) -> float:
    """Triton's cumulative compute time (input + infer + output, microseconds) over all models."""
    total = 0.0
    for name in (m.name for m in server.models):
        metrics = server.model_metrics(name)
        total += sum(
            metrics.get(k, 0.0)
            for k in ("compute_input_duration_us", "compute_infer_duration_us", "compute_output_duration_us")
        )
    return total


def session_figures(
    api: ServerProcess,
    triton: TritonLocalServer,
    store: redis.Redis,
    items: list[tuple[np.ndarray, np.ndarray]],
    rounds: int,
) -> dict:
    """(a), (c) and (d) over sequential sessions."""
    ratios, overheads, sizes, round_ms, create_ms = [], [], [], [], []
    stages: dict[str, list[float]] = {}
    client = httpx.Client(base_url=api.url, timeout=300)
    for k, (image, target) in enumerate(items):
        _, jpeg = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
        start = time.perf_counter()
        created = client.post(
            "/v1/sessions",
            files={"image": ("photo.jpg", jpeg.tobytes(), "image/jpeg")},
            data={"model": "dfimat"},
        )
        creation = time.perf_counter() - start
        created.raise_for_status()
        sid = created.json()["session_id"]
        simulator = UserSimulator("box", seed=k, rounds=rounds)
        previous, latencies = None, []
        for r in range(rounds):
            prompts = [p.model_dump(mode="json") for p in simulator.round_prompts(r, target, previous)]
            before = compute_us(triton)
            start = time.perf_counter()
            answer = client.post(f"/v1/sessions/{sid}/rounds", json={"prompts": prompts})
            latency = time.perf_counter() - start
            answer.raise_for_status()
            backend_s = (compute_us(triton) - before) / 1e6
            latencies.append(latency)
            overheads.append(latency / backend_s if backend_s > 0 else float("nan"))
            if r > 0:
                for stage, ms in answer.json()["timings_ms"].items():
                    stages.setdefault(stage, []).append(ms)
            png = client.get(answer.json()["alpha_url"]).content
            previous = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE) / 255.0
        ratios.append(statistics.mean(latencies[1:]) / (creation + latencies[0]))
        sizes.append(
            sum(int(store.memory_usage(key) or 0) for key in store.scan_iter(match=keys.session_pattern(sid)))
        )
        round_ms += [1000 * x for x in latencies[1:]]
        create_ms.append(1000 * (creation + latencies[0]))
        client.delete(f"/v1/sessions/{sid}")
    return {
        "a_round_ratio": statistics.mean(ratios),
        "a_rounds_2_5_ms": statistics.median(round_ms),
        "a_create_plus_round1_ms": statistics.median(create_ms),
        "c_e2e_over_backend": statistics.median(overheads),
        "d_redis_bytes_per_session": statistics.mean(sizes),
        "photo_pixels": int(items[0][0].shape[0] * items[0][0].shape[1]),
        "stages_rounds_2_5_ms": {k: statistics.median(v) for k, v in stages.items()},
    }


def startup_figures(api: ServerProcess, started: float, timeout_s: float = 300.0) -> dict:
    """Seconds from the API process's start to ``/healthz`` (``api`` has just answered it) and
    to ``/readyz`` (Redis, Triton, every network and the text encoder ready)."""
    healthz = time.perf_counter() - started
    deadline = time.monotonic() + timeout_s
    while httpx.get(f"{api.url}/readyz", timeout=10).status_code != 200:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the API was not ready {timeout_s:.0f} s after /healthz:\n{api.log()}")
        time.sleep(0.05)  # polling the condition itself; the interval bounds the figure's resolution
    return {"startup_healthz_s": healthz, "startup_readyz_s": time.perf_counter() - started}


def large_photo_round_ms(api: ServerProcess, image: np.ndarray, target: np.ndarray, rounds: int = 3) -> float:
    """Median latency of rounds 2.. of one session on ``image`` scaled to 12 MP (4000x3000)."""
    big = cv2.resize(image, (4000, 3000), interpolation=cv2.INTER_CUBIC)
    big_target = cv2.resize(target.astype(np.float32), (4000, 3000), interpolation=cv2.INTER_LINEAR)
    client = httpx.Client(base_url=api.url, timeout=300)
    _, jpeg = cv2.imencode(".jpg", big[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
    created = client.post(
        "/v1/sessions", files={"image": ("big.jpg", jpeg.tobytes(), "image/jpeg")}, data={"model": "dfimat"}
    )
    created.raise_for_status()
    sid = created.json()["session_id"]
    simulator = UserSimulator("box", seed=0, rounds=rounds)
    previous, latencies = None, []
    for r in range(rounds):
        prompts = [p.model_dump(mode="json") for p in simulator.round_prompts(r, big_target, previous)]
        start = time.perf_counter()
        answer = client.post(f"/v1/sessions/{sid}/rounds", json={"prompts": prompts})
        latencies.append(time.perf_counter() - start)
        answer.raise_for_status()
        png = client.get(answer.json()["alpha_url"]).content
        previous = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE) / 255.0
    client.delete(f"/v1/sessions/{sid}")
    client.close()
    return 1000 * statistics.median(latencies[1:])


def round_inputs(
    triton: TritonLocalServer, image: np.ndarray, target: np.ndarray
) -> dict[str, dict[str, np.ndarray]]:
    """Real inputs of one dfimat round (a box on ``target``), per network, batch of one."""
    networks = read_networks(REPO_ROOT / "triton_repo")
    size = networks["iscn_encoder"].input_size
    box = Letterbox(*image.shape[:2], size)
    framed = box.image(image)[None]
    client = grpcclient.InferenceServerClient(triton.grpc_url.removeprefix("grpc://"))
    encoded = _infer(client, "iscn_encoder", networks, {"image": framed})
    simulator = UserSimulator("box", seed=0, rounds=1)
    maps, kinds = iscn_prompt_tensors(simulator.round_prompts(0, target, None), box)
    s4 = size // 4
    decoder = {
        "features": encoded["features"],
        "mask_features": encoded["mask_features"],
        "prompt_maps": maps[None],
        "prompt_kinds": kinds[None],
        "text_embedding": np.zeros((1, TEXT_DIM), np.float32),
        "has_text": np.zeros((1, 1), np.float32),
        "conflict_map": np.zeros((1, 1, s4, s4), np.float32),
        "prev_mask": np.zeros((1, 1, s4, s4), np.float32),
        "has_prev": np.zeros((1, 1), np.float32),
    }
    logits = _infer(client, "iscn_decoder", networks, decoder)["mask_logits"][0, 0]
    coarse = cv2.resize(1 / (1 + np.exp(-logits)), (size, size), interpolation=cv2.INTER_LINEAR)[None, None]
    client.close()
    return {"iscn_decoder": decoder, "mrn": {"image": framed, "mask": coarse.astype(np.float32)}}


def _infer(client: grpcclient.InferenceServerClient, model: str, networks: dict, inputs: dict) -> dict:
    io = networks[model.removesuffix(UNBATCHED)].io
    request = []
    for spec in io.inputs:
        array = to_wire(spec, inputs[spec.base_name])
        tensor = grpcclient.InferInput(spec.name, list(array.shape), spec.dtype)
        tensor.set_data_from_numpy(array)
        request.append(tensor)
    result = client.infer(model, request)
    return {spec.base_name: result.as_numpy(spec.name) for spec in io.outputs}


def throughput(
    triton: TritonLocalServer, inputs: dict, suffix: str, concurrency: int, per_worker: int
) -> float:
    """dfimat rounds per second (iscn_decoder then mrn) from ``concurrency`` clients at once."""
    networks = read_networks(REPO_ROOT / "triton_repo")
    barrier = threading.Barrier(concurrency + 1)
    errors: list[BaseException] = []

    def worker() -> None:
        client = grpcclient.InferenceServerClient(triton.grpc_url.removeprefix("grpc://"))
        barrier.wait()
        try:
            for _ in range(per_worker):
                for name in ROUND_NETWORKS:
                    _infer(client, name + suffix, networks, inputs[name])
        except BaseException as exc:  # reported after the run
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return concurrency * per_worker / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="Folder of photos (with alphas); default: synthetic 1152x864 scenes.")
    parser.add_argument("--photos", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--per-worker", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("out/bench"))
    args = parser.parse_args(argv)

    url, own_redis = resolve_redis(None)
    workdir = Path(tempfile.mkdtemp(prefix="matteserve-bench-"))
    triton = TritonLocalServer(
        bench_repository(REPO_ROOT / "triton_repo", workdir / "repo"),
        die_with_parent=True,
        startup_timeout=600,
    )
    api = None
    try:
        console.print("starting Triton (triton-local) ...")
        triton.start()
        started = time.perf_counter()
        api = ServerProcess(
            port=free_port(),
            env={
                "MATTESERVE_REDIS_URL": url,
                "MATTESERVE_BACKEND": "triton",
                "MATTESERVE_TRITON_URL": triton.grpc_url.removeprefix("grpc://"),
                "MATTESERVE_ALLOW_ANONYMOUS": "true",
                "MATTESERVE_RATE_LIMIT_PER_MINUTE": "0",
                "MATTESERVE_TRITON_TIMEOUT_S": "300",
            },
        ).start()
        startup = startup_figures(api, started)
        items = photos(args.data, args.photos)
        console.print(f"sessions: {len(items)} photos x {args.rounds} rounds ...")
        figures = session_figures(api, triton, redis.Redis.from_url(url), items, args.rounds)
        figures.update(startup)
        console.print("a session on a 12 MP photo ...")
        figures["round_ms_12mp"] = large_photo_round_ms(api, *items[0])
        inputs = round_inputs(triton, *items[0])
        console.print(f"throughput at concurrency {args.concurrency} ...")
        throughput(triton, inputs, "", args.concurrency, 1)  # warm both twins
        throughput(triton, inputs, UNBATCHED, args.concurrency, 1)
        batched, unbatched = [], []
        for _ in range(2):
            batched.append(throughput(triton, inputs, "", args.concurrency, args.per_worker))
            unbatched.append(throughput(triton, inputs, UNBATCHED, args.concurrency, args.per_worker))
        figures["b_rounds_per_s_batched"] = statistics.mean(batched)
        figures["b_rounds_per_s_unbatched"] = statistics.mean(unbatched)
        figures["b_batching_speedup"] = (
            figures["b_rounds_per_s_batched"] / figures["b_rounds_per_s_unbatched"]
        )
        figures["b_exec_vs_requests"] = {name: triton.model_metrics(name) for name in ROUND_NETWORKS}
    finally:
        if api is not None:
            api.stop()
        triton.stop(graceful=False)
        shutil.rmtree(workdir, ignore_errors=True)
        if own_redis is not None:
            own_redis.stop()

    table = Table(
        title=f"dfimat serving benchmark ({figures['photo_pixels'] / 1e6:.2f} MP photos, "
        f"{args.photos} sessions x {args.rounds} rounds, Triton on CPU)"
    )
    for column in ("figure", "measured", "goal", "detail"):
        table.add_column(column)
    table.add_row(
        "(a) rounds 2..5 / (create + round 1)",
        f"{figures['a_round_ratio']:.2f}",
        "<= 0.2",
        f"median round {figures['a_rounds_2_5_ms']:.0f} ms; create+round 1 "
        f"{figures['a_create_plus_round1_ms']:.0f} ms",
    )
    table.add_row(
        "(b) batching on / off, concurrency 8",
        f"{figures['b_batching_speedup']:.2f}x",
        ">= 1.5x",
        f"{figures['b_rounds_per_s_batched']:.2f} vs {figures['b_rounds_per_s_unbatched']:.2f} rounds/s",
    )
    table.add_row(
        "(c) end-to-end round / backend compute",
        f"{figures['c_e2e_over_backend']:.2f}",
        "<= 1.1",
        "median over rounds",
    )
    table.add_row(
        "(d) Redis bytes per 1 MP session",
        f"{figures['d_redis_bytes_per_session'] / 1e6:.2f} MB",
        "<= 2 MB",
        "after 5 rounds, MEMORY USAGE",
    )
    table.add_row(
        "median round 2+ latency",
        f"{figures['a_rounds_2_5_ms']:.0f} ms",
        "",
        f"{figures['photo_pixels'] / 1e6:.2f} MP; 12 MP: {figures['round_ms_12mp']:.0f} ms",
    )
    table.add_row(
        "start-up: /healthz, /readyz",
        f"{figures['startup_healthz_s']:.1f} s, {figures['startup_readyz_s']:.1f} s",
        "seconds",
        "from the API process's start; /readyz includes Triton, every network and the text encoder",
    )
    console.print(table)
    stages = Table(title="a round 2..5 by stage (median ms, the round's timings_ms)")
    stages.add_column("stage")
    stages.add_column("ms", justify="right")
    for stage, ms in sorted(figures["stages_rounds_2_5_ms"].items(), key=lambda kv: -kv[1]):
        stages.add_row(stage, f"{ms:.1f}")
    console.print(stages)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(json.dumps(figures, indent=2))
    console.print(f"wrote {args.out / 'bench.json'}")

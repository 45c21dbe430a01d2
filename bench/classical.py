"""Round latency of the classical engine at 320 px, 1 MP and 12 MP (``python -m bench.classical``).

Runs sessions against a real API process (local backend, Redis) and reports, side by side in
one run, the median client-side latency of round 1 and of the later rounds (the refinement
rounds a user waits for; goal at 1 MP on 2 cores: <= 300 ms) and the median time of the
engine itself (``timings_ms.matting``). Photos are synthetic people scenes; prompts come from
the DFIMat user simulator: ``box`` (the person's box, then 3 clicks a round) and ``click``
(one click, then 3 clicks a round, never a box: the engine's box-less path, where nothing
bounds GrabCut's first round).
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

from models.data.synthetic import SceneGenerator
from models.eval.simulator import UserSimulator
from service.process import ServerProcess
from service.redis_runtime import free_port, resolve_redis

SIZES = {"320 px": (240, 320), "1 MP": (864, 1152), "12 MP": (3000, 4000)}


def _session(
    api: ServerProcess,
    scene_index: int,
    size: tuple[int, int],
    rounds: int,
    start_together: threading.Barrier | None = None,
    protocol: str = "box",
) -> list[tuple[float, float]]:
    """Run one session of ``rounds`` rounds (the simulator's ``protocol``: box or click, then its
    clicks) on synthetic scene ``scene_index``; with ``start_together``, wait at it after round 1.
    Returns each round's (client-side latency, engine ``timings_ms.matting``) in ms."""
    client = httpx.Client(base_url=api.url, timeout=300)
    scene = SceneGenerator(seed=777).scene(scene_index, size=size)
    target = scene.alphas[int(scene.alphas.reshape(scene.num_instances, -1).sum(1).argmax())]
    _, photo = cv2.imencode(".jpg", scene.image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    sid = client.post(
        "/v1/sessions", files={"image": ("p.jpg", photo.tobytes(), "image/jpeg")}, data={"model": "classical"}
    ).json()["session_id"]
    simulator, previous, timings = UserSimulator(protocol, seed=scene_index, rounds=rounds), None, []
    for r in range(rounds):
        if r == 1 and start_together is not None:
            start_together.wait()
        prompts = [p.model_dump(mode="json") for p in simulator.round_prompts(r, target, previous)]
        start = time.perf_counter()
        answer = client.post(f"/v1/sessions/{sid}/rounds", json={"prompts": prompts})
        elapsed = (time.perf_counter() - start) * 1000
        answer.raise_for_status()
        timings.append((elapsed, answer.json()["timings_ms"]["matting"]))
        alpha = client.get(answer.json()["alpha_url"]).content
        previous = cv2.imdecode(np.frombuffer(alpha, np.uint8), cv2.IMREAD_GRAYSCALE) / 255.0
    client.delete(f"/v1/sessions/{sid}")
    return timings


def measure(
    api: ServerProcess, size: tuple[int, int], sessions: int, rounds: int, protocol: str = "box"
) -> dict[str, float]:
    """Median latency and engine time of round 1 and of the later rounds, sessions one at a time."""
    runs = [_session(api, k, size, rounds, protocol=protocol) for k in range(sessions)]
    first = [run[0] for run in runs]
    later = [t for run in runs for t in run[1:]]
    return {
        "round1_ms": statistics.median(t[0] for t in first),
        "later_rounds_ms": statistics.median(t[0] for t in later),
        "engine_round1_ms": statistics.median(t[1] for t in first),
        "engine_later_ms": statistics.median(t[1] for t in later),
        "rounds": len(first) + len(later),
    }


def measure_in_flight(
    api: ServerProcess, size: tuple[int, int], in_flight: int, rounds: int
) -> dict[str, float]:
    """Latency of refinement rounds with ``in_flight`` sessions sending their rounds at once.

    Every session does its round 1 first; then all send rounds 2..``rounds`` back to back, so
    ``in_flight`` rounds are queued or computing at any moment. Returns the p50 / p95 of those
    rounds' client-side latency (ms) and the rounds completed per second.
    """
    barrier = threading.Barrier(in_flight + 1, timeout=600)  # a failed session breaks it, no hang
    with ThreadPoolExecutor(in_flight) as pool:
        futures = [pool.submit(_session, api, 100 + k, size, rounds, barrier) for k in range(in_flight)]
        barrier.wait()
        start = time.perf_counter()
        latencies = [t[0] for future in futures for t in future.result()[1:]]
        wall = time.perf_counter() - start
    ordered = sorted(latencies)
    return {
        "in_flight": in_flight,
        "p50_ms": statistics.median(ordered),
        "p95_ms": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
        "rounds_per_s": len(ordered) / wall,
        "rounds": len(ordered),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES), help="photo sizes")
    parser.add_argument(
        "--protocols",
        nargs="+",
        choices=("box", "click"),
        default=["box", "click"],
        help="round 1 with the person's box, or with one click and no box",
    )
    parser.add_argument(
        "--in-flight", type=int, default=6, help="sessions sending rounds at once (1 MP); 0: skip"
    )
    parser.add_argument("--out", type=Path, default=Path("out/bench"))
    args = parser.parse_args(argv)
    url, own_redis = resolve_redis(None)
    api = ServerProcess(
        port=free_port(),
        env={
            "MATTESERVE_REDIS_URL": url,
            "MATTESERVE_ALLOW_ANONYMOUS": "true",
            "MATTESERVE_RATE_LIMIT_PER_MINUTE": "0",
        },
    ).start()
    try:
        figures = {
            f"{name}, {protocol}": measure(api, size, args.sessions, args.rounds, protocol)
            for protocol in args.protocols
            for name, size in SIZES.items()
            if name in args.sizes
        }
        loaded = (
            measure_in_flight(api, SIZES["1 MP"], args.in_flight, args.rounds) if args.in_flight else None
        )
    finally:
        api.stop()
        if own_redis is not None:
            own_redis.stop()
    table = Table(title="classical engine: median round latency")
    for column in (
        "photo, round 1",
        "rounds",
        "round 1 (HTTP, ms)",
        "rounds 2+ (HTTP, ms)",
        "engine 1 / 2+ (ms)",
    ):
        table.add_column(column)
    for name, f in figures.items():
        table.add_row(
            name,
            str(f["rounds"]),
            f"{f['round1_ms']:.0f}",
            f"{f['later_rounds_ms']:.0f}",
            f"{f['engine_round1_ms']:.0f} / {f['engine_later_ms']:.0f}",
        )
    Console().print(table)
    if loaded is not None:
        figures["1 MP, in flight"] = loaded
        Console().print(
            f"1 MP, {loaded['in_flight']} sessions sending rounds 2+ at once: "
            f"p50 {loaded['p50_ms']:.0f} ms, p95 {loaded['p95_ms']:.0f} ms, "
            f"{loaded['rounds_per_s']:.2f} rounds/s ({loaded['rounds']} rounds)"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "classical.json").write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()

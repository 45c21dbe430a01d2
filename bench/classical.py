"""Round latency of the classical engine at 320 px, 1 MP and 12 MP (``python -m bench.classical``).

Runs sessions against a real API process (local backend, Redis) and reports, side by side in
one run, the median client-side latency of round 1 and of the later rounds (the refinement
rounds a user waits for; goal at 1 MP on 2 cores: <= 300 ms) and the median time of the
engine itself (``timings_ms.matting``). Photos are synthetic people scenes; prompts come from
the DFIMat user simulator (box, then 3 clicks a round).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
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


def measure(api: ServerProcess, size: tuple[int, int], sessions: int, rounds: int) -> dict[str, float]:
    client = httpx.Client(base_url=api.url, timeout=300)
    generator = SceneGenerator(seed=777)
    first, later, engine_first, engine_later = [], [], [], []
    for k in range(sessions):
        scene = generator.scene(k, size=size)
        target = scene.alphas[int(scene.alphas.reshape(scene.num_instances, -1).sum(1).argmax())]
        _, photo = cv2.imencode(".jpg", scene.image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        sid = client.post(
            "/v1/sessions",
            files={"image": ("p.jpg", photo.tobytes(), "image/jpeg")},
            data={"model": "classical"},
        ).json()["session_id"]
        simulator, previous = UserSimulator("box", seed=k, rounds=rounds), None
        for r in range(rounds):
            prompts = [p.model_dump(mode="json") for p in simulator.round_prompts(r, target, previous)]
            start = time.perf_counter()
            answer = client.post(f"/v1/sessions/{sid}/rounds", json={"prompts": prompts})
            elapsed = (time.perf_counter() - start) * 1000
            answer.raise_for_status()
            (first if r == 0 else later).append(elapsed)
            (engine_first if r == 0 else engine_later).append(answer.json()["timings_ms"]["matting"])
            alpha = client.get(answer.json()["alpha_url"]).content
            previous = cv2.imdecode(np.frombuffer(alpha, np.uint8), cv2.IMREAD_GRAYSCALE) / 255.0
        client.delete(f"/v1/sessions/{sid}")
    return {
        "round1_ms": statistics.median(first),
        "later_rounds_ms": statistics.median(later),
        "engine_round1_ms": statistics.median(engine_first),
        "engine_later_ms": statistics.median(engine_later),
        "rounds": len(first) + len(later),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
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
        figures = {name: measure(api, size, args.sessions, args.rounds) for name, size in SIZES.items()}
    finally:
        api.stop()
        if own_redis is not None:
            own_redis.stop()
    table = Table(title="classical engine: median round latency")
    for column in ("photo", "rounds", "round 1 (HTTP, ms)", "rounds 2+ (HTTP, ms)", "engine 1 / 2+ (ms)"):
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
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "classical.json").write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()

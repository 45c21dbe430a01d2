"""``python -m bench.memory``: peak memory of the API process under near-limit images.

Starts a real server (local backend) and sends ``--clients`` sessions at once, each a
``--side`` x ``--side`` all-zero PNG (about 116 KB on the wire for 6300 px, just under the
40 MP limit): create, a box round on ``--model``, the cut-out. Reports the process's
resident peak (VmHWM) before and after, per stage, and writes out/bench/memory.json. The
pixel budget (MATTESERVE_MAX_CONCURRENT_PIXELS) is what bounds the peak; run it with a
smaller budget to see the effect: ``--budget 40000000``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import json
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from service.process import ServerProcess, start_server
from service.redis_runtime import resolve_redis

KEY = "bench-key"
HEADERS = {"Authorization": f"Bearer {KEY}"}


def resident_mb(server: ServerProcess) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of the server process in MB."""
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    fields = {
        line.split(":")[0]: int(line.split()[1]) // 1024
        for line in status.splitlines()
        if ":" in line and line.split()[-1] == "kB"
    }
    return {"rss_mb": fields["VmRSS"], "peak_mb": fields["VmHWM"]}


def one_client(server: ServerProcess, png: bytes, side: int, model: str) -> list[int]:
    with httpx.Client(base_url=server.url, headers=HEADERS, timeout=600) as client:
        created = client.post(
            "/v1/sessions", files={"image": ("z.png", png, "image/png")}, data={"model": model}
        )
        sid = created.json()["session_id"]
        box = {"type": "box", "x0": side // 4, "y0": side // 4, "x1": side * 3 // 4, "y1": side * 3 // 4}
        round_one = client.post(f"/v1/sessions/{sid}/rounds", json={"prompts": [box]})
        cutout = client.get(f"/v1/sessions/{sid}/rounds/1/cutout.png")
        client.delete(f"/v1/sessions/{sid}")
        return [created.status_code, round_one.status_code, cutout.status_code]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=6300)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--model", default="classical")
    parser.add_argument("--budget", type=int, default=None, help="MATTESERVE_MAX_CONCURRENT_PIXELS")
    parser.add_argument("--out", type=Path, default=Path("out/bench/memory.json"))
    args = parser.parse_args()
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((args.side, args.side, 3), np.uint8)).save(buffer, format="PNG")
    png = buffer.getvalue()
    redis_url, started = resolve_redis(None)
    env = {
        "MATTESERVE_REDIS_URL": redis_url,
        "MATTESERVE_API_KEYS": f"{KEY}:bench",
        "MATTESERVE_RATE_LIMIT_PER_MINUTE": "0",
        "MATTESERVE_BACKEND": "local",
    }
    if args.budget:
        env["MATTESERVE_MAX_CONCURRENT_PIXELS"] = str(args.budget)
    server = start_server(env)
    try:
        httpx.get(f"{server.url}/v1/models", headers=HEADERS, timeout=120)
        idle = resident_mb(server)
        with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
            statuses = list(
                pool.map(lambda _: one_client(server, png, args.side, args.model), range(args.clients))
            )
        after = resident_mb(server)
    finally:
        server.stop()
        if started is not None:
            started.stop()
    report = {
        "side": args.side,
        "png_bytes": len(png),
        "clients": args.clients,
        "model": args.model,
        "budget_pixels": args.budget or "default",
        "statuses": statuses,
        "idle": idle,
        "after": after,
        "peak_over_idle_mb": after["peak_mb"] - idle["rss_mb"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

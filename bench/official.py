"""``python -m bench.official``: latency and memory of the papers' networks at full size.

The official-layout networks (MGMatting, InstMatt, SMat, SEMat) at their ``paper`` presets,
with seeded random weights (latency does not depend on the values), run through the modules
the export traces (``models.export.official_export_module``: PRM and all; eager, so a
ViT-L needs no minutes-long trace), each in its own process, at the input size the official
code uses for a photo of ``--side`` x ``--side * 3/4`` pixels:

* ``mgmatting``: one round of dfimat's refiner, the photo padded to a multiple of 32;
* ``instmatt``: the generator on ``--instances`` people (one batch) plus one refiner window;
* ``smat``: the encoder (once per session) and the decoder (every round), padded by 14s;
* ``semat``: one round at the fixed 1024² input; ``semat_sam2``: the same with the SAM2
  variant (Hiera-L).

Reports the median wall time of ``--repeats`` calls after one warm-up, and the peak memory of
the process (CPU: resident peak, VmHWM; CUDA: ``torch.cuda.max_memory_allocated``). Writes
``out/bench/official.json`` and prints a markdown table. On a GPU host: ``--device cuda``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import time
from pathlib import Path

import torch

OUT = Path("out/bench/official.json")


def _padded(size: int, multiple: int) -> int:
    return -(-size // multiple) * multiple


def _peak_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _timed(fn, repeats: int, device: str) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls after one warm-up."""

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(name: str, side: int, instances: int, repeats: int, device: str) -> dict:
    """One network family in this process -> its stages' median latency and the peak memory."""
    from models.checkpoint_import import build_official
    from models.common.lora import merge_lora
    from models.export import official_export_module
    from models.registry import export_module

    torch.manual_seed(0)
    torch.set_grad_enabled(False)
    height, width = side * 3 // 4, side
    gen = torch.Generator().manual_seed(1)
    stages: dict[str, float] = {}

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=gen).to(device)

    if name in ("mgmatting", "instmatt"):
        hp, wp = _padded(height, 32) + 64, _padded(width, 32) + 64
        model = build_official(name, "paper").eval()
        if name == "mgmatting":
            net = official_export_module("mgmatting", model).to(device)
            image, guidance = rand(1, 3, hp, wp), (rand(1, 1, hp, wp) > 0.5).float()
            stages["round"] = _timed(lambda: net(image, guidance), repeats, device)
        else:
            generator = official_export_module("instmatt_official", model).to(device)
            refiner = official_export_module("instmatt_refiner", model).to(device)
            image, guidance = rand(instances, 3, hp, wp), rand(instances, 3, hp, wp)
            stages["generator"] = _timed(lambda: generator(image, guidance), repeats, device)
            window = min(320, hp, wp)
            pred, feat = rand(1, instances, 3, window, window), rand(1, instances, 32, window, window)
            patch = rand(1, instances, 3, window, window)
            stages["refiner window"] = _timed(lambda: refiner(pred, feat, patch), repeats, device)
    elif name == "smat":
        hp, wp = _padded(height, 14), _padded(width, 14)
        model = build_official("smat", "paper").eval()
        encoder = official_export_module("smat_official_encoder", model).to(device)
        decoder = official_export_module("smat_official_decoder", model).to(device)
        image, prompt = rand(1, 3, hp, wp), (rand(1, 1, hp, wp) > 0.5).float()
        stages["encoder (per session)"] = _timed(lambda: encoder(image), repeats, device)
        tokens, cls = encoder(image)
        stages["decoder (per round)"] = _timed(lambda: decoder(image, tokens, cls, prompt), repeats, device)
    elif name in ("semat", "semat_sam2"):
        model = build_official("semat", "paper_sam2" if name == "semat_sam2" else "paper").eval()
        merge_lora(model)
        net = export_module("semat", model).eval().to(device)
        image, box = rand(1, 3, 1024, 1024), torch.tensor([[100.0, 80.0, 700.0, 900.0]], device=device)
        stages["round"] = _timed(lambda: net(image, box), repeats, device)
    else:
        raise KeyError(name)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    return {
        "model": name,
        "params_m": round(params, 1),
        "stages_s": stages,
        "peak_mb": round(_peak_mb(device)),
    }


def _worker(args: tuple) -> dict:
    torch.set_num_threads(args[-1])
    return measure(*args[:-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", nargs="+", default=["mgmatting", "instmatt", "smat", "semat", "semat_sam2"]
    )
    parser.add_argument("--side", type=int, default=1280, help="photo long side (official cap 1280)")
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args(argv)
    context = multiprocessing.get_context("spawn")  # a fresh process per model: its own peak
    results = []
    for name in args.models:
        with context.Pool(1) as pool:
            results.append(
                pool.apply(
                    _worker, ((name, args.side, args.instances, args.repeats, args.device, args.threads),)
                )
            )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    device = (
        torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU, {args.threads} threads"
    )
    OUT.write_text(json.dumps({"device": device, "side": args.side, "results": results}, indent=2) + "\n")
    photo = f"{args.side}x{args.side * 3 // 4}"
    print(f"device: {device}; photo {photo}; median of {args.repeats} after a warm-up\n")
    print("| network | params (M) | stage | latency (s) | peak memory (MB) |")
    print("|---|---|---|---|---|")
    for r in results:
        for stage, seconds in r["stages_s"].items():
            print(f"| {r['model']} | {r['params_m']} | {stage} | {seconds:.3f} | {r['peak_mb']} |")


if __name__ == "__main__":
    main()

"""Parameter counts and CPU latency of every exported model (TorchScript, as Triton/the local backend run it).

For each model in ``models.io_spec.EXPORTED_MODELS``, traces it at each size, warms it up
(the profiling executor optimises on the first calls) and reports the median wall time of
``--repeats`` forward passes per batch size. Prints a Markdown table.

Usage: ``python bench/model_latency.py [--sizes 320 512] [--batches 1 4] [--threads N] [--preset tiny]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.export import build_for_export, trace
from models.io_spec import EXPORTED_MODELS, example_inputs
from models.registry import family_of


def time_model(module: torch.jit.ScriptModule, inputs: tuple[torch.Tensor, ...], repeats: int) -> float:
    """Median seconds per forward pass after two warm-up calls."""
    with torch.no_grad():
        for _ in range(2):
            module(*inputs)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            module(*inputs)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[320, 512])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--models", nargs="+", default=list(EXPORTED_MODELS), choices=list(EXPORTED_MODELS))
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    cols = [f"{s} px b{b}" for s in args.sizes for b in args.batches]
    header = f"preset={args.preset} threads={args.threads} torch={torch.__version__}"
    print(f"{header} (median of {args.repeats} runs, ms)\n")
    print("| model | params | " + " | ".join(cols) + " |")
    print("|---|---:|" + "---:|" * len(cols))
    built: dict[str, torch.nn.Module] = {}
    for name in args.models:
        family = family_of(name)
        if family not in built:
            built[family] = build_for_export(family, args.preset)[0]
        cells = []
        params = 0
        for size in args.sizes:
            traced = trace(name, built[family], size, args.preset)
            params = sum(p.numel() for p in traced.parameters())
            for batch in args.batches:
                inputs = example_inputs(name, size, batch=batch, preset=args.preset, seed=0)
                cells.append(f"{time_model(traced, inputs, args.repeats) * 1e3:.0f}")
        print(f"| {name} | {params / 1e6:.2f} M | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()

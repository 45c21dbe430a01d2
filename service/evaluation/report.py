"""Tables, JSON and plots of an evaluation run."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from rich.table import Table

from service.evaluation.runner import ModelSummary


def unwritable(path: Path, *, folder: bool = False) -> str | None:
    """Why ``path`` (a file to write, or with ``folder`` a folder to write into, either created
    with its parents as needed) cannot be written, or None; checked before a run so that a long
    evaluation does not end on a wrong path."""
    if path.exists() and path.is_dir() != folder:
        return f"{path} is {'a file' if folder else 'a folder'}"
    if path.is_file() and not os.access(path, os.W_OK):
        return f"{path} is not writable"
    nearest = path if folder else path.parent
    while not nearest.exists() and nearest != nearest.parent:
        nearest = nearest.parent
    if not nearest.is_dir():
        return f"{nearest} is a file, so {path} cannot be created"
    if not os.access(nearest, os.W_OK | os.X_OK):
        return f"{nearest} is not writable"
    return None


def table(summaries: list[ModelSummary], title: str) -> Table:
    """Last-round errors per model: SAD, MSE (x1e3), MAD (x1e3), Grad, Conn, IoU, NoC, latency,
    whole image; where the data has trimaps, SAD/MSE/Grad/Conn over the unknown region too."""
    out = Table(title=title)
    unknown = any(s.per_round and "sad_unknown" in s.per_round[-1] for s in summaries)
    for column in (
        "model",
        "samples",
        "rounds",
        "SAD",
        "MSE×1e3",
        "MAD×1e3",
        "Grad",
        "Conn",
        "IoU",
        "NoC@85",
        "NoC@90",
        "median ms/round",
        "failed",
        *(("SAD unk", "MSE×1e3 unk", "Grad unk", "Conn unk") if unknown else ()),
    ):
        out.add_column(column, justify="left" if column == "model" else "right")
    for s in summaries:
        if not s.per_round:
            out.add_row(s.model, str(s.samples), "0", *["-"] * 9, str(s.failures), *["-"] * (4 * unknown))
            continue
        last = s.per_round[-1]
        extra = []
        if unknown:
            extra = [
                f"{last['sad_unknown']:.2f}" if "sad_unknown" in last else "-",
                f"{last['mse_unknown'] * 1e3:.2f}" if "mse_unknown" in last else "-",
                f"{last['grad_unknown']:.2f}" if "grad_unknown" in last else "-",
                f"{last['conn_unknown']:.2f}" if "conn_unknown" in last else "-",
            ]
        out.add_row(
            s.model,
            str(s.samples),
            str(len(s.per_round)),
            f"{last['sad']:.2f}",
            f"{last['mse'] * 1e3:.2f}",
            f"{last['mad'] * 1e3:.2f}",
            f"{last['grad']:.2f}",
            f"{last['conn']:.2f}",
            f"{last['iou']:.3f}",
            "-" if s.noc85 is None else f"{s.noc85:.1f}",
            "-" if s.noc90 is None else f"{s.noc90:.1f}",
            f"{last['latency_ms']:.0f}",
            str(s.failures),
            *extra,
        )
    return out


def per_round_table(summary: ModelSummary) -> Table:
    out = Table(title=f"{summary.model}: per round")
    for column in ("round", "n", "SAD", "MSE×1e3", "Grad", "Conn", "IoU", "median ms"):
        out.add_column(column, justify="right")
    for k, row in enumerate(summary.per_round, start=1):
        out.add_row(
            str(k),
            str(row["n"]),
            f"{row['sad']:.2f}",
            f"{row['mse'] * 1e3:.2f}",
            f"{row['grad']:.2f}",
            f"{row['conn']:.2f}",
            f"{row['iou']:.3f}",
            f"{row['latency_ms']:.0f}",
        )
    return out


def write_json(path: Path, config: dict, summaries: list[ModelSummary]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"config": config, "models": [asdict(s) for s in summaries]}, indent=2))


def plot(path: Path, summaries: list[ModelSummary], title: str) -> None:
    """SAD and IoU per round for each model (like DFIMat's Fig. 5)."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for s in summaries:
        if not s.per_round:
            continue
        rounds = range(1, len(s.per_round) + 1)
        left.plot(rounds, [r["sad"] for r in s.per_round], marker="o", label=s.model)
        right.plot(rounds, [r["iou"] for r in s.per_round], marker="o", label=s.model)
    left.set(xlabel="round", ylabel="SAD (thousands)", title="SAD per round")
    right.set(xlabel="round", ylabel="IoU", title="IoU per round", ylim=(0, 1))
    for axis in (left, right):
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)

"""``matteserve train <family>`` / ``python -m models.train <family>``.

DFIMat's decoupled schedule means ``iscn`` trains first: ``mrn`` and ``instmatt`` take masks
from the frozen ISCN (``<weights-out>/iscn.pt``, else ``<out>/iscn/last.pt``). The defaults
are the ones the shipped ``tiny`` weights were trained with (about an hour per family on
two CPU cores); see ``models/weights/<family>.json`` for the exact record.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from models.train.loop import TrainConfig, train
from models.train.tasks import FAMILIES

# Shipped-weights recipe per family: (steps, batch size, input size).
RECIPES: dict[str, tuple[int, int, int]] = {
    "iscn": (6000, 8, 256),
    "mrn": (4000, 8, 256),
    "semat": (3000, 8, 256),
    "smat": (6000, 8, 256),
    "instmatt": (4000, 8, 256),
}


def _command_line() -> str:
    """How this process was started, ``python -m models.train ...`` rather than a file path."""
    args = list(sys.argv)
    if args and args[0].endswith(("models/train/__main__.py", "models/train/cli.py")):
        args[0:1] = ["python", "-m", "models.train"]
    return " ".join(shlex.quote(a) for a in args)


def main(
    family: str,
    preset: str = "tiny",
    steps: int | None = None,
    batch_size: int | None = None,
    size: int | None = None,
    lr: float | None = None,
    seed: int = 0,
    out: Path = Path("runs"),
    resume: bool = False,
    weights_out: Path | None = Path("models/weights"),
    iscn_weights: Path | None = None,
    num_workers: int = 1,
    threads: int | None = None,
    stop_at: int | None = None,
    time_budget_min: float | None = None,
    val_targets: int = 50,
    device: str = "auto",
    command: str | None = None,
    data: str = "synthetic",
    ccp_root: Path | None = None,
    init_weights: Path | None = None,
    real_band_weight: float = 1.0,
) -> dict[str, Any]:
    """Trains one family; ``None`` for ``steps``/``batch_size``/``size`` takes the family's
    recipe (:data:`RECIPES`). ``time_budget_min`` trains for that many minutes of training time
    with the cosine schedule over time (``steps`` is then an upper bound). Returns the summary
    of :func:`models.train.loop.train`."""
    default_steps, default_batch, default_size = RECIPES[family]
    cfg = TrainConfig(
        family=family,
        preset=preset,
        steps=steps or (10**7 if time_budget_min else default_steps),
        batch_size=batch_size or default_batch,
        size=size or default_size,
        lr=lr,
        seed=seed,
        out=Path(out),
        resume=resume,
        weights_out=weights_out,
        iscn_weights=iscn_weights,
        num_workers=num_workers,
        threads=threads,
        stop_at=stop_at,
        time_budget_s=None if time_budget_min is None else 60.0 * time_budget_min,
        val_targets=val_targets,
        device=device,
        command=command or _command_line(),
        data=data,
        ccp_root=ccp_root,
        init_weights=init_weights,
        real_band_weight=real_band_weight,
    )
    return train(cfg)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m models.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("family", choices=FAMILIES)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs"))
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--weights-out", type=Path, default=Path("models/weights"))
    parser.add_argument("--no-weights", action="store_true", help="do not write shipped weights")
    parser.add_argument("--iscn-weights", type=Path, default=None)
    parser.add_argument("--num-workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--stop-at", type=int, default=None)
    parser.add_argument(
        "--time-budget-min", type=float, default=None, help="train this long (cosine over time)"
    )
    parser.add_argument("--val-targets", type=int, default=50)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--data",
        default="synthetic",
        help="training mix, e.g. ccp:0.7,synthetic:0.3 (ccp = real CCP people on real backgrounds)",
    )
    parser.add_argument(
        "--ccp-root", type=Path, default=None, help="a clone of bearpaw/clothing-co-parsing (for --data ccp)"
    )
    parser.add_argument("--init-weights", type=Path, default=None, help="fine-tune from these weights")
    parser.add_argument(
        "--real-band-weight",
        type=float,
        default=1.0,
        help="mrn: loss weight inside the soft band of real people's (mask-to-matte) labels; "
        "0 learns only their known foreground and background",
    )
    return parser.parse_args(argv)


def cli(argv: list[str] | None = None) -> None:
    """Parses ``argv`` (the options of :func:`main`, dashed) and trains."""
    options = vars(parse_args(argv))
    if options.pop("no_weights"):
        options["weights_out"] = None
    summary = main(options.pop("family"), **options)
    print(summary)


if __name__ == "__main__":
    cli()

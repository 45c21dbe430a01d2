"""The training loop: AdamW, warmup + cosine schedule, gradient clipping, checkpoints and resume.

``train(TrainConfig(...))`` trains one family and, at the end, validates on the fixed
synthetic set and writes the shipped weights (``<weights_out>/<family>.pt``, fp16) with a
provenance file (``<family>.json``). Layout under ``out`` (default ``runs/``):

* ``<family>/last.pt`` — model, optimiser, scheduler, step, RNG states, config, wall time;
  written every ``checkpoint_every`` steps and at the end (atomically). ``resume=True``
  continues from it; batches depend only on ``(seed, step)``, so a resumed run sees the
  same data as an uninterrupted one.
* ``<family>/log.jsonl`` — one line per ``log_every`` steps (loss, metrics, lr, timings).
* ``cache/`` — the scene pool (:mod:`models.train.data`), shared by all families.

Device: CUDA when present (with autocast: bf16 where supported, else fp16 + GradScaler),
else CPU with ``threads`` torch threads. A data worker (``num_workers=1``) builds the next
batches while the model trains.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch.utils.data import DataLoader

from models.common.efficientnet_lite import PRETRAINED_SOURCE
from models.registry import build_model
from models.train.data import DEFAULT_POOL_SIZE, StepBatches, make_pool
from models.train.tasks import (
    FAMILIES,
    Task,
    init_output_priors,
    init_pretrained_backbones,
    load_frozen_iscn,
    load_matching_weights,
    make_task,
)
from models.train.validate import (
    ccp_closeup_validation_targets,
    ccp_validation_targets,
    validate,
    validation_targets,
)

DEFAULT_LR: dict[str, float] = {"iscn": 5e-4, "mrn": 1e-3, "semat": 4e-4, "smat": 5e-4, "instmatt": 1e-3}
NEEDS_ISCN = ("mrn", "instmatt")


@dataclass
class TrainConfig:
    """Everything that determines a training run (recorded in checkpoints and provenance).

    ``steps`` total optimiser steps (the cosine schedule spans them); ``stop_at`` ends this
    invocation early at that step (a later ``resume`` continues); ``size`` the square
    network input (scenes have long side ``size``); ``seed`` seeds the model init, the
    batches and the scene pool (never the validation seed); ``iscn_weights`` the frozen ISCN
    for MRN/InstMatt (default: ``<weights_out>/iscn.pt``, else ``<out>/iscn/last.pt``);
    ``val_sizes`` network sizes to validate at (default: ``size`` and 512), on
    ``val_targets`` targets of ``val_scene_size``-px validation scenes. ``time_budget_s``
    makes the schedule follow training wall time instead of steps (cosine over the budget,
    after a 200-step warmup) and ends training when the budget is spent; ``steps`` is then
    only an upper bound and ends up as the number of steps done. On a shared machine this
    keeps the schedule whole whatever the load.

    ``data`` the training mix (:func:`models.train.data.parse_data_mix`, e.g.
    ``"ccp:0.7,synthetic:0.3"``), ``ccp_root`` the Clothing Co-Parsing clone its ``ccp`` part
    reads (training split only); ``init_weights`` starts from those weights (fine-tuning)
    instead of random initialisation; ``real_band_weight`` weighs MRN's loss inside the soft band
    of real people's labels (1: as any label; 0: real photos teach only where the person is and
    is not, the soft values come from the procedural scenes' true alpha). Validation runs on the
    synthetic set and, when ``ccp_root`` is given, on scenes of CCP's validation split (real
    people, never trained on).
    """

    family: str
    preset: str = "tiny"
    steps: int = 2000
    batch_size: int = 8
    size: int = 256
    lr: float | None = None
    weight_decay: float = 0.01
    warmup: int | None = None
    min_lr_ratio: float = 0.02
    grad_clip: float = 1.0
    seed: int = 0
    pool_size: int = DEFAULT_POOL_SIZE
    out: Path = Path("runs")
    resume: bool = False
    weights_out: Path | None = Path("models/weights")
    iscn_weights: Path | None = None
    num_workers: int = 1
    threads: int | None = None
    checkpoint_every: int = 250
    log_every: int = 25
    val_targets: int = 50
    val_scene_size: int = 512
    val_sizes: tuple[int, ...] | None = None
    stop_at: int | None = None
    time_budget_s: float | None = None
    device: str = "auto"
    command: str = ""
    data: str = "synthetic"
    ccp_root: Path | None = None
    init_weights: Path | None = None
    real_band_weight: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown family {self.family!r}; known: {', '.join(FAMILIES)}")
        if self.size % 32:
            raise ValueError(f"size must be a multiple of 32, got {self.size}")
        self.out = Path(self.out)
        self.weights_out = None if self.weights_out is None else Path(self.weights_out)
        self.iscn_weights = None if self.iscn_weights is None else Path(self.iscn_weights)
        self.ccp_root = None if self.ccp_root is None else Path(self.ccp_root)
        self.init_weights = None if self.init_weights is None else Path(self.init_weights)

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.family]

    @property
    def warmup_steps(self) -> int:
        if self.warmup is not None:
            return self.warmup
        if self.time_budget_s is not None:  # ``steps`` is unknown in advance
            return 200
        return max(1, min(300, self.steps // 20))

    @property
    def run_dir(self) -> Path:
        return self.out / self.family

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, Path):
                d[k] = str(v)
        d["lr"] = self.learning_rate
        d["warmup"] = self.warmup_steps
        return d


def warmup_cosine(warmup: int, total: int, min_ratio: float) -> Any:
    """LR factor: linear warmup over ``warmup`` steps, then cosine from 1 to ``min_ratio`` at ``total``."""

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))

    return f


def pick_device(name: str = "auto") -> torch.device:
    """CUDA when present (``auto``), else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def git_commit(repo: Path | None = None) -> str:
    """``HEAD``'s hash (``+dirty`` when the tree has changes), or ``unknown``."""
    cwd = repo or Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=cwd, capture_output=True, text=True)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def half_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict with floating tensors in fp16 (the shipped format)."""
    return {
        k: v.detach().cpu().half() if v.is_floating_point() else v.cpu()
        for k, v in model.state_dict().items()
    }


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """A family's weights as an fp32 state dict, from shipped weights (``<family>.pt``, fp16)
    or a trainer checkpoint (its ``model``)."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    if "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _identity(x: Any) -> Any:
    return x


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def _save_atomic(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _default_iscn_weights(cfg: TrainConfig) -> Path | None:
    if cfg.iscn_weights is not None:
        return cfg.iscn_weights
    for candidate in (
        cfg.weights_out / "iscn.pt" if cfg.weights_out else None,
        cfg.out / "iscn" / "last.pt",
    ):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


class Trainer:
    """Holds the model, task, optimiser and schedule of one run (see :func:`train`)."""

    def __init__(self, cfg: TrainConfig, console: Console | None = None) -> None:
        self.cfg = cfg
        self.console = console or Console()
        self.device = pick_device(cfg.device)
        self.threads = torch.get_num_threads()
        if self.device.type == "cpu":
            self.threads = cfg.threads or max(1, (os.cpu_count() or 1))
            torch.set_num_threads(self.threads)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)
        self.model = build_model(cfg.family, cfg.preset)
        init_output_priors(cfg.family, self.model)
        self.pretrained = init_pretrained_backbones(cfg.family, self.model)
        self.not_initialised: list[str] = []  # kept their fresh values despite init_weights
        if cfg.init_weights is not None:
            self.not_initialised = load_matching_weights(self.model, load_state(cfg.init_weights))
            if self.not_initialised:
                self.console.print(
                    f"[yellow]{len(self.not_initialised)} tensors not in {cfg.init_weights} "
                    "(or of another shape) keep their initialisation"
                )
        # Convolution weights channels-last, as exported (``models.export.channels_last``): a
        # training step of MRN (batch 8, 256 px, one CPU thread) 0.80 -> 0.68 s.
        self.model = self.model.to(self.device, memory_format=torch.channels_last)
        self.iscn = None
        self.iscn_path = None
        if cfg.family in NEEDS_ISCN:
            self.iscn_path = _default_iscn_weights(cfg)
            if self.iscn_path is None:
                self.console.print(
                    f"[yellow]no ISCN weights found: {cfg.family} trains on perturbed GT masks only"
                )
            else:
                self.iscn = load_frozen_iscn(str(self.iscn_path), cfg.preset, self.device)
        self.task: Task = make_task(cfg.family, self.model, self.device, self.iscn, cfg.real_band_weight)
        self.params = self.task.trainable()
        # The fused kernel: one call for all parameters (per-tensor Adam costs ~0.3 s a step on CPU).
        self.optimizer = torch.optim.AdamW(
            self.params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay, fused=True
        )
        self.elapsed = 0.0
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.lr_factor)
        self.amp_dtype: torch.dtype | None = None
        if self.device.type == "cuda":
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.pool = make_pool(cfg.data, cfg.seed, cfg.size, cfg.pool_size, cfg.out / "cache", cfg.ccp_root)
        self.step = 0
        self.history: list[dict[str, float]] = []

    def lr_factor(self, step: int) -> float:
        """Warmup, then cosine over steps, or over training time with a time budget."""
        cfg = self.cfg
        if cfg.time_budget_s is None:
            return warmup_cosine(cfg.warmup_steps, cfg.steps, cfg.min_lr_ratio)(step)
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        t = min(1.0, self.elapsed / cfg.time_budget_s)
        return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))

    # ------------------------------------------------------------------ checkpoints

    @property
    def checkpoint_path(self) -> Path:
        return self.cfg.run_dir / "last.pt"

    def state(self) -> dict[str, Any]:
        return {
            "family": self.cfg.family,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "elapsed_s": self.elapsed,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "config": self.cfg.to_json(),
            "history": self.history,
        }

    def save_checkpoint(self) -> Path:
        _save_atomic(self.state(), self.checkpoint_path)
        return self.checkpoint_path

    def load_checkpoint(self, path: Path | None = None) -> None:
        path = path or self.checkpoint_path
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        if ckpt["family"] != self.cfg.family:
            raise ValueError(f"{path} is a {ckpt['family']} checkpoint, not {self.cfg.family}")
        if ckpt["config"]["steps"] != self.cfg.steps and self.cfg.time_budget_s is None:
            self.console.print(
                f"[yellow]resuming a {ckpt['config']['steps']}-step schedule as {self.cfg.steps} steps"
            )
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scheduler.lr_lambdas = [
            warmup_cosine(self.cfg.warmup_steps, self.cfg.steps, self.cfg.min_lr_ratio)
        ]
        self.scaler.load_state_dict(ckpt["scaler"])
        self.step = int(ckpt["step"])
        self.elapsed = float(ckpt["elapsed_s"])
        self.history = list(ckpt.get("history", []))
        torch.set_rng_state(ckpt["torch_rng"])
        if ckpt.get("cuda_rng") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ckpt["cuda_rng"])

    # ------------------------------------------------------------------ the loop

    def batches(self, start: int, stop: int) -> Iterator[dict[str, Any]]:
        dataset = StepBatches(
            self.pool, self.task.sampler, self.cfg.batch_size, self.cfg.steps, self.cfg.seed
        )
        if self.cfg.num_workers <= 0:
            for step in range(start, stop):
                yield dataset[step]
            return
        loader = DataLoader(
            dataset,
            batch_size=None,
            sampler=range(start, stop),
            num_workers=self.cfg.num_workers,
            collate_fn=_identity,
            worker_init_fn=_worker_init,
            prefetch_factor=2,
        )
        yield from loader

    def train_step(self, batch: dict[str, Any]) -> tuple[float, dict[str, float]]:
        """One optimiser step on ``batch``; returns the loss and the task's numbers."""
        self.model.train()
        rng = np.random.default_rng([self.cfg.seed, int(batch["step"]), 2])
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(
            self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None
        ):
            loss, logs = self.task.loss(batch, rng)
        if not torch.isfinite(loss):
            self.optimizer.zero_grad(set_to_none=True)
            self.scheduler.step()
            return float("nan"), logs
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        logs["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return float(loss.detach()), logs

    def run(self) -> dict[str, Any]:
        """Trains up to ``stop_at``/``steps``; at ``steps``, validates and writes weights + provenance.

        With ``time_budget_s``, training stops once that much training time has passed (counted
        across resumes) and ``steps`` becomes the number of steps done.
        """
        cfg = self.cfg
        if cfg.resume and self.checkpoint_path.is_file():
            self.load_checkpoint()
            self.console.print(f"resumed {cfg.family} at step {self.step} from {self.checkpoint_path}")
        cfg.run_dir.mkdir(parents=True, exist_ok=True)
        self._ema: dict[str, float] = {}
        self._window: list[dict[str, float]] = []
        progress = Progress(
            TextColumn(f"[bold]{cfg.family}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"),
            TextColumn("{task.fields[sps]:.2f} s/step"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.console.is_terminal,
        )
        previous_handler = None
        if threading.current_thread() is threading.main_thread():
            previous_handler = signal.signal(signal.SIGTERM, _interrupt)
        try:
            with progress:
                total = None if cfg.time_budget_s is not None else cfg.steps
                bar = progress.add_task("train", total=total, completed=self.step, loss=float("nan"), sps=0.0)
                stop = min(cfg.steps, cfg.stop_at) if cfg.stop_at is not None else cfg.steps
                self._loop(stop, progress, bar)
        except KeyboardInterrupt:
            # Ctrl-C or SIGTERM: keep what was done; ``resume`` continues from here.
            self.save_checkpoint()
            self.console.print(
                f"{cfg.family}: interrupted at step {self.step}; checkpoint {self.checkpoint_path}"
            )
            raise
        finally:
            if previous_handler is not None:
                signal.signal(signal.SIGTERM, previous_handler)
        self.save_checkpoint()
        window = self._window
        summary: dict[str, Any] = {
            "family": cfg.family,
            "step": self.step,
            "steps": cfg.steps,
            "elapsed_s": round(self.elapsed, 1),
            "final_train": {
                k: round(float(np.mean([r[k] for r in window if k in r])), 5)
                for k in (window[0] if window else {})
            },
        }
        if self.step >= cfg.steps:
            summary.update(self.finish())
        return summary

    def _loop(self, stop: int, progress: Progress, bar: Any) -> None:
        """Trains from ``self.step`` to ``stop``, logging and checkpointing on the way."""
        cfg = self.cfg
        stop = min(stop, cfg.steps)
        if self.step >= stop:
            return
        log_path = cfg.run_dir / "log.jsonl"
        ema = self._ema
        bad = 0
        last = time.perf_counter()
        wait = 0.0
        for batch in self.batches(self.step, stop):
            t0 = time.perf_counter()
            wait += t0 - last
            loss, logs = self.train_step(batch)
            now = time.perf_counter()
            self.elapsed += now - last
            dt, last = now - t0, now
            self.step += 1
            if not math.isfinite(loss):  # the step is spent without an update
                bad += 1
                if bad > 20:
                    raise FloatingPointError(
                        f"{cfg.family}: 20 non-finite losses in a row at step {self.step}"
                    )
                continue
            bad = 0
            record = {"loss": loss, **logs, "step_s": dt}
            self._window = [*self._window[-99:], record]
            for k, v in record.items():
                ema[k] = v if k not in ema else 0.95 * ema[k] + 0.05 * v
            progress.update(bar, completed=self.step, loss=ema["loss"], sps=ema["step_s"])
            if cfg.time_budget_s is not None and self.elapsed >= cfg.time_budget_s:
                cfg.steps = self.step  # the budget is spent: this is the last step
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                line = {
                    "step": self.step,
                    "lr": self.scheduler.get_last_lr()[0],
                    **{k: round(v, 5) for k, v in ema.items()},
                    "data_wait_s": round(wait / cfg.log_every, 4),
                    "elapsed_s": round(self.elapsed, 1),
                }
                self.history.append(line)
                with log_path.open("a") as f:
                    f.write(json.dumps(line) + "\n")
                if not self.console.is_terminal:
                    shown = " ".join(f"{k}={v:.4g}" for k, v in line.items() if k != "step")
                    of = f"/{cfg.steps}" if cfg.time_budget_s is None else f" of {cfg.time_budget_s:.0f} s"
                    self.console.print(
                        f"{cfg.family} step {self.step}{of} {shown}", highlight=False, soft_wrap=True
                    )
                wait = 0.0
            if self.step % cfg.checkpoint_every == 0 and self.step < cfg.steps:
                self.save_checkpoint()
            if self.step >= cfg.steps:
                break

    # ------------------------------------------------------------------ the end

    def finish(self) -> dict[str, Any]:
        """Validates the fp16 weights that ship and writes them with their provenance file."""
        cfg = self.cfg
        shipped = half_state(self.model)
        self.model.load_state_dict(shipped)  # validate exactly what ships
        validation: dict[str, Any] = {}
        if cfg.val_targets > 0:
            sets = {"": validation_targets(cfg.val_targets, cfg.val_scene_size)}
            if cfg.ccp_root is not None:
                sets["ccp_"] = ccp_validation_targets(cfg.ccp_root, cfg.val_targets, cfg.size)
                sets["ccp_closeup_"] = ccp_closeup_validation_targets(cfg.ccp_root, cfg.val_targets, cfg.size)
            for prefix, targets in sets.items():
                for size in cfg.val_sizes or tuple(dict.fromkeys((cfg.size, 512))):
                    t0 = time.perf_counter()
                    key = f"{prefix}at_{size}px"
                    validation[key] = validate(cfg.family, self.model, targets, size, self.device, self.iscn)
                    self.console.print(
                        f"{cfg.family} validation {key} ({time.perf_counter() - t0:.0f} s): "
                        f"{validation[key]}",
                        highlight=False,
                    )
        out: dict[str, Any] = {"validation": validation}
        if cfg.weights_out is not None:
            cfg.weights_out.mkdir(parents=True, exist_ok=True)
            weights = cfg.weights_out / f"{cfg.family}.pt"
            _save_atomic(shipped, weights)
            provenance = self.provenance(validation)
            (cfg.weights_out / f"{cfg.family}.json").write_text(json.dumps(provenance, indent=2) + "\n")
            out["weights"] = str(weights)
        return out

    def provenance(self, validation: dict[str, Any]) -> dict[str, Any]:
        """The ``<family>.json`` written beside the shipped weights."""
        cfg = self.cfg
        last = self.history[-1] if self.history else {}
        tail = [h for h in self.history if h["step"] > cfg.steps - 200] or self.history[-1:]
        return {
            "family": cfg.family,
            "preset": cfg.preset,
            "what": (
                f"{cfg.family} '{cfg.preset}' trained "
                + (f"from {cfg.init_weights}" if cfg.init_weights else "from random initialisation")
                + f" for {cfg.steps} steps on {cfg.data} (see data; "
                + (
                    f"{', '.join(self.pretrained)} initialised from ImageNet: {PRETRAINED_SOURCE}; "
                    if self.pretrained
                    else "no pretrained backbone; "
                )
                + "no evaluation photos). Floating tensors stored in fp16."
            ),
            "init_weights": str(cfg.init_weights) if cfg.init_weights else None,
            "pretrained_from_imagenet": self.pretrained,
            "not_in_init_weights": self.not_initialised,
            "command": cfg.command or " ".join(sys.argv),
            "git_commit": git_commit(),
            "seed": cfg.seed,
            "data": {**self.pool.describe(), "validation_seed_excluded": 90210},
            "task": self.task.describe(),
            "frozen_iscn": str(self.iscn_path) if self.iscn_path else None,
            "steps": cfg.steps,
            "batch_size": cfg.batch_size,
            "input_size": cfg.size,
            "optimizer": {
                "name": "AdamW",
                "lr": cfg.learning_rate,
                "weight_decay": cfg.weight_decay,
                "schedule": f"linear warmup {cfg.warmup_steps} steps, cosine to {cfg.min_lr_ratio} x lr",
                "grad_clip": cfg.grad_clip,
            },
            "device": f"{self.device.type} ({self.threads} threads)"
            if self.device.type == "cpu"
            else torch.cuda.get_device_name(self.device),
            "torch": torch.__version__,
            "wall_time_s": round(self.elapsed, 1),
            "final_train": {k: v for k, v in last.items() if k not in ("step",)},
            "final_train_loss_mean_last_200_steps": round(float(np.mean([h["loss"] for h in tail])), 5)
            if tail
            else None,
            "validation": {
                "set": f"{cfg.val_targets} targets of synthetic:{cfg.val_targets}@{cfg.val_scene_size} "
                f"(SceneGenerator seed 90210), metrics at the original resolution"
                + (
                    "; ccp_*: scenes of CCP's validation split (real people, RealSceneGenerator seed 90210)"
                    if cfg.ccp_root
                    else ""
                ),
                **validation,
            },
        }


def train(cfg: TrainConfig, console: Console | None = None) -> dict[str, Any]:
    """Trains ``cfg.family`` (see :class:`TrainConfig`); returns a summary (steps, wall time,
    final train metrics and, when finished, validation and the weights path)."""
    return Trainer(cfg, console).run()

"""Training of the five networks on the project's procedural synthetic data.

``matteserve train <family>`` / ``python -m models.train <family>`` call :func:`models.train.cli.main`.
Modules: ``data`` (scene pool, per-step batches), ``prompts`` (training-time prompt samplers),
``tasks`` (batch -> inputs -> loss per family), ``loop`` (optimiser, schedule, checkpoints,
progress), ``validate`` (IoU/SAD on the fixed synthetic validation set), ``cli``.
"""

from models.train.loop import TrainConfig, train

__all__ = ["TrainConfig", "train"]

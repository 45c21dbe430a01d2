"""``python -m models.train <family>``."""

from models.train.cli import cli

cli()

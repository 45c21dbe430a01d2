"""``python -m service`` runs the ``matteserve`` CLI."""

from service.cli import app

app()

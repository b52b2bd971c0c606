"""``python -m ce``: the same as the ``ce`` command."""

from ce.cli import app

app()

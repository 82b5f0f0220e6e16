"""The ``autopilot`` command: one module per verb, wired together by :mod:`streams.cli.main`."""

from streams.cli.main import main

__all__ = ["main"]

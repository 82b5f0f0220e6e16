"""``python -m streams`` is the ``autopilot`` command."""

from streams.cli import main

main()

"""``python -m streams`` is the ``autopilot`` command."""

from streams.cli.main import main

main()

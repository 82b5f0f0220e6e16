"""The worker's log level filters what it says: at ``warn`` no debug record is built."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Sets up logging as ``autopilot worker -l LEVEL`` does (mode's worker, pinned
# faust-streaming), in a process of its own, and says whether aiokafka's fetcher would
# build a record for each fetch request it logs at debug.
SCRIPT = """
import logging, sys
from streams.runtime.app import app
worker = app.conf.Worker(app, loglevel=sys.argv[1], redirect_stdouts=False)
worker._setup_logging()
print(logging.getLogger("aiokafka.consumer.fetcher").isEnabledFor(logging.DEBUG))
"""


@pytest.mark.parametrize(("level", "debug"), [("warn", False), ("info", False), ("debug", True)])
def test_debug_records_are_built_only_at_debug(level: str, debug: bool) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, level], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == str(debug)

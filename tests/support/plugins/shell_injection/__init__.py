"""A plugin that declares ``subprocess`` and runs a shell command built from data."""

from __future__ import annotations

import subprocess

from models.registry import Entry
from tests.support.plugins.good import RunningZScore


class AlertingZScore(RunningZScore):
    """The good z-score, plus an alert through the shell: bandit's B602."""

    def alert(self, message: str) -> None:
        subprocess.run(f"logger {message}", shell=True, check=False)


ENTRY = Entry(
    "detectors",
    "alerting",
    AlertingZScore,
    max_bytes_per_key=1024,
    summary="z-score that alerts through the shell",
    capabilities=frozenset({"subprocess"}),
)

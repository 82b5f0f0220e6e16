"""A plugin that can reach the network without declaring the capability."""

from __future__ import annotations

import socket

from models.registry import Entry
from tests.support.plugins.good import RunningZScore


class ReportingZScore(RunningZScore):
    """Scores as the good one, and names its host."""

    host = socket.gethostname()


ENTRY = Entry(
    "detectors",
    "reporting",
    ReportingZScore,
    max_bytes_per_key=1024,
    summary="z-score that reports home",
)

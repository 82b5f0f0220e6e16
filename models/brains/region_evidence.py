"""What one telemetry partition tells region health, recorded for a region brain elsewhere.

Region health compares regions with one another, so its one
:class:`~models.brains.region.RegionBrain` must hear from every partition of the metrics
and interactions telemetry, while with several workers each partition is read by one of
them. The reader of a partition records what it reads in an :class:`EvidenceRecorder`,
through the same calls the brain takes; what it drains is a list of rows, which travel to
the evaluator (whatever carries them) and are handed to
:meth:`~models.brains.region.RegionBrain.observe_rows` under the partition's name, in the
order they were recorded. The brain's event-time ordering works on the partitions, as
before: a partition's rows carry its event-time progress.

Rows are JSON-friendly lists, the first item their kind:

* ``[0, ts, region, service, {metric: value}]``: a metrics sample, health metrics only;
* ``[1, ts, region, service, score]``: an anomaly score of a symptom metric;
* ``[2, ts, region, success, data_class]``: one user interaction;
* ``[3, ts, region, kind, successes, total, value, service]``: health evidence of the
  interactions brain (:class:`~models.brains.interactions.HealthEvidence`);
* ``[4, ts]``: event time seen, nothing for health (an anomaly of a load metric).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from models.brains.interactions import HealthEvidence

__all__ = ["ANOMALY", "EVIDENCE", "HEALTH_METRICS", "INTERACTION", "METRICS", "SEEN",
           "SYMPTOM_METRICS", "EvidenceRecorder", "evidence_of_row"]  # fmt: skip

METRICS, ANOMALY, INTERACTION, EVIDENCE, SEEN = 0, 1, 2, 3, 4
HEALTH_METRICS = ("error_rate", "latency_p99_ms", "availability")
"""The metrics :meth:`~models.health.region.RegionHealth.observe_metrics` uses; others are
not recorded."""
SYMPTOM_METRICS = frozenset({"error_rate", "latency_p50_ms", "latency_p99_ms", "availability"})
"""Metrics whose anomalies say something about health; a load anomaly (``rps``) does not."""


class EvidenceRecorder:
    """The region-health observations of one source, as rows waiting to be drained.

    Notes
    -----
    Memory: the rows recorded since the last :meth:`drain` (about 60 bytes each as JSON);
    the caller drains at least every flush interval and whenever :attr:`size` reaches its
    batch size.

    Examples
    --------
    >>> rec = EvidenceRecorder()
    >>> rec.observe_metrics(10.0, "eu-west", "api", {"error_rate": 0.01, "rps": 50.0})
    >>> rec.observe_anomaly(10.0, "eu-west", "api", "rps", 0.9)
    >>> rec.observe_interaction(11.0, "eu-west", True, None)
    >>> rec.size, rec.latest_ts
    (3, 11.0)
    >>> rec.drain()
    [[0, 10.0, 'eu-west', 'api', {'error_rate': 0.01}], [4, 10.0], [2, 11.0, 'eu-west', True, None]]
    >>> rec.drain(), rec.latest_ts
    ([], 11.0)
    """

    __slots__ = ("_index", "_rows", "latest_ts", "position", "spans")

    def __init__(self) -> None:
        self._rows: list[list[Any]] = []
        self.latest_ts = -math.inf
        """Latest event time recorded, drained or not."""
        self.position = -1
        """Where in its source the record being observed is (its offset); set by the caller."""
        self.spans: list[list[int]] = []
        """``[position, first, rows]`` of the rows waiting, in order: how many rows were
        recorded at each position, the first of them the how-manieth at that position
        (:meth:`~models.brains.region.RegionBrain.observe_rows` skips replays with it)."""
        # (position, rows recorded at it so far), drained or not.
        self._index = (-1, 0)

    @property
    def size(self) -> int:
        """Rows waiting to be drained."""
        return len(self._rows)

    def _add(self, row: list[Any]) -> None:
        self._rows.append(row)
        position, index = self._index
        if position != self.position:
            position, index = self.position, 0
        self._index = (position, index + 1)
        if self.spans and self.spans[-1][0] == position:
            self.spans[-1][2] += 1
        else:
            self.spans.append([position, index, 1])
        if row[1] > self.latest_ts:
            self.latest_ts = row[1]

    def observe_metrics(
        self, ts: float, region: str, service: str, metrics: Mapping[str, float]
    ) -> None:
        """Record one metrics sample of ``service`` in ``region`` (its health metrics)."""
        kept = {name: metrics[name] for name in HEALTH_METRICS if name in metrics}
        self._add([METRICS, ts, region, service, kept])

    def observe_anomaly(
        self, ts: float, region: str, service: str, metric: str, score: float
    ) -> None:
        """Record the anomaly score of one of ``service``'s series; only symptoms count."""
        if metric in SYMPTOM_METRICS:
            self._add([ANOMALY, ts, region, service, score])
        else:
            self._add([SEEN, ts])

    def observe_interaction(
        self, ts: float, region: str, success: bool, data_class: str | None
    ) -> None:
        """Record one user interaction served by ``region``."""
        self._add([INTERACTION, ts, region, bool(success), data_class])

    def observe_evidence(self, evidence: HealthEvidence) -> None:
        """Record health evidence of the interactions brain (e.g. a region's SLO burn)."""
        e = evidence
        self._add([EVIDENCE, e.ts, e.region, e.kind, e.successes, e.total, e.value, e.service])

    def drain(self) -> list[list[Any]]:
        """The rows recorded since the last drain, oldest first; the recorder keeps none (read
        :attr:`spans` first)."""
        rows, self._rows = self._rows, []
        self.spans = []
        return rows


def evidence_of_row(row: list[Any]) -> HealthEvidence:
    """The :class:`~models.brains.interactions.HealthEvidence` an ``EVIDENCE`` row carries.

    >>> evidence_of_row([3, 5.0, "eu-west", "slo_burn", 0, 0, 14.4, None])
    HealthEvidence(kind='slo_burn', ts=5.0, region='eu-west', successes=0, total=0, \
value=14.4, service=None)
    """
    _, ts, region, kind, successes, total, value, service = row
    return HealthEvidence(kind, ts, region, successes, total, value, service)

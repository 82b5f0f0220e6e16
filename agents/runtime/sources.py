"""The names partitions go by at the evaluators they feed: ``<topic>/<partition>``.

An evaluator (the region brain, a tenant brain) waits for every partition that feeds it, so
every worker must name a partition the same way, and the evaluator must know them all
before any has spoken.
"""

from __future__ import annotations

from collections.abc import Iterable

from faust.types import TP

__all__ = ["source_name", "source_names"]


def source_name(tp: TP) -> str:
    """The name of the partition ``tp`` at the evaluators it feeds.

    >>> source_name(TP("telemetry.metrics", 3))
    'telemetry.metrics/3'
    """
    return f"{tp.topic}/{tp.partition}"


def source_names(topics: Iterable[str], partitions: int) -> list[str]:
    """Every partition of ``topics``, each with ``partitions`` partitions, by name.

    >>> source_names(["a", "b"], 2)
    ['a/0', 'a/1', 'b/0', 'b/1']
    """
    return [source_name(TP(topic, p)) for topic in topics for p in range(partitions)]

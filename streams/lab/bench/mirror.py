"""Decision latency through MirrorMaker 2: from a region's producer to the decision back in
that region, against the same workload on a single cluster, in one run.

Two local clusters, a region (``us-east``) and the hub (``global``), and one worker on the
hub. Two paths, one after the other, each on fresh topics with a fresh worker:

1. *Single cluster*: samples are produced to the hub and decisions read there.
2. *Through both mirrors*: samples are produced to the region; MirrorMaker copies them to
   the hub, the worker decides, MirrorMaker copies the decision back, and it is read in the
   region. Its time is the region's append (the decision topics are ``LogAppendTime``).

Each path is measured as :mod:`streams.lab.bench.latency` measures (warm-up, a short
capacity probe, then a fixed offered rate with designed triggers); the difference of the
two is what the mirrors add.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from pathlib import Path
from typing import Any

from schemas.topics import TopicNames
from streams.kafka.local import KafkaLocal, free_port, named_broker
from streams.kafka.mirror import MirrorMaker, hub_flows
from streams.lab.bench.latency import (
    PARTITIONS,
    create_bench_topics,
    format_ms,
    measure_decision_latency,
)
from streams.lab.bench.support import Log, WorkerRun

__all__ = ["format_bench_mirror", "run_bench_mirror"]

REGION = "us-east"
HUB = "global"
PATHS = ("single", "mirrored")


def _measure_path(
    path: str,
    region: KafkaLocal,
    hub: KafkaLocal,
    workdir: Path,
    rate: float,
    seconds: float,
    series: int,
    probe_events: int,
    log: Log,
) -> dict[str, Any]:
    topics = TopicNames(f"bench-{path}-{uuid.uuid4().hex[:8]}.")
    mirrored = path == "mirrored"
    for cluster in (hub, region) if mirrored else (hub,):
        asyncio.run(create_bench_topics(cluster.bootstrap, topics))
    partitions = {"AUTOPILOT_PARTITIONS": str(PARTITIONS)}
    with WorkerRun(hub.bootstrap, topics.prefix, workdir, name=f"worker-{path}",
                   extra_env=partitions) as worker:  # fmt: skip
        mirror = MirrorMaker(
            {REGION: region.bootstrap, HUB: hub.bootstrap},
            hub_flows([REGION], HUB, topics),
            data_dir=workdir / f"mirror-{path}",
            log=log,
        )
        if mirrored:
            mirror.start(owned=True)
        try:
            edge = region if mirrored else hub
            return asyncio.run(
                measure_decision_latency(
                    edge.bootstrap, edge.bootstrap, topics, worker, rate, (1.0,), seconds,
                    series, probe_events, log,
                )
            )  # fmt: skip
        finally:
            mirror.stop()


def run_bench_mirror(
    rate: float = 200.0,
    seconds: float = 30.0,
    series: int = 60,
    probe_events: int = 3_000,
    log: Log = lambda _msg: None,
) -> dict[str, Any]:
    """Measure decision latency on one cluster and through both mirrors, in one run.

    Parameters
    ----------
    rate
        Metric samples per second offered on each path: well under the worker's capacity,
        so that the figures are the path's, not a queue's.
    seconds
        Wall seconds of each measurement.
    series
        Distinct service/region series.
    probe_events
        Samples of each path's capacity probe (it also warms the mirrors).
    log
        Progress lines.
    """
    with tempfile.TemporaryDirectory(prefix="autopilot-bench-mirror-") as tmp:
        workdir = Path(tmp)
        clusters = [
            named_broker(name, port=free_port(), data_dir=workdir / f"kafka-{name}", log=log)
            for name in (REGION, HUB)
        ]
        try:
            for cluster in clusters:
                cluster.start(owned=True)
            region, hub = clusters
            paths = {}
            for path in PATHS:
                log(f"path {path}: {rate:,.0f} samples/s for {seconds:.0f} s")
                paths[path] = _measure_path(
                    path, region, hub, workdir, rate, seconds, series, probe_events, log
                )
        finally:
            for cluster in clusters:
                cluster.stop()
    single, mirrored = paths["single"], paths["mirrored"]

    def added(key: str) -> float | None:
        if single[key] is None or mirrored[key] is None:
            return None
        return round(mirrored[key] - single[key], 1)

    return {
        "rate_per_s": rate,
        "seconds": seconds,
        "series": single["series"],
        "single": {k: v for k, v in single.items() if k != "levels"},
        "mirrored": {k: v for k, v in mirrored.items() if k != "levels"},
        "added_p50_ms": added("p50_ms"),
        "added_p99_ms": added("p99_ms"),
        "p99_ratio_to_single": (
            None
            if not single["p99_ms"] or mirrored["p99_ms"] is None
            else round(mirrored["p99_ms"] / single["p99_ms"], 3)
        ),
    }


def format_bench_mirror(result: dict[str, Any]) -> str:
    """A readable summary of :func:`run_bench_mirror`."""
    lines = [
        f"bench mirror: {result['rate_per_s']:,.0f} metric samples/s for "
        f"{result['seconds']:.0f} s on each path, {result['series']:,d} series; produce time "
        "to the decision's append where it is read",
        "  path                              p50        p99        max  decisions  kept up",
    ]
    names = {"single": "one cluster", "mirrored": f"{REGION} -> {HUB} -> {REGION}"}
    for path in PATHS:
        figures = result[path]
        lines.append(
            f"  {names[path]:<26}  {format_ms(figures['p50_ms']):>9}"
            f"  {format_ms(figures['p99_ms']):>9}  {format_ms(figures['max_ms']):>9}"
            f"  {figures['decisions_matched']:>9,d}"
            f"  {'yes' if figures['kept_up'] else 'no'}"
        )
    ratio = result["p99_ratio_to_single"]
    lines.append(
        f"  added by the two mirrors    p50 {format_ms(result['added_p50_ms'])}, "
        f"p99 {format_ms(result['added_p99_ms'])}; p99 / one cluster's "
        + ("-" if ratio is None else f"{ratio:.2f}")
    )
    return "\n".join(lines)

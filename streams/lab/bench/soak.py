"""Soak: a worker under a steady simulator stream for minutes, its memory sampled throughout.

The simulator (metrics, errors and interactions of the whole fleet, no scripted
incidents) is paced so that the metric samples arrive at ``rate`` per second;
every ``interval_s`` the bench reads the worker's resident memory
(``VmRSS`` of ``/proc/<pid>/status``) and, from ``/metrics``, the model-state
gauges (``autopilot_model_bytes``, ``autopilot_series_tracked``) and how many
events it handled.

The first ``warmup_share`` of the run fills the models (every series, the
templates, the tenants) and is left out; over the rest, the *steady part*,
a least-squares line through RSS gives the growth rate. Memory is called flat
when the line rises less than :data:`FLAT_MIB` or :data:`FLAT_SHARE` of the RSS
at the start of the steady part, whichever is larger.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from schemas.topics import TopicNames
from streams.lab.bench.support import (
    Log,
    WorkerRun,
    bench_broker,
    bench_topics,
    metric_by_label,
)
from streams.lab.simulator import MAX_DURATION_S, SimConfig, SimSummary, run_simulation

__all__ = ["FLAT_MIB", "FLAT_SHARE", "format_bench_soak", "run_bench_soak"]

FLAT_MIB = 20.0
FLAT_SHARE = 0.05
SHORT_STEADY_S = 600.0
"""A steady part shorter than this is mostly the models still filling up (bounded
stores such as the errors brain's rates fill for many minutes): its verdict is
reported as such."""
_MIB = 2**20


def _config(minutes: float, rate: float, series: int) -> SimConfig:
    """The default simulated fleet, ``series`` series, paced to ``rate`` metric samples/s.

    A series gets a sample per tick, so event time runs ``rate * tick / series``
    times faster than the clock; the tick shrinks below 5 s when the run would
    otherwise span more event time than the validators' one-day window allows.
    """
    regions = ("us-east", "eu-west", "ap-south")
    services = tuple(f"svc-{i:05d}" for i in range(math.ceil(series / len(regions))))
    n_series = len(services) * len(regions)
    wall_s = minutes * 60.0
    tick_s = min(5.0, 0.9 * MAX_DURATION_S * n_series / (wall_s * rate))
    speed = rate * tick_s / n_series
    return SimConfig(
        services=services,
        regions=regions,
        tick_s=tick_s,
        duration_s=max(tick_s, wall_s * speed),
        speed=speed,
    )


class _Simulation(threading.Thread):
    """The simulator in a thread of its own, with the count it has sent so far."""

    def __init__(self, config: SimConfig, bootstrap: str, topics: TopicNames) -> None:
        super().__init__(name="soak-simulator", daemon=True)
        self.config, self.bootstrap, self.topics = config, bootstrap, topics
        self.sent = 0
        self.summary: SimSummary | None = None
        self.error: BaseException | None = None

    def _progress(self, sent: int, _rate: float, _event_ts: float) -> None:
        self.sent = sent

    def run(self) -> None:
        try:
            self.summary = asyncio.run(
                run_simulation(
                    self.config,
                    bootstrap_servers=self.bootstrap,
                    topics=self.topics,
                    progress=self._progress,
                )
            )
        except BaseException as exc:  # reported by the bench, not lost with the thread
            self.error = exc


def _sample(worker: WorkerRun, elapsed_s: float) -> dict[str, Any]:
    """One reading of the worker's memory and progress."""
    text = worker.metrics() or ""
    counts = worker.handled()
    return {
        "t_s": round(elapsed_s, 1),
        "rss_bytes": worker.rss_bytes(),
        "model_bytes": metric_by_label(text, "autopilot_model_bytes", "model"),
        "series_tracked": metric_by_label(text, "autopilot_series_tracked", "model"),
        "metrics_handled": int(counts[1]) if counts else 0,
    }


def run_bench_soak(
    minutes: float = 30.0,
    rate: float = 500.0,
    series: int = 1000,
    broker: str | None = None,
    interval_s: float = 10.0,
    warmup_share: float = 0.2,
    log: Log = lambda _msg: None,
) -> dict[str, Any]:
    """Run a worker under a steady stream for ``minutes``; summarise its memory.

    Parameters
    ----------
    minutes
        Wall minutes of the stream (a float: 0.2 is a smoke run).
    rate
        Metric samples per second (errors and interactions come on top).
    series
        Distinct service/region series (rounded up to a multiple of three regions).
    broker
        ``host:port`` of a broker; ``None`` starts a local one for the run.
    interval_s
        Seconds between two readings.
    warmup_share
        Share of the run left out of the steady-state figures.
    log
        Progress lines.
    """
    config = _config(minutes, rate, series)
    samples: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="autopilot-bench-") as tmp,
        bench_broker(broker, Path(tmp), log) as bootstrap,
        bench_topics(bootstrap, log) as topics,
        WorkerRun(bootstrap, topics.prefix, Path(tmp)) as worker,
    ):
        deadline = time.monotonic() + 90
        while worker.metrics() is None:
            if not worker.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not start; log tail:\n{worker.log_tail()}")
            time.sleep(0.5)
        simulation = _Simulation(config, bootstrap, TopicNames(worker.prefix))
        log(
            f"soak: {minutes:g} min, {rate:,.0f} metric samples/s over "
            f"{len(config.services) * len(config.regions):,d} series "
            f"(tick {config.tick_s:g} s, event time x{config.speed:.2f}); worker pid {worker.pid}"
        )
        started = time.monotonic()
        simulation.start()
        while True:
            sample = _sample(worker, time.monotonic() - started)
            samples.append(sample)
            log(
                f"  {sample['t_s']:>7.0f}s  RSS {sample['rss_bytes'] / _MIB:>7,.1f} MiB  "
                f"models {sum(sample['model_bytes'].values()) / _MIB:>7,.1f} MiB  "
                f"series {int(sample['series_tracked'].get('metrics_brain', 0)):>6,d}  "
                f"handled {sample['metrics_handled']:>10,d}  sent {simulation.sent:>10,d}"
            )
            if not simulation.is_alive():
                break
            if not worker.alive():
                raise RuntimeError(f"the worker exited; log tail:\n{worker.log_tail()}")
            simulation.join(timeout=interval_s)
        if simulation.error is not None:
            raise RuntimeError(f"the simulator failed: {simulation.error!r}")
        peak = worker.peak_rss_bytes()
    if simulation.summary is None:
        raise RuntimeError("the simulator ended without a summary")
    return _summary(samples, simulation.summary, config, minutes, rate, warmup_share, peak)


def _summary(
    samples: list[dict[str, Any]],
    sim: SimSummary,
    config: SimConfig,
    minutes: float,
    rate: float,
    warmup_share: float,
    peak_rss: int,
) -> dict[str, Any]:
    total_s = samples[-1]["t_s"]
    steady = [s for s in samples if s["t_s"] >= warmup_share * total_s]
    if len(steady) < 2:
        steady = samples[-2:]
    t_h = np.asarray([s["t_s"] for s in steady]) / 3600.0
    rss_mib = np.asarray([s["rss_bytes"] for s in steady]) / _MIB
    slope = float(np.polyfit(t_h, rss_mib, 1)[0]) if len(steady) >= 2 and t_h[-1] > t_h[0] else 0.0
    growth = slope * float(t_h[-1] - t_h[0])
    threshold = max(FLAT_MIB, FLAT_SHARE * float(rss_mib[0]))
    first, last = steady[0], samples[-1]
    steady_s = last["t_s"] - first["t_s"]
    return {
        "minutes": minutes,
        "rate_per_s": rate,
        "series": len(config.services) * len(config.regions),
        "events_sent": dict(sim.sent),
        "metrics_handled": last["metrics_handled"],
        "samples_taken": len(samples),
        "steady_from_s": first["t_s"],
        "rss_steady_start_mib": round(float(rss_mib[0]), 1),
        "rss_end_mib": round(last["rss_bytes"] / _MIB, 1),
        "rss_peak_mib": round(max(peak_rss, *(s["rss_bytes"] for s in samples)) / _MIB, 1),
        "rss_slope_mib_per_h": round(slope, 2),
        "rss_growth_steady_mib": round(growth, 2),
        "flat_threshold_mib": round(threshold, 1),
        "verdict": "flat" if growth < threshold else "growing",
        "steady_s": round(steady_s, 1),
        "short_run": steady_s < SHORT_STEADY_S,
        "model_bytes_steady_start": first["model_bytes"],
        "model_bytes_end": last["model_bytes"],
        "series_tracked_end": last["series_tracked"],
        "rss_samples_mib": [[s["t_s"], round(s["rss_bytes"] / _MIB, 1)] for s in samples],
    }


def format_bench_soak(result: dict[str, Any]) -> str:
    """A readable summary of :func:`run_bench_soak`."""
    sent = result["events_sent"]
    models_start = sum(result["model_bytes_steady_start"].values()) / _MIB
    models_end = sum(result["model_bytes_end"].values()) / _MIB
    return "\n".join(
        [
            f"bench soak: {result['minutes']:g} min at {result['rate_per_s']:,.0f} metric "
            f"samples/s, {result['series']:,d} series; sent "
            + ", ".join(f"{topic} {count:,d}" for topic, count in sent.items())
            + f"; {result['metrics_handled']:,d} metric samples handled",
            f"  RSS samples                  {result['samples_taken']:>10,d}"
            f"  (steady part from {result['steady_from_s']:.0f} s)",
            f"  RSS at steady start          {result['rss_steady_start_mib']:>10,.1f} MiB",
            f"  RSS at end                   {result['rss_end_mib']:>10,.1f} MiB",
            f"  RSS peak                     {result['rss_peak_mib']:>10,.1f} MiB",
            f"  RSS slope (least squares)    {result['rss_slope_mib_per_h']:>10,.1f} MiB/h"
            f"  = {result['rss_growth_steady_mib']:+.1f} MiB over the steady part",
            f"  model state (gauges)         {models_start:>10,.1f} -> {models_end:,.1f} MiB",
            f"  verdict                      {result['verdict']:>10}"
            f"  (flat: growth < {result['flat_threshold_mib']:.1f} MiB,"
            f" the larger of {FLAT_MIB:.0f} MiB and {FLAT_SHARE:.0%} of the steady start)",
        ]
        + (
            [
                f"  note: a steady part of {result['steady_s']:.0f} s is short (under"
                f" {SHORT_STEADY_S:.0f} s); trust the slope more than the verdict"
            ]
            if result["short_run"]
            else []
        )
    )

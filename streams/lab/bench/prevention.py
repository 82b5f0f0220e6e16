"""Saturation scenarios with ground truth, and ``autopilot bench prevention``.

Each scenario is one saturating metric of one simulated series, sampled every ``tick_s``:

* ``memory_leak``: ``mem_util`` with a daily cycle and noise, then a leak of 3-10 %/h up to
  the 95 % limit (an OOM kill brings it back);
* ``disk_fill``: ``disk_util`` growing slowly (0.1-0.5 %/h) between nightly log rotations,
  then a runaway writer filling 2-6 %/h up to 95 %;
* ``pool_exhaustion``: ``conn_pool_util`` following the load, then a connection leak of
  10-30 %/h until the pool is exhausted (1.0);
* ``budget_burn``: ``error_budget_used`` creeping up, then a slow burn that exhausts the
  budget (1.0) within about a day;

and the healthy runs that come close but never cross: a memory cycle peaking at 85-91 %, a
garbage-collected sawtooth (a period of 5-30 minutes) up to 85-89 %, a disk filling at
0.3-1 %/h and cleaned up at 86-90 %, a pool whose load surges to 75-85 % (20-minute ramps) for
an hour or two and drops back, and a budget whose use rises and levels off at 85-92 %.

The bench feeds every run, sample by sample, to a :class:`~models.brains.metrics.MetricsBrain`
with its defaults (the worker's code path) and scores its ``risk`` decisions against the
ground truth: the lead time (breach time minus the first warning after the leak's onset),
the recall of breaches warned at least ten minutes ahead, and false warnings per series-day
(any warning in a healthy run, or before an incident's onset).
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from models.brains.metrics import MetricsBrain
from models.forecast.breach import DEFAULT_LIMITS

__all__ = [
    "HEALTHY",
    "INCIDENTS",
    "TARGET_FALSE_PER_100_DAYS",
    "TARGET_RECALL",
    "Trace",
    "format_bench_prevention",
    "run_bench_prevention",
    "trace",
]

TARGET_RECALL = 0.9
"""Share of breaches to warn at least ten minutes ahead."""
TARGET_FALSE_PER_100_DAYS = 1.0
"""False warnings allowed per 100 series-days."""
_MIN_LEAD_S = 600.0
_DAY = 86_400.0
_T0 = 1_700_000_000.0


@dataclass(frozen=True, slots=True)
class Trace:
    """One simulated run of one saturating metric, with its ground truth."""

    scenario: str
    metric: str
    samples: list[tuple[float, float]]
    onset_ts: float | None
    """When the incident starts (None for a healthy run)."""
    breach_ts: float | None
    """First sample at or past the metric's limit (None if it never gets there)."""


def _noise(rng: random.Random, n: int, sd: float, keep: float = 0.9) -> list[float]:
    """AR(1) noise with stationary standard deviation ``sd``: metrics wander, not jitter."""
    out, e = [], 0.0
    scale = sd * math.sqrt(1.0 - keep * keep)
    for _ in range(n):
        e = keep * e + rng.gauss(0.0, scale)
        out.append(e)
    return out


def _daily(t: float, phase: float) -> float:
    return math.sin(2.0 * math.pi * t / _DAY + phase)


def _memory_leak(rng: random.Random, n: int, tick: float) -> tuple[list[float], int]:
    base, phase = rng.uniform(0.40, 0.55), rng.uniform(0, 2 * math.pi)
    onset = rng.randrange(n // 4, n // 2)
    rate = rng.uniform(0.03, 0.10) / 3600.0
    noise = _noise(rng, n, 0.01)
    values, leaked = [], 0.0
    for i in range(n):
        if i >= onset:
            leaked += rate * tick
        x = base + 0.05 * _daily(i * tick, phase) + noise[i] + leaked
        if x >= 0.97:  # the OOM killer restarts the process
            leaked = 0.0
        values.append(x)
    return values, onset


def _disk_fill(rng: random.Random, n: int, tick: float) -> tuple[list[float], int]:
    level = rng.uniform(0.45, 0.65)
    onset = rng.randrange(n // 4, n // 2)
    # Before the onset it grows by at most 12 % a day, so the nightly rotation keeps it far
    # from the limit.
    slow, fast = rng.uniform(0.001, 0.005) / 3600.0, rng.uniform(0.02, 0.06) / 3600.0
    values, x = [], level
    for i in range(n):
        t = i * tick
        if i < onset and t % _DAY < tick:
            x = level  # nightly log rotation
        x += (fast if i >= onset else slow) * tick * rng.uniform(0.0, 2.0)
        if x >= 0.99:
            x = level  # cleaned up after the breach
        values.append(x)
    return values, onset


def _pool_exhaustion(rng: random.Random, n: int, tick: float) -> tuple[list[float], int]:
    base, phase = rng.uniform(0.30, 0.45), rng.uniform(0, 2 * math.pi)
    onset = rng.randrange(n // 4, n // 2)
    rate = rng.uniform(0.10, 0.30) / 3600.0
    noise = _noise(rng, n, 0.02, keep=0.7)
    values, held = [], 0.0
    for i in range(n):
        if i >= onset:
            held += rate * tick
        x = base + 0.12 * _daily(i * tick, phase) + noise[i] + held
        if x >= 1.0:
            x, held = 1.0, (held if rng.random() < 0.9 else 0.0)  # until a restart frees it
        values.append(max(0.0, x))
    return values, onset


def _budget_burn(rng: random.Random, n: int, tick: float) -> tuple[list[float], int]:
    used = rng.uniform(0.2, 0.4)
    onset = rng.randrange(n // 4, n // 2)
    creep = rng.uniform(0.0, 0.02) / _DAY
    burn = rng.uniform(0.8, 1.6) / _DAY
    values = []
    for i in range(n):
        used += (burn if i >= onset else creep) * tick * rng.uniform(0.0, 2.0)
        values.append(used)
    return values, onset


def _memory_cycle(rng: random.Random, n: int, tick: float) -> list[float]:
    peak, phase = rng.uniform(0.85, 0.91), rng.uniform(0, 2 * math.pi)
    noise = _noise(rng, n, 0.008)
    return [peak - 0.15 + 0.15 * _daily(i * tick, phase) + noise[i] - 0.02 for i in range(n)]


def _memory_sawtooth(rng: random.Random, n: int, tick: float) -> list[float]:
    low, high = rng.uniform(0.45, 0.6), rng.uniform(0.85, 0.89)
    period_s = rng.uniform(300.0, 1800.0)  # a full garbage collection every few minutes
    rate = (high - low) / period_s
    noise = _noise(rng, n, 0.005)
    values, x = [], rng.uniform(low, high)
    for i in range(n):
        x += rate * tick
        if x >= high:
            x = low
        values.append(x + noise[i])
    return values


def _disk_cleanup(rng: random.Random, n: int, tick: float) -> list[float]:
    low, high = rng.uniform(0.5, 0.7), rng.uniform(0.86, 0.90)
    rate = rng.uniform(0.003, 0.01) / 3600.0
    values, x = [], low
    for _ in range(n):
        x += rate * tick * rng.uniform(0.0, 2.0)
        if x >= high:
            x = low  # the cleanup job
        values.append(x)
    return values


def _pool_surges(rng: random.Random, n: int, tick: float) -> list[float]:
    base, peak = rng.uniform(0.3, 0.45), rng.uniform(0.75, 0.85)
    noise = _noise(rng, n, 0.02, keep=0.7)
    surge_s = rng.uniform(3600, 7200)
    every = rng.randrange(int(6 * 3600 / tick), int(12 * 3600 / tick))
    offset = rng.randrange(every)
    values = []
    for i in range(n):
        into = ((i + offset) % every) * tick
        ramp = min(into, surge_s - into) / 1200.0  # 20 minutes up, 20 minutes down
        share = min(1.0, ramp) if into < surge_s else 0.0
        values.append(max(0.0, base + (peak - base) * share + noise[i]))
    return values


def _budget_levels_off(rng: random.Random, n: int, tick: float) -> list[float]:
    start, top = rng.uniform(0.3, 0.5), rng.uniform(0.85, 0.92)
    tau = rng.uniform(0.3, 0.8) * n * tick
    return [top - (top - start) * math.exp(-i * tick / tau) for i in range(n)]


INCIDENTS: dict[str, tuple[str, Callable[..., tuple[list[float], int]]]] = {
    "memory_leak": ("mem_util", _memory_leak),
    "disk_fill": ("disk_util", _disk_fill),
    "pool_exhaustion": ("conn_pool_util", _pool_exhaustion),
    "budget_burn": ("error_budget_used", _budget_burn),
}
"""Incident scenarios: name -> (metric, generator of values and onset index)."""
HEALTHY: dict[str, tuple[str, Callable[..., list[float]]]] = {
    "healthy_memory_cycle": ("mem_util", _memory_cycle),
    "healthy_memory_sawtooth": ("mem_util", _memory_sawtooth),
    "healthy_disk_cleanup": ("disk_util", _disk_cleanup),
    "healthy_pool_surges": ("conn_pool_util", _pool_surges),
    "healthy_budget_levels_off": ("error_budget_used", _budget_levels_off),
}
"""Healthy near-miss scenarios: name -> (metric, generator of values)."""


def trace(scenario: str, seed: int, *, days: float = 2.0, tick_s: float = 60.0) -> Trace:
    """One run of ``scenario`` (a key of :data:`INCIDENTS` or :data:`HEALTHY`).

    Examples
    --------

    >>> from streams.lab.bench.prevention import trace
    >>> leak = trace("memory_leak", seed=1)
    >>> leak.metric, leak.onset_ts < leak.breach_ts
    ('mem_util', True)
    >>> trace("healthy_memory_cycle", seed=1).breach_ts is None
    True

    """
    rng = random.Random(f"{scenario}/{seed}")
    n = int(days * _DAY / tick_s)
    if scenario in INCIDENTS:
        metric, make = INCIDENTS[scenario]
        values, onset = make(rng, n, tick_s)
        onset_ts: float | None = _T0 + onset * tick_s
    elif scenario in HEALTHY:
        metric, make_healthy = HEALTHY[scenario]
        values, onset_ts = make_healthy(rng, n, tick_s), None
    else:
        raise ValueError(f"unknown scenario {scenario!r}")
    limit = DEFAULT_LIMITS[metric].limit
    samples = [(_T0 + i * tick_s, round(x, 5)) for i, x in enumerate(values)]
    breach = next((t for t, x in samples if x >= limit), None)
    if breach is not None and (onset_ts is None or breach < onset_ts):
        raise AssertionError(f"{scenario} seed {seed} crosses its limit while healthy")
    return Trace(scenario, metric, samples, onset_ts, breach)


def _warnings(run: Trace) -> list[float]:
    """Event times of the ``risk`` decisions the worker's metrics brain makes on ``run``."""
    brain = MetricsBrain()
    found = []
    for ts, x in run.samples:
        for decision in brain.observe(ts, "svc", "lab", {run.metric: x}):
            if decision.kind == "risk":
                found.append(decision.ts)
    return found


def run_bench_prevention(
    runs_per_incident: int = 25,
    healthy_runs: int = 25,
    days: float = 2.0,
    tick_s: float = 60.0,
    seed: int = 0,
) -> dict[str, Any]:
    """Lead time, recall at 10 minutes and false warnings of the worker's risk decisions."""
    per_scenario: dict[str, Any] = {}
    leads: list[float] = []
    breaches = warned = false = 0
    series_days = 0.0
    for name in INCIDENTS:
        scenario_leads, missed = [], 0
        for k in range(runs_per_incident):
            run = trace(name, seed + k, days=days, tick_s=tick_s)
            found = _warnings(run)
            assert run.onset_ts is not None
            early = [t for t in found if t < run.onset_ts]
            false += len(early)
            series_days += (run.onset_ts - run.samples[0][0]) / _DAY
            if run.breach_ts is None:
                continue
            breaches += 1
            after = [t for t in found if run.onset_ts <= t <= run.breach_ts]
            lead = run.breach_ts - after[0] if after else None
            if lead is not None and lead >= _MIN_LEAD_S:
                warned += 1
                scenario_leads.append(lead)
            else:
                missed += 1
        leads += scenario_leads
        per_scenario[name] = {
            "runs": runs_per_incident,
            "warned_10min": len(scenario_leads),
            "missed": missed,
            "median_lead_min": statistics.median(scenario_leads) / 60 if scenario_leads else None,
            "min_lead_min": min(scenario_leads) / 60 if scenario_leads else None,
        }
    for name in HEALTHY:
        warnings = 0
        for k in range(healthy_runs):
            run = trace(name, seed + k, days=days, tick_s=tick_s)
            warnings += len(_warnings(run))
            series_days += (run.samples[-1][0] - run.samples[0][0] + tick_s) / _DAY
        false += warnings
        per_scenario[name] = {"runs": healthy_runs, "false_warnings": warnings}
    recall = warned / breaches if breaches else 0.0
    false_per_100 = 100.0 * false / series_days if series_days else 0.0
    return {
        "scenarios": per_scenario,
        "breaches": breaches,
        "warned_10min": warned,
        "recall_10min": recall,
        "median_lead_min": statistics.median(leads) / 60 if leads else None,
        "false_warnings": false,
        "series_days": series_days,
        "false_per_100_series_days": false_per_100,
        "target_recall": TARGET_RECALL,
        "target_false_per_100_series_days": TARGET_FALSE_PER_100_DAYS,
        "meets_targets": recall >= TARGET_RECALL and false_per_100 <= TARGET_FALSE_PER_100_DAYS,
    }


def format_bench_prevention(result: dict[str, Any]) -> str:
    """Readable summary of :func:`run_bench_prevention`."""

    def minutes(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f} min"

    lines = [f"{'scenario':28} {'runs':>5}  result"]
    for name, s in result["scenarios"].items():
        if "false_warnings" in s:
            detail = f"false warnings {s['false_warnings']}"
        else:
            detail = (
                f"warned >= 10 min ahead {s['warned_10min']}, missed {s['missed']}, "
                f"lead median {minutes(s['median_lead_min'])}, min {minutes(s['min_lead_min'])}"
            )
        lines.append(f"{name:28} {s['runs']:5d}  {detail}")
    verdict = "meets" if result["meets_targets"] else "misses"
    lines.append(
        f"recall of breaches warned >= 10 min ahead {result['recall_10min']:.3f}"
        f" ({result['warned_10min']}/{result['breaches']}), median lead"
        f" {minutes(result['median_lead_min'])}; false warnings {result['false_warnings']} over"
        f" {result['series_days']:.0f} series-days = {result['false_per_100_series_days']:.2f}"
        f" per 100 -> {verdict} targets (>= {result['target_recall']:.0%},"
        f" <= {result['target_false_per_100_series_days']:g} per 100 series-days)"
    )
    return "\n".join(lines)

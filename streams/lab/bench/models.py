"""Speed and memory of every registered anomaly detector against River's HalfSpaceTrees.

Detection quality is scored by :mod:`streams.lab.nab` (``autopilot bench nab``).

Every figure is measured in the same run as its baseline and reported as a ratio too, so the
numbers compare across machines. Nothing here asserts on wall-clock time.
"""

from __future__ import annotations

import math
import random
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

from river import anomaly

from models import registry
from models.detect.bank import DetectorBank, deep_sizeof
from models.registry import Entry

__all__ = [
    "TARGET_BYTES",
    "TARGET_US",
    "format_bench_models",
    "run_bench_models",
]

TARGET_US = 30.0
"""Target median microseconds per value (score and learn) of one detector."""
TARGET_BYTES = 32 * 1024
"""Target bytes of state per series."""

# Values learned per series before timing starts: past our warm-up and past HalfSpaceTrees'
# first reference window (250), whose empty trees would otherwise make it look cheap.
_BENCH_WARM_VALUES = 300
_STEP_S = 300.0


def _synthetic_series(rng: random.Random, n: int) -> list[tuple[float, float]]:
    """A 5-minute daily cycle with noise, a spike, a level shift and a noisy stretch."""
    base = rng.uniform(10, 100)
    amplitude = base * rng.uniform(0.05, 0.5)
    noise = base * rng.uniform(0.01, 0.05)
    phase = rng.uniform(0, 2 * math.pi)
    spike_at, shift_at, noisy_at = (int(n * f) for f in (0.3, 0.6, 0.8))
    out = []
    for i in range(n):
        ts = i * _STEP_S
        x = base + amplitude * math.sin(2 * math.pi * ts / 86_400 + phase)
        x += rng.gauss(0, noise * (4 if noisy_at <= i < noisy_at + 50 else 1))
        if i == spike_at:
            x += 20 * noise
        if i >= shift_at:
            x += 10 * noise
        out.append((ts, x))
    return out


def _median_ns(samples: list[int]) -> float:
    return float(statistics.median(samples)) if samples else float("nan")


def _measure_detector(
    entry: Entry,
    data: list[list[tuple[float, float]]],
    order: list[tuple[int, int]],
    baseline: tuple[float, float],
) -> dict[str, Any]:
    """One row of ``detectors`` (:func:`run_bench_models`) for ``entry``, its ratios to
    ``baseline`` (HalfSpaceTrees' us per value and bytes per series)."""
    row: dict[str, Any] = {
        "name": entry.name,
        "builtin": entry.builtin,
        "timed": "score_one+learn_one",
        "us_per_value": None,
        "bytes_per_series": None,
        "flags": None,
        "us_ratio_vs_hst": None,
        "bytes_ratio_vs_hst": None,
        "error": None,
    }
    try:
        features = [[entry.features(ts, x) for ts, x in series] for series in data]
        models = [entry.factory() for _ in data]
        for model, series in zip(models, features, strict=True):
            for x in series[:_BENCH_WARM_VALUES]:
                model.learn_one(x)
        clock = time.perf_counter_ns
        spent = []
        flags = 0
        for key, j in order:
            model = models[key]
            x = features[key][j]
            start = clock()
            score = model.score_one(x)
            model.learn_one(x)
            spent.append(clock() - start)
            # Value j of a series comes after j values learned.
            flags += j >= entry.warmup and float(score) >= entry.threshold
        # Measured together, so what the instances share (a config) is counted once.
        all_bytes = deep_sizeof(models) - sys.getsizeof(models)
    except Exception as exc:  # a plugin can raise anything; the others are still measured
        row["error"] = f"{type(exc).__name__}: {exc}"
        return row
    us = _median_ns(spent) / 1000
    row_bytes = all_bytes / len(models)
    hst_us, hst_bytes = baseline
    row.update(
        us_per_value=us,
        bytes_per_series=row_bytes,
        flags=flags,
        us_ratio_vs_hst=us / hst_us,
        bytes_ratio_vs_hst=row_bytes / hst_bytes,
    )
    return row


def run_bench_models(
    n_series: int = 200,
    n_values: int = 20000,
    seed: int = 0,
    detectors: Sequence[Entry] | None = None,
) -> dict[str, Any]:
    """Median time per value and bytes per series of ours and of River's HalfSpaceTrees.

    ``n_series`` synthetic 5-minute series (daily cycle, noise, a spike, a level shift and a
    noisy stretch) are first fed ``300`` values each untimed, then ``n_values`` further values
    are fed round-robin across the series and each ``update`` is timed on its own. Ours runs
    through a :class:`~models.detect.bank.DetectorBank`; the baseline is one
    ``anomaly.HalfSpaceTrees()`` (default parameters) per series scoring then learning the same
    values min-max scaled to [0, 1] beforehand (so no scaler cost is charged to it). Bytes are
    deep sizes of the live models, our shared config excluded.

    ``detectors`` (default: every registered detector) are measured the same way through
    River's verbs, as a plugin is driven: one instance per series, ``score_one`` then
    ``learn_one`` of ``entry.features(ts, value)`` on the raw values, timed together. Each gets
    a row of ``detectors``: ``name``, ``builtin``, ``timed``, ``us_per_value``,
    ``bytes_per_series`` (deep size of all instances over the series, so shared state counts
    once), ``flags`` (scores at or above ``entry.threshold`` once ``entry.warmup`` values were
    learned), the ratios to the baseline and ``error`` (``None``, or why the detector raised,
    its figures then ``None``). The built-in ``series`` row also gives the cost of its
    ``update`` through the bank, the worker's path, as ``update_us_per_value``.
    """
    if n_series < 1 or n_values < 1:
        raise ValueError("n_series and n_values must be >= 1")
    rng = random.Random(seed)
    per_series = _BENCH_WARM_VALUES + -(-n_values // n_series)
    data = [_synthetic_series(rng, per_series) for _ in range(n_series)]
    scaled = []
    for series in data:
        lo = min(x for _, x in series)
        hi = max(x for _, x in series)
        scaled.append([{"x": (x - lo) / (hi - lo or 1.0)} for _, x in series])
    order = [(i % n_series, _BENCH_WARM_VALUES + i // n_series) for i in range(n_values)]

    bank = DetectorBank(max_keys=n_series)
    for key, series in enumerate(data):
        for ts, x in series[:_BENCH_WARM_VALUES]:
            bank.update(key, ts, x)
    clock = time.perf_counter_ns
    ours = []
    flags = 0
    for key, j in order:
        ts, x = data[key][j]
        start = clock()
        result = bank.update(key, ts, x)
        ours.append(clock() - start)
        flags += result.is_anomaly
    detector_bytes = bank.approx_bytes() / len(bank)

    trees = [anomaly.HalfSpaceTrees(seed=seed + key) for key in range(n_series)]
    for key, hst in enumerate(trees):
        for features in scaled[key][:_BENCH_WARM_VALUES]:
            hst.learn_one(features)
    theirs = []
    for key, j in order:
        hst = trees[key]
        features = scaled[key][j]
        start = clock()
        hst.score_one(features)
        hst.learn_one(features)
        theirs.append(clock() - start)
    hst_bytes = sum(deep_sizeof(hst) for hst in trees) / n_series

    detector_us = _median_ns(ours) / 1000
    hst_us = _median_ns(theirs) / 1000
    if detectors is None:
        detectors = [registry.entry("detectors", name) for name in registry.names("detectors")]
    rows = []
    for entry in detectors:
        row = _measure_detector(entry, data, order, (hst_us, hst_bytes))
        if entry is registry.SERIES_DETECTOR:
            row["update_us_per_value"] = detector_us
            row["update_us_ratio_vs_hst"] = detector_us / hst_us
        rows.append(row)
    return {
        "n_series": n_series,
        "n_values": n_values,
        "detector_us_per_value": detector_us,
        "detector_bytes_per_series": detector_bytes,
        "detector_flags": flags,
        "hst_us_per_value": hst_us,
        "hst_bytes_per_series": hst_bytes,
        "us_ratio_vs_hst": detector_us / hst_us,
        "bytes_ratio_vs_hst": detector_bytes / hst_bytes,
        "target_us": TARGET_US,
        "target_bytes": TARGET_BYTES,
        "meets_targets": detector_us <= TARGET_US and detector_bytes <= TARGET_BYTES,
        "detectors": rows,
    }


def format_bench_models(result: dict[str, Any]) -> str:
    """Readable summary of :func:`run_bench_models`.

    Examples
    --------

    >>> from streams.lab.bench.models import format_bench_models, run_bench_models
    >>> print(format_bench_models(run_bench_models(n_series=2, n_values=20)))  # doctest: +ELLIPSIS
    bench models: 2 series, 20 timed values
    ...
    """
    r = result
    verdict = "meets" if r["meets_targets"] else "MISSES"
    lines = [
        "  every registered detector, score_one+learn_one (River's verbs) on raw values:",
        f"  {'detector':16} {'builtin':>7} {'us/value':>9} {'B/series':>10}"
        f" {'x time':>8} {'x memory':>9} {'flags':>6}",
    ]
    for row in r["detectors"]:
        if row["error"] is not None:
            lines.append(f"  {row['name']:16} {row['builtin']!s:>7}  FAILED: {row['error']}")
            continue
        lines.append(
            f"  {row['name']:16} {row['builtin']!s:>7} {row['us_per_value']:9.2f}"
            f" {row['bytes_per_series']:10,.0f} {row['us_ratio_vs_hst']:8.3f}"
            f" {row['bytes_ratio_vs_hst']:9.4f} {row['flags']:6d}"
        )
        if "update_us_per_value" in row:
            lines.append(
                f"  {'  update()':16} {'':>7} {row['update_us_per_value']:9.2f}"
                f" {'':>10} {row['update_us_ratio_vs_hst']:8.3f}"
                "   (through DetectorBank, the worker's path)"
            )
    return "\n".join(
        [
            f"bench models: {r['n_series']} series, {r['n_values']} timed values",
            f"  SeriesDetector  {r['detector_us_per_value']:8.2f} us/value"
            f"  {r['detector_bytes_per_series']:10,.0f} B/series",
            f"  HalfSpaceTrees  {r['hst_us_per_value']:8.2f} us/value"
            f"  {r['hst_bytes_per_series']:10,.0f} B/series",
            f"  ratio vs HST    {r['us_ratio_vs_hst']:8.3f} x time"
            f"  {r['bytes_ratio_vs_hst']:10.4f} x memory",
            f"  targets         {r['target_us']:8.0f} us/value  {r['target_bytes']:10,} B/series"
            f"  -> {verdict} targets",
            *lines,
        ]
    )

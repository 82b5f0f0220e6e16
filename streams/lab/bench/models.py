"""Speed, memory and detection figures of the anomaly detector against River baselines.

Every figure is measured in the same run as its baseline and reported as a ratio too, so the
numbers compare across machines. Nothing here asserts on wall-clock time.
"""

from __future__ import annotations

import csv
import json
import math
import random
import statistics
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from river import anomaly, compose, preprocessing

from models.detect.anomaly import SeriesDetector
from models.detect.bank import DetectorBank, deep_sizeof

__all__ = [
    "TARGET_BYTES",
    "TARGET_US",
    "evaluate_nab",
    "format_bench_models",
    "format_nab",
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


def run_bench_models(n_series: int = 200, n_values: int = 20000, seed: int = 0) -> dict[str, Any]:
    """Median time per value and bytes per series of ours and of River's HalfSpaceTrees.

    ``n_series`` synthetic 5-minute series (daily cycle, noise, a spike, a level shift and a
    noisy stretch) are first fed ``300`` values each untimed, then ``n_values`` further values
    are fed round-robin across the series and each ``update`` is timed on its own. Ours runs
    through a :class:`~models.detect.bank.DetectorBank`; the baseline is one
    ``anomaly.HalfSpaceTrees()`` (default parameters) per series scoring then learning the same
    values min-max scaled to [0, 1] beforehand (so no scaler cost is charged to it). Bytes are
    deep sizes of the live models, our shared config excluded.
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
        ]
    )


def _parse_nab_time(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def _load_nab(path: Path) -> tuple[list[float], list[float]]:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))[1:]
    return [_parse_nab_time(r[0]) for r in rows], [float(r[1]) for r in rows]


def _window_figures(
    ts: list[float],
    flags: Iterable[bool],
    windows: list[tuple[float, float]],
) -> tuple[int, int, int]:
    """(windows with a flag inside, flags outside every window, runs of such flags)."""
    hit = [False] * len(windows)
    false_flags = false_events = 0
    previous_false = False
    for t, flag in zip(ts, flags, strict=True):
        inside = next((k for k, (a, b) in enumerate(windows) if a <= t <= b), None)
        if flag and inside is not None:
            hit[inside] = True
        is_false = flag and inside is None
        false_flags += is_false
        false_events += is_false and not previous_false
        previous_false = is_false
    return sum(hit), false_flags, false_events


def _hst_scores(values: list[float], seed: int) -> list[float]:
    """River's HalfSpaceTrees on min-max scaled values, as the River docs recommend."""
    model = compose.Pipeline(preprocessing.MinMaxScaler(), anomaly.HalfSpaceTrees(seed=seed))
    scores = []
    for x in values:
        features = {"x": x}
        scores.append(model.score_one(features))
        model.learn_one(features)
    return scores


def evaluate_nab(
    data_dir: str | Path,
    *,
    detector_factory: Callable[[], SeriesDetector] = SeriesDetector,
    hst_thresholds: Iterable[float] = (0.7, 0.8, 0.9),
    seed: int = 0,
) -> dict[str, Any]:
    """Window recall and false flags per day on labelled NAB-style series (development aid).

    ``data_dir`` holds ``*.csv`` files (``timestamp,value``) and ``windows.json`` mapping each
    file name to labelled ``[start, end]`` windows. A window counts as caught when at least one
    value inside it is flagged; every flag outside all windows is a false flag (a run of
    consecutive ones is one false *event*). HalfSpaceTrees is scored on the same files, flagging
    at each of ``hst_thresholds``, and also at the threshold that matches our false-flag count.
    """
    data_dir = Path(data_dir)
    windows = json.loads((data_dir / "windows.json").read_text())
    files = []
    totals: dict[str, Any] = {"windows": 0, "days": 0.0}
    ours = {"hits": 0, "false_flags": 0, "false_events": 0}
    hst_runs = []
    for name in sorted(windows):
        ts, values = _load_nab(data_dir / name)
        spans = [(_parse_nab_time(a), _parse_nab_time(b)) for a, b in windows[name]]
        detector = detector_factory()
        flags = [detector.update(t, x).is_anomaly for t, x in zip(ts, values, strict=True)]
        hits, false_flags, false_events = _window_figures(ts, flags, spans)
        days = (ts[-1] - ts[0]) / 86_400
        files.append(
            {
                "file": name,
                "windows": len(spans),
                "hits": hits,
                "false_flags": false_flags,
                "false_events": false_events,
                "days": days,
            }
        )
        totals["windows"] += len(spans)
        totals["days"] += days
        ours["hits"] += hits
        ours["false_flags"] += false_flags
        ours["false_events"] += false_events
        hst_runs.append((ts, spans, _hst_scores(values, seed), detector.config.warmup))

    def hst_at(threshold: float) -> dict[str, float]:
        hits = false_flags = false_events = 0
        for ts, spans, scores, warmup in hst_runs:
            flags = [i >= warmup and s >= threshold for i, s in enumerate(scores)]
            h, f, e = _window_figures(ts, flags, spans)
            hits, false_flags, false_events = hits + h, false_flags + f, false_events + e
        return {
            "threshold": threshold,
            "recall": hits / totals["windows"],
            "false_flags_per_day": false_flags / totals["days"],
            "false_events_per_day": false_events / totals["days"],
        }

    hst = [hst_at(t) for t in hst_thresholds]
    # Recall at an equal false-alarm rate: the lowest threshold whose false flags do not exceed
    # ours, found by bisection since false flags only fall as the threshold rises.
    candidates = sorted({s for _, _, scores, warmup in hst_runs for s in scores[warmup:]})
    candidates.append(math.nextafter(candidates[-1], math.inf) if candidates else 1.0)
    lo, hi = 0, len(candidates) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if hst_at(candidates[mid])["false_flags_per_day"] * totals["days"] > ours["false_flags"]:
            lo = mid + 1
        else:
            hi = mid
    matched = hst_at(candidates[lo])
    return {
        "files": files,
        "windows": totals["windows"],
        "days": totals["days"],
        "recall": ours["hits"] / totals["windows"],
        "false_flags_per_day": ours["false_flags"] / totals["days"],
        "false_events_per_day": ours["false_events"] / totals["days"],
        "hst": hst,
        "hst_matched": matched,
    }


def format_nab(result: dict[str, Any]) -> str:
    """Readable summary of :func:`evaluate_nab`."""
    lines = [f"{'file':42} windows hits false_flags false_events"]
    for f in result["files"]:
        lines.append(
            f"{f['file']:42} {f['windows']:7} {f['hits']:4} {f['false_flags']:11}"
            f" {f['false_events']:12}"
        )
    lines.append(
        f"SeriesDetector: recall {result['recall']:.2f} of {result['windows']} windows,"
        f" {result['false_flags_per_day']:.3f} false flags/day,"
        f" {result['false_events_per_day']:.3f} false events/day over {result['days']:.0f} days"
    )
    for h in [*result["hst"], result["hst_matched"]]:
        lines.append(
            f"HalfSpaceTrees >= {h['threshold']:.4f}: recall {h['recall']:.2f},"
            f" {h['false_flags_per_day']:.3f} false flags/day,"
            f" {h['false_events_per_day']:.3f} false events/day"
        )
    return "\n".join(lines)

"""The Numenta Anomaly Benchmark's scoring rules (NAB v1.1), re-implemented as a lab tool.

NAB scores a detector that emits one anomaly score per row of each labelled series. The rules
re-implemented here, from NAB v1.1's published description and scorer (no NAB code is used):

* **Probation.** The first ``min(floor(0.15 * rows), 0.15 * 5000)`` rows of a file are not
  scored at all (neither as detections nor as misses).
* **Windows.** Each labelled anomaly is a window ``[start, end]`` of rows (``windows.json``
  holds NAB's combined windows). A row inside a window scores as a true positive worth
  ``tp_weight * sigma(-(right - i + 1) / width) / sigma(-1)``, with the *scaled sigmoid*
  ``sigma(p) = 2 / (1 + exp(5 p)) - 1`` (``-1`` for ``p >= 3``): detecting at the window's
  first row earns the full weight, at its last row almost nothing.
* **False positives.** A row outside every window scores ``fp_weight * sigma(p)``, where ``p``
  is its distance past the end of the previous window in units of that window's width minus
  one (so a detection just after a window costs almost nothing, one three widths later the
  full weight), and ``p = 3`` (full cost) before the first window.
* **Counting.** At a threshold ``t`` a row is a detection when its score is ``>= t``. Each
  window counts once: ``-fn_weight`` if no row in it is detected, else the best (earliest)
  detected row's value. Every detected row outside the windows adds its (negative) value.
* **Profiles.** ``standard`` (tp 1, fp 0.11, fn 1), ``reward_low_FP_rate`` (tp 1, fp 0.22,
  fn 1) and ``reward_low_FN_rate`` (tp 1, fp 0.11, fn 2).
* **Threshold optimisation.** For each profile, one threshold for the whole corpus: the rows
  of every file are swept together from the highest score down, and the threshold with the
  best summed raw score is kept (NAB v1.1's optimiser does the same exhaustive sweep).
* **Normalisation.** ``100 * (raw - null) / (perfect - null)``, where the null detector
  detects nothing (``-fn_weight`` per window) and the perfect one detects every window at its
  first scored row.

NAB's 58-series corpus is not shipped here; :func:`run_nab` scores whatever labelled series
a folder holds (the development slice is 17 AWS CloudWatch series in ``../shared/data/anomaly``).
"""

from __future__ import annotations

import csv
import json
import math
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.registry import SERIES_DETECTOR, Entry
from streams.lab.score import parse_timestamp, score_csv

__all__ = [
    "PROFILES",
    "Profile",
    "format_nab",
    "label_rows",
    "load_scored",
    "run_nab",
    "scaled_sigmoid",
    "score_corpus",
]

_PROBATION_PERCENT = 0.15
_PROBATION_CAP_ROWS = 5000


@dataclass(frozen=True, slots=True)
class Profile:
    """Weights of one NAB application profile."""

    tp_weight: float
    fp_weight: float
    fn_weight: float


PROFILES = {
    "standard": Profile(1.0, 0.11, 1.0),
    "reward_low_FP_rate": Profile(1.0, 0.22, 1.0),
    "reward_low_FN_rate": Profile(1.0, 0.11, 2.0),
}
"""NAB v1.1's three application profiles."""


def scaled_sigmoid(position: float) -> float:
    """NAB's scaled sigmoid of a relative position: about 1 at -1, 0 at 0, -1 from 3 on.

    Examples
    --------

    >>> from streams.lab.nab import scaled_sigmoid
    >>> round(scaled_sigmoid(-1.0), 5), scaled_sigmoid(0.0), scaled_sigmoid(3.0)
    (0.98661, 0.0, -1.0)

    """
    if position >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


@dataclass(frozen=True, slots=True)
class _Row:
    """One scorable row: its score, its window (None outside) and its unweighted values."""

    score: float
    window: str | None
    value: float
    """Scaled sigmoid of the row's position, divided by the sigmoid at -1 inside a window."""


def label_rows(
    timestamps: Sequence[float],
    scores: Sequence[float],
    windows: Iterable[tuple[float, float]],
    name: str,
) -> list[_Row]:
    """The scorable rows of one file with their window and unweighted NAB value.

    Rows in probation are dropped. Windows are matched on event time: a window starts at its
    first row at or after ``start`` and ends at its last row at or before ``end``.

    Examples
    --------

    >>> from streams.lab.nab import label_rows
    >>> ts = list(range(20))
    >>> rows = label_rows(ts, [0.0] * 20, [(10, 13)], "f")
    >>> len(rows), rows[0].window, rows[7].window  # 3 rows of probation
    (17, None, 'f|10')
    >>> round(rows[7].value, 3), round(rows[10].value, 3)  # window start and end
    (1.0, 0.562)

    """
    if len(timestamps) != len(scores):
        raise ValueError("timestamps and scores differ in length")
    n = len(timestamps)
    probation = min(math.floor(_PROBATION_PERCENT * n), _PROBATION_PERCENT * _PROBATION_CAP_ROWS)
    # Row index ranges of the windows, in time order.
    spans = []
    for start, end in sorted(windows):
        first = next((i for i, t in enumerate(timestamps) if t >= start), None)
        last = next((i for i in range(n - 1, -1, -1) if timestamps[i] <= end), None)
        if first is not None and last is not None and first <= last:
            spans.append((first, last, f"{name}|{start:g}"))
    max_tp = scaled_sigmoid(-1.0)
    rows = []
    span_at = 0
    prev_right = prev_width = None
    for i in range(n):
        while span_at < len(spans) and spans[span_at][1] < i:
            prev_right = spans[span_at][1]
            prev_width = spans[span_at][1] - spans[span_at][0] + 1
            span_at += 1
        inside = span_at < len(spans) and spans[span_at][0] <= i
        if inside:
            first, last, window = spans[span_at]
            value = scaled_sigmoid(-(last - i + 1) / (last - first + 1)) / max_tp
        else:
            window = None
            # Before the first window a detection is as false as it gets.
            position = 3.0 if prev_right is None else abs(prev_right - i) / max(prev_width - 1, 1)
            value = scaled_sigmoid(position)
        if i >= probation:
            rows.append(_Row(float(scores[i]), window, value))
    return rows


def _sweep(rows: list[_Row], profile: Profile) -> tuple[float, float, dict[str, int]]:
    """Best threshold, its raw score and its counts, sweeping every row of the corpus."""
    ordered = sorted(rows, key=lambda r: r.score, reverse=True)
    window_best = {r.window: -profile.fn_weight for r in ordered if r.window is not None}
    windows_total = -profile.fn_weight * len(window_best)
    fp_total = 0.0
    detected: set[str] = set()
    false_rows = 0
    # Above the highest score nothing is detected: every window is missed.
    best = (windows_total, math.inf, 0, 0)
    for k, row in enumerate(ordered):
        if row.window is None:
            fp_total += profile.fp_weight * row.value
            false_rows += 1
        else:
            gain = profile.tp_weight * row.value
            if gain > window_best[row.window]:
                windows_total += gain - window_best[row.window]
                window_best[row.window] = gain
            detected.add(row.window)
        # A threshold sits between distinct scores: record once every equal score is in.
        if k + 1 == len(ordered) or ordered[k + 1].score != row.score:
            raw = windows_total + fp_total
            if raw > best[0]:
                best = (raw, row.score, len(detected), false_rows)
    raw, threshold, hits, false_rows = best
    counts = {"windows": len(window_best), "windows_detected": hits, "false_rows": false_rows}
    return threshold, raw, counts


def score_corpus(files: dict[str, list[_Row]]) -> dict[str, dict[str, Any]]:
    """NAB scores of the three profiles for labelled rows of every file (:func:`label_rows`).

    Examples
    --------

    A detector that fires once, at the start of the only window, is perfect; one that fires
    nowhere is the null detector.

    >>> from streams.lab.nab import label_rows, score_corpus
    >>> ts = list(range(40))
    >>> perfect = [1.0 if t == 30 else 0.0 for t in ts]
    >>> score_corpus({"f": label_rows(ts, perfect, [(30, 35)], "f")})["standard"]["score"]
    100.0
    >>> score_corpus({"f": label_rows(ts, [0.0] * 40, [(30, 35)], "f")})["standard"]["score"]
    0.0

    """
    rows = [row for file_rows in files.values() for row in file_rows]
    windows = {row.window for row in rows if row.window is not None}
    # The best a detector can do per window: its earliest scored row.
    best_value = dict.fromkeys(windows, -math.inf)
    for row in rows:
        if row.window is not None and row.value > best_value[row.window]:
            best_value[row.window] = row.value
    out = {}
    for name, profile in PROFILES.items():
        threshold, raw, counts = _sweep(rows, profile)
        null = -profile.fn_weight * len(windows)
        perfect = profile.tp_weight * sum(best_value.values())
        score = 100.0 * (raw - null) / (perfect - null) if perfect > null else 0.0
        out[name] = {
            "score": round(score, 2),
            "raw": raw,
            "null": null,
            "perfect": perfect,
            "threshold": threshold,
            **counts,
        }
    return out


def load_scored(path: str | Path) -> tuple[list[float], list[float]]:
    """Timestamps and scores of a ``timestamp,value,anomaly_score`` file (``autopilot score``).

    Rows with an empty score (bad input rows) are scored 0.0, i.e. never a detection.
    """
    timestamps, scores = [], []
    with Path(path).open(newline="") as source:
        reader = csv.reader(source)
        next(reader, None)
        for row in reader:
            if not row:
                continue
            timestamps.append(parse_timestamp(row[0]))
            scores.append(float(row[2]) if len(row) > 2 and row[2] else 0.0)
    return timestamps, scores


def run_nab(
    data_dir: str | Path,
    *,
    entry: Entry = SERIES_DETECTOR,
    detector_factory: Callable[[], Any] | None = None,
) -> dict[str, Any]:
    """Score every labelled file of ``data_dir`` exactly as ``autopilot score`` does, then NAB.

    ``data_dir`` holds ``windows.json`` (file name to ``[[start, end], ...]``, NAB's combined
    labels) and the CSV files it names. Each file goes through
    :func:`streams.lab.score.score_csv` with ``entry`` and ``detector_factory`` (the worker's
    detector and defaults unless overridden), and the scores are read back from its output.
    """
    data_dir = Path(data_dir)
    labels = json.loads((data_dir / "windows.json").read_text())
    files = {}
    rows_total = 0
    with tempfile.TemporaryDirectory() as scratch:
        for name in sorted(labels):
            out = Path(scratch) / name
            score_csv(data_dir / name, out, entry=entry, detector_factory=detector_factory)
            timestamps, scores = load_scored(out)
            spans = [(parse_timestamp(a), parse_timestamp(b)) for a, b in labels[name]]
            files[name] = label_rows(timestamps, scores, spans, name)
            rows_total += len(timestamps)
    result: dict[str, Any] = {"detector": entry.name, "files": len(files), "rows": rows_total}
    result["profiles"] = score_corpus(files)
    return result


def format_nab(result: dict[str, Any]) -> str:
    """Readable summary of :func:`run_nab`."""
    lines = [
        f"NAB v1.1 scoring (re-implemented) of detector {result['detector']} over"
        f" {result['files']} files, {result['rows']:,d} rows",
        f"{'profile':20} {'score':>7} {'threshold':>10} {'windows':>9} {'false rows':>10}",
    ]
    for name, p in result["profiles"].items():
        lines.append(
            f"{name:20} {p['score']:7.2f} {p['threshold']:10.4f}"
            f" {p['windows_detected']:4d}/{p['windows']:<4d} {p['false_rows']:10d}"
        )
    return "\n".join(lines)

"""Offline scoring of a ``timestamp,value`` CSV file with a registered anomaly detector.

The worker's built-in ``series`` detector by default; a plugin's by its registry entry.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from models.detect.anomaly import SeriesDetector
from models.registry import SERIES_DETECTOR, Entry

__all__ = ["parse_timestamp", "score_csv"]

_OUTPUT_HEADER = ("timestamp", "value", "anomaly_score")
_PROGRESS_EVERY = 1000


def parse_timestamp(text: str) -> float:
    """Epoch seconds from epoch seconds, RFC 3339 or NAB's ``2014-02-14 14:30:00``.

    Timestamps without a zone are taken as UTC.

    Examples
    --------

    >>> from streams.lab.score import parse_timestamp
    >>> parse_timestamp("1392388200")
    1392388200.0
    >>> parse_timestamp("2014-02-14 14:30:00")
    1392388200.0
    >>> parse_timestamp("2014-02-14T15:30:00+01:00")
    1392388200.0
    >>> parse_timestamp("2014-02-14T14:30:00Z")
    1392388200.0

    """
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    if not math.isfinite(value):
        raise ValueError(f"timestamp is not finite: {text!r}")
    return value


def _parse_row(row: list[str]) -> tuple[float, float]:
    if len(row) != 2:
        raise ValueError(f"expected 2 fields, got {len(row)}")
    value = float(row[1])
    if not math.isfinite(value):
        raise ValueError(f"value is not finite: {row[1]!r}")
    return parse_timestamp(row[0]), value


def _is_header(row: list[str]) -> bool:
    """A first row whose value field is not a number is a header."""
    try:
        float(row[1])
    except (ValueError, IndexError):
        return True
    return False


def _river_update(detector: Any, entry: Entry) -> Callable[[float, float], tuple[float, bool]]:
    """``update(ts, value) -> (score, flagged)`` of a River anomaly detector, with the flag rule
    of its registry entry."""
    learned = 0

    def update(ts: float, value: float) -> tuple[float, bool]:
        nonlocal learned
        x = entry.features(ts, value)
        score = float(detector.score_one(x))
        detector.learn_one(x)
        # Warm once ``warmup`` values were learned before this one, as SeriesDetector counts.
        flagged = learned >= entry.warmup and score >= entry.threshold
        learned += 1
        return score, flagged

    return update


def score_csv(
    input_path: str | Path,
    output_path: str | Path,
    *,
    progress: Callable[[int, int], None] | None = None,
    entry: Entry = SERIES_DETECTOR,
    detector_factory: Callable[[], Any] | None = None,
) -> dict[str, Any]:
    """Score every row of a ``timestamp,value`` CSV file, in order, with one detector.

    The output has a ``timestamp,value,anomaly_score`` header and one row per input row, with
    the timestamp and value copied verbatim. By default the detector is the built-in
    ``series`` with :data:`~models.detect.anomaly.DEFAULT_DETECTOR_CONFIG`, scored exactly as
    the worker scores it: ``update`` gives the score and the flag. Any other detector goes
    through River's verbs, ``score_one`` then ``learn_one`` of ``entry.features(ts, value)``,
    and a row is flagged when its score is at least ``entry.threshold`` once ``entry.warmup``
    values were learned.
    The input header is optional; blank lines are skipped. A bad row (wrong number of fields,
    unparsable or non-finite timestamp or value) is kept with an empty score, is not learned,
    and is counted in ``bad_rows`` (only its first two fields are kept).

    Parameters
    ----------
    input_path, output_path
        CSV files to read and to write.
    progress
        Called as ``progress(rows_done, rows_total)`` every 1,000 rows and at the end.
    entry
        The registered detector to score with (:mod:`models.registry`).
    detector_factory
        Builds the detector instead of ``entry.factory``, e.g. the built-in with other
        settings.

    Returns
    -------
    dict
        ``rows``, ``scored``, ``bad_rows``, ``anomalies`` (flagged rows), ``max_score`` and
        ``warmup_rows`` (scored rows that fell in the detector's warm-up).

    Examples
    --------

    >>> import tempfile
    >>> from pathlib import Path
    >>> from streams.lab.score import score_csv
    >>> folder = Path(tempfile.mkdtemp())
    >>> rows = [f"{i * 300},{10 + i % 3}" for i in range(200)] + ["oops,1"]
    >>> _ = (folder / "in.csv").write_text("timestamp,value\\n" + "\\n".join(rows) + "\\n")
    >>> summary = score_csv(folder / "in.csv", folder / "out.csv")
    >>> summary["rows"], summary["scored"], summary["bad_rows"]
    (201, 200, 1)
    >>> (folder / "out.csv").read_text().splitlines()[-1]
    'oops,1,'

    """
    input_path = Path(input_path)
    with input_path.open(newline="") as source:
        rows = [row for row in csv.reader(source) if row]
    if rows and _is_header(rows[0]):
        rows = rows[1:]
    total = len(rows)
    detector = (detector_factory or entry.factory)()
    update: Callable[[float, float], tuple[Any, ...]]
    if isinstance(detector, SeriesDetector):
        update = detector.update
        warmup = detector.config.warmup
    else:
        update = _river_update(detector, entry)
        warmup = entry.warmup
    scored = bad = anomalies = 0
    max_score = 0.0
    with Path(output_path).open("w", newline="") as sink:
        writer = csv.writer(sink, lineterminator="\n")
        writer.writerow(_OUTPUT_HEADER)
        for done, row in enumerate(rows, start=1):
            try:
                ts, value = _parse_row(row)
            except ValueError:
                bad += 1
                writer.writerow([*[*row, "", ""][:2], ""])
            else:
                score, flagged = update(ts, value)[:2]
                scored += 1
                anomalies += flagged
                max_score = max(max_score, score)
                writer.writerow([row[0], row[1], f"{score:.6f}"])
            if progress is not None and (done % _PROGRESS_EVERY == 0 or done == total):
                progress(done, total)
    if progress is not None and total == 0:
        progress(0, 0)
    return {
        "rows": total,
        "scored": scored,
        "bad_rows": bad,
        "anomalies": anomalies,
        "max_score": max_score,
        "warmup_rows": min(scored, warmup),
    }

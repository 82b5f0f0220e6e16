"""The conformance suite of a detector or forecaster entry, in the spirit of River's
``estimator_checks``.

Every check builds fresh instances from an :class:`~models.registry.Entry`, feeds them the
same canned series (:func:`canned_series`) the way the worker does, and returns a
:class:`CheckResult`: whether it passed, one line saying why not, and what it measured. A
detector is fed as the metrics brain feeds it (``score_one`` then ``learn_one`` with
:meth:`Entry.features <models.registry.Entry.features>`), a forecaster as the scaler feeds
it (``update(ts, y)`` then ``forecast_at(ts, HORIZON_S)``, whose forecast must be finite
with ``lower <= mean <= upper``). :func:`run_checks` runs them all; the worker's admission
and ``autopilot plugins check`` (:mod:`streams.plugins.admission`) refuse a plugin that
fails any.

Examples
--------
>>> import itertools
>>> from models import registry
>>> one_us_per_reading = itertools.count(0, 1000).__next__  # judge the check, not the machine
>>> results = run_checks(registry.entry("detectors", "series"), n=400, clock=one_us_per_reading)
>>> [(r.name, r.ok) for r in results]  # doctest: +NORMALIZE_WHITESPACE
[('learns and scores', True), ('deterministic', True), ('state round trip', True),
 ('memory per series', True), ('time per call', True)]
>>> results[3].figures["bytes_per_series"] <= 32768
True
"""

from __future__ import annotations

import math
import numbers
import pickle
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from models.detect.bank import deep_sizeof
from models.registry import Entry

__all__ = [
    "SUITES",
    "CheckResult",
    "canned_series",
    "check_deterministic",
    "check_learns_and_scores",
    "check_memory_per_series",
    "check_state_round_trip",
    "check_time_per_call",
    "run_checks",
]

START = 1_700_000_000.0
STEP_S = 300.0
HORIZON_S = 900.0
"""How far ahead a forecaster is asked to forecast after each value: three steps."""
Series = list[tuple[float, float]]
SUITES = ("detectors", "forecasters")
"""The groups with a conformance suite."""
Clock = Callable[[], int]
"""Nanoseconds from an arbitrary origin, as :func:`time.perf_counter_ns`."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one check.

    Attributes
    ----------
    name
        What was checked, e.g. ``"deterministic"``.
    ok
        Whether the detector passed.
    reason
        One line saying why it failed; empty when it passed.
    figures
        What the check measured (``us_per_call_median``, ``bytes_per_series``...).
    """

    name: str
    ok: bool
    reason: str = ""
    figures: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form, for ``--json`` outputs.

        >>> CheckResult("deterministic", False, "differs").to_dict()
        {'name': 'deterministic', 'ok': False, 'reason': 'differs', 'figures': {}}
        """
        return {"name": self.name, "ok": self.ok, "reason": self.reason, "figures": self.figures}


def canned_series(n: int = 3000, seed: int = 0) -> Series:
    """``n`` values every 5 minutes: a daily cycle with noise, a spike and a level shift.

    The same ``(n, seed)`` always gives the same values. The spike is at 2/3 of the series,
    the level shift from 5/6 on.

    >>> values = canned_series(12)
    >>> len(values), values[1][0] - values[0][0]
    (12, 300.0)
    >>> canned_series(12) == values
    True
    """
    rng = random.Random(seed)
    spike, shift = n * 2 // 3, n * 5 // 6
    values = []
    for i in range(n):
        y = 100.0 + 40.0 * math.sin(2 * math.pi * i / 288) + rng.gauss(0, 4)
        y += 300.0 if i == spike else 0.0
        y += 80.0 if i > shift else 0.0
        values.append((START + STEP_S * i, y))
    return values


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Failed(Exception):
    """A detector misbehaved while being fed; its message is the check's reason."""


def _forecast(forecaster: Any, values: Series, start: int) -> list[Any]:
    """Learn each value then forecast, as the scaler does; the forecasts, checked sound."""
    forecasts = []
    for i, (ts, y) in enumerate(values, start):
        try:
            forecaster.update(ts, y)
            fc = forecaster.forecast_at(ts, HORIZON_S)
            mean, lower, upper = float(fc.mean), float(fc.lower), float(fc.upper)
        except Exception as exc:  # a plugin can raise anything
            raise _Failed(f"update or forecast_at raised {_one_line(exc)} at value {i}") from exc
        if not (math.isfinite(lower) and math.isfinite(upper) and lower <= mean <= upper):
            raise _Failed(
                f"forecast_at gave mean {mean} and interval [{lower}, {upper}] at value {i}; "
                "it must be finite and hold its mean"
            )
        forecasts.append((mean, lower, upper))
    return forecasts


def _feed(entry: Entry, detector: Any, values: Series, start: int = 0) -> list[Any]:
    """Score then learn each value, as the worker does; the scores, checked finite. A
    forecaster's outputs are its forecasts (:func:`_forecast`)."""
    if entry.group == "forecasters":
        return _forecast(detector, values, start)
    scores = []
    for i, (ts, y) in enumerate(values, start):
        x = entry.features(ts, y)
        try:
            score = detector.score_one(x)
        except Exception as exc:  # a plugin can raise anything
            raise _Failed(f"score_one raised {_one_line(exc)} at value {i}") from exc
        # A bool is an int to Python, but no score.
        if isinstance(score, bool) or not isinstance(score, numbers.Real):
            raise _Failed(f"score_one returned a {type(score).__name__} at value {i}, not a float")
        if not math.isfinite(score):
            raise _Failed(f"score_one returned {score} at value {i}; scores must be finite")
        try:
            detector.learn_one(x)
        except Exception as exc:  # a plugin can raise anything
            raise _Failed(f"learn_one raised {_one_line(exc)} at value {i}") from exc
        scores.append(float(score))
    return scores


def _create(entry: Entry) -> Any:
    try:
        return entry.factory()
    except Exception as exc:  # a plugin can raise anything
        raise _Failed(f"cannot be built without configuration: {_one_line(exc)}") from exc


def _first_difference(entry: Entry, a: list[Any], b: list[Any], offset: int = 0) -> str:
    i = next(i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)
    # A forecaster's outputs are (mean, lower, upper) of its forecast after the value.
    verb = "was followed by the forecast" if entry.group == "forecasters" else "scored"
    return f"value {offset + i} {verb} {b[i]!r} instead of {a[i]!r}"


def check_learns_and_scores(entry: Entry, values: Series) -> CheckResult:
    """It learns and scores every value without raising, and every score is a finite float.

    Figures: how many values, how many scores reached the entry's threshold after its
    warm-up (a detector that flags everything, or nothing, shows here). A forecaster's
    forecasts are sound instead, and the figure is their mean absolute error after its
    warm-up (``mae``), against the value ``HORIZON_S`` later.
    """
    name = "learns and scores"
    try:
        scores = _feed(entry, _create(entry), values)
    except _Failed as exc:
        return CheckResult(name, False, str(exc))
    if entry.group == "forecasters":
        ahead = round(HORIZON_S / STEP_S)
        errors = [abs(fc[0] - y) for fc, (_, y) in zip(scores, values[ahead:], strict=False)]
        figures: dict[str, Any] = {"values": len(values)}
        # A warm-up longer than the series (a daily season of 10 s steps) leaves no error.
        if errors[entry.warmup :]:
            figures["mae"] = round(statistics.fmean(errors[entry.warmup :]), 3)
        return CheckResult(name, True, figures=figures)
    flagged = sum(s >= entry.threshold for s in scores[entry.warmup :])
    return CheckResult(name, True, figures={"values": len(values), "flagged": flagged})


def check_deterministic(entry: Entry, values: Series) -> CheckResult:
    """Two fresh instances give the same scores: a replay after a restart decides the same."""
    name = "deterministic"
    try:
        first = _feed(entry, _create(entry), values)
        second = _feed(entry, _create(entry), values)
    except _Failed as exc:
        return CheckResult(name, False, str(exc))
    if first != second:
        reason = f"a second instance differs: {_first_difference(entry, first, second)}"
        return CheckResult(name, False, reason)
    return CheckResult(name, True)


def check_state_round_trip(entry: Entry, values: Series) -> CheckResult:
    """Checkpointed two thirds in and restored, it scores the rest as if never stopped.

    A detector with ``to_state()`` and the class method ``from_state(state)`` goes through
    JSON (``orjson``), as the changelog stores it; ``from_state`` is given the keyword
    configuration of a factory that is a :func:`functools.partial`, as the protocol asks
    (:mod:`models.base`). Any other goes through :mod:`pickle`: River's estimators have no
    JSON state, and pickling is how River itself saves them. A forecaster always goes
    through :mod:`pickle`, as the metrics brain checkpoints it
    (:mod:`models.plugins.forecasters`).

    Figures: the format and the size of the state, in bytes.
    """
    name = "state round trip"
    cut = len(values) * 2 // 3
    try:
        whole = _feed(entry, _create(entry), values)
        head = _create(entry)
        resumed = _feed(entry, head, values[:cut])
    except _Failed as exc:
        return CheckResult(name, False, str(exc))
    cls = type(head)
    as_json = (
        entry.group == "detectors"
        and callable(getattr(head, "to_state", None))
        and callable(getattr(cls, "from_state", None))
    )
    fmt = "json" if as_json else "pickle"
    try:
        if as_json:
            blob = orjson.dumps(head.to_state(), option=orjson.OPT_SERIALIZE_NUMPY)
            config = getattr(entry.factory, "keywords", None) or {}
            restored = cls.from_state(orjson.loads(blob), **config)
        else:
            blob = pickle.dumps(head)
            # The blob was made just above from the object under test: nothing foreign.
            restored = pickle.loads(blob)
    except Exception as exc:  # a plugin's state can fail in any way
        return CheckResult(name, False, f"its state does not survive {fmt}: {_one_line(exc)}")
    try:
        resumed += _feed(entry, restored, values[cut:], start=cut)
    except _Failed as exc:
        return CheckResult(name, False, f"restored from {fmt}, {exc}")
    figures = {"format": fmt, "state_bytes": len(blob)}
    if resumed != whole:
        return CheckResult(
            name, False, f"restored from {fmt}, {_first_difference(entry, whole, resumed)}", figures
        )
    return CheckResult(name, True, figures=figures)


def check_memory_per_series(entry: Entry, values: Series) -> CheckResult:
    """After the whole series, one detector (one series) holds no more than
    ``entry.max_bytes_per_key``.

    Memory is :func:`~models.detect.bank.deep_sizeof`, which sees Python objects only; an
    object whose pickle is larger holds memory it cannot see (an extension type's buffers),
    and the pickle's size counts instead.

    Figures: ``bytes_per_series``, how it was measured, the bound.
    """
    name = "memory per series"
    try:
        detector = _create(entry)
        _feed(entry, detector, values)
    except _Failed as exc:
        return CheckResult(name, False, str(exc))
    held, how = deep_sizeof(detector), "deep_sizeof"
    try:
        pickled = len(pickle.dumps(detector))
    except Exception:  # an unpicklable detector: deep_sizeof is all there is
        pickled = 0
    if pickled > held:
        held, how = pickled, "pickle"
    figures = {"bytes_per_series": held, "measured_by": how, "bound": entry.max_bytes_per_key}
    if held > entry.max_bytes_per_key:
        return CheckResult(
            name,
            False,
            f"holds {held:,d} bytes per series after {len(values):,d} values, "
            f"over its bound of {entry.max_bytes_per_key:,d}",
            figures,
        )
    return CheckResult(name, True, figures=figures)


def check_time_per_call(
    entry: Entry, values: Series, clock: Clock = time.perf_counter_ns
) -> CheckResult:
    """The median time of one ``score_one`` plus ``learn_one`` (a forecaster: ``update``
    plus ``forecast_at``) is within ``entry.max_seconds_per_call``.

    The median, not the mean or the maximum: a pause of the interpreter (a garbage
    collection, another process on the core) is not the plugin's cost. ``clock`` is
    injectable so that tests judge the check, not the machine.

    Figures: ``us_per_call_median``, ``us_per_call_p99``, ``budget_us``.
    """
    name = "time per call"
    try:
        detector = _create(entry)
    except _Failed as exc:
        return CheckResult(name, False, str(exc))
    forecasts = entry.group == "forecasters"
    spent = []
    for i, (ts, y) in enumerate(values):
        x = entry.features(ts, y)
        began = clock()
        try:
            if forecasts:
                detector.update(ts, y)
                detector.forecast_at(ts, HORIZON_S)
            else:
                detector.score_one(x)
                detector.learn_one(x)
        except Exception as exc:  # a plugin can raise anything
            return CheckResult(name, False, f"raised {_one_line(exc)} at value {i}")
        spent.append(clock() - began)
    spent.sort()
    median_us = statistics.median(spent) / 1000.0
    budget_us = entry.max_seconds_per_call * 1e6
    figures = {
        "us_per_call_median": round(median_us, 2),
        "us_per_call_p99": round(spent[int(0.99 * (len(spent) - 1))] / 1000.0, 2),
        "budget_us": round(budget_us, 2),
    }
    if median_us > budget_us:
        return CheckResult(
            name,
            False,
            f"takes {median_us:,.1f} µs per call (median of "
            f"{'update + forecast_at' if forecasts else 'score_one + learn_one'}), "
            f"over its budget of {budget_us:,.1f} µs",
            figures,
        )
    return CheckResult(name, True, figures=figures)


def run_checks(
    entry: Entry, *, n: int = 3000, clock: Clock = time.perf_counter_ns
) -> list[CheckResult]:
    """Every check on ``entry``, over ``canned_series(n)``: the suite of a detector or a
    forecaster.

    >>> import itertools
    >>> from models import registry
    >>> one_us_per_reading = itertools.count(0, 1000).__next__
    >>> load = registry.entry("forecasters", "load")
    >>> [r.ok for r in run_checks(load, n=300, clock=one_us_per_reading)]
    [True, True, True, True, True]

    Raises
    ------
    ValueError
        If ``entry`` is neither: the other groups have no suite yet.
    """
    if entry.group not in SUITES:
        raise ValueError(f"no conformance suite for {entry.group} yet, only for {SUITES}")
    values = canned_series(n)
    return [
        check_learns_and_scores(entry, values),
        check_deterministic(entry, values),
        check_state_round_trip(entry, values),
        check_memory_per_series(entry, values),
        check_time_per_call(entry, values, clock),
    ]

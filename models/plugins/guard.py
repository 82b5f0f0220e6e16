"""Calls into plugins that can neither stop a worker nor lose a record.

A :class:`PluginGuard` runs each call of a plugin, catches what it raises, times it against
the plugin's budget (:attr:`models.registry.Entry.max_seconds_per_call`) and counts calls,
errors, overruns and seconds per plugin. Calls are timed in CPU seconds of the calling
thread (:func:`time.thread_time`, 0.5 µs a reading): what the plugin costs, whatever else
the machine runs. In wall seconds, a call preempted by another process would count that
process's time against the plugin (one call in 9,000 of river-hst overran its 2 ms so on an
idle machine). For the same reason the garbage collections that run inside a call are not
counted (:data:`gc.callbacks`): the plugin's allocations only trigger them, and a full one
walks the whole worker's heap (about 100 ms with every agent loaded), fifty times river-hst's
budget. Callers give a model's first call an unlimited budget: River's trees, for one, are
built then (5 to 7 ms). The caller falls back to the built-in for the record whose call failed. A
plugin that fails ``max_failures`` times within its last ``window`` calls is quarantined:
the guard then refuses its calls (the built-in serves everything it was bound to) until an
operator binds it again (:meth:`release`).

A call that overruns is counted once it returns: a plugin running in the worker's process
cannot be interrupted safely, so a plugin that hangs hangs its worker's stream. Admission's
time check refuses a plugin slow on its canned stream, not one that hangs on some input.

Memory: one :class:`PluginStats` per plugin name (a few hundred bytes), whatever the number of
series the plugin serves.

Examples
--------
>>> guard = PluginGuard(max_failures=2)
>>> def flaky(n):
...     if n % 2:
...         raise RuntimeError("odd")
...     return n
>>> [guard.call("flaky", 1.0, flaky, n) for n in range(4)]
[(True, 0), (False, None), (True, 2), (False, None)]
>>> guard.quarantined("flaky"), guard.stats["flaky"].errors
(True, 2)
>>> guard.call("flaky", 1.0, flaky, 0)
(False, None)
>>> guard.release("flaky")
>>> guard.call("flaky", 1.0, flaky, 0)
(True, 0)
"""

from __future__ import annotations

import bisect
import gc
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SECONDS_BUCKETS", "PluginGuard", "PluginStats"]

SECONDS_BUCKETS = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)
"""Upper bounds of the call-duration histogram, in seconds (``autopilot_plugin_seconds``)."""


@dataclass(slots=True)
class PluginStats:
    """What one plugin's calls did, since the worker started."""

    calls: int = 0
    errors: int = 0
    overruns: int = 0
    seconds: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(SECONDS_BUCKETS) + 1))
    """Calls per duration bucket of :data:`SECONDS_BUCKETS`, the last for longer ones."""
    failures: deque[int] = field(default_factory=deque)
    """Call numbers of the latest failures, up to the guard's ``max_failures``."""
    quarantined: bool = False
    last_error: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The figures, for a web view."""
        return {
            "calls": self.calls,
            "errors": self.errors,
            "overruns": self.overruns,
            "seconds": round(self.seconds, 6),
            "quarantined": self.quarantined,
            "last_error": self.last_error,
        }


class _CollectionClock(threading.local):
    """CPU seconds the current thread has spent in garbage collections."""

    seconds = 0.0
    started = 0.0


_COLLECTIONS = _CollectionClock()


def _time_collection(phase: str, info: dict[str, int]) -> None:
    # Called by the interpreter around each collection, in the thread that triggered it.
    if phase == "start":
        _COLLECTIONS.started = time.thread_time()
    else:
        _COLLECTIONS.seconds += time.thread_time() - _COLLECTIONS.started


class PluginGuard:
    """Runs plugin calls, counts them per plugin, and quarantines a plugin that keeps failing.

    Parameters
    ----------
    max_failures
        Failures (a raised exception, or a call over its time budget) within ``window``
        calls that quarantine a plugin.
    window
        Calls over which failures are counted: a plugin that overruns its budget once an
        hour (a garbage collection) is not quarantined for it.
    on_quarantine
        Called with the plugin's name and its last error when it is quarantined (a log line).
    """

    def __init__(
        self,
        max_failures: int = 5,
        window: int = 1000,
        on_quarantine: Callable[[str, str], None] | None = None,
    ) -> None:
        if max_failures < 1 or window < max_failures:
            raise ValueError("need 1 <= max_failures <= window")
        self.max_failures = max_failures
        self.window = window
        self.on_quarantine = on_quarantine
        self.stats: dict[str, PluginStats] = {}
        if _time_collection not in gc.callbacks:
            gc.callbacks.append(_time_collection)

    def quarantined(self, name: str) -> bool:
        """Whether ``name`` is quarantined."""
        stats = self.stats.get(name)
        return stats is not None and stats.quarantined

    def release(self, name: str) -> None:
        """Lift ``name``'s quarantine and forget its failures (an operator bound it again)."""
        stats = self.stats.get(name)
        if stats is not None:
            stats.quarantined = False
            stats.failures.clear()

    def call(
        self, name: str, budget_s: float, fn: Callable[..., Any], *args: Any
    ) -> tuple[bool, Any]:
        """Call ``fn(*args)`` for plugin ``name``: ``(True, result)``, or ``(False, None)`` if
        it raised, or if the plugin is quarantined (then ``fn`` is not called).

        A call over ``budget_s`` (CPU seconds of this thread, garbage collections left out)
        returns its result but counts as a failure.
        """
        stats = self.stats.get(name)
        if stats is None:
            stats = self.stats[name] = PluginStats()
        if stats.quarantined:
            return False, None
        collected = _COLLECTIONS.seconds
        started = time.thread_time()
        try:
            result = fn(*args)
        except Exception as exc:  # a plugin can raise anything; none may stop the worker
            self._record(stats, _seconds_since(started, collected))
            stats.errors += 1
            self._fail(name, stats, f"{type(exc).__name__}: {exc}"[:200])
            return False, None
        elapsed = _seconds_since(started, collected)
        self._record(stats, elapsed)
        if elapsed > budget_s:
            stats.overruns += 1
            self._fail(name, stats, f"a call took {elapsed * 1e3:.1f} ms, over its budget "
                                    f"of {budget_s * 1e3:.1f} ms")  # fmt: skip
        return True, result

    @staticmethod
    def _record(stats: PluginStats, elapsed: float) -> None:
        stats.calls += 1
        stats.seconds += elapsed
        stats.buckets[bisect.bisect_left(SECONDS_BUCKETS, elapsed)] += 1

    def _fail(self, name: str, stats: PluginStats, error: str) -> None:
        stats.last_error = error
        failures = stats.failures
        failures.append(stats.calls)
        while failures and stats.calls - failures[0] >= self.window:
            failures.popleft()
        if len(failures) >= self.max_failures:
            stats.quarantined = True
            if self.on_quarantine is not None:
                self.on_quarantine(name, error)


def _seconds_since(started: float, collected: float) -> float:
    """This thread's CPU seconds since ``started``, less the collections since ``collected``."""
    return time.thread_time() - started - (_COLLECTIONS.seconds - collected)

"""Error-rate bursts per error template and (service, region), in event time.

Each key ``(template_id, service, region)`` keeps two exponentially decayed event counts:
a fast one (time constant ``fast_window_s``, about the events of the last few seconds) and a
slow one (``slow_window_s``, the baseline). Dividing a count by its time constant gives a
rate in events per second. A key *bursts* when its fast count reaches ``min_count`` and its
fast rate is at least ``ratio`` times its baseline rate; the burst ends when the fast count
falls below half of ``min_count`` or the rate below half the ratio (hysteresis, so a burst
hovering at the threshold is not reported twice). :meth:`BurstDetector.learn_one` returns a
:class:`Burst` on the rising edge only: one per burst, not one per error.

The baseline of a key is its slow count over the time the detector has been running (up to
``slow_window_s``), not over the key's own life: a template never seen before has a baseline
near zero, so its first flood is a burst, while after a restart without state every key
starts level and nothing is flagged until the fast rate rises above the learned baseline.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

__all__ = ["Burst", "BurstDetector"]

_STATE_VERSION = 1

Key = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class Burst:
    """The rising edge of a burst of one error template on one service in one region.

    Attributes
    ----------
    template_id, service, region
        The key that bursts.
    ts
        Event time of the error that made it a burst.
    rate
        Fast error rate at that moment, per second.
    baseline
        Baseline error rate of the key, per second.
    first_seen_ts
        Event time of the first error of this key the detector remembers.
    """

    template_id: str
    service: str
    region: str
    ts: float
    rate: float
    baseline: float
    first_seen_ts: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, for decision evidence."""
        return {
            "template_id": self.template_id,
            "service": self.service,
            "region": self.region,
            "ts": self.ts,
            "rate_per_s": round(self.rate, 4),
            "baseline_per_s": round(self.baseline, 6),
            "first_seen_ts": self.first_seen_ts,
        }


class _Series:
    """Decayed counts of one key, as of ``last_ts``."""

    __slots__ = ("active", "fast", "first_ts", "last_ts", "slow")

    def __init__(self, ts: float) -> None:
        self.fast = 0.0
        self.slow = 0.0
        self.last_ts = ts
        self.first_ts = ts
        self.active = False


class BurstDetector:
    """Detect bursts of errors per ``(template_id, service, region)``, one event per burst.

    Parameters
    ----------
    fast_window_s
        Time constant of the fast rate, seconds of event time.
    slow_window_s
        Time constant of the baseline rate.
    ratio
        How many times its baseline the fast rate must be for a burst.
    min_count
        Decayed count of recent errors a burst needs at least (about the errors of the last
        ``fast_window_s``), so that a few errors of a rare template are not a burst.
    ttl_s
        Keys without an error for this long (event time) are forgotten.
    max_keys
        Most keys kept; the least recently seen is forgotten beyond it.

    Notes
    -----
    Memory is bounded: one small record (five numbers; about 350 bytes with its key and its
    slot in the table) per key, at most ``max_keys`` keys, and keys idle for ``ttl_s`` are
    dropped as time advances.
    Events may arrive slightly out of order; a late event counts at the latest time seen.

    Examples
    --------
    >>> det = BurstDetector(min_count=5)
    >>> quiet = [det.learn_one("t1", "checkout", "eu-west", ts) for ts in range(0, 600, 60)]
    >>> any(quiet)
    False
    >>> flood = [det.learn_one("t1", "checkout", "eu-west", 600 + i * 0.1) for i in range(50)]
    >>> [i for i, b in enumerate(flood) if b]  # one burst, on the rising edge
    [5]
    >>> b = flood[5]
    >>> (b.template_id, b.ts, round(b.rate, 2), round(b.baseline, 3))
    ('t1', 600.5, 0.59, 0.028)
    >>> det.is_bursting("t1", "checkout", "eu-west", 605.0)
    True
    >>> det.is_bursting("t1", "checkout", "eu-west", 700.0)  # quiet again
    False
    """

    def __init__(
        self,
        *,
        fast_window_s: float = 10.0,
        slow_window_s: float = 1800.0,
        ratio: float = 5.0,
        min_count: float = 10.0,
        ttl_s: float = 7200.0,
        max_keys: int = 100_000,
    ) -> None:
        if not 0 < fast_window_s < slow_window_s:
            raise ValueError("need 0 < fast_window_s < slow_window_s")
        if ratio <= 1.0:
            raise ValueError(f"ratio must be > 1, got {ratio}")
        if min_count <= 0:
            raise ValueError(f"min_count must be > 0, got {min_count}")
        if ttl_s <= 0 or max_keys < 1:
            raise ValueError("ttl_s must be > 0 and max_keys >= 1")
        self.fast_window_s = fast_window_s
        self.slow_window_s = slow_window_s
        self.ratio = ratio
        self.min_count = min_count
        self.ttl_s = ttl_s
        self.max_keys = max_keys
        self._series: OrderedDict[Key, _Series] = OrderedDict()
        self._start_ts: float | None = None
        self._watermark = -math.inf

    def __len__(self) -> int:
        return len(self._series)

    def _baseline(self, slow: float, ts: float) -> float:
        """Baseline rate from a slow count as of ``ts``."""
        # The slow count integrates over at most the time the detector has run: divide by
        # that span, so that the baseline is a rate from the first minute on.
        assert self._start_ts is not None
        elapsed = max(0.0, ts - self._start_ts)
        span = self.slow_window_s * -math.expm1(-elapsed / self.slow_window_s)
        return slow / max(span, self.fast_window_s)

    def _bursting(self, fast: float, slow: float, ts: float, *, ending: bool) -> bool:
        """The burst condition; ``ending`` applies the halved thresholds of a running burst."""
        scale = 0.5 if ending else 1.0
        return (
            fast >= scale * self.min_count
            and fast / self.fast_window_s >= scale * self.ratio * self._baseline(slow, ts)
        )

    def _decay(self, series: _Series, ts: float) -> None:
        dt = ts - series.last_ts
        if dt > 0:
            series.fast *= math.exp(-dt / self.fast_window_s)
            series.slow *= math.exp(-dt / self.slow_window_s)
            series.last_ts = ts

    def learn_one(self, template_id: str, service: str, region: str, ts: float) -> Burst | None:
        """Count one error at event time ``ts``; return a :class:`Burst` on a rising edge."""
        if self._start_ts is None:
            self._start_ts = ts
        if ts > self._watermark:
            self._watermark = ts
        key = (template_id, service, region)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(ts)
            self._evict()
        else:
            self._series.move_to_end(key)
            self._decay(series, ts)
            if series.active:
                # Did the running burst end before this error?
                series.active = self._bursting(
                    series.fast, series.slow, series.last_ts, ending=True
                )
        series.fast += 1.0
        series.slow += 1.0
        if series.active or not self._bursting(
            series.fast, series.slow, series.last_ts, ending=False
        ):
            return None
        series.active = True
        rate = series.fast / self.fast_window_s
        baseline = self._baseline(series.slow, series.last_ts)
        return Burst(template_id, service, region, ts, rate, baseline, series.first_ts)

    def _evict(self) -> None:
        horizon = self._watermark - self.ttl_s
        while self._series:
            oldest = next(iter(self._series.values()))
            if len(self._series) > self.max_keys or oldest.last_ts < horizon:
                self._series.popitem(last=False)
            else:
                break

    def _counts_at(self, key: Key, ts: float) -> tuple[float, float] | None:
        series = self._series.get(key)
        if series is None:
            return None
        dt = max(0.0, ts - series.last_ts)
        return (
            series.fast * math.exp(-dt / self.fast_window_s),
            series.slow * math.exp(-dt / self.slow_window_s),
        )

    def rate(self, template_id: str, service: str, region: str, ts: float) -> tuple[float, float]:
        """``(rate, baseline)`` of a key at event time ``ts``, per second; zeros if unknown."""
        counts = self._counts_at((template_id, service, region), ts)
        if counts is None:
            return 0.0, 0.0
        fast, slow = counts
        return fast / self.fast_window_s, self._baseline(slow, ts)

    def is_bursting(self, template_id: str, service: str, region: str, ts: float) -> bool:
        """Whether the key's last burst is still going on at event time ``ts``."""
        key = (template_id, service, region)
        counts = self._counts_at(key, ts)
        if counts is None or not self._series[key].active:
            return False
        return self._bursting(*counts, ts, ending=True)

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict[str, Any]:
        """Everything needed to resume, as JSON-ready data."""
        return {
            "version": _STATE_VERSION,
            "params": {
                "fast_window_s": self.fast_window_s,
                "slow_window_s": self.slow_window_s,
                "ratio": self.ratio,
                "min_count": self.min_count,
                "ttl_s": self.ttl_s,
                "max_keys": self.max_keys,
            },
            "start_ts": self._start_ts,
            "watermark": self._watermark if self._series else None,
            "series": [
                [*key, s.fast, s.slow, s.last_ts, s.first_ts, s.active]
                for key, s in self._series.items()
            ],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> BurstDetector:
        """A detector resumed from :meth:`to_state`'s output."""
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"unsupported burst detector state version {state.get('version')!r}")
        det = cls(**state["params"])
        det._start_ts = state["start_ts"]
        if state["watermark"] is not None:
            det._watermark = float(state["watermark"])
        for template_id, service, region, fast, slow, last_ts, first_ts, active in state["series"]:
            series = _Series(float(last_ts))
            series.fast, series.slow = float(fast), float(slow)
            series.first_ts, series.active = float(first_ts), bool(active)
            det._series[(str(template_id), str(service), str(region))] = series
        return det

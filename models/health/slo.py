"""Error-budget burn rates with the multiwindow, multi-burn-rate rule of the SRE Workbook.

An SLO such as "99.9 % of requests succeed within 300 ms over 30 days" allows an *error
budget* of ``1 - target`` (0.1 %) of bad requests. The *burn rate* of a window is its error
ratio divided by that budget: 1.0 spends the budget exactly over the SLO period, 14.4 spends
2 % of a 30-day budget in one hour.

The SRE Workbook (chapter 5, "Alerting on SLOs", table 5-8) alerts when a long window *and*
a short window both burn faster than a factor: the long window makes sure enough budget is
at stake, the short one that it is still burning, so an alert stops soon after an incident
ends instead of an hour later. Its recommended paging rules, the defaults here:

====================  ============  ===========  =================
rule                  long window   short window burn rate (budget)
====================  ============  ===========  =================
``1h/5m``             1 h           5 min        14.4x (2 %)
``6h/30m``            6 h           30 min       6x (5 %)
====================  ============  ===========  =================

Windows are sums of per-bucket (good, total) counts in event time (one-minute buckets by
default), kept in a ring as long as the longest window, with running sums per window length
so that an event costs a few additions whatever the window sizes.
"""

from __future__ import annotations

import math
from array import array
from collections import OrderedDict
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from models.health.wilson import wilson_lower

__all__ = [
    "DEFAULT_RULES",
    "SLO",
    "BurnAlert",
    "BurnRateMonitor",
    "BurnRule",
    "WindowStats",
]

_STATE_VERSION = 1
DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class SLO:
    """A request-based service level objective.

    A request is *good* when it succeeded and, if ``latency_ms`` is set, took at most
    ``latency_ms``.

    Parameters
    ----------
    target
        Share of good requests promised, in (0, 1).
    latency_ms
        Latency a good request stays within; ``None`` for an availability-only SLO.
    period_s
        The SLO period the error budget is defined over.

    Examples
    --------
    >>> slo = SLO(target=0.999, latency_ms=300.0)
    >>> round(slo.error_budget, 6), slo.is_good(True, 120.0), slo.is_good(True, 450.0)
    (0.001, True, False)
    """

    target: float = 0.999
    latency_ms: float | None = 300.0
    period_s: float = 30 * DAY_S

    def __post_init__(self) -> None:
        if not 0.0 < self.target < 1.0:
            raise ValueError("target must be in (0, 1)")
        if self.latency_ms is not None and self.latency_ms <= 0:
            raise ValueError("latency_ms must be > 0")
        if self.period_s <= 0:
            raise ValueError("period_s must be > 0")

    @property
    def error_budget(self) -> float:
        """Share of requests allowed to be bad."""
        return 1.0 - self.target

    def is_good(self, success: bool, latency_ms: float) -> bool:
        """Whether one request meets the objective."""
        return success and (self.latency_ms is None or latency_ms <= self.latency_ms)


@dataclass(frozen=True, slots=True)
class BurnRule:
    """Fire when both windows burn the budget at least ``factor`` times too fast.

    Examples
    --------
    >>> rule = BurnRule("1h/5m", long_s=3600, short_s=300, factor=14.4, severity="page")
    >>> round(rule.budget_fraction(SLO()), 4)  # of a 30-day budget
    0.02
    """

    name: str
    long_s: float
    short_s: float
    factor: float
    severity: str = "page"

    def __post_init__(self) -> None:
        if not 0 < self.short_s < self.long_s:
            raise ValueError("need 0 < short_s < long_s")
        if self.factor <= 0:
            raise ValueError("factor must be > 0")

    def budget_fraction(self, slo: SLO) -> float:
        """Share of the period's error budget burned when the long window just fires."""
        return self.factor * self.long_s / slo.period_s


DEFAULT_RULES = (
    BurnRule("1h/5m", long_s=3600.0, short_s=300.0, factor=14.4, severity="page"),
    BurnRule("6h/30m", long_s=21_600.0, short_s=1800.0, factor=6.0, severity="page"),
)
"""The SRE Workbook's two paging rules (table 5-8)."""


@dataclass(frozen=True, slots=True)
class WindowStats:
    """Good and total requests of one window, and what they mean for the budget.

    ``covered_s`` is the part of the window the key has history for; ``burn_rate`` counts
    the rest as good requests at the same rate (``error_ratio * covered_s / window_s`` over
    the budget), so a young key does not burn its whole window's budget in a few requests.
    """

    window_s: float
    covered_s: float
    good: int
    total: int
    error_ratio: float
    burn_rate: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "window_s": self.window_s,
            "covered_s": round(self.covered_s, 3),
            "good": self.good,
            "total": self.total,
            "error_ratio": round(self.error_ratio, 6),
            "burn_rate": round(self.burn_rate, 4),
        }


@dataclass(frozen=True, slots=True)
class BurnAlert:
    """The rising edge of a burn rule on one key.

    Attributes
    ----------
    key
        What burns, e.g. ``("service", "checkout", "eu-west")``.
    ts
        Event time of the request that made the rule fire.
    rule
        The rule that fired.
    slo
        The objective of the key.
    long, short
        The two windows at that moment.
    budget_consumed
        Share of the SLO period's error budget burned within the long window.
    """

    key: Hashable
    ts: float
    rule: BurnRule
    slo: SLO
    long: WindowStats
    short: WindowStats
    budget_consumed: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, for decision evidence."""
        slo = self.slo
        return {
            "rule": self.rule.name,
            "severity": self.rule.severity,
            "threshold": self.rule.factor,
            "slo_target": slo.target,
            "slo_latency_ms": slo.latency_ms,
            "slo_period_days": slo.period_s / DAY_S,
            "long": self.long.to_dict(),
            "short": self.short.to_dict(),
            "budget_consumed": round(self.budget_consumed, 6),
        }


class _Windows:
    """Per-bucket counts of one key in a ring, and running sums per window length."""

    __slots__ = (
        "active",
        "bucket",
        "good",
        "last_fire",
        "last_ts",
        "since",
        "slo",
        "sums",
        "total",
    )

    def __init__(self, n_buckets: int, n_windows: int, n_rules: int, slo: SLO) -> None:
        self.slo = slo
        self.since = math.inf  # start of the key's unbroken history
        self.good = array("q", bytes(8 * n_buckets))
        self.total = array("q", bytes(8 * n_buckets))
        self.bucket: int | None = None  # number of the newest bucket
        self.sums = [[0, 0] for _ in range(n_windows)]  # [good, total] per window length
        self.active = [False] * n_rules
        self.last_fire = [-math.inf] * n_rules
        self.last_ts = -math.inf


class BurnRateMonitor:
    """Burn rates per key (service and region, tenant, ...) and their multiwindow alerts.

    Parameters
    ----------
    slo
        The default objective of a key; ``SLO()`` (99.9 % within 300 ms over 30 days) if
        omitted. A key may have its own (see :meth:`learn_one`).
    rules
        Burn rules; windows must be multiples of ``bucket_s``.
    bucket_s
        Resolution of the windows in event seconds.
    min_events
        Requests a rule's short window needs before it may fire, so that one failure in a
        quiet minute is not a 1000x burn.
    min_bad
        Bad requests a rule's short window needs before it may fire. A quiet service's one to
        three failures in the five minutes after an incident read as 14.4x while its hour
        still burns: 6 of 55 pages of the ``failover_suite`` scenario came so, outside any
        incident. At 14.4x of a 99.9 % objective (1.44 % bad) a window of 350 requests or
        more holds five failures anyway: only quieter windows are held to more than their
        ratio.
    ttl_s
        Keys without a request for this long (event time) are dropped by :meth:`evict_idle`.
    max_keys
        Most keys kept; the least recently seen is dropped beyond it.

    Notes
    -----
    Memory per key: two rings of ``longest window / bucket_s`` 8-byte counts (360 buckets,
    5.8 KiB, for the default 6 h at one minute) and a few numbers; at most ``max_keys`` keys.
    Events later than the newest bucket are counted in their own bucket while it is inside
    the ring, and dropped once it is older than the longest window. A rule *fires* while
    both its windows burn at least ``factor`` times the budget rate; :meth:`learn_one`
    reports the rising edge, and a rule is re-armed once it has not fired for its short
    window, so one incident gives one alert per rule.

    Examples
    --------
    A 99.9 % SLO and 100 requests a minute, all good for six hours, then 20 % bad for ten
    minutes. The 1 h window reaches 14.4x (1.44 % bad) after about 4.3 minutes (a little
    less: its newest bucket is partly filled); the 6 h window would need 10.8 minutes to
    reach 6x:

    >>> mon = BurnRateMonitor(SLO(target=0.999, latency_ms=None))
    >>> key = ("service", "api", "eu-west")
    >>> alerts = []
    >>> for i in range(370 * 100):
    ...     ts = i * 0.6
    ...     alerts += mon.learn_one(key, ts, ts < 21_600 or i % 5 != 0)
    >>> [(a.rule.name, round(a.ts - 21_600), round(a.long.burn_rate, 1)) for a in alerts]
    [('1h/5m', 255, 14.5)]
    >>> round(mon.burn_rate(key, 3600), 1), round(mon.burn_rate(key, 300), 1)
    (33.3, 200.0)
    """

    def __init__(
        self,
        slo: SLO | None = None,
        rules: Sequence[BurnRule] = DEFAULT_RULES,
        *,
        bucket_s: float = 60.0,
        min_events: int = 20,
        min_bad: int = 5,
        ttl_s: float = 6 * 3600.0,
        max_keys: int = 100_000,
    ) -> None:
        if not rules:
            raise ValueError("need at least one rule")
        self.slo = SLO() if slo is None else slo
        self.rules = tuple(rules)
        self.bucket_s = float(bucket_s)
        lengths: list[int] = []
        for rule in self.rules:
            for span in (rule.long_s, rule.short_s):
                n = span / self.bucket_s
                if abs(n - round(n)) > 1e-9 or round(n) < 1:
                    raise ValueError(f"window {span:g} s is not a multiple of bucket_s")
                lengths.append(round(n))
        self._lengths = sorted(set(lengths))
        self._index = {n: i for i, n in enumerate(self._lengths)}
        self._rule_windows = [
            (
                self._index[round(r.long_s / self.bucket_s)],
                self._index[round(r.short_s / self.bucket_s)],
            )
            for r in self.rules
        ]
        self.n_buckets = self._lengths[-1]
        self.min_events = min_events
        self.min_bad = min_bad
        self.ttl_s = ttl_s
        self.max_keys = max_keys
        self._keys: OrderedDict[Hashable, _Windows] = OrderedDict()

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self._keys)

    # ------------------------------------------------------------------------ learning
    def _get(self, key: Hashable, slo: SLO | None) -> _Windows:
        win = self._keys.get(key)
        if win is None:
            win = self._keys[key] = _Windows(
                self.n_buckets, len(self._lengths), len(self.rules), slo or self.slo
            )
            if len(self._keys) > self.max_keys:
                self._keys.popitem(last=False)
        else:
            self._keys.move_to_end(key)
            if slo is not None:
                win.slo = slo
        return win

    def _advance(self, win: _Windows, bucket: int) -> None:
        n = self.n_buckets
        if win.bucket is None or bucket - win.bucket >= n:
            # Everything in the ring is older than the longest window.
            for i in range(n):
                win.good[i] = win.total[i] = 0
            for s in win.sums:
                s[0] = s[1] = 0
            win.bucket = bucket
            win.since = math.inf
            return
        for b in range(win.bucket + 1, bucket + 1):
            # Buckets leaving each window first: the longest window's leaving bucket is the
            # one about to be reused for b.
            for length, s in zip(self._lengths, win.sums, strict=True):
                j = (b - length) % n
                s[0] -= win.good[j]
                s[1] -= win.total[j]
            j = b % n
            win.good[j] = win.total[j] = 0
        win.bucket = bucket

    def learn_one(
        self, key: Hashable, ts: float, good: bool, w: int = 1, slo: SLO | None = None
    ) -> list[BurnAlert]:
        """Count ``w`` requests of ``key`` at event time ``ts``, all good or all bad.

        ``slo`` is the key's objective (its budget), if not the monitor's default; whether a
        request is good is the caller's judgement (:meth:`SLO.is_good`). Returns the rules
        that start firing with these requests.
        """
        win = self._get(key, slo)
        bucket = math.floor(ts / self.bucket_s)
        if win.bucket is None or bucket > win.bucket:
            self._advance(win, bucket)
        assert win.bucket is not None
        age = win.bucket - bucket
        if age >= self.n_buckets:
            return []
        j = bucket % self.n_buckets
        g = w if good else 0
        win.good[j] += g
        win.total[j] += w
        for length, s in zip(self._lengths, win.sums, strict=True):
            if age < length:
                s[0] += g
                s[1] += w
        win.last_ts = max(win.last_ts, ts)
        win.since = min(win.since, ts)
        return self._evaluate(key, win, win.last_ts)

    def _enough(self, good: int, total: int) -> bool:
        """Whether a short window of ``total`` requests, ``good`` of them good, may fire."""
        return total >= self.min_events and total - good >= self.min_bad

    def _burn(self, win: _Windows, index: int, now: float) -> float:
        # _stats(...).burn_rate without building the record: this runs for every request.
        good, total = win.sums[index]
        if not total:
            return 0.0
        window_s = self._lengths[index] * self.bucket_s
        covered = min(window_s, max(now - win.since, 1.0))
        return _burn_rate(1.0 - good / total, covered, window_s, win.slo)

    def _stats(self, win: _Windows, index: int, now: float | None = None) -> WindowStats:
        good, total = win.sums[index]
        ratio = 1.0 - good / total if total else 0.0
        window_s = self._lengths[index] * self.bucket_s
        now = win.last_ts if now is None else now
        covered = min(window_s, max(now - win.since, 1.0)) if total else window_s
        return WindowStats(
            window_s=window_s,
            covered_s=covered,
            good=good,
            total=total,
            error_ratio=ratio,
            burn_rate=_burn_rate(ratio, covered, window_s, win.slo),
        )

    def _evaluate(self, key: Hashable, win: _Windows, ts: float) -> list[BurnAlert]:
        alerts = []
        for r, (rule, (li, si)) in enumerate(zip(self.rules, self._rule_windows, strict=True)):
            fires = (
                self._enough(*win.sums[si])
                and self._burn(win, li, ts) >= rule.factor
                and self._burn(win, si, ts) >= rule.factor
            )
            if fires:
                if not win.active[r]:
                    win.active[r] = True
                    long, short = self._stats(win, li, ts), self._stats(win, si, ts)
                    alerts.append(
                        BurnAlert(
                            key=key,
                            ts=ts,
                            rule=rule,
                            slo=win.slo,
                            long=long,
                            short=short,
                            budget_consumed=long.burn_rate * rule.long_s / win.slo.period_s,
                        )
                    )
                win.last_fire[r] = ts
            elif win.active[r] and ts - win.last_fire[r] >= rule.short_s:
                win.active[r] = False
        return alerts

    # -------------------------------------------------------------------------- queries
    def window(self, key: Hashable, window_s: float) -> WindowStats | None:
        """Counts of one of the rules' windows for ``key`` as of its newest request."""
        win = self._keys.get(key)
        index = self._index.get(round(window_s / self.bucket_s))
        if win is None or index is None:
            return None
        return self._stats(win, index)

    def burn_rate(self, key: Hashable, window_s: float) -> float:
        """Burn rate of one window for ``key`` (0.0 when unknown)."""
        stats = self.window(key, window_s)
        return 0.0 if stats is None else stats.burn_rate

    def effective_burn(self, key: Hashable, rule_index: int = 0, z: float = 0.0) -> float:
        """The burn rate a rule compares with its factor: the lower of its two windows.

        It is 0.0 while the short window has fewer than ``min_events`` requests, so it
        can feed a health score directly. With ``z`` > 0 each window's error ratio is the
        lower bound of its Wilson interval at ``z`` (:mod:`models.health.wilson`): the burn
        the window shows beyond doubt. A quiet window's single failure is then no burn (one
        in 87 requests is 11.5x a 99.9 % budget, but 1.1x at ``z = 3``), while a busy
        window's ratio, or an incident's, is barely lowered.

        A request every 3 s for an hour: 20 % bad for the first ten minutes, then one bad
        request in the last five. The hour still burns at 34x; the last five minutes at 10x
        by their ratio, at 0.9x beyond doubt:

        >>> mon = BurnRateMonitor(SLO(target=0.999, latency_ms=None))
        >>> for i in range(1200):
        ...     _ = mon.learn_one("api", i * 3.0, good=i % 5 != 0 if i < 200 else i != 1190)
        >>> round(mon.burn_rate("api", 3600)), round(mon.burn_rate("api", 300))
        (34, 10)
        >>> round(mon.effective_burn("api"), 1), round(mon.effective_burn("api", z=3.0), 1)
        (10.0, 0.9)
        """
        win = self._keys.get(key)
        if win is None:
            return 0.0
        li, si = self._rule_windows[rule_index]
        long, short = self._stats(win, li), self._stats(win, si)
        if short.total < self.min_events:
            # (min_bad is left to the alerts: a health score takes the burn as it grows.)
            return 0.0
        if z <= 0.0:
            return min(long.burn_rate, short.burn_rate)
        return min(_bounded_burn(long, win.slo, z), _bounded_burn(short, win.slo, z))

    def is_firing(self, key: Hashable, rule_index: int = 0, now: float | None = None) -> bool:
        """Whether a rule fires for ``key`` at ``now`` (default: its newest request).

        Unlike the alert state this looks at the windows only, after moving them to ``now``.
        """
        win = self._keys.get(key)
        if win is None:
            return False
        if now is not None:
            bucket = math.floor(now / self.bucket_s)
            if win.bucket is not None and bucket > win.bucket:
                self._advance(win, bucket)
        rule = self.rules[rule_index]
        li, si = self._rule_windows[rule_index]
        long, short = self._stats(win, li, now), self._stats(win, si, now)
        return (
            self._enough(short.good, short.total)
            and long.burn_rate >= rule.factor
            and short.burn_rate >= rule.factor
        )

    def slo_of(self, key: Hashable) -> SLO | None:
        """The objective of ``key``, if it is tracked."""
        win = self._keys.get(key)
        return None if win is None else win.slo

    def last_ts(self, key: Hashable) -> float | None:
        """Event time of the newest request of ``key``."""
        win = self._keys.get(key)
        return None if win is None else win.last_ts

    # ---------------------------------------------------------------------- maintenance
    def forget(self, key: Hashable, seen_until: float = math.inf) -> bool:
        """Drop ``key`` (erasure) if its last request is no later than ``seen_until``;
        return whether it was dropped.

        >>> mon = BurnRateMonitor()
        >>> _ = mon.learn_one("t_1", 100.0, True)
        >>> mon.forget("t_1", seen_until=50.0), mon.forget("t_1"), "t_1" in mon
        (False, True, False)
        """
        win = self._keys.get(key)
        if win is None or win.last_ts > seen_until:
            return False
        del self._keys[key]
        return True

    def evict_idle(self, now: float) -> int:
        """Drop keys without a request for ``ttl_s`` event seconds; return how many."""
        idle = [k for k, w in self._keys.items() if now - w.last_ts > self.ttl_s]
        for key in idle:
            del self._keys[key]
        return len(idle)

    def to_state(self) -> dict[str, Any]:
        """JSON-friendly state of every key (keys are tuples of strings or strings)."""
        keys = []
        for key, win in self._keys.items():
            keys.append(
                {
                    "key": list(key) if isinstance(key, tuple) else key,
                    "bucket": win.bucket,
                    "good": win.good.tolist(),
                    "total": win.total.tolist(),
                    "sums": win.sums,
                    "active": win.active,
                    "last_fire": [x if math.isfinite(x) else None for x in win.last_fire],
                    "last_ts": win.last_ts if math.isfinite(win.last_ts) else None,
                    "since": win.since if math.isfinite(win.since) else None,
                    "slo": [win.slo.target, win.slo.latency_ms, win.slo.period_s],
                }
            )
        return {"v": _STATE_VERSION, "n_buckets": self.n_buckets, "keys": keys}

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Replace what is in memory with :meth:`to_state` output of the same configuration."""
        if state.get("v") != _STATE_VERSION or state.get("n_buckets") != self.n_buckets:
            raise ValueError("incompatible burn-rate monitor state")
        self._keys.clear()
        for entry in state["keys"]:
            raw = entry["key"]
            key = tuple(raw) if isinstance(raw, list) else raw
            target, latency_ms, period_s = entry["slo"]
            slo = SLO(target=target, latency_ms=latency_ms, period_s=period_s)
            win = _Windows(self.n_buckets, len(self._lengths), len(self.rules), slo)
            win.bucket = entry["bucket"]
            win.good = array("q", entry["good"])
            win.total = array("q", entry["total"])
            win.sums = [list(s) for s in entry["sums"]]
            win.active = list(entry["active"])
            win.last_fire = [-math.inf if x is None else x for x in entry["last_fire"]]
            win.last_ts = -math.inf if entry["last_ts"] is None else entry["last_ts"]
            win.since = math.inf if entry["since"] is None else entry["since"]
            self._keys[key] = win


def _bounded_burn(stats: WindowStats, slo: SLO, z: float) -> float:
    """``stats.burn_rate`` with the window's error ratio at the lower bound of its Wilson
    interval at ``z``."""
    ratio = wilson_lower(stats.total - stats.good, stats.total, z)
    return _burn_rate(ratio, stats.covered_s, stats.window_s, slo)


def _burn_rate(error_ratio: float, covered_s: float, window_s: float, slo: SLO) -> float:
    """The burn rate of a window whose history covers ``covered_s`` of its ``window_s`` at
    ``error_ratio``: the rest of it counts as good requests, at the same rate."""
    return error_ratio * covered_s / window_s / slo.error_budget

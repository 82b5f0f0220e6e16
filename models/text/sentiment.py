"""Feedback sentiment: score free-text feedback, and find surges of negative feedback.

:class:`FeedbackScorer` scores a text with VADER (Hutto and Gilbert, 2014; the
``vaderSentiment`` package), a lexicon and rule-based scorer that needs no model download
and handles negation, intensifiers and punctuation. Its lexicon is general English, so
service complaints that carry no sentiment word ("checkout keeps timing out", "page would
not load") score neutral: a small domain lexicon and a few phrase rewrites add them. The
text is scored and forgotten: nothing here keeps, logs or returns it.

:class:`FeedbackMonitor` keeps, per (service, region), exponentially decayed counts of
feedback and of negative feedback over a short window and a long baseline, and reports the
rising edge of a *surge*: enough recent feedback, a negative share above ``min_share`` and
``ratio`` times the baseline share.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

__all__ = [
    "DOMAIN_LEXICON",
    "FeedbackMonitor",
    "FeedbackScorer",
    "FeedbackSurge",
]

_STATE_VERSION = 1

DOMAIN_LEXICON: dict[str, float] = {
    "slow": -1.5,
    "slower": -1.5,
    "sluggish": -1.6,
    "laggy": -1.5,
    "timeout": -1.8,
    "timeouts": -1.8,
    "crashed": -2.0,
    "crashes": -2.0,
    "crashing": -2.0,
    "outage": -2.2,
    "unavailable": -1.6,
    "unreachable": -1.8,
    "unresponsive": -2.0,
    "unusable": -2.5,
    "buggy": -1.8,
    "glitchy": -1.5,
    "freezes": -1.6,
    "declined": -1.0,
}
"""Service-complaint words VADER's lexicon lacks, on its -4..4 valence scale (``crash`` is
-1.7 and ``error`` -1.7 there)."""

_VERBS = r"(?:load|open|work|connect|respond|confirm|complete|submit|go through)"
# Complaints made of neutral words, rewritten to a word VADER scores ("failed" is -2.3).
_PHRASES = (
    (re.compile(r"\b(?:timing|timed|times|time) out\b", re.I), "timeout"),
    (
        re.compile(
            r"\b(?:(?:would|will|does|did|do|can|could) not|cannot|can't|won't|wouldn't|"
            rf"doesn't|didn't|don't|couldn't)\s+(?:even\s+)?{_VERBS}\b",
            re.I,
        ),
        "failed",
    ),
    (re.compile(rf"\bnever\s+(?:{_VERBS}e?d|arrived|came|showed up)\b", re.I), "failed"),
    (re.compile(r"\b(?:is|was|went|keeps going) down\b", re.I), "outage"),
)


class FeedbackScorer:
    """VADER's compound polarity of a feedback text, with a service-complaint lexicon.

    Parameters
    ----------
    extra_lexicon
        Words and valences added to VADER's lexicon (:data:`DOMAIN_LEXICON` by default).
    negative_below
        Compound score at or below which a text is negative (-0.05, VADER's convention).

    Notes
    -----
    One analyser (VADER's lexicon, about 7 500 words) is shared by all keys; scoring a short
    text takes some 30 us.

    Examples
    --------
    >>> scorer = FeedbackScorer()
    >>> scorer.score_one("love the new search") > 0.5
    True
    >>> [scorer.is_negative(t) for t in ("checkout keeps timing out", "page would not load",
    ...                                  "app is really slow today", "fast and easy")]
    [True, True, True, False]
    """

    def __init__(
        self,
        extra_lexicon: Mapping[str, float] | None = None,
        *,
        negative_below: float = -0.05,
    ) -> None:
        self._analyser = SentimentIntensityAnalyzer()
        self._analyser.lexicon.update(DOMAIN_LEXICON if extra_lexicon is None else extra_lexicon)
        self.negative_below = negative_below

    def score_one(self, text: str) -> float:
        """Compound polarity of ``text`` in [-1, 1]; negative is unhappy."""
        for pattern, replacement in _PHRASES:
            text = pattern.sub(replacement, text)
        return float(self._analyser.polarity_scores(text)["compound"])

    def is_negative(self, text: str) -> bool:
        """Whether ``text`` is negative feedback."""
        return self.score_one(text) <= self.negative_below


@dataclass(frozen=True, slots=True)
class FeedbackSurge:
    """The rising edge of a surge of negative feedback for one (service, region).

    Attributes
    ----------
    service, region
        Where the feedback is about.
    ts
        Event time of the feedback that made it a surge.
    negative_share, baseline_share
        Share of negative feedback recently (``window_s``) and normally.
    feedback, negative
        Decayed counts of recent feedback and recent negative feedback.
    """

    service: str
    region: str
    ts: float
    negative_share: float
    baseline_share: float
    feedback: float
    negative: float

    @property
    def severity(self) -> float:
        """A score in [0, 1) growing with the negative share: ``share / (share + 0.2)``
        is 0.5 at a fifth of the feedback negative."""
        return self.negative_share / (self.negative_share + 0.2)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (counts and shares only: never the text)."""
        return {
            "negative_share": round(self.negative_share, 4),
            "baseline_share": round(self.baseline_share, 4),
            "recent_feedback": round(self.feedback, 2),
            "recent_negative": round(self.negative, 2),
        }


class _Counts:
    __slots__ = ("active", "fast_n", "fast_neg", "last_ts", "slow_n", "slow_neg")

    def __init__(self, ts: float) -> None:
        self.fast_n = self.fast_neg = 0.0
        self.slow_n = self.slow_neg = 0.0
        self.last_ts = ts
        self.active = False


class FeedbackMonitor:
    """Surges of negative feedback per (service, region).

    Parameters
    ----------
    window_s
        Time constant of the recent counts.
    baseline_s
        Time constant of the baseline counts.
    ratio
        How many times the baseline share the recent negative share must be.
    min_share
        Recent negative share a surge needs at least.
    min_feedback
        Recent (decayed) feedback count a surge needs, so a single complaint is no surge.
    prior_share, prior_weight
        The baseline starts as ``prior_weight`` pieces of feedback with ``prior_share``
        negative, so a young key has a sensible baseline.
    ttl_s
        Keys without feedback for this long (event time) are dropped by :meth:`evict_idle`.
    max_keys
        Most keys kept; the least recently seen is dropped beyond it.

    Notes
    -----
    Memory per key: six numbers (about 300 bytes with the key); at most ``max_keys`` keys.
    The baseline learns only while there is no surge, so an incident does not become the
    norm. A surge ends when the recent share falls below half of both thresholds, or when
    the recent feedback count decays below half of ``min_feedback``.

    Examples
    --------
    Feedback every 20 s, one in twenty negative, then half negative:

    >>> mon = FeedbackMonitor()
    >>> calm = [mon.learn_one(i * 20.0, "checkout", "eu-west", i % 20 == 0) for i in range(1000)]
    >>> any(calm)
    False
    >>> bad = [mon.learn_one(20_000 + i * 20.0, "checkout", "eu-west", i % 2 == 0)
    ...        for i in range(60)]
    >>> [i for i, s in enumerate(bad) if s]  # one surge, on its rising edge
    [6]
    >>> s = bad[6]
    >>> round(s.negative_share, 2), round(s.baseline_share, 2)
    (0.23, 0.05)
    """

    def __init__(
        self,
        *,
        window_s: float = 300.0,
        baseline_s: float = 6 * 3600.0,
        ratio: float = 3.0,
        min_share: float = 0.2,
        min_feedback: float = 5.0,
        prior_share: float = 0.1,
        prior_weight: float = 10.0,
        ttl_s: float = 86_400.0,
        max_keys: int = 100_000,
    ) -> None:
        if not 0 < window_s < baseline_s:
            raise ValueError("need 0 < window_s < baseline_s")
        self.window_s = window_s
        self.baseline_s = baseline_s
        self.ratio = ratio
        self.min_share = min_share
        self.min_feedback = min_feedback
        self.prior_share = prior_share
        self.prior_weight = prior_weight
        self.ttl_s = ttl_s
        self.max_keys = max_keys
        self._keys: OrderedDict[tuple[str, str], _Counts] = OrderedDict()

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._keys)

    def _baseline_share(self, c: _Counts) -> float:
        return (c.slow_neg + self.prior_share * self.prior_weight) / (c.slow_n + self.prior_weight)

    def learn_one(
        self, ts: float, service: str, region: str, negative: bool
    ) -> FeedbackSurge | None:
        """Count one piece of feedback; return a surge if one starts with it."""
        key = (service, region)
        c = self._keys.get(key)
        if c is None:
            c = self._keys[key] = _Counts(ts)
            if len(self._keys) > self.max_keys:
                self._keys.popitem(last=False)
        else:
            self._keys.move_to_end(key)
        if ts > c.last_ts:
            fast = math.exp(-(ts - c.last_ts) / self.window_s)
            slow = math.exp(-(ts - c.last_ts) / self.baseline_s)
            c.fast_n *= fast
            c.fast_neg *= fast
            c.slow_n *= slow
            c.slow_neg *= slow
            c.last_ts = ts
        neg = 1.0 if negative else 0.0
        c.fast_n += 1.0
        c.fast_neg += neg
        baseline = self._baseline_share(c)
        share = c.fast_neg / c.fast_n
        surging = (
            c.fast_n >= self.min_feedback
            and share >= self.min_share
            and share >= self.ratio * baseline
        )
        if c.active and self._calm(c, share, baseline, c.fast_n):
            c.active = False
        if not (surging or c.active):
            c.slow_n += 1.0
            c.slow_neg += neg
        if not surging or c.active:
            return None
        c.active = True
        return FeedbackSurge(service, region, ts, share, baseline, c.fast_n, c.fast_neg)

    def _calm(self, c: _Counts, share: float, baseline: float, recent: float) -> bool:
        # A surge ends once the recent share is well below both thresholds, or once so
        # little feedback is recent that there is no evidence either way.
        low = share < 0.5 * self.min_share and share < 0.5 * self.ratio * baseline
        return low or recent < 0.5 * self.min_feedback

    def negative_share(self, service: str, region: str) -> float | None:
        """Recent negative share of (service, region), as of its latest feedback."""
        c = self._keys.get((service, region))
        return None if c is None or c.fast_n <= 0 else c.fast_neg / c.fast_n

    def is_surging(self, service: str, region: str, now: float | None = None) -> bool:
        """Whether (service, region) is in a surge at ``now`` (default: its latest feedback).

        Without new feedback the recent counts decay, and with them the evidence.
        """
        c = self._keys.get((service, region))
        if c is None or not c.active:
            return False
        if now is None or now <= c.last_ts:
            return True
        recent = c.fast_n * math.exp(-(now - c.last_ts) / self.window_s)
        share = c.fast_neg / c.fast_n if c.fast_n > 0 else 0.0
        if self._calm(c, share, self._baseline_share(c), recent):
            c.active = False
        return c.active

    def evict_idle(self, now: float) -> int:
        """Drop keys without feedback for ``ttl_s``; return how many."""
        idle = [k for k, c in self._keys.items() if now - c.last_ts > self.ttl_s]
        for key in idle:
            del self._keys[key]
        return len(idle)

    def to_state(self) -> dict[str, Any]:
        """JSON-friendly state of every key."""
        return {
            "v": _STATE_VERSION,
            "keys": [
                [s, r, c.fast_n, c.fast_neg, c.slow_n, c.slow_neg, c.last_ts, c.active]
                for (s, r), c in self._keys.items()
            ],
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Replace what is in memory with :meth:`to_state` output."""
        if state.get("v") != _STATE_VERSION:
            raise ValueError(f"unsupported feedback monitor state version {state.get('v')!r}")
        self._keys.clear()
        for s, r, fast_n, fast_neg, slow_n, slow_neg, last_ts, active in state["keys"]:
            c = _Counts(last_ts)
            c.fast_n, c.fast_neg, c.slow_n, c.slow_neg, c.active = (
                fast_n,
                fast_neg,
                slow_n,
                slow_neg,
                active,
            )
            self._keys[(s, r)] = c

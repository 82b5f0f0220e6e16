"""What follows a jump of demand, learned from the jumps a series has already had."""

from __future__ import annotations

import math
from array import array
from collections import OrderedDict, deque
from typing import NamedTuple

__all__ = ["Episode", "SurgeMemory"]


class Episode(NamedTuple):
    """The running episode, as an explanation names it."""

    start_ts: float
    """Event time of the jump."""
    jump: float
    """Demand at the jump."""
    ratio: float
    """The jump as a multiple of the idle level."""
    known: int
    """Finished episodes of its kind the memory holds."""


class SurgeMemory:
    """Demand profiles after past jumps, to size for a surge before it comes.

    Some services see surges that a forecaster of levels and cycles cannot foresee but
    that announce themselves: a batch job or a crawler first sends a trickle two orders of
    magnitude above the idle level, and the flood follows minutes later, too soon for a
    replica asked for once the flood is seen. The memory keeps, per series:

    * an idle **level**, a time-weighted mean of ``log(demand)`` outside episodes (time
      constant ``level_tau_s``);
    * **episodes**: an episode starts at the first observation above ``jump_ratio`` times
      the level and lasts ``window_s``; its profile is the highest demand seen in each
      ``bin_s`` bin after its start (bins with no observation repeat the one before).
      Episodes are filed by the size of their jump (``floor(log2(demand / level))``), so a
      trickle that announces a flood is not mixed with the flood itself;
    * the profiles of the last ``max_episodes`` finished episodes of each kind, for the
      ``max_kinds`` kinds that ended an episode last.

    During an episode whose kind has ``min_episodes`` finished ones, :meth:`forecast` gives
    the ``quantile`` over them of the highest demand in the ``span_s`` after ``horizon_s``
    from the episode's current age: what the past episodes of this kind had
    when a replica asked for now would be ready. Otherwise it gives ``None``, and the
    series' own forecast stands.

    Parameters
    ----------
    jump_ratio
        Demand above this many times the idle level starts an episode.
    window_s
        Length of an episode.
    bin_s
        Resolution of an episode's profile.
    span_s
        Length of the stretch, after the horizon, whose highest demand is forecast.
    quantile
        Quantile over the past episodes of the kind.
    min_episodes
        Finished episodes of the kind needed before a forecast is given.
    max_episodes
        Finished episodes kept per kind (the oldest is forgotten).
    max_kinds
        Kinds of episode kept (the one whose last episode ended first is forgotten).
    level_tau_s
        Time constant of the idle level.

    Notes
    -----
    Memory is bounded: at most ``max_kinds * max_episodes`` profiles of ``window_s /
    bin_s`` doubles plus the running one (with the defaults 256 profiles of 40, about
    80 KiB), and four scalars. A series without jumps holds none; one with a recurring
    pattern a few kinds (13 on the bench trace that has one, 66 KiB).

    Examples
    --------
    A trickle of 1,000 rps from an idle 10 rps, and 2 minutes later a flood of 50,000,
    every hour; once four have been seen, the fifth trickle is enough:

    >>> memory = SurgeMemory()
    >>> def hour(start, memory, probe=None):
    ...     out = []
    ...     for k in range(240):  # an hour at 15 s
    ...         t = start + 15.0 * k
    ...         rps = 10.0 if k < 100 or k > 115 else 1_000.0 if k < 108 else 50_000.0
    ...         memory.learn_one(t, rps)
    ...         if probe is not None and k == probe:
    ...             out.append(memory.forecast(t, horizon_s=60.0))
    ...     return out
    >>> for h in range(4):
    ...     _ = hour(3600.0 * h, memory)
    >>> hour(4 * 3600.0, memory, probe=101)  # one bin into the fifth trickle
    [50000.0]
    >>> memory.episode() is None  # the hour ended idle
    True
    >>> hour(5 * 3600.0, memory, probe=50)  # idle: no episode
    [None]
    """

    def __init__(
        self,
        *,
        jump_ratio: float = 20.0,
        window_s: float = 600.0,
        bin_s: float = 15.0,
        span_s: float = 60.0,
        quantile: float = 0.5,
        min_episodes: int = 4,
        max_episodes: int = 16,
        max_kinds: int = 16,
        level_tau_s: float = 750.0,
    ) -> None:
        if jump_ratio <= 1.0 or bin_s <= 0.0 or window_s < bin_s or span_s < 0.0:
            raise ValueError("need jump_ratio > 1, bin_s > 0, window_s >= bin_s, span_s >= 0")
        if not 0.0 <= quantile <= 1.0 or not 1 <= min_episodes <= max_episodes:
            raise ValueError("need 0 <= quantile <= 1 and 1 <= min_episodes <= max_episodes")
        if max_kinds < 1:
            raise ValueError("need max_kinds >= 1")
        self.jump_ratio = jump_ratio
        self.window_s = window_s
        self.bin_s = bin_s
        self.span_s = span_s
        self.quantile = quantile
        self.min_episodes = min_episodes
        self.max_episodes = max_episodes
        self.max_kinds = max_kinds
        self.level_tau_s = level_tau_s
        self.n_bins = math.ceil(window_s / bin_s)
        self._log_level: float | None = None
        self._last_ts: float | None = None
        # The running episode: start, kind, profile so far.
        self._episode: tuple[float, int, list[float]] | None = None
        self._past: OrderedDict[int, deque[array]] = OrderedDict()

    @property
    def level(self) -> float | None:
        """The idle level (``None`` before a positive demand has been seen)."""
        return None if self._log_level is None else math.exp(self._log_level)

    @property
    def in_episode(self) -> bool:
        """Whether a jump's episode is running."""
        return self._episode is not None

    def episode(self) -> Episode | None:
        """The running episode (``None`` outside one)."""
        if self._episode is None or self._log_level is None:
            return None
        start, kind, profile = self._episode
        jump = profile[0]
        past = self._past.get(kind, ())
        return Episode(start, jump, jump / math.exp(self._log_level), len(past))

    def learn_one(self, ts: float, demand: float) -> None:
        """Learn one observation of demand (rps) at event time ``ts``."""
        last = self._last_ts
        if last is not None and ts <= last:
            return
        self._last_ts = ts
        episode = self._episode
        if episode is not None and ts - episode[0] >= self.window_s:
            self._finish()
            episode = None
        if episode is not None:
            start, _, profile = episode
            lag = int((ts - start) // self.bin_s)
            if lag < len(profile):
                profile[lag] = max(profile[lag], demand)
            else:
                profile.extend([profile[-1]] * (lag - len(profile)))
                profile.append(demand)
            return
        if demand <= 0.0 or not math.isfinite(demand):
            return
        level = self._log_level
        if level is not None and demand > self.jump_ratio * math.exp(level):
            kind = int(math.log2(demand) - level / math.log(2.0))
            self._episode = (ts, kind, [demand])
            return
        log_demand = math.log(demand)
        if level is None or last is None:
            self._log_level = log_demand
        else:
            weight = 1.0 - math.exp(-(ts - last) / self.level_tau_s)
            self._log_level = level + weight * (log_demand - level)

    def _finish(self) -> None:
        assert self._episode is not None
        _, kind, profile = self._episode
        profile.extend([profile[-1]] * (self.n_bins - len(profile)))
        self._kind(kind).append(array("d", profile[: self.n_bins]))
        self._episode = None

    def _kind(self, kind: int) -> deque[array]:
        past = self._past.get(kind)
        if past is None:
            past = self._past[kind] = deque(maxlen=self.max_episodes)
            if len(self._past) > self.max_kinds:
                self._past.popitem(last=False)
        self._past.move_to_end(kind)
        return past

    def forecast(self, ts: float, horizon_s: float) -> float | None:
        """Highest demand expected in the ``span_s`` from ``horizon_s`` after ``ts``,
        from the past episodes of the running one's kind; ``None`` outside an episode or
        before ``min_episodes`` of its kind."""
        episode = self._episode
        if episode is None or ts - episode[0] >= self.window_s:
            return None
        start, kind, _ = episode
        past = self._past.get(kind, ())
        if len(past) < self.min_episodes:
            return None
        lo = int((ts - start + horizon_s) // self.bin_s)
        if lo >= self.n_bins:
            return None
        bins = max(int(self.span_s // self.bin_s), 1)
        hi = min(lo + bins, self.n_bins)
        peaks = sorted(max(profile[lo:hi]) for profile in past)
        return _quantile(peaks, self.quantile)

    def to_state(self) -> dict:
        """JSON-friendly state (hyper-parameters stay as built)."""
        return {
            "log_level": self._log_level,
            "last_ts": self._last_ts,
            "episode": None if self._episode is None else list(self._episode),
            "past": [
                [kind, [profile.tolist() for profile in past]] for kind, past in self._past.items()
            ],
        }

    def load_state(self, state: dict) -> None:
        """Restore what :meth:`to_state` returned."""
        self._log_level = state["log_level"]
        self._last_ts = state["last_ts"]
        episode = state["episode"]
        self._episode = (
            None
            if episode is None
            else (float(episode[0]), int(episode[1]), [float(x) for x in episode[2]])
        )
        self._past = OrderedDict()
        for kind, profiles in state["past"]:
            self._kind(int(kind)).extend(array("d", profile) for profile in profiles)


def _quantile(ordered: list[float], q: float) -> float:
    """Linear-interpolation quantile of a sorted, non-empty list (numpy's default)."""
    pos = q * (len(ordered) - 1)
    below = math.floor(pos)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (pos - below)

"""Online estimate of how long a requested replica takes to become ready."""

from __future__ import annotations

import math
from collections import deque

__all__ = ["StartupDelayEstimator"]


class StartupDelayEstimator:
    """Start-up delay of a replica, learned from the requested and ready counts over time.

    Every observation gives the requested and the ready replica count. A rise of the
    requested count is a request made at the previous observation; a rise of the ready
    count is that many of the oldest outstanding requests becoming ready, each a sample of
    the delay (measured to the observation that shows it, so it errs long by at most one
    sampling interval, the safe side for sizing). A fall of the requested count removes the
    newest outstanding requests first, as a ReplicaSet deletes not-ready pods first. The
    estimate is ``prior`` until the first sample, then the samples' running mean, then
    their exponentially weighted mean (weight ``alpha``).

    Parameters
    ----------
    prior
        Delay assumed before any sample, in seconds.
    alpha
        Weight of a new sample.
    max_pending
        Most outstanding request batches tracked (older ones are forgotten).

    Notes
    -----
    Memory is bounded: at most ``max_pending`` outstanding batches of two numbers, and five
    scalars.

    Examples
    --------
    Replicas that take 90 s, observed every 15 s, with a prior of 30 s:

    >>> est = StartupDelayEstimator(prior=30.0)
    >>> est.delay
    30.0
    >>> est.learn_one(0.0, requested=2, ready=2)
    >>> est.learn_one(15.0, requested=5, ready=2)  # 3 asked for at 0 s
    >>> for ts in range(30, 120, 15):
    ...     est.learn_one(float(ts), requested=5, ready=5 if ts >= 90 else 2)
    >>> est.n_samples, round(est.delay, 1)
    (3, 90.0)
    """

    def __init__(self, prior: float = 180.0, *, alpha: float = 0.1, max_pending: int = 64) -> None:
        if not prior >= 0.0:
            raise ValueError("prior must be >= 0")
        if not 0.0 < alpha <= 1.0:
            raise ValueError("alpha must be in (0, 1]")
        self.prior = prior
        self.alpha = alpha
        self.max_pending = max_pending
        self.delay = float(prior)
        self.n_samples = 0
        self._last: tuple[float, int, int] | None = None
        # Outstanding requests, oldest first: [request time, replicas].
        self._pending: deque[list[float]] = deque(maxlen=max_pending)

    def learn_one(self, ts: float, requested: int, ready: int) -> None:
        """Learn from the counts observed at ``ts``; out-of-order observations are ignored."""
        last = self._last
        if last is not None and ts <= last[0]:
            return
        self._last = (ts, requested, ready)
        if last is None:
            return
        last_ts, _, last_ready = last
        came = ready - last_ready
        pending = self._pending
        while came > 0 and pending:
            batch = pending[0]
            take = min(came, int(batch[1]))
            for _ in range(take):
                self._learn_sample(ts - batch[0])
            batch[1] -= take
            came -= take
            if batch[1] <= 0:
                pending.popleft()
        # What is still starting now, against what is tracked: new requests were made at
        # the last observation; fewer means the newest were cancelled.
        starting = max(requested - ready, 0)
        tracked = int(sum(b[1] for b in pending))
        if starting > tracked:
            pending.append([last_ts, float(starting - tracked)])
        extra = tracked - starting
        while extra > 0 and pending:
            batch = pending[-1]
            take = min(extra, int(batch[1]))
            batch[1] -= take
            extra -= take
            if batch[1] <= 0:
                pending.pop()

    def _learn_sample(self, delay: float) -> None:
        self.n_samples += 1
        # Running mean while young, so that a wrong prior is forgotten at once.
        rate = max(self.alpha, 1.0 / self.n_samples)
        self.delay += rate * (delay - self.delay)

    def horizon(self, step_s: float) -> float:
        """The delay rounded up to whole sampling intervals: the horizon to size for."""
        if step_s <= 0:
            return self.delay
        return math.ceil(self.delay / step_s - 1e-9) * step_s

    def to_state(self) -> dict:
        """JSON-friendly state (hyper-parameters stay as built)."""
        return {
            "delay": self.delay,
            "n": self.n_samples,
            "last": None if self._last is None else list(self._last),
            "pending": [list(b) for b in self._pending],
        }

    def load_state(self, state: dict) -> None:
        """Restore what :meth:`to_state` returned."""
        self.delay = float(state["delay"])
        self.n_samples = int(state["n"])
        last = state["last"]
        self._last = None if last is None else (float(last[0]), int(last[1]), int(last[2]))
        self._pending = deque(
            ([float(t), float(n)] for t, n in state["pending"]), maxlen=self.max_pending
        )

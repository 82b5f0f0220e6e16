"""Online estimate of the throughput one replica sustains at 100 % utilisation."""

from __future__ import annotations

import math

__all__ = ["CapacityEstimator"]


class CapacityEstimator:
    """Capacity of one replica, learned from ``rps / replicas`` at the observed utilisation.

    Each usable sample gives ``c = (rps / replicas) / cpu_util``, the requests per second one
    replica would serve at 100 % utilisation. Samples are averaged in log space with an
    exponentially weighted mean whose per-sample step is clipped (a Huber-like update), so a
    single odd sample (a GC pause, a metrics glitch) moves the estimate by at most a few
    percent. Samples with a tiny utilisation (where the ratio is mostly noise), no replicas
    or no traffic are ignored. Until ``min_samples`` samples have been seen the estimate is
    blended with ``prior`` in proportion to the samples seen.

    Parameters
    ----------
    prior
        Capacity assumed before any sample, or ``None`` to trust the first sample.
    alpha
        Weight of a new sample in the log-space mean.
    max_step
        Largest change of the log estimate one sample can cause (0.05 is about 5 %).
    min_util
        Samples below this utilisation are ignored.
    min_samples
        Number of samples after which the prior no longer counts.

    Notes
    -----
    Memory is constant: three floats and a counter.

    Examples
    --------
    >>> cap = CapacityEstimator(prior=50.0, min_samples=4)
    >>> cap.capacity
    50.0
    >>> for _ in range(200):
    ...     cap.learn_one(rps=400.0, replicas=10, cpu_util=0.5)
    >>> round(cap.capacity, 1)
    80.0
    >>> cap.learn_one(rps=400.0, replicas=10, cpu_util=0.001)  # ignored: tiny utilisation
    >>> cap.n_samples
    200
    """

    def __init__(
        self,
        prior: float | None = None,
        *,
        alpha: float = 0.05,
        max_step: float = 0.05,
        min_util: float = 0.05,
        min_samples: int = 20,
    ) -> None:
        if prior is not None and prior <= 0:
            raise ValueError("prior must be positive")
        self.prior = prior
        self.alpha = alpha
        self.max_step = max_step
        self.min_util = min_util
        self.min_samples = min_samples
        self._log_c: float | None = None
        self.n_samples = 0

    def learn_one(self, rps: float, replicas: float, cpu_util: float) -> None:
        """Learn from one observation (``n_samples`` counts the ones used)."""
        if replicas <= 0 or rps <= 0 or not cpu_util >= self.min_util or math.isinf(cpu_util):
            return
        sample = math.log(rps / replicas / cpu_util)
        self.n_samples += 1
        if self._log_c is None:
            self._log_c = sample
            return
        # Faster averaging while young (1/n), then the fixed weight; the clipped step
        # bounds the influence of any one sample.
        rate = max(self.alpha, 1.0 / self.n_samples)
        step = rate * (sample - self._log_c)
        self._log_c += max(-self.max_step, min(self.max_step, step))

    @property
    def capacity(self) -> float | None:
        """Requests per second one replica serves at 100 % utilisation, or ``None``."""
        if self._log_c is None:
            return self.prior
        learned = math.exp(self._log_c)
        if self.prior is None or self.n_samples >= self.min_samples:
            return learned
        w = self.n_samples / self.min_samples
        return math.exp(w * self._log_c + (1.0 - w) * math.log(self.prior))

    def to_state(self) -> dict:
        """Compact, JSON-friendly state."""
        return {"prior": self.prior, "log_c": self._log_c, "n": self.n_samples}

    def load_state(self, state: dict) -> None:
        """Restore what :meth:`to_state` returned (the hyper-parameters stay as built)."""
        self.prior = state["prior"]
        self._log_c = state["log_c"]
        self.n_samples = state["n"]

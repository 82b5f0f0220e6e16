"""What ``autopilot bench latency`` offers its worker, without a broker."""

from __future__ import annotations

import itertools

import orjson
import pytest

from streams.lab.bench import latency


def test_every_round_offers_the_same_demand_whatever_the_hour(monkeypatch) -> None:
    def demand(now: float) -> list[float]:
        monkeypatch.setattr(latency.time, "time", lambda: now)
        samples = itertools.islice(latency._samples(latency._fleet(6)), 600)
        return [orjson.loads(value)["metrics"]["rps"] for _key, value, _ts, _n in samples]

    tuesday_noon = 1_798_545_600.0
    at_noon = demand(tuesday_noon)
    # The demand of a day's trough and of a weekend are not a Tuesday's afternoon's.
    for later in (9 * 3600.0, 4 * 86_400.0):
        assert demand(tuesday_noon + later) == pytest.approx(at_noon, rel=1e-9)

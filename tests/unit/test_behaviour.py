"""Tenant behaviour: drops and surges against the tenant's own hour-of-week profile."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from models.detect.behaviour import TenantBehaviour
from streams.lab.simulator import _daily, _weekly

MONDAY = 1_704_067_200.0
DAY = 86_400.0


def events(start: float, end: float, per_hour: float, seed: int = 0, factor=None):
    """Poisson event times following the simulator's daily and weekly pattern (UTC+0)."""
    rng = np.random.default_rng(seed)
    t = start
    while t < end:
        step = 60.0
        mult = 1.0 if factor is None else factor(t)
        rate = per_hour * _daily(t, 0.0) * _weekly(t, 0.0) * mult / 3600.0
        for offset in np.sort(rng.uniform(0.0, step, rng.poisson(rate * step))):
            yield float(t + offset)
        t += step


# Two weeks and 13 hours of normal traffic: the tests go on from Monday 13:00 of week 3.
END = MONDAY + 14 * DAY + 13 * 3600


def trained(per_hour: float = 1200.0) -> TenantBehaviour:
    det = TenantBehaviour()
    checked = MONDAY
    for ts in events(MONDAY, END, per_hour):
        assert det.learn_one(ts, "t_1") is None  # normal traffic never alarms
        if ts - checked >= 60.0:  # a check a minute, as the brain does
            checked = ts
            assert det.check(ts) == []
    return det


@pytest.fixture(scope="module")
def two_weeks() -> dict:
    return trained().to_state()


def restore(state: dict) -> TenantBehaviour:
    det = TenantBehaviour()
    det.load_state(orjson.loads(orjson.dumps(state)))
    return det


def test_a_silent_tenant_is_a_drop_within_about_ten_minutes(two_weeks):
    det = restore(two_weeks)
    silent_from = END  # Monday 13:00, near the daily peak
    found = []
    for minute in range(1, 61):
        found += det.check(silent_from + 60.0 * minute)
    assert [a.kind for a in found] == ["drop"]  # one per episode
    a = found[0]
    # The decayed rate (3 min time constant) is below 0.2x after 4.8 minutes, then it must
    # hold for 5 more.
    assert 9 * 60 <= a.ts - silent_from <= 11 * 60
    assert a.ts - a.since_ts >= 300.0
    assert a.observed_per_hour < 0.2 * a.expected_per_hour
    # Expected: the learned Monday 14:00-15:00 rate of 1200 * daily * weekly.
    assert a.expected_per_hour == pytest.approx(1200 * _daily(a.ts, 0.0), rel=0.1)
    evidence = a.to_dict()
    assert evidence["threshold"] == 0.2
    assert evidence["hour_of_week"] == 13


def test_a_partial_drop_is_found_while_events_still_arrive(two_weeks):
    det = restore(two_weeks)
    start = END
    found = [
        a
        for ts in events(start, start + 3600, 1200.0, seed=1, factor=lambda t: 0.1)
        if (a := det.learn_one(ts, "t_1"))
    ]
    assert [a.kind for a in found] == ["drop"]


def test_a_bot_surge_is_found_within_minutes_and_not_learned(two_weeks):
    det = restore(two_weeks)
    start = END
    before = det._tenants["t_1"].profile.counts[13]
    found = []
    for ts in events(start, start + 3600, 1200.0, seed=2, factor=lambda t: 10.0):
        a = det.learn_one(ts, "t_1")
        if a is not None:
            found.append(a)
    assert [a.kind for a in found] == ["surge"]
    assert found[0].ts - start <= 5 * 60
    assert found[0].ratio > 5.0
    det.check(start + 3600 + 60)
    # The surge hour was not learned as the tenant's normal Monday 13:00.
    assert det._tenants["t_1"].profile.counts[13] == before


def test_a_surge_that_ends_and_comes_back_is_two_episodes(two_weeks):
    det = restore(two_weeks)
    start = END

    def bursts(t):
        minute = (t - start) / 60
        return 10.0 if minute < 15 or 45 <= minute < 60 else 1.0

    kinds = [
        a.kind
        for ts in events(start, start + 3600, 1200.0, seed=3, factor=bursts)
        if (a := det.learn_one(ts, "t_1"))
    ]
    assert kinds == ["surge", "surge"]


def test_a_quiet_or_young_tenant_is_not_judged():
    det = TenantBehaviour()  # min_expected_per_hour = 120
    for ts in events(MONDAY, MONDAY + 14 * DAY, 60.0):
        det.learn_one(ts, "t_quiet")
    assert det.check(MONDAY + 14 * DAY + 14 * 3600) == []
    young = TenantBehaviour()
    young.learn_one(MONDAY, "t_new")
    assert young.check(MONDAY + 3 * 3600) == []  # no profile for these hours yet


def test_memory_is_bounded():
    det = TenantBehaviour(max_tenants=2, ttl_s=3600.0)
    for n in range(3):
        det.learn_one(MONDAY + n, f"t_{n}")
    assert list(det) == ["t_1", "t_2"]
    det.learn_one(MONDAY + 7200.0, "t_2")
    assert det.evict_idle(MONDAY + 7200.0) == 1
    assert len(det) == 1


def test_thresholds_are_checked():
    with pytest.raises(ValueError):
        TenantBehaviour(drop_ratio=1.5)

"""Burn-rate alerting against the SRE Workbook's worked numbers (chapter 5, "Alerting on SLOs").

With a 99.9 % SLO the error budget is 0.1 % of requests over 30 days (720 h). A burn rate of
B over a window of W hours spends ``B * W / 720`` of the budget; the Workbook's paging rules
are 14.4x over 1 h (2 % of the budget) and 6x over 6 h (5 %), each confirmed by a short
window of a twelfth of the long one (5 min, 30 min). Its detection time for an error ratio
``e`` is ``(budget / e) * window * factor``.
"""

from __future__ import annotations

import orjson
import pytest

from models.health.slo import DEFAULT_RULES, SLO, BurnRateMonitor, BurnRule

KEY = ("service", "checkout", "eu-west")
HOUR = 3600.0
PER_MIN = 1000  # requests a minute in the batch streams: 1.5 % is 15 of them


def availability() -> BurnRateMonitor:
    return BurnRateMonitor(SLO(target=0.999, latency_ms=None))


def run_minutes(mon, start_s, minutes, bad_per_min, key=KEY):
    """One batch per minute (at mid-minute) of PER_MIN requests, ``bad_per_min`` of them bad.

    Returns the alerts with the minute (from ``start_s``) they fired in.
    """
    fired = []
    for m in range(minutes):
        ts = start_s + 60.0 * m + 30.0
        alerts = mon.learn_one(key, ts, True, w=PER_MIN - bad_per_min)
        if bad_per_min:
            alerts += mon.learn_one(key, ts, False, w=bad_per_min)
        fired += [(a, m) for a in alerts]
    return fired


def test_workbook_rules_spend_2_and_5_percent_of_a_30_day_budget():
    one_hour, six_hours = DEFAULT_RULES
    # 14.4 * 1 h / 720 h = 0.02; 6 * 6 h / 720 h = 0.05
    assert one_hour.budget_fraction(SLO()) == pytest.approx(0.02)
    assert six_hours.budget_fraction(SLO()) == pytest.approx(0.05)
    assert (one_hour.long_s, one_hour.short_s, six_hours.long_s, six_hours.short_s) == (
        3600.0,
        300.0,
        21_600.0,
        1800.0,
    )


def test_one_and_a_half_percent_for_an_hour_fires_the_fast_rule_only():
    mon = availability()
    assert run_minutes(mon, 0.0, 360, 0) == []  # six clean hours fill every window
    fired = run_minutes(mon, 6 * HOUR, 60, 15)
    # 1.5 % / 0.1 % = burn 15 >= 14.4 once enough of the hour is bad: the 1 h window holds
    # 60 minutes, so after m bad minutes its ratio is 1.5 % * m / 60 >= 1.44 % at m = 58.
    # The 6 h window's ratio is at most 1.5 % / 6 = 0.25 %, a burn of 2.5 < 6.
    assert [(a.rule.name, m) for a, m in fired] == [("1h/5m", 57)]
    alert = fired[0][0]
    assert alert.short.burn_rate == pytest.approx(15.0)
    assert alert.long.burn_rate >= 14.4
    # Budget consumed = burn over the hour * 1 h / 720 h, about 2 %.
    assert alert.budget_consumed == pytest.approx(alert.long.burn_rate / 720)
    assert 0.02 <= alert.budget_consumed < 0.021
    assert mon.burn_rate(KEY, HOUR) == pytest.approx(15.0)


def test_one_point_four_percent_for_an_hour_stays_below_14_4x():
    mon = availability()
    run_minutes(mon, 0.0, 360, 0)
    # 1.4 % is a burn of 14 < 14.4 over the hour; over 6 h it is 14 / 6 = 2.3x < 6x.
    assert run_minutes(mon, 6 * HOUR, 60, 14) == []
    assert mon.burn_rate(KEY, HOUR) == pytest.approx(14.0)


def test_point_seven_percent_fires_the_slow_rule_after_five_hours():
    mon = availability()
    run_minutes(mon, 0.0, 360, 0)
    fired = run_minutes(mon, 6 * HOUR, 360, 7)
    # Burn 7: never 14.4x, so the 1 h rule stays quiet. The 6 h rule needs the 6 h ratio at
    # 0.6 %: detection time = (0.1 % / 0.7 %) * 6 h * 6 = 5.14 h (308.6 minutes).
    assert [a.rule.name for a, _ in fired] == ["6h/30m"]
    alert, minute = fired[0]
    assert 305 <= minute <= 310
    assert alert.long.burn_rate == pytest.approx(6.0, abs=0.05)
    assert alert.short.burn_rate == pytest.approx(7.0)
    # 6x over 6 h spends 6 * 6 / 720 = 5 % of the budget.
    assert alert.budget_consumed == pytest.approx(0.05, abs=0.001)


def clean_hours(mon, hours, per_s=20):
    for i in range(int(hours * 3600)):
        mon.learn_one(KEY, float(i), True, w=per_s)


def test_a_full_outage_pages_within_a_minute():
    mon = availability()
    clean_hours(mon, 6)
    fired = []
    t = 6 * HOUR
    while len(fired) < 2:
        fired += [(a, t - 6 * HOUR) for a in mon.learn_one(KEY, t, False)]
        t += 0.05
    # Detection time = (0.1 % / 100 %) * window * factor: 1 h * 14.4 = 51.8 s for the fast
    # rule, 6 h * 6 = 129.6 s for the slow one (a little less here: the newest minute of each
    # long window is still filling, so it holds slightly fewer requests).
    assert [a.rule.name for a, _ in fired] == ["1h/5m", "6h/30m"]
    assert 45.0 <= fired[0][1] <= 52.0
    assert 120.0 <= fired[1][1] <= 130.0


def test_a_short_blip_fires_nothing():
    mon = availability()
    clean_hours(mon, 6)
    start = 6 * HOUR
    alerts = []
    # 30 s of 100 % errors at 20 requests a second: 600 bad requests. The 5 min window burns
    # at about 600 / 6000 / 0.1 % = 100x, but the 1 h window only at 600 / 72000 / 0.1 % =
    # 8.3x < 14.4x (8.4x: its newest minute is half full, 71400 requests), and the 6 h
    # window at 1.4x < 6x: both windows of a rule are needed, so nothing fires.
    for i in range(30):
        alerts += mon.learn_one(KEY, start + i, False, w=20)
    assert mon.burn_rate(KEY, 300) >= 14.4
    assert mon.burn_rate(KEY, HOUR) == pytest.approx(600 / 71_400 / 0.001)
    # 5 % errors for 2 minutes: the 1 h window burns 1.7x. Nothing either.
    for i in range(30, 150):
        alerts += mon.learn_one(KEY, start + i, True, w=19)
        alerts += mon.learn_one(KEY, start + i, False, w=1)
    for i in range(150, 1800):
        alerts += mon.learn_one(KEY, start + i, True, w=20)
    assert alerts == []


def test_an_alert_stops_once_the_short_window_recovers():
    mon = availability()
    clean_hours(mon, 6)
    start = 6 * HOUR
    alerts = []
    for i in range(240):
        alerts += mon.learn_one(KEY, start + i, False, w=20)
    # Four minutes of 100 % errors, 4800 bad requests, spend 9 % of the month's budget: the
    # 1 h window burns 4800 / 72000 / 0.1 % = 66.7x and the 6 h one 11.1x, so both rules page,
    # once each (not once per request).
    assert [a.rule.name for a in alerts] == ["1h/5m", "6h/30m"]
    for i in range(240, 240 + 360):  # six clean minutes
        alerts += mon.learn_one(KEY, start + i, True, w=20)
    # The hour still burns 66.7x, but the last five minutes are clean: the 1 h window alone
    # would page for almost an hour after the incident; the fast rule has reset. The slow
    # rule's 30 min window still holds the errors.
    assert mon.burn_rate(KEY, HOUR) == pytest.approx(4800 / 72_000 / 0.001, rel=0.01)
    assert not mon.is_firing(KEY, 0)
    assert mon.is_firing(KEY, 1)
    # The rule re-arms a short window (5 min) after it last fired, so that a flapping
    # incident is one alert: it fired until the errors left its 5 min window (about 9 min).
    # A new incident after that is a new page of the fast rule; the slow one still fires.
    for i in range(600, 900):
        alerts += mon.learn_one(KEY, start + i, True, w=20)
    for i in range(900, 1000):
        alerts += mon.learn_one(KEY, start + i, False, w=20)
    assert [a.rule.name for a in alerts] == ["1h/5m", "6h/30m", "1h/5m"]


def test_latency_beyond_the_objective_counts_as_bad():
    slo = SLO(target=0.999, latency_ms=300.0)
    assert slo.is_good(True, 300.0)
    assert not slo.is_good(True, 300.1)
    assert not slo.is_good(False, 10.0)
    assert SLO(latency_ms=None).is_good(True, 10_000.0)


def test_a_quiet_key_needs_enough_requests_to_fire():
    mon = availability()
    # Two failures in three requests is a 667x burn, but a handful of requests is no evidence.
    alerts = [mon.learn_one(KEY, float(t), t != 1) for t in range(3)]
    assert alerts == [[], [], []]
    assert mon.effective_burn(KEY) == 0.0


def test_a_new_key_counts_its_missing_history_as_good():
    mon = availability()
    # One failure among the first 25 requests is a 4 % error ratio, 40x the budget, but over
    # 25 seconds of history: extrapolated to the hour at the same request rate it is a burn
    # of 40 * 25 / 3600 = 0.28.
    alerts = [mon.learn_one(KEY, float(t), t != 3) for t in range(25)]
    assert alerts == [[]] * 25
    stats = mon.window(KEY, 3600)
    assert (stats.error_ratio, stats.covered_s) == (pytest.approx(0.04), 24.0)
    assert stats.burn_rate == pytest.approx(40 * 24 / 3600)
    # A full outage of a brand-new key still pages after the Workbook's 51.8 s.
    fresh = availability()
    fired = [t for t in range(120) if fresh.learn_one(KEY, float(t), False, w=20)]
    assert fired[0] in (51, 52)


def test_each_key_may_have_its_own_objective():
    mon = availability()
    loose = SLO(target=0.99, latency_ms=None)
    for t in range(3600):
        mon.learn_one(("service", "checkout", "x"), float(t), t % 50 != 0, w=1, slo=loose)
        mon.learn_one(KEY, float(t), t % 50 != 0)
    # 2 % bad: a burn of 2 against a 1 % budget, 20 against the default 0.1 %.
    assert mon.burn_rate(("service", "checkout", "x"), HOUR) == pytest.approx(2.0, rel=1e-3)
    assert mon.burn_rate(KEY, HOUR) == pytest.approx(20.0, rel=1e-3)
    assert mon.slo_of(("service", "checkout", "x")) == loose


def test_late_requests_land_in_their_minute_and_stale_ones_are_dropped():
    mon = availability()
    mon.learn_one(KEY, 10_000.0, True, w=100)
    mon.learn_one(KEY, 10_000.0 - 240.0, False, w=5)  # four minutes late: in the 5 min window
    assert mon.window(KEY, 300).total == 105
    assert mon.window(KEY, 300).good == 100
    mon.learn_one(KEY, 10_000.0 - 7 * HOUR, False, w=50)  # older than every window: dropped
    assert mon.window(KEY, 21_600).total == 105
    # A gap longer than the longest window empties every window.
    mon.learn_one(KEY, 10_000.0 + 7 * HOUR, True)
    assert mon.window(KEY, 21_600).total == 1


def test_windows_slide_in_event_time():
    mon = availability()
    mon.learn_one(KEY, 0.0, False, w=10)
    mon.learn_one(KEY, 400.0, True, w=10)  # the first minute has left the 5 min window
    assert (mon.window(KEY, 300).total, mon.window(KEY, 3600).total) == (10, 20)
    mon.learn_one(KEY, 3700.0, True)  # and now the 1 h window
    assert mon.window(KEY, 3600).total == 11
    assert mon.window(KEY, 21_600).total == 21


def test_rules_must_fit_the_buckets():
    with pytest.raises(ValueError):
        BurnRateMonitor(rules=[BurnRule("odd", 3600, 90, 10.0)])
    with pytest.raises(ValueError):
        BurnRule("backwards", 300, 3600, 14.4)
    with pytest.raises(ValueError):
        SLO(target=1.0)


def test_state_round_trip_keeps_windows_and_alert_state():
    mon = availability()
    clean_hours(mon, 1)
    first = []
    for i in range(120):
        first += mon.learn_one(KEY, HOUR + i, False, w=20)
    assert [a.rule.name for a in first] == ["1h/5m"]
    state = orjson.loads(orjson.dumps(mon.to_state()))
    restored = availability()
    restored.load_state(state)
    assert restored.window(KEY, 3600) == mon.window(KEY, 3600)
    # Still firing after the restore: no second alert for the same incident.
    assert restored.learn_one(KEY, HOUR + 121, False, w=20) == []
    assert restored.learn_one(KEY, HOUR + 121, False, w=20) == mon.learn_one(
        KEY, HOUR + 121, False, w=20
    )
    with pytest.raises(ValueError):
        BurnRateMonitor(rules=DEFAULT_RULES[:1]).load_state(state)


def test_memory_is_bounded_by_key_cap_and_idle_eviction():
    mon = BurnRateMonitor(max_keys=3, ttl_s=600.0)
    for n in range(5):
        mon.learn_one(("tenant", f"t_{n}"), float(n), True)
    assert len(mon) == 3
    assert ("tenant", "t_0") not in mon
    mon.learn_one(("tenant", "t_4"), 1000.0, True)
    assert mon.evict_idle(1000.0) == 2
    assert list(mon) == [("tenant", "t_4")]


def test_a_quiet_service_needs_enough_failures_to_page_again():
    # A request every 3 s: 20 % bad for ten minutes, then clean but for three failures in
    # the last five minutes while the hour still holds the incident. Three failures in a
    # hundred requests read as 30x; they are no incident.
    def pages(mon):
        fired = []
        for i in range(900):
            good = i % 5 != 0 if i < 200 else i not in (820, 840, 860)
            fired += [round(a.ts) for a in mon.learn_one(KEY, i * 3.0, good)]
        return fired

    assert len(pages(availability())) == 1 and pages(availability())[0] < 600
    by_ratio = BurnRateMonitor(SLO(target=0.999, latency_ms=None), min_bad=0)
    assert len(pages(by_ratio)) == 2

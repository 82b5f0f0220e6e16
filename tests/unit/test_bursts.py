"""Burst detection per (template, service, region): one event per burst, on the rising edge."""

import json

import pytest

from models.detect.bursts import BurstDetector


def feed(det, times, key=("t1", "checkout", "eu-west")):
    return [b for ts in times if (b := det.learn_one(*key, ts))]


def steady(start, end, every):
    n = int((end - start) / every)
    return [start + i * every for i in range(n)]


def test_one_burst_on_the_rising_edge_not_one_per_error():
    det = BurstDetector()
    assert feed(det, steady(0, 1800, 30)) == []  # background: one error every 30 s
    bursts = feed(det, steady(1800, 1860, 0.05))  # 20 errors/s for a minute
    assert len(bursts) == 1
    b = bursts[0]
    assert 1800 < b.ts < 1801
    assert b.rate >= 5 * b.baseline
    assert (b.template_id, b.service, b.region) == ("t1", "checkout", "eu-west")
    assert b.first_seen_ts == 0


def test_a_steady_rate_is_never_a_burst_even_a_high_one():
    det = BurstDetector()
    assert feed(det, steady(0, 600, 1.0)) == []  # 1/s from the start: that is the baseline


def test_a_brand_new_template_flooding_is_a_burst():
    det = BurstDetector()
    feed(det, steady(0, 600, 30), key=("old", "checkout", "eu-west"))
    bursts = feed(det, steady(600, 610, 0.1), key=("new", "checkout", "eu-west"))
    assert len(bursts) == 1
    assert bursts[0].first_seen_ts == 600


def test_a_few_errors_of_a_rare_template_are_not_a_burst():
    det = BurstDetector(min_count=10)
    feed(det, steady(0, 600, 60), key=("other", "s", "r"))
    assert feed(det, [600.0, 600.1, 600.2, 600.3, 600.4]) == []


def test_bursts_after_a_quiet_spell_fire_again_but_a_flicker_does_not():
    det = BurstDetector()
    feed(det, steady(0, 1800, 60))
    first = feed(det, steady(1800, 1830, 0.1))
    # The rate dips but stays within the hysteresis band: the same burst goes on.
    flicker = feed(det, steady(1830, 1840, 0.3)) + feed(det, steady(1840, 1850, 0.1))
    # Quiet for ten minutes, then a second burst.
    second = feed(det, steady(2450, 2480, 0.05))
    assert len(first) == 1 and flicker == [] and len(second) == 1
    assert det.is_bursting("t1", "checkout", "eu-west", 2480)
    assert not det.is_bursting("t1", "checkout", "eu-west", 3000)


def test_keys_are_independent():
    det = BurstDetector()
    feed(det, steady(0, 600, 60), key=("t1", "checkout", "eu-west"))
    feed(det, steady(0, 600, 60), key=("t1", "checkout", "us-east"))
    a = feed(det, steady(600, 610, 0.05), key=("t1", "checkout", "eu-west"))
    rate_other, _ = det.rate("t1", "checkout", "us-east", 610)
    assert len(a) == 1 and rate_other < 0.1
    assert det.rate("nope", "x", "y", 610) == (0.0, 0.0)


def test_out_of_order_events_count_at_the_latest_time():
    det = BurstDetector()
    feed(det, steady(0, 600, 60))
    times = [600 + i * 0.05 for i in range(40)]
    times[10], times[11] = times[11], times[10]
    assert len(feed(det, times)) == 1


def test_idle_keys_expire_and_the_key_count_is_capped():
    det = BurstDetector(ttl_s=100, max_keys=3)
    det.learn_one("a", "s", "r", 0.0)
    det.learn_one("b", "s", "r", 70.0)
    det.learn_one("c", "s", "r", 160.0)  # "a" is idle for more than 100 s
    assert len(det) == 2
    for i, name in enumerate("defg"):
        det.learn_one(name, "s", "r", 170.0 + i)
    assert len(det) == 3
    assert det.rate("c", "s", "r", 175.0) == (0.0, 0.0)  # the least recently seen went first


def test_state_round_trip_keeps_baselines_and_open_bursts():
    det = BurstDetector()
    feed(det, steady(0, 1800, 30))
    assert len(feed(det, steady(1800, 1810, 0.05))) == 1
    restored = BurstDetector.from_state(json.loads(json.dumps(det.to_state())))
    assert restored.rate("t1", "checkout", "eu-west", 1810) == det.rate(
        "t1", "checkout", "eu-west", 1810
    )
    # The burst is still open after the restart: no second event for it.
    assert feed(restored, steady(1810, 1820, 0.05)) == []
    with pytest.raises(ValueError, match="version"):
        BurstDetector.from_state({"version": 0})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fast_window_s": 0},
        {"fast_window_s": 60, "slow_window_s": 30},
        {"ratio": 1},
        {"min_count": 0},
    ],
)
def test_bad_parameters_are_refused(kwargs):
    with pytest.raises(ValueError):
        BurstDetector(**kwargs)

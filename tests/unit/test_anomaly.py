"""Behaviour of the streaming anomaly detector and of the per-key detector bank."""

from __future__ import annotations

import dataclasses
import json
import math
import pickle
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.detect.anomaly import (
    DEFAULT_DETECTOR_CONFIG,
    KINDS,
    AnomalyScore,
    DetectorConfig,
    SeriesDetector,
)
from models.detect.bank import DetectorBank, deep_sizeof

DAY = 86_400.0
START = 1_700_000_000.0  # not midnight, so the cycle's phase at the start is arbitrary
ONSET_DAY = 3  # anomalies start once the profile has seen a few days


def daily_cycle(ts: float) -> float:
    """A daily cycle with a second harmonic, like a web service's CPU."""
    phase = 2 * math.pi * ts / DAY
    return 50 + 20 * math.sin(phase) + 6 * math.sin(2 * phase + 1)


def clean_series(days: float, step: float, seed: int, noise: float = 1.0):
    rng = random.Random(seed)
    for i in range(int(days * DAY / step)):
        ts = START + i * step
        yield ts, daily_cycle(ts) + rng.gauss(0, noise)


def run(detector: SeriesDetector, series) -> list[AnomalyScore]:
    return [detector.update(ts, x) for ts, x in series]


def flagged_offsets(results: list[AnomalyScore], onset: int) -> list[int]:
    return [i - onset for i, r in enumerate(results) if r.is_anomaly]


def with_anomaly(kind: str, seed: int, step: float = 300.0, after: int = 200):
    """A clean cycle with an anomaly of ``kind`` from sample ``onset`` on, a few days in."""
    rng = random.Random(1000 + seed)
    onset = int(ONSET_DAY * DAY / step) + 37
    series = list(clean_series(ONSET_DAY + 1, step, seed))[: onset + after]
    stuck = series[onset - 1][1]
    out = []
    for i, (ts, x) in enumerate(series):
        if i >= onset:
            if kind == "level_shift" or (kind == "spike" and i == onset):
                x += 15
            elif kind == "variance":
                x += rng.gauss(0, 5)
            elif kind == "flat_line":
                x = stuck
        out.append((ts, x))
    return out, onset


@pytest.mark.parametrize("step", [60.0, 300.0])
@pytest.mark.parametrize("seed", range(3))
def test_clean_daily_cycle_never_alarms_after_warmup(step, seed):
    results = run(SeriesDetector(), clean_series(5, step, seed))
    assert [i for i, r in enumerate(results) if r.is_anomaly] == []
    assert max(r.score for r in results) < DEFAULT_DETECTOR_CONFIG.threshold


@pytest.mark.parametrize("seed", range(3))
def test_a_densely_sampled_clean_cycle_raises_no_level_shift(seed):
    # A day at 5-second samples is 17,280 values: at the height set for 5-minute samples the
    # CUSUM would cross it by chance; it gets a height for its own sampling rate.
    results = run(SeriesDetector(), clean_series(1, 5.0, seed))
    assert [i for i, r in enumerate(results) if r.is_anomaly and r.kind == "level_shift"] == []
    detector = SeriesDetector(DetectorConfig(refractory=0))
    assert run(detector, clean_series(0.1, 5.0, seed))[-1].warming_up is False
    assert detector.to_state()["cusum_height"] == pytest.approx(
        DEFAULT_DETECTOR_CONFIG.cusum_h + math.log(300.0 / 5.0) / 2
    )


def test_no_alarm_and_zero_score_during_warmup():
    config = DetectorConfig(warmup=50)
    detector = SeriesDetector(config)
    # Wild values right from the start: nothing is known yet, so nothing is flagged.
    values = [0, 1e6, -1e6, 5, 5, 5, 5, 5, 5, 5, 1e9] * 4
    results = [detector.update(START + 60 * i, float(x)) for i, x in enumerate(values)]
    assert all(r.warming_up and not r.is_anomaly and r.score == 0.0 for r in results)
    assert detector.n_learned == len(values) < config.warmup


@pytest.mark.parametrize("seed", range(3))
def test_spike_is_flagged_at_once_and_only_once(seed):
    series, onset = with_anomaly("spike", seed)
    results = run(SeriesDetector(), series)
    assert flagged_offsets(results, onset) == [0]
    assert results[onset].kind == "spike"
    assert results[onset].deviation == pytest.approx(15, abs=4)


@pytest.mark.parametrize("seed", range(3))
def test_level_shift_is_flagged_then_adopted(seed):
    series, onset = with_anomaly("level_shift", seed)
    results = run(SeriesDetector(), series)
    offsets = flagged_offsets(results, onset)
    assert offsets, "the shift was not flagged"
    assert offsets[0] <= 1
    # It stops alarming within a few samples and keeps quiet at the new level.
    assert max(offsets) <= 5
    assert "level_shift" in {results[onset + i].kind for i in offsets}
    assert abs(results[-1].deviation) < 4


@pytest.mark.parametrize("seed", range(3))
def test_variance_increase_is_flagged(seed):
    series, onset = with_anomaly("variance", seed)
    offsets = flagged_offsets(run(SeriesDetector(), series), onset)
    # Noise five times larger is flagged within two hours of 5-minute samples, usually at once.
    assert offsets and 0 <= offsets[0] <= 25


@pytest.mark.parametrize("seed", range(3))
def test_flat_line_is_flagged_once(seed):
    series, onset = with_anomaly("flat_line", seed)
    results = run(SeriesDetector(), series)
    offsets = flagged_offsets(results, onset)
    assert len(offsets) == 1 and 3 <= offsets[0] <= 10
    assert results[onset + offsets[0]].kind == "flat_line"


def spikes_at(offsets: list[int], seed: int = 0) -> tuple[list[tuple[float, float]], int]:
    """A clean 5-minute cycle with spikes of +15 at ``offsets`` after a few days."""
    series, onset = with_anomaly("spike", seed, after=400)
    series = [(ts, x - 15 if i == onset else x) for i, (ts, x) in enumerate(series)]
    for offset in offsets:
        ts, x = series[onset + offset]
        series[onset + offset] = (ts, x + 15)
    return series, onset


@pytest.mark.parametrize("seed", range(3))
def test_refractory_period_gives_one_alarm_per_incident(seed):
    refractory = DEFAULT_DETECTOR_CONFIG.refractory
    series, onset = spikes_at([0, 30, refractory - 1, refractory + 50], seed)
    offsets = flagged_offsets(run(SeriesDetector(), series), onset)
    # The spikes 30 and refractory - 1 values later are part of the incident; the last is new.
    assert offsets == [0, refractory + 50]
    without = flagged_offsets(run(SeriesDetector(DetectorConfig(refractory=0)), series), onset)
    assert without == [0, 30, refractory - 1, refractory + 50]


def test_value_right_after_a_flag_may_confirm_it_then_the_incident_is_quiet():
    series, onset = with_anomaly("spike", 0, after=300)
    # A jump of 40 sigmas that lasts: flagged twice in a row (the worker's episodes need two),
    # then held for the rest of the refractory period although the series stays up.
    series = [(ts, x + 40 if i >= onset else x) for i, (ts, x) in enumerate(series)]
    results = run(SeriesDetector(), series)
    offsets = flagged_offsets(results, onset)
    assert offsets[:2] == [0, 1]
    assert all(o >= DEFAULT_DETECTOR_CONFIG.refractory for o in offsets[2:])
    held = results[onset + 2 : onset + DEFAULT_DETECTOR_CONFIG.refractory]
    assert all(r.score == 0.0 and not r.is_anomaly for r in held)


def test_quantised_series_with_usual_repeats_does_not_alarm():
    rng = random.Random(5)
    detector = SeriesDetector()
    # Mostly idle with the same reading repeated in short runs, like a rounded CPU metric.
    values = [round(0.1 + abs(rng.gauss(0, 0.01)), 2) for _ in range(3000)]
    results = [detector.update(START + 300 * i, x) for i, x in enumerate(values)]
    assert not any(r.is_anomaly and r.kind == "flat_line" for r in results)


def test_bursty_series_adapts_to_its_usual_bursts():
    rng = random.Random(11)
    detector = SeriesDetector()
    flags_by_day = []
    for day in range(6):
        flags = 0
        for i in range(288):
            burst = rng.random() < 0.05
            x = rng.uniform(1e7, 2e8) if burst else 0.0
            flags += detector.update(START + (day * 288 + i) * 300, x).is_anomaly
        flags_by_day.append(flags)
    # Bursts are the norm here: after a first day of surprise they are not flagged.
    assert sum(flags_by_day[2:]) <= 2


def test_daily_recurring_spike_is_learned():
    rng = random.Random(3)
    detector = SeriesDetector()
    flags_by_day = []
    for day in range(8):
        flags = 0
        for i in range(288):
            ts = START + (day * 288 + i) * 300
            x = 0.13 + rng.gauss(0, 0.01) + (1.4 if i == 100 else 0.0)
            flags += detector.update(ts, x).is_anomaly
        flags_by_day.append(flags)
    assert sum(flags_by_day[5:]) == 0


def test_seasonal_profile_is_time_based_not_sample_based():
    """The same cycle sampled every 10 s or every 5 min teaches the same daily profile."""
    fine, coarse = SeriesDetector(), SeriesDetector()
    for ts, x in clean_series(4, 10.0, 0, noise=0.5):
        fine.update(ts, x)
    for ts, x in clean_series(4, 300.0, 0, noise=0.5):
        coarse.update(ts, x)
    # After a 9-hour gap the short-term level knows nothing: only the profile can tell.
    ts = START + 4 * DAY + 9 * 3600
    assert abs(daily_cycle(ts) - daily_cycle(START + 4 * DAY)) > 20
    expected = [d.update(ts, daily_cycle(ts)).expected for d in (fine, coarse)]
    assert expected[0] == pytest.approx(expected[1], abs=1.5)
    assert all(abs(e - daily_cycle(ts)) < 7 for e in expected)


def test_score_one_does_not_learn_and_matches_update():
    detector = SeriesDetector()
    for ts, x in clean_series(1, 300.0, 0):
        detector.learn_one({"ts": ts, "value": x})
    state = detector.to_state()
    ts = START + DAY
    score = detector.score_one({"ts": ts, "value": 80.0})
    assert detector.to_state() == state
    assert detector.update(ts, 80.0).score == score


def test_evidence_fields():
    series = list(clean_series(2, 300.0, 0))
    results = run(SeriesDetector(), series)
    last = results[-1]
    assert last.kind in KINDS
    assert last.threshold == DEFAULT_DETECTOR_CONFIG.threshold
    assert not last.warming_up and results[0].warming_up
    assert 0 < last.spread < 5
    assert last.expected + last.deviation == pytest.approx(series[-1][1])
    assert abs(last.deviation) < 5


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_rejected(bad):
    detector = SeriesDetector()
    with pytest.raises(ValueError):
        detector.update(START, bad)
    with pytest.raises(ValueError):
        detector.score_one({"ts": bad, "value": 1.0})
    assert detector.n_learned == 0


@pytest.mark.parametrize(
    "change",
    [
        {"warmup": -1},
        {"z_threshold": 0},
        {"variance_ratio": 1.0},
        {"threshold": 1.0},
        {"refractory": -1},
    ],
)
def test_invalid_config_is_rejected(change):
    with pytest.raises(ValueError):
        DetectorConfig(**change)


finite = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(finite, min_size=1, max_size=120),
    step=st.floats(min_value=0.0, max_value=1e5),
    warmup=st.integers(min_value=0, max_value=20),
)
def test_scores_are_finite_and_in_unit_interval(values, step, warmup):
    detector = SeriesDetector(DetectorConfig(warmup=warmup))
    for i, x in enumerate(values):
        result = detector.update(START + i * step, x)
        assert 0.0 <= result.score <= 1.0
        for name in ("expected", "deviation", "spread"):
            assert math.isfinite(getattr(result, name)), name


@settings(max_examples=30, deadline=None)
@given(value=finite, n=st.integers(min_value=1, max_value=300))
def test_constant_series_scores_zero_after_warmup(value, n):
    detector = SeriesDetector(DetectorConfig(warmup=0))
    results = [detector.update(START + 60 * i, value) for i in range(n)]
    assert all(math.isfinite(r.score) and 0.0 <= r.score <= 1.0 for r in results)
    assert all(r.kind != "spike" or not r.is_anomaly for r in results)


def test_memory_is_bounded_and_small():
    detector = SeriesDetector()
    size_at_start = deep_sizeof(detector, exclude=(detector.config,))
    rng = random.Random(0)
    for i in range(5000):
        detector.update(START + 300 * i, rng.gauss(0, 1) * (1000 if i % 97 == 0 else 1))
    size = deep_sizeof(detector, exclude=(detector.config,))
    assert size <= 32 * 1024
    # Floats replacing the initial small ints and shared zeros is all that may grow.
    assert size - size_at_start < 1024


def feed_half(detector: SeriesDetector) -> list[tuple[float, float]]:
    series, _ = with_anomaly("level_shift", seed=0)
    half = len(series) // 2
    run(detector, series[:half])
    return series[half:]


def test_state_round_trip_through_json_gives_identical_scores():
    original = SeriesDetector()
    rest = feed_half(original)
    restored = SeriesDetector.from_state(json.loads(json.dumps(original.to_state())))
    assert run(restored, rest) == run(original, rest)


def test_pickle_round_trip_gives_identical_scores():
    config = dataclasses.replace(DEFAULT_DETECTOR_CONFIG, z_threshold=5.0)
    original = SeriesDetector(config)
    rest = feed_half(original)
    restored = pickle.loads(pickle.dumps(original))
    assert restored.config == config
    assert run(restored, rest) == run(original, rest)


def test_state_of_version_2_is_upgraded_out_of_any_refractory_period():
    original = SeriesDetector()
    rest = feed_half(original)
    state = original.to_state()
    assert state["alarm_age"] == DEFAULT_DETECTOR_CONFIG.refractory  # the shift is long past
    old = {k: v for k, v in state.items() if k != "alarm_age"} | {"v": 2}
    assert run(SeriesDetector.from_state(old), rest) == run(original, rest)


def test_state_from_another_version_or_shape_is_rejected():
    state = SeriesDetector().to_state()
    with pytest.raises(ValueError):
        SeriesDetector.from_state({**state, "v": 0})
    with pytest.raises(ValueError):
        SeriesDetector.from_state(state, DetectorConfig(season_slots=24))


def test_bank_creates_detectors_per_key():
    bank = DetectorBank()
    keys = [("api", "eu", "cpu"), ("api", "us", "cpu"), ("db", "eu", "latency")]
    for i in range(30):
        for key in keys:
            result = bank.update(key, START + 60 * i, 10.0 + i % 3)
            assert isinstance(result, AnomalyScore)
    assert len(bank) == 3 and set(bank) == set(keys)
    assert all(bank.get(key).n_learned == 30 for key in keys)


def test_bank_evicts_idle_keys_by_event_time():
    bank = DetectorBank(ttl=3600.0)
    bank.update("quiet", START, 1.0)
    bank.update("busy", START, 1.0)
    bank.update("busy", START + 3000, 1.0)
    assert bank.evict_idle(now=START + 3599) == 0
    assert bank.evict_idle(now=START + 3601) == 1
    assert list(bank) == ["busy"]
    # Without ``now`` the largest event time seen is used.
    bank.update("late", START + 9000, 1.0)
    assert bank.watermark == START + 9000
    assert bank.evict_idle() == 1
    assert list(bank) == ["late"]


def test_bank_caps_keys_with_lru_eviction():
    bank = DetectorBank(max_keys=3)
    for key in "abc":
        bank.update(key, START, 1.0)
    bank.update("a", START + 1, 1.0)  # "b" is now the least recently updated
    bank.update("d", START + 2, 1.0)
    assert len(bank) == 3
    assert "b" not in bank and set(bank) == {"a", "c", "d"}


def test_bank_checkpoint_and_restore():
    bank = DetectorBank()
    series, _ = with_anomaly("spike", seed=1)
    half = len(series) // 2
    for ts, x in series[:half]:
        bank.update("k", ts, x)
    state = json.loads(json.dumps(bank.state_of("k")))
    assert bank.state_of("missing") is None

    restarted = DetectorBank()
    restarted.restore("k", state)
    tail = series[half:]
    assert [restarted.update("k", ts, x) for ts, x in tail] == [
        bank.update("k", ts, x) for ts, x in tail
    ]


def test_bank_approx_bytes_grows_with_keys():
    bank = DetectorBank()
    assert bank.approx_bytes() > 0
    for key in range(10):
        for i in range(50):
            bank.update(key, START + 60 * i, float(i % 7))
    per_key = bank.approx_bytes() / len(bank)
    assert 1000 < per_key <= 32 * 1024


def test_bank_rejects_non_finite_values_without_creating_a_key():
    bank = DetectorBank()
    with pytest.raises(ValueError):
        bank.update("k", START, math.nan)
    assert len(bank) == 0


def test_bank_rejects_bad_limits():
    with pytest.raises(ValueError):
        DetectorBank(ttl=0)
    with pytest.raises(ValueError):
        DetectorBank(max_keys=0)

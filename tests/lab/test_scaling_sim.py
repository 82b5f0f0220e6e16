"""The simulated service, the trace loader and the scaling bench."""

import math
import random

import pytest

from streams.lab.bench.scaling import (
    capacity_for_trace,
    format_bench_scaling,
    load_trace,
    run_bench_scaling,
    simulate,
)

MONDAY = 4 * 86_400.0


def morning_ramp_trace(days=4, seed=0, noise=0.2):
    """5-minute samples: 100 rps at night, a 15-minute ramp to 1000 at 07:00, evening decline."""
    rng = random.Random(seed)
    out = []
    for i in range(int(days * 288)):
        ts = MONDAY + i * 300.0
        hour = (ts % 86_400) / 3600
        if hour < 7:
            level = 100.0
        elif hour < 7.25:
            level = 100 + 900 * (hour - 7) / 0.25
        elif hour < 18:
            level = 1000.0
        elif hour < 21:
            level = 1000 - 900 * (hour - 18) / 3
        else:
            level = 100.0
        out.append((ts, level * (1 + rng.gauss(0, noise))))
    return out


def test_predictive_beats_hpa_on_a_daily_cycle_with_a_steep_morning_ramp():
    trace = morning_ramp_trace()
    capacity = capacity_for_trace(trace)
    hpa = simulate(trace, "hpa", capacity_per_replica=capacity)
    pred = simulate(trace, "predictive", capacity_per_replica=capacity)
    assert hpa.violation_minutes > 0
    assert pred.violation_minutes < hpa.violation_minutes
    assert pred.replica_hours <= hpa.replica_hours
    assert pred.forecast_mape is not None and pred.forecast_mape < 25
    assert hpa.forecast_mape is None


def test_constant_demand_has_no_violations_and_steady_cost():
    trace = [(float(t), 290.0) for t in range(0, 6 * 3600 + 1, 300)]
    hpa = simulate(trace, "hpa", capacity_per_replica=100.0, target_utilisation=0.6)
    # ceil(290 / 60) = 5 replicas for six hours.
    assert (hpa.violation_minutes, hpa.scaling_actions) == (0, 0)
    assert hpa.replica_hours == pytest.approx(30.0, abs=0.05)  # one step counts past 6 h
    pred = simulate(trace, "predictive", capacity_per_replica=100.0, target_utilisation=0.6)
    # A young forecaster has a wide interval and starts cautious, then settles on 5.
    assert pred.violation_minutes == 0
    assert pred.replica_hours < 34.0
    assert pred.scaling_actions <= 2


def test_new_replicas_serve_only_after_the_startup_delay():
    # A step from 100 to 400 rps: the HPA needs the full start-up delay to catch up.
    trace = [(0.0, 100.0), (3600.0, 100.0), (3601.0, 400.0), (7200.0, 400.0)]
    res = simulate(trace, "hpa", capacity_per_replica=100.0, startup_delay_s=180.0)
    assert res.violation_minutes == pytest.approx(3.0, abs=0.5)
    slow = simulate(trace, "hpa", capacity_per_replica=100.0, startup_delay_s=600.0)
    assert slow.violation_minutes == pytest.approx(10.0, abs=0.5)


def test_capacity_for_trace_sizes_the_peak():
    trace = [(float(i), float(i % 100)) for i in range(10_000)]
    capacity = capacity_for_trace(trace, replicas_at_peak=20, target_utilisation=0.5)
    peak = 98.0  # the 99th percentile
    assert math.ceil(peak / (capacity * 0.5)) == 20


def test_load_trace_formats(tmp_path):
    nab = tmp_path / "nab.csv"
    nab.write_text("timestamp,value\n2014-02-14 14:35:00,2\n2014-02-14 14:30:00,1\n")
    assert load_trace(nab) == [(1392388200.0, 1.0), (1392388500.0, 2.0)]
    rfc = tmp_path / "rfc.csv"
    rfc.write_text("2014-02-14T14:30:00Z,1\n2014-02-14T15:30:00+01:00,3\n")
    assert load_trace(rfc) == [(1392388200.0, 2.0)]  # same instant: averaged
    epoch = tmp_path / "epoch.csv"
    epoch.write_text("ts,value\n100,5\n200,x\n300,7\n")
    assert load_trace(epoch) == [(100.0, 5.0), (300.0, 7.0)]


def test_bench_reports_the_three_policies_and_the_flags(tmp_path):
    path = tmp_path / "ramp.csv"
    rows = ["timestamp,value"] + [f"{int(ts)},{v:.3f}" for ts, v in morning_ramp_trace(days=2)]
    path.write_text("\n".join(rows))
    result = run_bench_scaling([path], targets=(0.6, 0.8))
    tr = result["traces"]["ramp.csv"]
    assert set(tr["default"]) == {"hpa", "predictive", "oracle"}
    assert [r["target_utilisation"] for r in tr["sweep"]["hpa"]] == [0.6, 0.8]
    assert isinstance(tr["predictive_beats_hpa_at_default"], bool)
    assert isinstance(tr["predictive_never_dominated"], bool)
    assert result["all_pass"] == (
        tr["predictive_beats_hpa_at_default"] and tr["predictive_never_dominated"]
    )
    # The oracle meets the target throughout, and the ratios behind the limit flag.
    pred, hpa, oracle = (tr["default"][n] for n in ("predictive", "hpa", "oracle"))
    assert oracle["violation_minutes"] == 0
    assert tr["violation_share_of_hpa"] == pred["violation_minutes"] / hpa["violation_minutes"]
    assert tr["replica_hours_to_oracle"] == pred["replica_hours"] / oracle["replica_hours"]
    assert tr["predictive_near_limit"] == (
        tr["violation_share_of_hpa"] <= 0.25
        and pred["replica_hours"] <= hpa["replica_hours"]
        and tr["replica_hours_to_oracle"] <= 1.1
    )
    assert result["all_near_limit"] == tr["predictive_near_limit"]
    # The predictive policy started from a 60 s prior and learned the simulated 180 s.
    assert result["config"]["startup_prior_s"] == 60.0
    assert pred["extra"]["startup_delay_learned_s"] == 180.0
    text = format_bench_scaling(result)
    assert "ramp.csv" in text and "violation min" in text and "replica-h" in text
    assert "oracle" in text and "start-up delay learned: 180 s" in text


def test_the_oracle_requests_the_peak_of_the_next_startup_delay():
    # 100 rps, a 10-minute burst of 1000 at 1 h, then 100 again; 100 rps per replica at 100 %.
    trace = [(0.0, 100.0), (3600.0, 100.0), (3601.0, 1000.0), (4200.0, 1000.0),
             (4201.0, 100.0), (7200.0, 100.0)]  # fmt: skip
    res = simulate(trace, "oracle", capacity_per_replica=100.0, target_utilisation=0.5)
    assert res.violation_minutes == 0
    # 2 replicas throughout, 20 from 180 s before the burst to its end: no fewer will do.
    expected = 2 * 2 + 18 * (600 + 180 + 15) / 3600
    assert res.replica_hours == pytest.approx(expected, abs=0.1)
    assert res.max_replicas_used == 20 and res.scaling_actions == 2
    # Clamped to the bounds like every policy.
    capped = simulate(
        trace, "oracle", capacity_per_replica=100.0, target_utilisation=0.5, max_replicas=8
    )
    assert capped.max_replicas_used == 8 and capped.violation_minutes >= 10


def test_the_predictive_policy_learns_the_startup_delay_it_is_not_told():
    trace = morning_ramp_trace(days=2)
    capacity = capacity_for_trace(trace)
    res = simulate(
        trace, "predictive", capacity_per_replica=capacity, startup_delay_s=240.0,
        startup_prior_s=60.0,
    )  # fmt: skip
    assert res.extra["startup_delay_learned_s"] == 240.0
    assert res.extra["startup_delay_samples"] > 0

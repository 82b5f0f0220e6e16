"""Region health: learned normals, brown-outs, silence against the watermark, bounded state."""

from __future__ import annotations

import random

import orjson
import pytest

from models.health.region import (
    COMPONENTS,
    HealthConfig,
    HealthReport,
    RegionHealth,
    RegionHealthBank,
)

SERVICES = {"checkout": 200.0, "search": 120.0, "catalog": 80.0}


def feed(
    health: RegionHealth,
    start: float,
    end: float,
    *,
    error: float = 0.002,
    latency: float = 1.0,
    success: float = 0.998,
    services: dict[str, float] = SERVICES,
    bad: tuple[str, ...] | None = None,
    seed: int = 0,
) -> None:
    """Telemetry every 5 s: noisy normal metrics, ``error``/``latency`` applied to ``bad``
    services (all by default), and 15 interactions per tick."""
    rng = random.Random(seed)
    ts = start
    while ts < end:
        for service, p99 in services.items():
            hit = bad is None or service in bad
            metrics = {
                "error_rate": (error if hit else 0.002) * (1 + 0.3 * abs(rng.gauss(0, 1))),
                "latency_p99_ms": p99
                * (latency if hit else 1.0)
                * (1 + abs(0.1 * rng.gauss(0, 1))),
                "cpu_util": 0.5,
            }
            health.observe_metrics(ts, service, metrics)
        successes = sum(rng.random() < success for _ in range(15))
        health.observe_interactions(ts + 2.5, successes, 15)
        ts += 5.0


def test_normal_telemetry_is_healthy_and_the_report_explains_itself() -> None:
    health = RegionHealth("eu-west")
    feed(health, 0, 1800)
    report = health.evaluate(1800.0)
    assert report.healthy and report.score > 0.9
    assert set(report.components) == set(COMPONENTS)
    assert report.signals["services"] == 3
    assert report.signals["error_rate_normal"] == pytest.approx(0.0024, rel=0.2)
    assert orjson.loads(orjson.dumps(report.to_dict()))["region"] == "eu-west"


def test_a_region_that_is_normally_slower_is_not_unhealthy() -> None:
    slow = RegionHealth("ap-south")
    feed(slow, 0, 1800, services={s: 5 * p99 for s, p99 in SERVICES.items()}, error=0.02)
    assert slow.evaluate(1800.0).healthy


def test_brownout_is_unhealthy_and_is_not_learned_as_normal() -> None:
    health = RegionHealth("ap-south")
    feed(health, 0, 1800)
    feed(health, 1800, 1810, error=0.2, latency=4.0, success=0.8)
    report = health.evaluate(1810.0)
    assert not report.healthy
    assert report.components["metrics"] < 0.1
    assert report.signals["p99_ratio"] > 3
    # An hour of brown-out later it is still a brown-out, not the new normal.
    feed(health, 1810, 5400, error=0.2, latency=4.0, success=0.8)
    assert not health.evaluate(5400.0).healthy
    feed(health, 5400, 5420)
    assert health.evaluate(5420.0).healthy


@pytest.mark.parametrize(("error", "latency"), [(0.06, 1.0), (0.002, 2.5)])
def test_errors_or_latency_alone_are_enough(error: float, latency: float) -> None:
    health = RegionHealth("us-east")
    feed(health, 0, 1800)
    feed(health, 1800, 1815, error=error, latency=latency)
    assert not health.evaluate(1815.0).healthy


def test_one_bad_service_is_not_a_regional_failure() -> None:
    health = RegionHealth("us-east")
    feed(health, 0, 1800)
    feed(health, 1800, 1900, error=0.5, latency=10.0, bad=("checkout",))
    assert health.evaluate(1900.0).healthy
    feed(health, 1900, 1915, error=0.5, latency=10.0, bad=("checkout", "search"))
    assert not health.evaluate(1915.0).healthy


def test_interaction_failures_count_only_when_significant() -> None:
    health = RegionHealth("us-east")
    for i in range(360):
        health.observe_interactions(5.0 * i, 20, 20)
    # Two failures out of four interactions is no evidence yet ...
    health.observe_interactions(1800.0, 2, 4)
    assert health.evaluate(1800.0).components["interactions"] > 0.9
    # ... a sustained 30 % failure rate is.
    for i in range(1, 4):
        health.observe_interactions(1800.0 + 5 * i, 14, 20)
    report = health.evaluate(1815.0)
    assert not report.healthy
    assert report.signals["success_rate"] < 0.9


def test_silence_beyond_grace_is_a_failure_and_lag_within_grace_is_not() -> None:
    config = HealthConfig(grace_s=10.0, silence_tolerance_s=2.5)
    health = RegionHealth("eu-west", config)
    feed(health, 0, 600)
    last = health.last_ts
    assert last == 597.5
    # Producer lag: the watermark, set by other regions, is 8 s ahead.
    lagging = health.evaluate(last + 8.0)
    assert lagging.healthy and lagging.silent_for_s == 8.0
    assert not health.evaluate(last + 13.0).healthy
    silent = health.evaluate(last + 60.0)
    assert silent.components["silence"] < 1e-4 and silent.silent_for_s == 60.0


def test_a_region_that_never_reports_is_silent_from_the_start() -> None:
    health = RegionHealth("eu-west", since=100.0)
    assert health.evaluate(105.0).healthy
    assert not health.evaluate(130.0).healthy
    unseen = RegionHealth("us-east")
    assert unseen.evaluate(100.0).healthy
    assert not unseen.evaluate(130.0).healthy


def test_bank_measures_silence_against_the_global_watermark() -> None:
    bank = RegionHealthBank(["us-east", "eu-west", "ap-south"])
    for i in range(120):
        ts = 5.0 * i
        for region in ("us-east", "eu-west", "ap-south"):
            if region == "eu-west" and ts >= 300:
                continue
            bank.observe_metrics(ts, region, "api", {"error_rate": 0.001, "latency_p99_ms": 90})
    reports = bank.evaluate()
    assert bank.watermark == 595.0
    assert reports["us-east"].healthy and reports["ap-south"].healthy
    assert not reports["eu-west"].healthy
    assert reports["eu-west"].silent_for_s == 300.0


def test_a_stalled_pipeline_does_not_fail_every_region() -> None:
    bank = RegionHealthBank(["us-east", "eu-west"])
    for i in range(60):
        for region in ("us-east", "eu-west"):
            bank.observe_metrics(5.0 * i, region, "api", {"error_rate": 0.001})
    # Nothing arrives any more: the watermark stands still, so nobody is silent relative to it.
    assert all(r.healthy for r in bank.evaluate().values())


def test_a_configured_region_that_never_reports_fails() -> None:
    bank = RegionHealthBank(["us-east", "eu-west"])
    assert bank.evaluate() == {}
    for i in range(10):
        bank.observe_metrics(5.0 * i, "us-east", "api", {"error_rate": 0.001})
    assert not bank.evaluate()["eu-west"].healthy


def test_anomaly_scores_corroborate_but_do_not_fail_a_region_alone() -> None:
    health = RegionHealth("us-east")
    feed(health, 0, 1800)
    for service in SERVICES:
        health.observe_anomaly(1795.0, service, 0.9)
    report = health.evaluate(1800.0)
    assert report.healthy and report.components["anomaly"] < 0.9
    assert report.signals["anomaly"] == 0.9


def test_slo_burn_fails_a_region_at_the_limit() -> None:
    health = RegionHealth("us-east")
    feed(health, 0, 600)
    health.observe_slo_burn(598.0, 2.0)
    assert health.evaluate(600.0).healthy
    health.observe_slo_burn(599.0, 30.0)
    assert not health.evaluate(600.0).healthy


def test_the_region_burn_is_the_median_of_its_services_burns() -> None:
    # Each partition's interactions brain sends the burns of the services it reads; only
    # region health hears them all. One service burning is a remediation matter, most of
    # them burning is the region's.
    health = RegionHealth("us-east")
    feed(health, 0, 600)
    health.observe_slo_burn(595.0, 40.0, "search")
    health.observe_slo_burn(596.0, 0.5, "checkout")
    health.observe_slo_burn(597.0, 0.7, "catalog")
    report = health.evaluate(600.0)
    assert report.healthy and report.signals["slo_burn"] == 0.7
    health.observe_slo_burn(599.0, 30.0, "checkout")
    report = health.evaluate(600.0)
    assert not report.healthy and report.signals["slo_burn"] == 30.0
    # A service's burn counts while it is fresh; a region-wide burn only when none is.
    health.observe_slo_burn(599.5, 0.0)
    assert health.evaluate(600.0).signals["slo_burn"] == 30.0
    feed(health, 600, 700)
    assert health.evaluate(700.0).signals["slo_burn"] is None


def test_a_region_of_a_thousand_services_learns_each_ones_normal() -> None:
    # Every service reports in turn: remembering fewer than a region runs dropped each one
    # before it reported again, and none ever had a normal to be judged against.
    health = RegionHealth("us-east")
    services = {f"svc-{i:04d}": 100.0 for i in range(1000)}
    feed(health, 0, 600, services=services)
    feed(health, 600, 615, error=0.2, latency=4.0, services=services)
    report = health.evaluate(615.0)
    assert report.signals["services"] == 1000
    assert report.signals["error_rate_normal"] == pytest.approx(0.0024, rel=0.2)
    assert not report.healthy


def test_memory_is_bounded_and_idle_state_evicted() -> None:
    config = HealthConfig(max_services=8, service_ttl_s=600.0)
    health = RegionHealth("us-east", config)
    for i in range(100):
        health.observe_metrics(float(i), f"svc-{i}", {"error_rate": 0.001})
    assert len(health) == 8
    assert health.evict_idle(now=100.0 + 600.0 - 5.0) == 3
    assert len(health) == 5

    bank = RegionHealthBank(["us-east"], config, ttl_s=3600.0, max_regions=4)
    for i in range(10):
        bank.observe_metrics(float(i), f"stray-{i}", "api", {"error_rate": 0.0})
    assert len(bank) == 1 + 4 and "stray-0" not in bank and "stray-9" in bank
    bank.observe_metrics(5000.0, "us-east", "api", {"error_rate": 0.0})
    assert bank.evict_idle() == 4
    assert len(bank) == 1 and "us-east" in bank


def test_state_round_trip_gives_the_same_reports() -> None:
    health = RegionHealth("eu-west")
    feed(health, 0, 900)
    health.observe_anomaly(890.0, "search", 0.3)
    health.observe_slo_burn(895.0, 1.5)
    health.observe_slo_burn(896.0, 20.0, "search")
    state = orjson.loads(orjson.dumps(health.to_state()))
    restored = RegionHealth.from_state(state)
    assert restored.evaluate(900.0) == health.evaluate(900.0)
    assert restored.evaluate(900.0).signals["slo_burn"] == 20.0
    for h in (health, restored):
        feed(h, 900, 1000, error=0.1, seed=3)
    for now in (1000.0, 1020.0):
        assert restored.evaluate(now) == health.evaluate(now)
    with pytest.raises(ValueError, match="version"):
        RegionHealth.from_state({"v": 99})


def test_bank_state_round_trip_keeps_the_silence_clock() -> None:
    bank = RegionHealthBank(["us-east", "eu-west"])
    for i in range(60):
        bank.observe_metrics(5.0 * i, "us-east", "api", {"error_rate": 0.001})
        bank.observe_metrics(5.0 * i, "stray", "api", {"error_rate": 0.001})
    state = orjson.loads(orjson.dumps(bank.to_state()))
    restored = RegionHealthBank.from_state(state, ["us-east", "eu-west", "ap-south"])
    assert restored.watermark == bank.watermark == 295.0
    reports = restored.evaluate()
    assert reports["us-east"] == bank.evaluate()["us-east"]
    assert not reports["eu-west"].healthy  # silent since the start, across the restart
    assert reports["ap-south"].healthy  # newly configured: its clock starts now
    assert "stray" in restored


def test_report_is_a_plain_value() -> None:
    report = HealthReport("r", 1.0, 0.25, False, {"silence": 0.25}, 20.0, {"error_rate": None})
    assert report.to_dict()["signals"] == {"error_rate": None}


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="latency_tolerance"):
        HealthConfig(latency_tolerance=0.5)
    with pytest.raises(ValueError, match="silence_tolerance_s"):
        HealthConfig(silence_tolerance_s=0)
    with pytest.raises(ValueError, match="grace_s"):
        HealthConfig(grace_s=-1.0)

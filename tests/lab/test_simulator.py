"""The telemetry simulator and its scenario files, without a broker."""

from __future__ import annotations

import asyncio
import re
import statistics
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest

from schemas.topics import TopicNames, telemetry_key
from streams.lab import simulator
from streams.lab.scenario import (
    FAULT_TYPES,
    ScenarioError,
    bundled_scenarios,
    load_scenario,
    parse_scenario,
)
from streams.lab.simulator import (
    TOPIC_ATTRS,
    SimConfig,
    enveloped,
    generate,
    ground_truth,
    run_simulation,
)

# Wednesday 2023-11-15 00:00 UTC: a full simulated day from here has no weekend in it.
WEDNESDAY = 1_700_006_400.0
DAY = 86_400.0


def decoded(config: SimConfig, **kwargs: Any) -> list[tuple[str, bytes, dict[str, Any], float]]:
    return [
        (attr, key, orjson.loads(value), ts) for attr, key, value, ts in generate(config, **kwargs)
    ]


def scenario_config(name: str, **overrides: Any) -> SimConfig:
    # Few interactions: they dominate the volume, and most tests look at other topics.
    defaults = {"start_ts": WEDNESDAY, "interactions_per_s": 2.0}
    return SimConfig.for_scenario(load_scenario(name), **(defaults | overrides))


def metric_series(
    messages: list[tuple[str, bytes, dict[str, Any], float]], service: str, region: str
) -> dict[float, dict[str, Any]]:
    return {
        ts: body["metrics"]
        for attr, _, body, ts in messages
        if attr == "metrics" and body["service"] == service and body["region"] == region
    }


@pytest.fixture(scope="module")
def mixed() -> list[tuple[str, bytes, dict[str, Any], float]]:
    return decoded(scenario_config("mixed"))


def test_same_seed_same_stream_and_other_seed_another() -> None:
    config = scenario_config("error_burst", seed=7)
    first = list(generate(config))
    assert first == list(generate(config))
    assert first != list(generate(scenario_config("error_burst", seed=8)))


def test_every_message_is_keyed_and_complete(mixed: list) -> None:
    counts = Counter(attr for attr, *_ in mixed)
    assert set(counts) == set(TOPIC_ATTRS)
    metric_fields = {
        "cpu_util",
        "mem_util",
        "rps",
        "latency_p50_ms",
        "latency_p99_ms",
        "error_rate",
        "replicas",
        "queue_depth",
        "cost_per_hour",
    }
    for attr, key, body, ts in mixed:
        assert key == telemetry_key(body["service"], body["region"])
        assert body["ts"] == pytest.approx(ts, abs=1e-3)
        if attr == "metrics":
            m = body["metrics"]
            assert set(m) == metric_fields
            assert 0 <= m["cpu_util"] <= 1 and 0 <= m["mem_util"] <= 1 and 0 <= m["error_rate"] <= 1
            assert isinstance(m["replicas"], int) and m["replicas"] >= 0
            assert min(m["rps"], m["latency_p50_ms"], m["queue_depth"], m["cost_per_hour"]) >= 0
            assert m["latency_p99_ms"] >= m["latency_p50_ms"]
        elif attr == "errors":
            assert body["severity"] in ("error", "warning", "critical")
            assert body["error_type"] and body["message"]
            assert re.fullmatch(r"v\d+\.\d+\.\d+", body["deploy_version"])
            assert re.fullmatch(r"[0-9a-f]{32}", body.get("trace_id", "0" * 32))
        else:
            assert re.fullmatch(r"t-\d{4}", body["tenant"])
            assert re.fullmatch(r"u-[0-9a-f]{12}", body["user_id"])
            assert body["action"] in {
                "view",
                "search",
                "add_to_cart",
                "checkout",
                "wishlist",
                "review",
            }
            assert body["latency_ms"] >= 0 and isinstance(body["success"], bool)
            eu = body["region"].startswith("eu")
            assert body.get("data_class") == ("eu-personal" if eu else None)


def test_error_messages_vary_and_carry_personal_data_to_redact(mixed: list) -> None:
    messages = [body["message"] for attr, _, body, _ in mixed if attr == "errors"]
    assert len(set(messages)) > 0.9 * len(messages)
    assert any(re.search(r"[\w.]+@[\w.]+", m) for m in messages)
    assert any(re.search(r"\b10\.\d+\.\d+\.\d+\b", m) for m in messages)
    assert any("feedback_text" in body for attr, _, body, _ in mixed if attr == "interactions")


def test_every_fault_type_a_scenario_may_name_has_log_templates() -> None:
    assert set(simulator._FAULTS) == set(FAULT_TYPES)


def test_load_follows_the_regions_local_afternoon() -> None:
    config = SimConfig(
        duration_s=23 * 3600, tick_s=60, start_ts=WEDNESDAY, tenants=0, errors_per_s=0
    )
    messages = decoded(config)
    for region, utc_offset_h in (("us-east", -5), ("eu-west", 0), ("ap-south", 5.5)):
        by_hour: dict[int, list[float]] = {}
        for ts, m in metric_series(messages, "search", region).items():
            local_hour = int(((ts + utc_offset_h * 3600) % DAY) // 3600)
            by_hour.setdefault(local_hour, []).append(m["rps"])
        means = {hour: statistics.fmean(v) for hour, v in by_hour.items()}
        peak_hour = max(means, key=means.__getitem__)
        assert 13 <= peak_hour <= 17, (region, peak_hour)
        assert 2.5 < max(means.values()) / min(means.values()) < 4.5
        # The autoscaler keeps CPU plausible through the whole cycle.
        cpu = [m["cpu_util"] for m in metric_series(messages, "search", region).values()]
        low, *_, high = statistics.quantiles(cpu, n=20)
        assert low >= 0.2 and high <= 0.9


def test_weekends_are_quieter() -> None:
    def mean_rps(start_ts: float) -> float:
        config = SimConfig(duration_s=6 * 3600, tick_s=300, start_ts=start_ts, tenants=0)
        return statistics.fmean(
            body["metrics"]["rps"] for attr, _, body, _ in decoded(config) if attr == "metrics"
        )

    saturday = WEDNESDAY + 3 * DAY + 6 * 3600  # well inside Saturday in every region
    assert mean_rps(saturday) < 0.85 * mean_rps(WEDNESDAY + 6 * 3600)


def test_demand_changes_smoothly_into_and_out_of_the_weekend() -> None:
    # A healthy run crossing local midnight from Friday to Saturday (and from Sunday to
    # Monday) must not step: the anomaly detector reports a drop of 28 % in one tick.
    for midnight in (WEDNESDAY + 3 * DAY, WEDNESDAY + 5 * DAY):
        start = midnight + 5 * 3600 - 2 * 3600  # us-east's midnight is 05:00 UTC
        config = SimConfig(
            duration_s=4 * 3600, tick_s=60, start_ts=start, tenants=0, errors_per_s=0, seed=3
        )
        series = metric_series(decoded(config), "catalog", "us-east")
        before = [m["rps"] for ts, m in series.items() if start <= ts < start + 2 * 3600]
        after = [m["rps"] for ts, m in series.items() if ts >= start + 2 * 3600]
        # 20 minutes either side of midnight, to average out the per-sample noise.
        step = statistics.fmean(after[:20]) / statistics.fmean(before[-20:])
        assert 0.93 < step < 1.07, (midnight, step)


def test_region_outage_degrades_then_silences_the_region() -> None:
    config = scenario_config("region_outage")
    truth = ground_truth(config, WEDNESDAY)
    (outage,) = truth["incidents"]
    assert outage["region"] == "eu-west" and outage["service"] is None
    onset, stop, end = outage["onset_ts"], outage["stop_ts"], outage["end_ts"]
    assert stop == onset + 60
    messages = decoded(config)
    eu = [(attr, body, ts) for attr, _, body, ts in messages if body["region"] == "eu-west"]
    assert not [ts for _, _, ts in eu if stop <= ts < end]
    assert any(ts < onset for _, _, ts in eu) and any(ts >= end for _, _, ts in eu)
    # The other regions carry on through it.
    assert any(stop <= ts < end for _, _, body, ts in messages if body["region"] != "eu-west")

    def error_rate_per_s(t0: float, t1: float) -> float:
        return sum(1 for attr, _, ts in eu if attr == "errors" and t0 <= ts < t1) / (t1 - t0)

    assert error_rate_per_s(onset, stop) > 10 * error_rate_per_s(onset - 300, onset)
    p99 = {
        ts: m["latency_p99_ms"] for ts, m in metric_series(messages, "checkout", "eu-west").items()
    }
    assert p99[stop - 5] > 4 * p99[onset - 5]


def test_load_surge_peaks_at_factor_times_normal_demand_at_the_peak_time() -> None:
    surged = decoded(scenario_config("load_surge"))
    calm = decoded(scenario_config("healthy", duration_s=2400))
    (surge,) = ground_truth(scenario_config("load_surge"), WEDNESDAY)["incidents"]
    assert surge["service"] == "search" and surge["region"] == "us-east"
    assert surge["plateau_start_ts"] < surge["peak_ts"] < surge["plateau_end_ts"]
    with_surge = metric_series(surged, "search", "us-east")
    without = metric_series(calm, "search", "us-east")
    peak_ts = min(with_surge, key=lambda ts: abs(ts - surge["peak_ts"]))
    assert with_surge[peak_ts]["rps"] / without[peak_ts]["rps"] == pytest.approx(3.0, rel=0.01)
    busiest = max(with_surge, key=lambda ts: with_surge[ts]["rps"])
    assert surge["plateau_start_ts"] <= busiest <= surge["plateau_end_ts"]
    # Untouched series see exactly the same demand.
    assert metric_series(surged, "checkout", "us-east") == metric_series(
        calm, "checkout", "us-east"
    )
    # The autoscaler catches up with a lag: more replicas on the plateau than before it.
    assert with_surge[peak_ts]["replicas"] > 2 * without[peak_ts]["replicas"]


def test_error_burst_logs_at_its_rate_after_a_new_deploy() -> None:
    config = scenario_config("error_burst")
    (burst,) = ground_truth(config, WEDNESDAY)["incidents"]
    onset, end = burst["onset_ts"], burst["end_ts"]
    series = [
        (body, ts)
        for attr, _, body, ts in decoded(config)
        if attr == "errors" and body["service"] == "checkout" and body["region"] == "eu-west"
    ]
    in_burst = [body for body, ts in series if onset <= ts < end]
    timeouts = [body for body in in_burst if body["error_type"] == "TimeoutError"]
    assert len(timeouts) / (end - onset) == pytest.approx(burst["rate_per_s"], rel=0.15)
    assert burst["deploy_ts"] < onset
    assert {body["deploy_version"] for body, ts in series if ts >= burst["deploy_ts"]} == {"v2.0.0"}
    assert "v2.0.0" not in {
        body["deploy_version"] for body, ts in series if ts < burst["deploy_ts"]
    }


def test_memory_leak_climbs_to_its_breach_on_one_series_only() -> None:
    config = scenario_config("memory_leak")
    (leak,) = ground_truth(config, WEDNESDAY)["incidents"]
    assert leak["type"] == "saturation" and leak["metric"] == "mem_util"
    assert leak["onset_ts"] < leak["breach_ts"] < leak["end_ts"]
    messages = decoded(config)
    series = metric_series(messages, leak["service"], leak["region"])
    inside = {
        ts: m["mem_util"] for ts, m in series.items() if leak["onset_ts"] <= ts < leak["end_ts"]
    }
    before = [v for ts, v in inside.items() if ts < leak["breach_ts"] - 600]
    assert max(before) < 0.95 <= max(inside.values())
    first = min(ts for ts, v in inside.items() if v >= 0.95)
    assert first == pytest.approx(leak["breach_ts"], abs=1800)  # the memory's wander on top
    # Back to normal after the incident, and no other series leaks.
    assert all(m["mem_util"] < 0.8 for ts, m in series.items() if ts >= leak["end_ts"])
    others = [
        m["mem_util"]
        for attr, _, body, _ in messages
        if attr == "metrics"
        and (body["service"], body["region"]) != (leak["service"], leak["region"])
        for m in [body["metrics"]]
    ]
    assert max(others) < 0.8


def test_saturation_suite_drives_each_saturating_metric_past_its_limit() -> None:
    config = scenario_config("saturation_suite")
    incidents = ground_truth(config, WEDNESDAY)["incidents"]
    metrics = {i["metric"] for i in incidents}
    assert metrics == {"mem_util", "disk_util", "conn_pool_util", "error_budget_used"}
    messages = decoded(config)
    for incident in incidents:
        series = metric_series(messages, incident["service"], incident["region"])
        # The other saturating metrics are only sent while an incident drives them.
        during = [m[incident["metric"]] for m in series.values() if incident["metric"] in m]
        limit = 0.95 if incident["metric"] in ("mem_util", "disk_util") else 1.0
        assert max(during) >= limit and incident["breach_ts"] < incident["end_ts"]
        assert all(0.0 <= v <= 1.0 for v in during) or incident["metric"] == "error_budget_used"


def test_flapping_region_alternates_between_bad_and_good() -> None:
    config = scenario_config("mixed")
    flap = next(i for i in config.scenario.incidents if i.type == "flapping")
    rates: dict[bool, list[float]] = {True: [], False: []}
    for ts, m in metric_series(decoded(config), "search", "eu-west").items():
        t_s = ts - WEDNESDAY
        if flap.start_s <= t_s < flap.end_s:
            rates[flap.is_down(t_s)].append(m["error_rate"])
    assert min(rates[True]) > 0.3 > 0.05 > max(rates[False])


def test_default_start_keeps_every_timestamp_fresh() -> None:
    now = 1_800_000_000.0
    config = SimConfig(duration_s=23 * 3600, tick_s=600, tenants=5, interactions_per_s=0.5)
    timestamps = [ts for *_, ts in generate(config, now=now)]
    assert now - DAY <= min(timestamps) and max(timestamps) <= now + 300
    assert max(timestamps) > now - 700


def test_paced_run_never_runs_ahead_of_the_clock() -> None:
    now = 1_800_000_000.0
    for speed in (0.5, 1.0, 4.0, 600.0):
        config = SimConfig(duration_s=3600, tick_s=60, speed=speed, interactions_per_s=0.5)
        start = config.resolve_start_ts(now)
        for *_, ts in generate(config, now=now):
            # The run sends event ``ts`` (event-time) at wall time now + (ts - start) / speed.
            assert ts <= now + (ts - start) / speed + 60
            assert ts >= now + (ts - start) / speed - DAY


def test_a_run_in_stretches_is_placed_to_end_at_the_clock_and_never_ahead_of_it() -> None:
    # make run's shape: history as fast as possible, the scenario at 120x, then real time.
    now = 1_800_000_000.0
    stretches = [(0.0, 0.0, 900.0), (900.0, 120.0, 4500.0), (4500.0, 1.0, 7200.0)]
    config = SimConfig(
        duration_s=7200, tick_s=60, speed=0, pace=((900, 120), (4500, 1)), interactions_per_s=0.5
    )
    start = config.resolve_start_ts(now)

    def soonest(ts: float) -> float:
        """When a run can send event ``ts`` at the earliest: a fast stretch takes no time."""
        x = ts - start
        return now + sum((min(x, end) - f) / v for f, v, end in stretches if v and x > f)

    timestamps = [ts for *_, ts in generate(config, now=now)]
    assert all(ts <= soonest(ts) + 60 for ts in timestamps)
    assert soonest(start + 7200) == pytest.approx(now + 30 + 2700)
    assert max(timestamps) > soonest(max(timestamps)) - 120, "the run ends near the clock"


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"duration_s": 60}, "name is required"),
        ({"name": "x"}, "duration_s is required"),
        ({"name": "x", "duration_s": "long"}, "duration_s must be a number"),
        ({"name": "x", "duration_s": 90_000}, "duration_s must be > 0 and <= 82800"),
        ({"name": "x", "duration_s": 60, "tick_s": 0}, "tick_s must be > 0"),
        ({"name": "x", "duration_s": 60, "incident": []}, "incident is not a known field"),
        ({"name": "x", "duration_s": 60, "incidents": {}}, "incidents must be a list"),
        ({"name": "x", "duration_s": 60, "incidents": [{}]}, "incidents[0].type is required"),
        (
            {"name": "x", "duration_s": 60, "incidents": [{"type": "brownout", "start_s": 0}]},
            "incidents[0].duration_s is required",
        ),
        (
            {
                "name": "x",
                "duration_s": 600,
                "incidents": [
                    {"type": "flapping", "region": "eu-west", "start_s": 0, "duration_s": 60},
                    {"type": "region_outage", "start_s": 0, "duration_s": 60},
                ],
            },
            "incidents[1].region is required",
        ),
        (
            {
                "name": "x",
                "duration_s": 600,
                "incidents": [
                    {
                        "type": "load_surge",
                        "service": "search",
                        "start_s": 0,
                        "duration_s": 60,
                        "factor": -2,
                    }
                ],
            },
            "incidents[0].factor must be > 0",
        ),
        (
            {
                "name": "x",
                "duration_s": 600,
                "incidents": [
                    {
                        "type": "load_surge",
                        "service": "search",
                        "start_s": 0,
                        "duration_s": 60,
                        "ramp_s": 40,
                    }
                ],
            },
            "incidents[0].ramp_s must be at most half of duration_s",
        ),
        (
            {
                "name": "x",
                "duration_s": 600,
                "incidents": [
                    {
                        "type": "error_burst",
                        "service": "search",
                        "region": "eu-west",
                        "fault_type": "gremlins",
                        "start_s": 0,
                        "duration_s": 60,
                    }
                ],
            },
            "incidents[0].fault_type 'gremlins' is not one of",
        ),
        (
            {
                "name": "x",
                "duration_s": 600,
                "incidents": [
                    {
                        "type": "error_burst",
                        "service": "search",
                        "region": "eu-west",
                        "fault_type": "disk_full",
                        "start_s": 0,
                        "duration_s": 60,
                        "deploy_version": "2.0",
                    }
                ],
            },
            "incidents[0].deploy_version '2.0' does not match",
        ),
        (
            {
                "name": "x",
                "duration_s": 600,
                "incidents": [
                    {"type": "brownout", "region": "eu-west", "start_s": 500, "duration_s": 200}
                ],
            },
            "incidents[0].duration_s makes the incident end at 700 s",
        ),
        (
            {
                "name": "x",
                "duration_s": 600,
                "incidents": [
                    {
                        "type": "brownout",
                        "region": "eu-west",
                        "start_s": 0,
                        "duration_s": 60,
                        "severity": 3,
                    }
                ],
            },
            "incidents[0].severity is not a known field",
        ),
        (
            {
                "name": "x",
                "duration_s": 600,
                "incidents": [
                    {
                        "type": "saturation",
                        "service": "search",
                        "region": "eu-west",
                        "metric": "cpu_util",
                        "start_s": 0,
                        "duration_s": 60,
                    }
                ],
            },
            "incidents[0].metric 'cpu_util' is not one of mem_util",
        ),
    ],
)
def test_scenario_errors_name_the_field(document: dict[str, Any], field: str) -> None:
    with pytest.raises(ScenarioError, match=re.escape(field)):
        parse_scenario(document)


def test_scenario_naming_an_unknown_region_or_service_fails_against_the_fleet() -> None:
    scenario = parse_scenario(
        {
            "name": "x",
            "duration_s": 600,
            "incidents": [
                {"type": "load_surge", "service": "search", "start_s": 0, "duration_s": 60},
                {"type": "brownout", "region": "eu-wets", "start_s": 0, "duration_s": 60},
            ],
        }
    )
    with pytest.raises(ScenarioError, match=re.escape("incidents[1].region 'eu-wets'")):
        SimConfig.for_scenario(scenario)
    with pytest.raises(ScenarioError, match=re.escape("incidents[0].service 'search'")):
        SimConfig.for_scenario(scenario, services=["checkout"], regions=["eu-wets"])
    with pytest.raises(ScenarioError, match=re.escape("incidents[0].duration_s")):
        SimConfig.for_scenario(scenario, duration_s=30, tick_s=5)


def test_scenario_files_load_by_path_or_name_and_fail_clearly(tmp_path: Path) -> None:
    bundled = set(bundled_scenarios())
    assert {"error_burst", "healthy", "load_surge", "mixed", "region_outage"} <= bundled
    for name in bundled_scenarios():
        scenario = load_scenario(name)
        assert scenario == load_scenario(
            simulator.__file__.rsplit("/", 1)[0] + f"/scenarios/{name}.json"
        )
        # Small runs: at most an hour's worth of 5-second ticks. Saturations develop over
        # hours, so their scenarios tick every 30 s instead.
        assert scenario.duration_s / scenario.tick_s <= 3600 / 5
        SimConfig.for_scenario(scenario)
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": "x", "duration_s": 60,')
    with pytest.raises(ScenarioError, match=r"broken\.json: not valid JSON"):
        load_scenario(broken)
    with pytest.raises(ScenarioError, match="no such scenario file"):
        load_scenario(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x", "duration_s": -1}')
    with pytest.raises(ScenarioError, match=r"bad\.json: duration_s must be > 0"):
        load_scenario(bad)


def test_config_rejects_unusable_values() -> None:
    with pytest.raises(ValueError, match="duration_s"):
        SimConfig(duration_s=24 * 3600)
    with pytest.raises(ValueError, match="regions has duplicates"):
        SimConfig(regions=["eu-west", "eu-west"])
    with pytest.raises(ValueError, match="services has an unusable name"):
        SimConfig(services=["a/b"])
    with pytest.raises(ValueError, match="speed"):
        SimConfig(speed=-1)


class FakeProducer:
    """Stands in for AIOKafkaProducer: acknowledges every message but every 10th."""

    instances: ClassVar[list[FakeProducer]] = []

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.records: list[tuple[str, bytes, bytes]] = []
        self.started = self.stopped = False
        FakeProducer.instances.append(self)

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.records.append((topic, key, value))
        if len(self.records) % 10 == 0:
            future.set_exception(RuntimeError("broker said no"))
        else:
            future.set_result(None)
        return future


def records_in(value: bytes) -> int:
    """Records a produced message carries: those of an envelope, or one."""
    doc = orjson.loads(value)
    return len(doc["samples"]) if "samples" in doc else 1


@pytest.mark.parametrize("envelope", [1, 100])
async def test_run_counts_only_acknowledged_messages_and_writes_ground_truth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, envelope: int
) -> None:
    monkeypatch.setattr(simulator, "AIOKafkaProducer", FakeProducer)
    FakeProducer.instances.clear()
    config = scenario_config(
        "load_surge", start_ts=None, envelope_records=envelope, envelope_span_s=600.0
    )
    topics = TopicNames("sim.")
    truth_path = tmp_path / "out" / "truth.json"
    reports: list[tuple[int, float, float]] = []
    summary = await run_simulation(
        config,
        bootstrap_servers="127.0.0.1:1",
        topics=topics,
        ground_truth_path=truth_path,
        progress=lambda *report: reports.append(report),
    )
    (producer,) = FakeProducer.instances
    assert producer.started and producer.stopped
    assert producer.options["acks"] == "all" and producer.options["linger_ms"] > 0
    # Counts are in records; the fake broker refuses every tenth message.
    offered: Counter[str] = Counter()
    for topic, _, value in producer.records:
        offered[topic] += records_in(value)
    refused = [records_in(v) for i, (_, _, v) in enumerate(producer.records, 1) if i % 10 == 0]
    assert summary.failed == sum(refused)
    assert summary.total + summary.failed == sum(offered.values())
    assert summary.messages == len(producer.records) - len(refused)
    if envelope == 1:
        assert summary.messages == summary.total
    else:
        assert summary.messages < summary.total / 5
    assert summary.first_error == "RuntimeError: broker said no"
    for attr in TOPIC_ATTRS:
        assert (
            0.7 * offered[getattr(topics, attr)]
            < summary.sent[attr]
            <= offered[getattr(topics, attr)]
        )
    assert summary.event_span_s == config.duration_s
    assert summary.ground_truth_path == truth_path
    truth = orjson.loads(truth_path.read_bytes())
    assert truth["totals"] == {**summary.sent, "total": summary.total}
    assert truth["incidents"][0]["peak_ts"] == summary.event_start_ts + 600 + 960 / 2
    assert orjson.loads(orjson.dumps(summary.to_dict()))["total"] == summary.total
    for sent_total, rate, event_ts in reports:
        assert 0 <= sent_total <= summary.total and rate >= 0
        assert summary.event_start_ts <= event_ts <= summary.event_end_ts


def test_envelopes_keep_each_series_in_order_within_the_span() -> None:
    config = scenario_config("load_surge", envelope_records=10, envelope_span_s=30.0)
    singles = list(generate(config))
    messages = list(enveloped(config))
    records = [
        (attr, key, record)
        for attr, key, value, n in messages
        for record in orjson.loads(value)["samples"]
    ]
    assert sum(n for *_, n in messages) == len(records) == len(singles)
    assert max(n for *_, n in messages) == 10
    for attr in TOPIC_ATTRS:
        for key in {k for a, k, *_ in singles if a == attr}:
            sent = [r for a, k, r in records if a == attr and k == key]
            assert sent == [orjson.loads(v) for a, k, v, _ in singles if a == attr and k == key]
    # An envelope holds at most span_s of event time, so series stay that close.
    for _, _, value, _ in messages:
        stamps = [r["ts"] for r in orjson.loads(value)["samples"]]
        assert max(stamps) - min(stamps) < 30.0 + config.tick_s

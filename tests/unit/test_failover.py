"""Failover policy: hysteresis, residency per data class, explained drafts, state, and the bench."""

from __future__ import annotations

import orjson
import pytest

from models.health.region import HealthReport
from models.policy.failover import FailoverPolicy
from schemas.config.regions import RegionConfig, load_region_config
from schemas.decision import Decision
from streams.lab.bench.failover import format_failover_bench, run_failover_scenarios

CONFIG = load_region_config()
NAMES = CONFIG.names
# Two EU regions, so that eu-personal traffic has somewhere to go.
WIDE = RegionConfig.from_dict(
    {
        "regions": {
            "us-east": {"jurisdiction": "US", "headroom": 0.4, "cost": 1.0},
            "eu-west": {"jurisdiction": "EU", "headroom": 0.35, "cost": 1.1},
            "eu-central": {"jurisdiction": "EU", "headroom": 0.2, "cost": 1.2},
            "ap-south": {"jurisdiction": "APAC", "headroom": 0.3, "cost": 0.9},
        },
        "latency_ms": {
            "us-east": {"eu-west": 75, "eu-central": 90, "ap-south": 190},
            "eu-west": {"eu-central": 20, "ap-south": 120},
            "eu-central": {"ap-south": 110},
        },
        "residency": {"default": ["*"], "eu-personal": ["EU"]},
    }
)


def reports(
    down: set[str] = frozenset(),
    names: tuple[str, ...] = NAMES,
    ts: float = 0.0,
    silent: set[str] = frozenset(),
):
    """Healthy reports but for ``down`` (bad metrics) and ``silent`` (30 s of silence)."""
    return {
        r: HealthReport(
            r,
            ts,
            0.05 if r in down | silent else 0.95,
            r not in down | silent,
            {"metrics": 0.05 if r in down else 1.0, "silence": 0.05 if r in silent else 1.0},
            30.0 if r in silent else 0.0,
            {},
        )
        for r in names
    }


class Clock:
    """Drives a policy every 5 s of event time."""

    def __init__(self, policy: FailoverPolicy, traffic: dict[str, set[str]]) -> None:
        self.policy = policy
        self.traffic = traffic
        self.ts = 0.0

    def step(self, down: set[str] = frozenset()) -> list:
        self.ts += 5.0
        names = self.policy.config.names
        return self.policy.evaluate(self.ts, reports(down, names, self.ts), self.traffic)

    def run(self, n: int, down: set[str] = frozenset()) -> list:
        return [d for _ in range(n) for d in self.step(down)]


def test_declared_failed_only_after_fail_after_consecutive_unhealthy_evaluations() -> None:
    clock = Clock(FailoverPolicy(CONFIG, fail_after=3, recover_after=6), {"us-east": {"default"}})
    assert clock.run(2, {"us-east"}) == []
    assert clock.run(1) == []  # the run is broken: start again
    assert clock.run(2, {"us-east"}) == []
    [draft] = clock.step({"us-east"})
    assert (draft.kind, draft.region, draft.target) == ("failover", "us-east", "eu-west")
    assert draft.evidence["consecutive_unhealthy"] == 3
    assert "unhealthy for 3 consecutive evaluations" in draft.reason
    assert "worst: metrics 0.05" in draft.reason
    assert clock.run(20, {"us-east"}) == []  # one draft per transition


def test_a_region_silent_long_enough_fails_at_the_first_evaluation_that_sees_it() -> None:
    policy = FailoverPolicy(CONFIG, fail_after=3, recover_after=6)
    for ts in (-15.0, -10.0, -5.0, 0.0):  # event time moving at its pace
        assert policy.evaluate(ts, reports(ts=ts), {}) == []
    silent = reports(silent={"us-east"}, ts=5.0)
    [draft] = policy.evaluate(5.0, silent, {"us-east": {"default"}})
    assert (draft.kind, draft.region, draft.target) == ("failover", "us-east", "eu-west")
    assert draft.evidence["consecutive_unhealthy"] == 1
    assert draft.evidence["thresholds"]["silence_fail_s"] == 12.5
    assert "silent for 30 s while the others report" in draft.reason
    # Silent for less than silence_fail_s: the usual run of fail_after evaluations.
    short = {
        r: HealthReport(r, 5.0, rep.score, rep.healthy, rep.components, 12.0, {})
        for r, rep in silent.items()
    }
    policy = FailoverPolicy(CONFIG, fail_after=3, recover_after=6)
    for ts in (-15.0, -10.0, -5.0, 0.0):
        policy.evaluate(ts, reports(ts=ts), {})
    assert policy.evaluate(5.0, short, {"us-east": {"default"}}) == []
    # Event time stood still (our own outage) and catches up: the usual run.
    policy = FailoverPolicy(CONFIG, fail_after=3, recover_after=6)
    for ts in (-15.0, -10.0, -5.0, 0.0):
        policy.evaluate(ts, reports(ts=ts), {})
    late = reports(silent={"us-east"}, ts=200.0)
    assert policy.evaluate(200.0, late, {}) == []
    assert policy.evaluate(205.0, late, {}) == []
    assert [d.kind for d in policy.evaluate(210.0, late, {})] == ["failover"]
    # Disabled: silence waits for the run like any other evidence.
    policy = FailoverPolicy(CONFIG, fail_after=3, recover_after=6, silence_fail_s=None)
    for ts in (-15.0, -10.0, -5.0, 0.0):
        policy.evaluate(ts, reports(ts=ts), {})
    assert policy.evaluate(5.0, silent, {"us-east": {"default"}}) == []
    with pytest.raises(ValueError, match="silence_fail_s"):
        FailoverPolicy(CONFIG, silence_fail_s=0.0)


def test_recovery_needs_a_longer_run_than_failure() -> None:
    with pytest.raises(ValueError, match="hysteresis"):
        FailoverPolicy(CONFIG, fail_after=3, recover_after=3)
    clock = Clock(FailoverPolicy(CONFIG, fail_after=2, recover_after=6), {"us-east": {"default"}})
    clock.run(2, {"us-east"})
    assert clock.run(5) == []
    [draft] = clock.step()
    assert (draft.kind, draft.region, draft.target) == ("failback", "us-east", "us-east")
    assert draft.params["from"] == {"default": "eu-west"}
    assert "healthy for 6 consecutive evaluations" in draft.reason


def test_alternating_health_fails_over_once_and_never_flaps() -> None:
    clock = Clock(FailoverPolicy(CONFIG, fail_after=3, recover_after=60), {"us-east": {"default"}})
    drafts = []
    for minute in range(40):
        # A bad minute, then a good one, twenty times over.
        drafts += clock.run(12, {"us-east"} if minute % 2 == 0 else set())
    assert [d.kind for d in drafts] == ["failover"]
    drafts = clock.run(60)
    assert [d.kind for d in drafts] == ["failback"]


def test_relapses_soon_after_failback_lengthen_the_recovery() -> None:
    policy = FailoverPolicy(CONFIG, fail_after=2, recover_after=4, relapse_window_s=600)
    clock = Clock(policy, {"us-east": {"default"}})
    clock.run(2, {"us-east"})
    assert [d.kind for d in clock.run(4)] == ["failback"]
    clock.run(2, {"us-east"})
    assert policy.recovery_needed("us-east") == 8
    assert clock.run(7) == []
    assert [d.kind for d in clock.step()] == ["failback"]
    # Long after the last failback, a failure is not a relapse.
    clock.run(200)
    clock.run(2, {"us-east"})
    assert policy.recovery_needed("us-east") == 4


def test_eu_personal_traffic_is_blocked_when_no_other_eu_region_is_healthy() -> None:
    clock = Clock(
        FailoverPolicy(CONFIG, fail_after=2, recover_after=4), {"eu-west": {"eu-personal"}}
    )
    clock.run(1, {"eu-west"})
    [draft] = clock.step({"eu-west"})
    assert draft.kind == "failover_blocked" and draft.target is None
    assert draft.data_classes == ("eu-personal",)
    assert draft.action == "hold_traffic"
    ranking = draft.evidence["ranking"]["eu-personal"]
    assert ranking["allowed_jurisdictions"] == ["EU"] and ranking["candidates"] == []
    assert {e["region"]: e["reasons"] for e in ranking["excluded"]} == {
        "ap-south": ["residency"],
        "us-east": ["residency"],
    }
    assert "eu-personal may be served in EU only" in draft.reason
    assert clock.run(10, {"eu-west"}) == []
    [back] = clock.run(4)
    assert back.kind == "failback" and back.data_classes == ()
    assert back.evidence["held"] == ["eu-personal"]


def test_each_data_class_moves_to_its_own_compliant_target() -> None:
    traffic = {"eu-west": {"eu-personal", "default"}, "eu-central": {"default"}}
    clock = Clock(FailoverPolicy(WIDE, fail_after=1, recover_after=3), traffic)
    drafts = [d for d in clock.step({"eu-west", "eu-central"}) if d.region == "eu-west"]
    # eu-central is down too: default moves to us-east, eu-personal is blocked.
    assert [(d.kind, d.target, d.data_classes) for d in drafts] == [
        ("failover", "us-east", ("default",)),
        ("failover_blocked", None, ("eu-personal",)),
    ]
    # Once eu-central has recovered, the blocked class moves there, once.
    assert clock.run(2, {"eu-west"}) == []
    drafts = clock.step({"eu-west"})
    assert [(d.kind, d.region, d.target, d.data_classes) for d in drafts] == [
        ("failback", "eu-central", "eu-central", ("default",)),
        ("failover", "eu-west", "eu-central", ("eu-personal",)),
    ]
    assert clock.run(5, {"eu-west"}) == []
    assert clock.policy.placements("eu-west") == {"default": "us-east", "eu-personal": "eu-central"}


def test_ranking_prefers_near_roomy_cheap_regions_and_is_in_the_evidence() -> None:
    clock = Clock(FailoverPolicy(WIDE, fail_after=1, recover_after=3), {"eu-west": {"default"}})
    [draft] = clock.step({"eu-west"})
    candidates = draft.evidence["ranking"]["default"]["candidates"]
    assert [c["region"] for c in candidates] == ["eu-central", "us-east", "ap-south"]
    assert draft.target == "eu-central"
    assert candidates[0]["latency_ms"] == 20.0
    assert all({"latency_ms", "headroom", "cost", "score", "health"} <= set(c) for c in candidates)
    assert [c["score"] for c in candidates] == sorted(
        (c["score"] for c in candidates), reverse=True
    )


def test_failed_and_unhealthy_regions_are_never_targets() -> None:
    traffic = {"us-east": {"default"}, "eu-west": {"default"}}
    clock = Clock(FailoverPolicy(CONFIG, fail_after=2, recover_after=4), traffic)
    drafts = clock.run(2, {"us-east", "eu-west"})
    assert {(d.region, d.target) for d in drafts} == {
        ("us-east", "ap-south"),
        ("eu-west", "ap-south"),
    }
    clock = Clock(FailoverPolicy(CONFIG, fail_after=2, recover_after=4), traffic)
    drafts = clock.run(2, set(NAMES))
    assert {d.kind for d in drafts} == {"failover_blocked"}
    excluded = drafts[0].evidence["ranking"]["default"]["excluded"]
    assert all({"failed_over", "unhealthy"} <= set(e["reasons"]) for e in excluded)


def test_drafts_make_valid_decisions() -> None:
    clock = Clock(FailoverPolicy(CONFIG, fail_after=1, recover_after=2), {"ap-south": {"default"}})
    drafts = clock.run(1, {"ap-south"}) + clock.run(2)
    assert [d.kind for d in drafts] == ["failover", "failback"]
    for draft in drafts:
        decision = draft.to_decision()
        assert decision.topic == "decisions.failover"
        assert decision.subject == {"region": "ap-south"}
        assert Decision.from_bytes(decision.to_bytes()) == decision
        assert decision.decision_id == draft.to_decision(mode="auto").decision_id
        assert decision.reason.endswith(".") and "ap-south" in decision.reason
        assert set(decision.evidence) >= {"health", "thresholds", "consecutive_unhealthy"}


def test_restored_policy_does_not_repeat_a_failover() -> None:
    traffic = {"us-east": {"default"}, "eu-west": {"eu-personal"}}
    policy = FailoverPolicy(CONFIG, fail_after=2, recover_after=4)
    clock = Clock(policy, traffic)
    drafts = clock.run(3, {"us-east", "eu-west"})
    assert sorted(d.kind for d in drafts) == ["failover", "failover_blocked"]
    state = orjson.loads(orjson.dumps(policy.to_state()))
    restored = FailoverPolicy.from_state(state, CONFIG, fail_after=2, recover_after=4)
    assert restored.to_state() == policy.to_state()
    # The restarted worker re-runs the last tick, then goes on.
    assert restored.evaluate(clock.ts, reports({"us-east", "eu-west"}), traffic) == []
    clock.policy = restored
    assert clock.run(5, {"us-east", "eu-west"}) == []
    assert [d.kind for d in clock.run(4)] == ["failback", "failback"]
    with pytest.raises(ValueError, match="version"):
        FailoverPolicy.from_state({"v": 0}, CONFIG)


def test_evaluations_while_event_time_stands_still_count_for_nothing() -> None:
    policy = FailoverPolicy(CONFIG, fail_after=2, recover_after=4)
    for _ in range(10):
        assert policy.evaluate(100.0, reports({"us-east"}), {}) == []
    assert policy.last_evaluation_ts == 100.0
    [draft] = policy.evaluate(105.0, reports({"us-east"}), {})
    # Traffic of unknown class is default traffic.
    assert draft.data_classes == ("default",)


def test_a_region_without_a_report_keeps_its_counters_and_is_no_target() -> None:
    policy = FailoverPolicy(CONFIG, fail_after=2, recover_after=4)
    policy.evaluate(5.0, reports({"us-east"}), {})
    partial = {r: rep for r, rep in reports({"us-east"}).items() if r != "eu-west"}
    [draft] = policy.evaluate(10.0, partial, {})
    assert draft.target == "ap-south"
    excluded = draft.evidence["ranking"]["default"]["excluded"]
    assert {"region": "eu-west", "jurisdiction": "EU", "reasons": ["no_report"]} in excluded


def test_bench_scenarios_meet_their_targets() -> None:
    result = run_failover_scenarios(
        seed=1,
        names=[
            "hard_outage",
            "brownout",
            "eu_outage_blocked",
            "az_partial",
            "partition",
            "pipeline_partition",
            "healthy_1h",
        ],
        healthy_hours=1,
    )
    scenarios = result["scenarios"]
    assert scenarios["hard_outage"]["detection_delay_s"] <= 15
    assert scenarios["brownout"]["detection_delay_s"] <= 30
    assert scenarios["eu_outage_blocked"]["kinds"] == ["failback", "failover_blocked"]
    # Losing one zone's worth of capacity is held; a partition from one region is failed
    # over as fast as an outage and failed back once; our own partition fails nothing.
    assert scenarios["az_partial"]["decisions"] == []
    assert scenarios["partition"]["detection_delay_s"] <= 15
    assert scenarios["partition"]["kinds"] == ["failback", "failover"]
    assert scenarios["pipeline_partition"]["decisions"] == []
    assert scenarios["healthy_1h"]["decisions"] == []
    for name, figures in scenarios.items():
        assert figures["passed"], name
        assert figures["false_failovers"] == figures["flaps"] == 0
        assert figures["residency_violations"] == figures["unhealthy_targets"] == 0
    text = format_failover_bench(result)
    assert "eu_outage_blocked" in text and text.endswith("all targets met")
    with pytest.raises(ValueError, match="unknown failover scenario"):
        run_failover_scenarios(names=["volcano"])

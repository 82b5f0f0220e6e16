"""Properties of the failover policy over random region configs, rules, health and traffic.

Whatever the configuration and the sequence of health states: no decision targets a region
whose jurisdiction the residency rules forbid for a data class it moves; every failover
targets a healthy region that is not failed itself; a data class is blocked exactly when no
compliant healthy target exists; failures and recoveries respect the hysteresis.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from models.health.region import HealthReport
from models.policy.failover import FailoverPolicy
from schemas.config.regions import DEFAULT_DATA_CLASS, RegionConfig

JURISDICTIONS = ("EU", "US", "APAC", "UK")
DATA_CLASSES = ("eu-personal", "us-health", "uk-finance", "public")
# A class with no rule of its own, which follows the default rule.
UNLISTED = "telemetry"


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(2, 5))
    names = [f"r{i}" for i in range(n)]
    regions = {
        name: {
            "jurisdiction": draw(st.sampled_from(JURISDICTIONS)),
            "headroom": draw(st.sampled_from([0.0, 0.1, 0.5, 1.0])),
            "cost": draw(st.floats(0.5, 3.0)),
        }
        for name in names
    }
    present = sorted({r["jurisdiction"] for r in regions.values()})
    rule = st.one_of(
        st.just(["*"]), st.lists(st.sampled_from(present), min_size=1, max_size=3, unique=True)
    )
    latency = {
        a: {b: draw(st.integers(1, 300)) for b in names[i + 1 :]} for i, a in enumerate(names[:-1])
    }
    residency = {DEFAULT_DATA_CLASS: draw(rule)}
    for data_class in draw(st.lists(st.sampled_from(DATA_CLASSES), unique=True)):
        residency[data_class] = draw(rule)
    config = RegionConfig.from_dict(
        {"regions": regions, "latency_ms": latency, "residency": residency}
    )
    classes = st.sets(st.sampled_from((DEFAULT_DATA_CLASS, UNLISTED, *DATA_CLASSES)), max_size=3)
    traffic = {name: draw(classes) for name in names}
    fail_after = draw(st.integers(1, 3))
    recover_after = draw(st.integers(fail_after + 1, fail_after + 4))
    # Health: regions drift between healthy and not, in runs, so transitions happen both ways.
    steps = draw(st.integers(5, 40))
    health = []
    state = {name: True for name in names}
    for _ in range(steps):
        for name in draw(st.sets(st.sampled_from(names), max_size=2)):
            state[name] = not state[name]
        missing = draw(st.sets(st.sampled_from(names), max_size=1))
        health.append({name: ok for name, ok in state.items() if name not in missing})
    return {
        "config": config,
        "traffic": traffic,
        "fail_after": fail_after,
        "recover_after": recover_after,
        "health": health,
    }


def report(region: str, healthy: bool, ts: float) -> HealthReport:
    score = 0.9 if healthy else 0.1
    return HealthReport(region, ts, score, healthy, {"metrics": score}, 0.0, {})


def compliant_healthy(
    config: RegionConfig,
    region: str,
    data_class: str,
    reports: dict[str, HealthReport],
    failed: set[str],
) -> list[str]:
    """Independent statement of where ``data_class`` may go from ``region``."""
    return [
        r
        for r in config.names
        if r != region
        and r in reports
        and reports[r].healthy
        and r not in failed
        and config.regions[r].headroom > 0
        and (
            "*" in config.allowed_jurisdictions(data_class)
            or config.regions[r].jurisdiction in config.allowed_jurisdictions(data_class)
        )
    ]


@settings(max_examples=60, deadline=None)
@given(scenarios())
def test_decisions_respect_residency_health_and_hysteresis(case: dict[str, Any]) -> None:
    config: RegionConfig = case["config"]
    policy = FailoverPolicy(
        config, fail_after=case["fail_after"], recover_after=case["recover_after"]
    )
    traffic = case["traffic"]
    history: dict[str, list[bool]] = {name: [] for name in config.names}
    for i, health in enumerate(case["health"]):
        ts = 5.0 * (i + 1)
        reports = {name: report(name, ok, ts) for name, ok in health.items()}
        for name, ok in health.items():
            history[name].append(ok)
        failed_before = set(policy.failed_regions)
        drafts = policy.evaluate(ts, reports, traffic)
        failed_after = set(policy.failed_regions)

        for d in drafts:
            assert d.ts == ts and d.region in config.regions
            if d.kind == "failover":
                assert d.target != d.region
                assert reports[d.target].healthy, "failover to an unhealthy region"
                assert d.target not in failed_after, "failover to a failed region"
                assert config.regions[d.target].headroom > 0
                for data_class in d.data_classes:
                    assert config.allows(data_class, d.target), "residency violated"
                    assert d.target in compliant_healthy(
                        config, d.region, data_class, reports, failed_after
                    )
            elif d.kind == "failover_blocked":
                assert d.target is None
                for data_class in d.data_classes:
                    assert not compliant_healthy(
                        config, d.region, data_class, reports, failed_after
                    ), "blocked although a compliant healthy target exists"
            else:
                assert d.kind == "failback" and d.target == d.region

        for name in failed_after - failed_before:
            # Failed only after fail_after unhealthy evaluations in a row ...
            assert history[name][-case["fail_after"] :] == [False] * case["fail_after"]
            # ... and every data class of its traffic is either moved or blocked at once.
            mine = [d for d in drafts if d.region == name and d.kind != "failback"]
            moved = [dc for d in mine for dc in d.data_classes]
            assert sorted(moved) == sorted(traffic[name] or {DEFAULT_DATA_CLASS})
        for name in failed_before - failed_after:
            needed = policy.recovery_needed(name)
            assert needed > case["fail_after"]
            assert history[name][-needed:] == [True] * needed
            assert [d.kind for d in drafts if d.region == name] == ["failback"]
        for d in drafts:
            if d.kind == "failback":
                assert d.region in failed_before - failed_after
            else:
                assert d.region in failed_after

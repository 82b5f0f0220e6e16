"""Root-cause hints: deploys, metric anomalies, and one region against several."""

import json

import pytest

from models.detect.bursts import Burst
from models.health.root_cause import CAUSE_KINDS, CauseContext, rank_causes

T0 = 1_700_000_000.0


def burst(ts, region="eu-west", template="t1", service="checkout", first_seen=T0 - 86_400):
    return Burst(template, service, region, ts, 20.0, 0.05, first_seen)


def kinds(hints):
    return [h.kind for h in hints]


def test_a_recent_deploy_makes_a_rollback_candidate_the_top_hint():
    ctx = CauseContext()
    ctx.observe_version("checkout", "eu-west", "v1.4.0", T0)
    assert ctx.observe_version("checkout", "eu-west", "v1.5.0", T0 + 3000)
    hints = rank_causes(burst(T0 + 3090, first_seen=T0 + 3085), ctx)
    assert kinds(hints) == ["rollback_candidate", "regional"]
    top = hints[0]
    assert top.evidence["version"] == "v1.5.0"
    assert top.evidence["template_new_since_deploy"] is True
    assert "v1.5.0" in top.reason


def test_a_fresh_error_after_a_deploy_scores_higher_than_an_old_one_and_sooner_is_higher():
    ctx = CauseContext()
    ctx.observe_version("checkout", "eu-west", "v1", T0)
    ctx.observe_version("checkout", "eu-west", "v2", T0 + 1000)
    new = rank_causes(burst(T0 + 1060, first_seen=T0 + 1050), ctx)[0]
    old = rank_causes(burst(T0 + 1060), ctx)[0]
    late = rank_causes(burst(T0 + 1500), ctx)[0]
    assert new.kind == old.kind == late.kind == "rollback_candidate"
    assert new.score > old.score > late.score


def test_deploys_outside_the_window_elsewhere_or_after_the_burst_are_not_candidates():
    ctx = CauseContext(deploy_window_s=600)
    ctx.observe_version("checkout", "eu-west", "v1", T0)
    ctx.observe_version("checkout", "eu-west", "v2", T0 + 100)
    ctx.observe_version("search", "us-east", "v1", T0)
    ctx.observe_version("search", "us-east", "v9", T0 + 1000)
    assert "rollback_candidate" not in kinds(rank_causes(burst(T0 + 800), ctx))
    assert "rollback_candidate" not in kinds(rank_causes(burst(T0 + 1010), ctx))
    ctx.observe_version("checkout", "eu-west", "v3", T0 + 2000)
    assert "rollback_candidate" not in kinds(rank_causes(burst(T0 + 1990), ctx))


def test_the_first_version_seen_and_a_rolling_update_flip_flop_are_not_deploys():
    ctx = CauseContext()
    assert not ctx.observe_version("checkout", "eu-west", "v1", T0)
    assert "rollback_candidate" not in kinds(rank_causes(burst(T0 + 60), ctx))
    assert ctx.observe_version("checkout", "eu-west", "v2", T0 + 100)
    # Old and new pods log side by side while the update rolls: no new deploy each time.
    assert not ctx.observe_version("checkout", "eu-west", "v1", T0 + 101)
    assert not ctx.observe_version("checkout", "eu-west", "v2", T0 + 102)
    assert ctx.recent_deploys("checkout", "eu-west", since=T0) == [("v2", T0 + 100)]


def test_metric_anomalies_of_the_same_place_are_evidence():
    ctx = CauseContext()
    ctx.observe_anomaly("checkout", "eu-west", T0 - 60, "memory_util", 0.9)
    ctx.observe_anomaly("checkout", "eu-west", T0 - 30, "cpu_util", 0.4)
    ctx.observe_anomaly("checkout", "us-east", T0 - 30, "cpu_util", 1.0)  # elsewhere
    ctx.observe_anomaly("checkout", "eu-west", T0 - 5000, "cpu_util", 1.0)  # too old
    hints = rank_causes(burst(T0), ctx)
    assert kinds(hints) == ["metric_anomaly", "regional"]
    anomalies = hints[0].evidence["anomalies"]
    assert [a["metric"] for a in anomalies] == ["memory_util", "cpu_util"]
    assert hints[0].score == pytest.approx(0.3 + 0.5 * 0.9)


def test_the_same_template_in_several_regions_points_at_a_dependency():
    ctx = CauseContext(burst_window_s=300)
    ctx.observe_burst(burst(T0, region="us-east"))
    ctx.observe_burst(burst(T0 + 20, region="ap-south", service="search"))
    ctx.observe_burst(burst(T0 - 1000, region="sa-east"))  # long before: unrelated
    ctx.observe_burst(burst(T0, region="us-west", template="t2"))  # another template
    hints = rank_causes(burst(T0 + 30), ctx)
    assert kinds(hints) == ["global_dependency"]
    assert hints[0].evidence["other_regions"] == ["ap-south", "us-east"]
    assert hints[0].score == pytest.approx(0.8)


def test_one_region_alone_is_regional_more_so_with_other_errors_there():
    ctx = CauseContext()
    alone = rank_causes(burst(T0), ctx)
    ctx.observe_burst(burst(T0 - 10, template="t2"))
    ctx.observe_burst(burst(T0 - 5, template="t3", service="search"))
    crowded = rank_causes(burst(T0), ctx)
    assert kinds(alone) == kinds(crowded) == ["regional"]
    assert crowded[0].score > alone[0].score
    assert crowded[0].evidence["other_templates_bursting"] == 2


def test_all_evidence_together_is_ranked_by_score():
    ctx = CauseContext()
    ctx.observe_version("checkout", "eu-west", "v1", T0 - 5000)
    ctx.observe_version("checkout", "eu-west", "v2", T0 - 30)
    ctx.observe_anomaly("checkout", "eu-west", T0 - 10, "p99_latency_ms", 1.0)
    ctx.observe_burst(burst(T0 - 5, region="us-east"))
    hints = rank_causes(burst(T0, first_seen=T0 - 20), ctx)
    assert kinds(hints) == ["rollback_candidate", "metric_anomaly", "global_dependency"]
    assert [h.score for h in hints] == sorted((h.score for h in hints), reverse=True)
    assert set(kinds(hints)) <= set(CAUSE_KINDS)
    assert all(0.0 <= h.score <= 1.0 for h in hints)
    json.dumps([h.to_dict() for h in hints])


def test_state_round_trip_and_bounds():
    ctx = CauseContext(max_places=2, max_items=3)
    ctx.observe_version("a", "r", "v1", T0)
    ctx.observe_version("a", "r", "v2", T0 + 10)
    ctx.observe_anomaly("a", "r", T0 + 5, "cpu_util", 0.7)
    ctx.observe_burst(burst(T0 + 20, region="x"))
    restored = CauseContext.from_state(json.loads(json.dumps(ctx.to_state())))
    b = Burst("t1", "a", "r", T0 + 30, 10.0, 0.0, T0)
    assert [h.to_dict() for h in rank_causes(b, restored)] == [
        h.to_dict() for h in rank_causes(b, ctx)
    ]
    for i in range(5):
        ctx.observe_version("a", "r", f"v{10 + i}", T0 + 100 + i)
    assert len(ctx.recent_deploys("a", "r", since=T0)) == 2  # three versions kept
    ctx.observe_anomaly("b", "r", T0 + 200, "cpu_util", 0.5)
    ctx.observe_anomaly("c", "r", T0 + 201, "cpu_util", 0.5)
    assert ctx.recent_deploys("a", "r", since=T0) == []  # "a" was the least recent place


def test_idle_places_are_forgotten():
    ctx = CauseContext(ttl_s=1000)
    ctx.observe_version("a", "r", "v1", T0)
    ctx.observe_version("a", "r", "v2", T0 + 10)
    ctx.observe_version("b", "r", "v1", T0 + 2000)
    assert ctx.recent_deploys("a", "r", since=T0) == []

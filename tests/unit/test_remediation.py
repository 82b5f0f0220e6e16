"""The remediation policy: evidence-gated auto mode, learning, outcomes by decision id, state."""

import json
import random
import subprocess

import pytest

from models.policy.remediation import (
    ACTIONS,
    RemediationContext,
    RemediationPolicy,
    beta_cdf,
    beta_quantile,
    borrow,
)
from streams.lab.bench.remediation import (
    FAULT_MODELS,
    format_bench_remediation,
    format_bench_remediation_seeds,
    rule_table_action,
    run_bench_remediation,
    run_bench_remediation_seeds,
)
from streams.lab.scenario import FAULT_TYPES
from tests.conftest import AUTOPILOT

CTX = RemediationContext("checkout", "eu-west", "TimeoutError", "aaaaaaaaaaaa", "metric_anomaly")


def test_open_incident_when_nothing_is_known():
    policy = RemediationPolicy(seed=0)
    choice = policy.decide(CTX, basis=[1.0, "b"], ts=1.0)
    assert choice.action == "open_incident"
    assert choice.mode == "recommend"
    assert (choice.n_obs, choice.level) == (0, ())
    assert len(choice.decision_id) == 32
    assert "Nothing is known" in choice.reason


def test_auto_only_once_the_evidence_allows_it():
    policy = RemediationPolicy(seed=0, min_obs=10, auto_lower=0.8)
    first_auto = None
    for k in range(1, 30):
        policy.record_outcome(CTX, "scale_out", True)
        choice = policy.decide(CTX, basis=[k], ts=float(k))
        if choice.mode == "auto":
            assert choice.action == "scale_out"
            assert choice.n_obs == k >= 10
            assert choice.lower == pytest.approx(beta_quantile(0.05, 1 + k, 1))
            assert choice.lower >= 0.8
            first_auto = k if first_auto is None else first_auto
    # 0.05 ** (1 / (k + 1)) >= 0.8 first holds at k = 13: ten successes are not enough.
    assert first_auto == 13


def test_failures_keep_an_action_out_of_auto_mode():
    policy = RemediationPolicy(seed=0)
    for i in range(40):
        policy.record_outcome(CTX, "scale_out", i % 4 != 0)  # 75 % success
    for k in range(20):
        choice = policy.decide(CTX, basis=[k], ts=float(k))
        assert choice.mode == "recommend"
    assert choice.estimates[0].action == "scale_out"


def test_the_policy_learns_the_best_action_and_then_applies_it():
    p = dict.fromkeys(ACTIONS, 0.1) | {"scale_out": 0.95, "restart_instance": 0.6}
    policy = RemediationPolicy(seed=3)
    world = random.Random(3)
    actions, modes = [], []
    for k in range(120):
        choice = policy.decide(CTX, basis=[k], ts=float(k))
        actions.append(choice.action)
        modes.append(choice.mode)
        assert policy.learn_outcome(choice.decision_id, world.random() < p[choice.action])
    assert actions[-30:].count("scale_out") >= 27
    assert "auto" in modes
    assert all(a == "scale_out" for a, m in zip(actions, modes, strict=True) if m == "auto")


def test_outcomes_match_pending_decisions_by_id_once():
    policy = RemediationPolicy(seed=0)
    choice = policy.decide(CTX, basis=[1.0, "burst"], ts=1.0)
    assert policy.pending(choice.decision_id).action == choice.action
    matched = policy.learn_outcome(choice.decision_id, success=False, ts=2.0)
    assert matched is not None and matched.context == CTX
    # Answered already, never made, or malformed: all are reported back for the DLQ.
    assert policy.learn_outcome(choice.decision_id, success=True, ts=3.0) is None
    assert policy.learn_outcome("f" * 32, success=True, ts=3.0) is None
    assert policy.learn_outcome("not-an-id", success=True) is None
    _, estimates = policy.estimates(CTX)
    assert {e.action: e.n_obs for e in estimates}["open_incident"] == 1


def test_decision_ids_are_deterministic_and_distinct_per_basis():
    a = RemediationPolicy(seed=0).decide(CTX, basis=[1.0, "x"], ts=1.0)
    b = RemediationPolicy(seed=0).decide(CTX, basis=[1.0, "x"], ts=1.0)
    c = RemediationPolicy(seed=0).decide(CTX, basis=[2.0, "x"], ts=2.0)
    assert a.decision_id == b.decision_id != c.decision_id


def test_pending_decisions_expire_and_are_capped():
    policy = RemediationPolicy(seed=0, pending_ttl_s=100.0, max_pending=3)
    old = policy.decide(CTX, basis=[0], ts=0.0)
    policy.decide(CTX, basis=[1], ts=150.0)
    assert policy.learn_outcome(old.decision_id, True, ts=150.0) is None  # expired
    ids = [policy.decide(CTX, basis=[k], ts=150.0 + k).decision_id for k in range(2, 6)]
    assert policy.pending(ids[0]) is None  # the oldest went beyond the cap
    assert all(policy.pending(i) for i in ids[1:])


def test_a_new_template_backs_off_to_its_error_type_and_never_auto_from_there():
    policy = RemediationPolicy(seed=0)
    for _ in range(50):
        policy.record_outcome(CTX, "scale_out", True)
    fresh = RemediationContext("search", "us-east", "TimeoutError", "bbbbbbbbbbbb", "regional")
    choice = policy.decide(fresh, basis=[1], ts=1.0)
    assert choice.level == ("error_type",)
    assert choice.mode == "recommend"
    assert choice.estimates[0].action == "scale_out"
    other = RemediationContext("search", "us-east", "MemoryError", "cccccccccccc", "regional")
    assert policy.decide(other, basis=[2], ts=2.0).action == "open_incident"


def test_a_finer_context_is_used_once_it_has_enough_outcomes():
    policy = RemediationPolicy(seed=0, min_obs=5)  # backoff_obs = 10
    other_service = RemediationContext(
        "search", "eu-west", CTX.error_type, CTX.template_id, CTX.cause
    )
    for _ in range(30):
        policy.record_outcome(other_service, "restart_instance", True)
    assert policy.decide(CTX, basis=[0], ts=0.0).level == ("template_id", "cause")
    for _ in range(14):
        policy.record_outcome(CTX, "scale_out", True)
    choice = policy.decide(CTX, basis=[1], ts=1.0)
    assert choice.level == ("template_id", "cause", "service")
    assert (choice.action, choice.mode) == ("scale_out", "auto")


def test_a_template_goes_auto_sooner_with_what_its_siblings_taught():
    # A sibling template of the same error type: scale_out worked 20 times of 20.
    sibling = RemediationContext("search", "us-east", CTX.error_type, "bbbbbbbbbbbb", CTX.cause)
    policy = RemediationPolicy(seed=0)
    for _ in range(20):
        policy.record_outcome(sibling, "scale_out", True)
    modes = []
    for k in range(1, 6):
        policy.record_outcome(CTX, "scale_out", True)
        choice = policy.decide(CTX, basis=[k], ts=float(k))
        modes.append(choice.mode)
        if choice.mode == "auto":
            assert choice.action == "scale_out"
            assert choice.level == ("template_id",)
            assert choice.borrowed_from == ("error_type",)
            assert choice.own_n_obs == k >= policy.min_own
            assert choice.lower >= policy.auto_lower and choice.n_obs >= policy.min_obs
            assert choice.evidence()["borrowed_from"] == ["error_type"]
    # Its own 1 or 2 successes are not enough (min_own), its own third is; alone it would
    # need 13.
    assert modes == ["recommend", "recommend", "auto", "auto", "auto"]


def test_a_template_unlike_its_siblings_stops_borrowing():
    sibling = RemediationContext("search", "us-east", CTX.error_type, "bbbbbbbbbbbb", CTX.cause)
    policy = RemediationPolicy(seed=0)
    for _ in range(20):
        policy.record_outcome(sibling, "scale_out", True)
    for _ in range(2):
        policy.record_outcome(CTX, "scale_out", True)
    for _ in range(6):
        policy.record_outcome(CTX, "scale_out", False)
    assert policy.decide(CTX, basis=[1], ts=1.0).mode == "recommend"
    lent = borrow([2.0, 6.0], [22.0, 6.0], 20.0, 10.0)
    assert lent[0] < 2.0 + 0.2  # almost nothing of the siblings' 20 successes
    # With fewer failures the evidence against the siblings is weaker: it borrows more.
    assert borrow([3.0, 4.0], [23.0, 4.0], 20.0, 10.0)[0] > lent[0] + 1.0


def test_borrowing_is_capped_and_alike_contexts_borrow_fully():
    # Without own outcomes, the prior probability of alike (odds 10: 10 / 11) scales it.
    assert borrow([0.0, 0.0], [40.0, 0.0], 10.0, 10.0) == pytest.approx([100 / 11, 0.0])
    assert borrow([2.0, 0.0], [2.0, 0.0], 10.0, 10.0) == [2.0, 0.0]  # no siblings
    assert borrow([1.0, 0.0], [21.0, 0.0], 10.0, 10.0)[0] > 1.0 + 100 / 11  # more alike


def test_a_template_of_another_fault_is_not_held_to_its_error_type_record():
    # Two faults behind one error type: for the sibling scale_out works and failover does
    # not; for this template scale_out works only half the time.
    sibling = RemediationContext("search", "us-east", CTX.error_type, "bbbbbbbbbbbb", CTX.cause)
    policy = RemediationPolicy(seed=0)
    for k in range(40):
        policy.record_outcome(sibling, "scale_out", True)
        if k < 3:
            policy.record_outcome(sibling, "failover_region", False)
    for k in range(8):
        policy.record_outcome(CTX, "scale_out", k % 2 == 0)
    choices = [policy.decide(CTX, basis=[k], ts=float(k)) for k in range(60)]
    # Drawn on the template's own record, not the error type's pooled one ...
    assert all(c.level == ("template_id",) for c in choices)
    # ... so the action the sibling saw fail three times is still tried here.
    assert sum(c.action == "failover_region" for c in choices) >= 3


def test_a_finer_context_vetoes_an_action_that_fails_there():
    sibling = RemediationContext("search", "us-east", CTX.error_type, "bbbbbbbbbbbb", CTX.cause)
    policy = RemediationPolicy(seed=0)
    for _ in range(20):
        policy.record_outcome(sibling, "scale_out", True)
    other_cause = RemediationContext(
        CTX.service, CTX.region, CTX.error_type, CTX.template_id, "regional"
    )
    for _ in range(10):
        policy.record_outcome(other_cause, "scale_out", True)
    assert policy.decide(CTX, basis=[0], ts=0.0).mode == "auto"
    for _ in range(3):
        policy.record_outcome(CTX, "scale_out", False)  # fails for this cause and service
    choice = policy.decide(CTX, basis=[1], ts=1.0)
    assert choice.mode == "recommend"


def test_state_survives_a_restart_through_json():
    policy = RemediationPolicy(seed=0)
    for i in range(30):
        policy.record_outcome(CTX, "scale_out", i % 10 != 0)
    pending = policy.decide(CTX, basis=["before restart"], ts=10.0)
    restored = RemediationPolicy.from_state(json.loads(json.dumps(policy.to_state())))
    assert restored.estimates(CTX) == policy.estimates(CTX)
    assert restored.learn_outcome(pending.decision_id, True, ts=11.0).action == pending.action
    with pytest.raises(ValueError, match="version"):
        RemediationPolicy.from_state({"version": 0})


def test_counts_are_capped_so_old_outcomes_fade():
    policy = RemediationPolicy(seed=0, max_obs=50)
    for _ in range(200):
        policy.record_outcome(CTX, "scale_out", False)
    for _ in range(50):
        policy.record_outcome(CTX, "scale_out", True)
    _, estimates = policy.estimates(CTX)
    scale_out = next(e for e in estimates if e.action == "scale_out")
    assert scale_out.n_obs <= 50
    assert scale_out.p_success > 0.5


def test_bad_parameters_and_actions_are_refused():
    with pytest.raises(ValueError):
        RemediationPolicy(actions=("scale_out",))
    with pytest.raises(ValueError):
        RemediationPolicy(levels=[("nope",)])
    with pytest.raises(ValueError):
        RemediationPolicy().record_outcome(CTX, "reboot_the_world", True)


def test_beta_functions_match_scipy():
    special = pytest.importorskip("scipy.special")
    for a, b in [(1, 1), (2, 5), (14, 1), (30, 3), (0.5, 1.5), (400, 120)]:
        for x in (0.01, 0.3, 0.5, 0.8, 0.99):
            assert beta_cdf(x, a, b) == pytest.approx(special.betainc(a, b, x), abs=1e-12)
        assert beta_quantile(0.05, a, b) == pytest.approx(special.betaincinv(a, b, 0.05), abs=1e-9)


# ------------------------------------------------------------------ closed loop


def test_the_simulation_covers_every_simulator_fault_type():
    assert set(FAULT_MODELS) == set(FAULT_TYPES)
    assert all(m.best != m.second for m in FAULT_MODELS.values())
    wrong = [
        f
        for f, m in FAULT_MODELS.items()
        if rule_table_action(RemediationContext("s", "r", m.error_type, "t", "regional")) != m.best
    ]
    right = set(FAULT_MODELS) - set(wrong)
    assert wrong and right  # the runbook is right for some faults and wrong for others


def test_closed_loop_auto_decisions_are_earned_and_mostly_succeed():
    results = [run_bench_remediation(incidents_per_fault=30, seed=seed) for seed in (0, 1)]
    autos = sum(r["learned"]["all"]["auto"] for r in results)
    auto_successes = sum(r["learned"]["all"]["auto_successes"] for r in results)
    # Borrowing across templates: about a third of the decisions after learning are auto.
    assert autos >= 120
    assert auto_successes / autos >= 0.9
    for r in results:
        assert r["learned"]["all"]["premature_auto"] == 0
        assert r["learned"]["unknown_outcomes"] == 0
        pol = r["policies"]
        # Learning costs at first; after 30 incidents per fault type it beats the runbook
        # by ten points.
        assert pol["learned"]["success_rate_after"] > pol["rule_table"]["success_rate_after"] + 0.1
        assert pol["learned"]["success_rate"] > pol["random"]["success_rate"] + 0.15
        assert pol["oracle"]["expected_regret"] == 0.0
        assert pol["random"]["expected_regret"] > pol["learned"]["expected_regret"]
    # Over the whole run, learning included, it does better than the runbook on average.
    overall = [r["policies"]["learned"]["success_rate"] for r in results]
    runbook = [r["policies"]["rule_table"]["success_rate"] for r in results]
    assert sum(overall) > sum(runbook)
    text = format_bench_remediation(results[0])
    assert "regret" in text and "learned" in text and "rule_table" in text
    assert "no auto before its evidence: yes" in text


def test_the_mean_over_seeds_is_the_mean_of_each_seed():
    r = run_bench_remediation_seeds([3, 4], incidents_per_fault=4, after_incidents_per_fault=2)
    one = [run_bench_remediation(incidents_per_fault=4, seed=s, after_incidents_per_fault=2)
           for s in (3, 4)]  # fmt: skip
    rates = [x["policies"]["learned"]["success_rate"] for x in one]
    assert r["mean"]["policies"]["learned"]["success_rate"] == pytest.approx(sum(rates) / 2)
    assert set(r["per_seed"]) == {"3", "4"}
    text = format_bench_remediation_seeds(r)
    assert "mean" in text and "mean meets:" in text
    json.dumps(r)
    with pytest.raises(ValueError):
        run_bench_remediation_seeds([])


def test_every_outcome_reaches_the_policy_but_those_due_after_the_run():
    # A delay of 0 once filed outcomes under the incident whose outcomes had just been
    # handed over: a quarter of all feedback was lost.
    r = run_bench_remediation(incidents_per_fault=6, seed=2, after_incidents_per_fault=2)
    learned = r["learned"]
    assert learned["unknown_outcomes"] == 0
    assert learned["outcomes_due_after_the_run"] <= r["config"]["max_feedback_delay"] + 1
    assert (
        learned["learned_outcomes"] + learned["outcomes_due_after_the_run"]
        == r["config"]["incidents"]
    )


def test_closed_loop_is_reproducible():
    a = run_bench_remediation(incidents_per_fault=5, seed=7, after_incidents_per_fault=2)
    b = run_bench_remediation(incidents_per_fault=5, seed=7, after_incidents_per_fault=2)
    assert a == b
    json.dumps(a)


def test_a_replay_after_a_restore_draws_the_same_decision():
    # A worker restarted from a checkpoint taken before a decision reads its burst again:
    # it must publish the same decision, not another action under another id.
    policy = RemediationPolicy()  # the worker's policy: no seed
    policy.record_outcome(CTX, "scale_out", True)
    policy.record_outcome(CTX, "restart_instance", False)
    for k in range(3):
        policy.decide(CTX, basis=[float(k), "earlier"], ts=float(k))
    saved = policy.to_state()
    for k in range(20):
        basis = [10.0 + k, "burst"]
        original = policy.decide(CTX, basis=basis, ts=10.0 + k)
        replay = RemediationPolicy.from_state(saved).decide(CTX, basis=basis, ts=10.0 + k)
        assert original.mode == "recommend"
        assert (replay.action, replay.decision_id) == (original.action, original.decision_id)
    actions = {policy.decide(CTX, basis=[100.0 + k, "b"], ts=100.0 + k).action for k in range(40)}
    assert len(actions) > 1, "Thompson sampling should still explore across bursts"


def test_bench_cli_prints_the_mean_over_seeds_and_json_last():
    args = [str(AUTOPILOT), "bench", "remediation", "--incidents-per-fault", "3", "--seeds", "2-3"]
    result = subprocess.run([*args, "--json"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    *table, last = result.stdout.strip().splitlines()
    figures = json.loads(last)
    assert figures["seeds"] == [2, 3] and set(figures["per_seed"]) == {"2", "3"}
    assert any(line.lstrip().startswith("mean") for line in table)
    bad = subprocess.run([*args[:-1], "4-x"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--seeds wants A-B" in bad.stderr

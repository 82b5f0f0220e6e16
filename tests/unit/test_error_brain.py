"""The errors brain without Kafka: one decision per burst, redacted evidence, root-cause
hints, learning from outcomes, state that survives a restart; the closed-loop outcome
simulator and the error bench commands."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from models.brains.errors import ErrorBrain
from models.policy.remediation import ACTIONS, RemediationContext
from schemas import Decision, ErrorEvent, RemediationOutcome
from streams.cli.bench import bench
from streams.lab.bench.remediation import FAULT_MODELS
from streams.lab.outcomes import (
    BurstIncident,
    load_incidents,
    match_incident,
    outcome_for,
    success_probability,
)
from streams.lab.scenario import FAULT_TYPES, load_scenario, parse_scenario
from streams.lab.simulator import SimConfig, generate, ground_truth

START = 1_700_000_000.0
EMAIL = re.compile(rb"[\w.+-]+@[\w-]+(\.[\w-]+)+")
IP = re.compile(rb"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b")


def events(config: SimConfig) -> list[ErrorEvent]:
    """The simulator's error events of ``config``, as the edge would build them."""
    out = []
    for attr, _, value, _ in generate(config):
        if attr == "errors":
            body = orjson.loads(value)
            out.append(
                ErrorEvent(
                    body["ts"], body["region"], body["service"], body["severity"],
                    body["error_type"], body["message"], body.get("stack"),
                    body.get("trace_id"), body.get("deploy_version"),
                )
            )  # fmt: skip
    return out


def error_burst(start_ts: float = START, **overrides) -> SimConfig:
    return SimConfig.for_scenario(load_scenario("error_burst"), start_ts=start_ts, **overrides)


def scenario(incidents: list[dict], duration_s: float = 900.0) -> SimConfig:
    sc = parse_scenario({"name": "t", "duration_s": duration_s, "incidents": incidents})
    return SimConfig.for_scenario(sc, start_ts=START, tenants=0)


def feed(brain: ErrorBrain, stream: Iterable[ErrorEvent]) -> list[Decision]:
    return [d for event in stream for d in brain.observe(event)]


def test_an_error_burst_gets_one_explained_remediation_decision():
    stream = events(error_burst())
    burst = next(i for i in ground_truth(error_burst(), START)["incidents"])
    decisions = feed(ErrorBrain(seed=0), stream)

    # Three templates burst at once (the fault logs three kinds of message): one decision.
    assert len(decisions) == 1
    decision = decisions[0]
    assert decision.kind == "remediation" and decision.topic == "decisions.remediation"
    assert decision.subject == {"service": "checkout", "region": "eu-west"}
    assert burst["onset_ts"] <= decision.ts < burst["end_ts"]
    # Nothing is known yet: a human is asked, and the outcome will teach the policy.
    assert (decision.action, decision.mode) == ("open_incident", "recommend")
    evidence = decision.evidence
    assert evidence["n_obs"] == 0 and evidence["lower_bound"] < 0.8
    assert decision.confidence == evidence["p_success"]
    assert evidence["burst"]["rate_per_s"] > 5 * evidence["burst"]["baseline_per_s"]
    top = evidence["causes"][0]
    assert top["kind"] == "rollback_candidate"
    assert top["evidence"]["version"] == "v2.0.0"
    assert top["evidence"]["deploy_ts"] == burst["deploy_ts"]
    assert evidence["context"]["cause"] == "rollback_candidate"
    assert evidence["template_id"] == evidence["context"]["template_id"]
    assert "<" in evidence["template"] and decision.reason.endswith(".")
    assert Decision.from_bytes(decision.to_bytes()) == decision


def test_no_personal_data_leaves_the_brain():
    stream = events(error_burst())
    raw = b"\n".join(e.message.encode() for e in stream)
    assert EMAIL.search(raw) and IP.search(raw), "the simulator should log e-mails and IPs"
    brain = ErrorBrain(seed=0)
    decisions = feed(brain, stream)
    published = b"".join(d.to_bytes() for d in decisions)
    state = orjson.dumps(brain.to_state())
    for data in (published, state):
        assert not EMAIL.search(data)
        assert not IP.search(data)


def test_an_outcome_changes_the_next_decisions_statistics():
    brain = ErrorBrain(seed=0)
    (first,) = feed(brain, events(error_burst()))
    outcome = RemediationOutcome(first.decision_id, first.ts + 60, True)
    assert brain.learn_outcome(outcome)
    # Answered once: a repeat, or an id never decided, is refused (and dead-lettered).
    assert not brain.learn_outcome(outcome)
    assert not brain.learn_outcome(RemediationOutcome("0" * 32, first.ts, True))

    (second,) = feed(brain, events(error_burst(start_ts=START + 1200)))
    assert second.decision_id != first.decision_id
    learned = second.evidence["estimates"][first.action]
    assert learned["n_obs"] == 1
    assert learned["p_success"] == pytest.approx(2 / 3, abs=1e-4)
    assert second.evidence["context_level"], "the second decision should use what it learned"


def test_bursts_elsewhere_or_after_an_episode_get_their_own_decisions():
    incidents = [
        {"type": "error_burst", "service": "checkout", "region": "eu-west",
         "fault_type": "disk_full", "start_s": 300, "duration_s": 60, "rate_per_s": 20},
        {"type": "error_burst", "service": "search", "region": "us-east",
         "fault_type": "out_of_memory", "start_s": 310, "duration_s": 60, "rate_per_s": 20},
        {"type": "error_burst", "service": "checkout", "region": "eu-west",
         "fault_type": "rate_limited", "start_s": 700, "duration_s": 60, "rate_per_s": 20},
    ]  # fmt: skip
    decisions = feed(ErrorBrain(seed=0), events(scenario(incidents)))
    places = [(d.subject["service"], d.subject["region"], d.ts - START) for d in decisions]
    assert [(s, r) for s, r, _ in places] == [
        ("checkout", "eu-west"),
        ("search", "us-east"),
        ("checkout", "eu-west"),
    ]
    windows = [(300, 360), (310, 370), (700, 760)]
    assert all(lo <= ts < hi for (_, _, ts), (lo, hi) in zip(places, windows, strict=True))


def test_the_same_template_in_several_regions_points_at_a_dependency():
    incidents = [
        {"type": "error_burst", "service": "checkout", "region": region,
         "fault_type": "tls_handshake_failure", "start_s": 300 + 20 * i, "duration_s": 60,
         "rate_per_s": 20}
        for i, region in enumerate(("eu-west", "us-east"))
    ]  # fmt: skip
    first, second = feed(ErrorBrain(seed=0), events(scenario(incidents)))
    assert first.evidence["causes"][0]["kind"] == "regional"
    top = second.evidence["causes"][0]
    assert top["kind"] == "global_dependency"
    assert top["evidence"]["other_regions"] == ["eu-west"]


def test_metric_anomalies_fed_to_the_brain_are_evidence():
    brain = ErrorBrain(seed=0)
    incident = {"type": "error_burst", "service": "checkout", "region": "eu-west",
                "fault_type": "out_of_memory", "start_s": 300, "duration_s": 60}  # fmt: skip
    brain.observe_anomaly("checkout", "eu-west", START + 290, "mem_util", 0.9)
    (decision,) = feed(brain, events(scenario([incident])))
    kinds = {h["kind"]: h for h in decision.evidence["causes"]}
    assert kinds["metric_anomaly"]["evidence"]["anomalies"][0]["metric"] == "mem_util"
    assert decision.evidence["context"]["cause"] == "metric_anomaly"


def test_state_round_trips_through_json_with_the_same_template_ids_and_decisions():
    first_half, second_half = events(error_burst()), events(error_burst(start_ts=START + 1200))
    original = ErrorBrain(seed=0)
    (pending,) = feed(original, first_half)
    restored = ErrorBrain.from_state(orjson.loads(orjson.dumps(original.to_state())))

    ids = [(t.template_id, t.template, t.count) for t in original.miner.templates()]
    assert [(t.template_id, t.template, t.count) for t in restored.miner.templates()] == ids
    assert restored.to_state() == original.to_state()
    # The decision made before the restart still waits for its outcome.
    outcome = RemediationOutcome(pending.decision_id, pending.ts + 60, True)
    assert restored.learn_outcome(outcome) and original.learn_outcome(outcome)

    # Enough evidence for auto mode in the burst's context makes the next decision
    # deterministic: both brains must take it identically.
    context = RemediationContext(**pending.evidence["context"])
    for brain in (original, restored):
        for _ in range(20):
            brain.policy.record_outcome(context, "rollback_deploy", True)
    after_original = feed(original, second_half)
    after_restored = feed(restored, second_half)
    assert after_original == after_restored
    assert [(d.action, d.mode) for d in after_original] == [("rollback_deploy", "auto")]
    assert after_original[0].evidence["template_id"] in {t[0] for t in ids}


def test_unsupported_state_versions_are_refused():
    state = ErrorBrain().to_state()
    with pytest.raises(ValueError, match="state version"):
        ErrorBrain.from_state({**state, "v": 99})


# --------------------------------------------------------------------- closed loop
def test_outcomes_follow_the_hidden_success_probabilities_of_the_ground_truth():
    truth = ground_truth(error_burst(), START)
    incidents = load_incidents(truth)
    assert [(i.fault_type, i.service, i.region) for i in incidents] == [
        ("db_connection_pool_exhausted", "checkout", "eu-west")
    ]
    (decision,) = feed(ErrorBrain(seed=0), events(error_burst()))
    incident = match_incident(decision, incidents)
    assert incident == incidents[0]
    elsewhere = Decision.from_bytes(
        decision.to_bytes().replace(b'"region":"eu-west"', b'"region":"us-east"')
    )
    assert match_incident(elsewhere, incidents) is None

    model = FAULT_MODELS[incident.fault_type]
    rates = {}
    for action in (model.best, model.second, "open_incident"):
        wins = 0
        for k in range(2000):
            trial = Decision.from_bytes(
                decision.to_bytes()
                .replace(decision.decision_id.encode(), f"{k:032x}".encode())
                .replace(f'"action":"{decision.action}"'.encode(), f'"action":"{action}"'.encode())
            )
            wins += outcome_for(trial, incident, seed=3, ts=START).success
        rates[action] = wins / 2000
    assert rates[model.best] == pytest.approx(0.95, abs=0.03)
    assert rates[model.second] == pytest.approx(0.6, abs=0.04)
    assert rates["open_incident"] == pytest.approx(0.3, abs=0.04)


def test_every_simulated_fault_type_has_a_hidden_best_and_second_best_action():
    for fault in FAULT_TYPES:
        model = FAULT_MODELS[fault]
        other = next(a for a in ACTIONS if a not in (model.best, model.second, "open_incident"))
        assert success_probability(fault, model.best) == 0.95
        assert success_probability(fault, model.second) == 0.6
        assert success_probability(fault, other) == 0.1


def test_incidents_match_their_place_and_window_only():
    incidents = [BurstIncident("disk_full", "checkout", "eu-west", 1000.0, 1200.0)]
    subject = {"service": "checkout", "region": "eu-west"}

    def decision(ts: float, **subject_overrides: str) -> Decision:
        return Decision("a" * 32, "remediation", ts, {**subject, **subject_overrides},
                        "clear_cache", {}, "recommend", 0.5, "r", {}, "m")  # fmt: skip

    assert match_incident(decision(1100.0), incidents) == incidents[0]
    assert match_incident(decision(1100.0, region="us-east"), incidents) is None
    assert match_incident(decision(500.0), incidents) is None
    assert match_incident(decision(1300.0), incidents) is None


# --------------------------------------------------------------------- bench commands
def test_bench_templates_writes_one_assignment_per_line_in_order(tmp_path: Path):
    lines = [
        "login failed for ann@example.com from 10.0.0.7",
        "disk sda1 is full",
        "login failed for bo@example.org from 10.0.0.9",
        "disk sdb2 is full",
        "",
    ]
    log = tmp_path / "app.log"
    log.write_text("\n".join(lines) + "\n")
    out = tmp_path / "assignments.csv"
    result = CliRunner().invoke(
        bench, ["templates", "--input", str(log), "--assignments", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    *summary, last = result.output.strip().splitlines()
    figures = orjson.loads(last)
    assert figures["lines"] == len(lines) and figures["messages_per_s"] > 0
    assert any("messages/s" in line for line in summary)
    with out.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["line", "template_id", "template"]
    assert [int(r[0]) for r in rows[1:]] == list(range(1, len(lines) + 1))
    assert rows[1][1] == rows[3][1] and rows[1][2] == "login failed for <EMAIL> from <IP>"
    assert rows[2][1] == rows[4][1] != rows[1][1]
    assert b"example" not in out.read_bytes()
    truth = tmp_path / "app.truth.csv"
    truth.write_text("line,EventId\n1,E1\n2,E2\n3,E1\n4,E2\n5,E3\n")
    result = CliRunner().invoke(bench, ["templates", "--input", str(log), "--truth", str(truth)])
    assert result.exit_code == 0, result.output
    assert "grouping accuracy against the truth: 1.0000" in result.output
    truth.write_text("line,EventId\n1,E1\n")
    result = CliRunner().invoke(bench, ["templates", "--input", str(log), "--truth", str(truth)])
    assert result.exit_code != 0 and "1 truth rows for 5 lines" in result.output


def test_bench_remediation_compares_three_policies_in_one_run():
    result = CliRunner().invoke(bench, ["remediation", "--incidents-per-fault", "4", "--json"])
    assert result.exit_code == 0, result.output
    *summary, last = result.output.strip().splitlines()
    figures = orjson.loads(last)
    policies = figures["policies"]
    assert {"learned", "rule_table", "random", "oracle"} <= set(policies)
    assert policies["oracle"]["expected_regret"] == 0
    assert policies["random"]["expected_regret"] > 0
    assert figures["config"]["incidents_per_fault"] == 4
    assert any("regret" in line for line in summary)

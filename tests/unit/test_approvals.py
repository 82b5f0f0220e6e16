"""Approvals without AWS or Kafka: what waits, what an approval applies, what it never does."""

from __future__ import annotations

import pytest

from models.policy.actuation import AuditRecord, DecisionMemory, Step
from models.policy.approvals import ApprovalDesk, PendingRecommendations
from schemas import Decision
from schemas.approval import Approval
from schemas.config.actuation import ActuationConfigError, parse_actuation_config
from tests.unit.test_actuation import CONFIG, decision, policy

SHIFT = {"from": "us-east", "to": "eu-west", "data_classes": ["default"]}


def failover(ts: float = 1000.0) -> Decision:
    return decision(
        kind="failover", action="shift_traffic", params=SHIFT, subject={"region": "us-east"},
        mode="recommend", basis=ts,
    )  # fmt: skip


def verdict(d: Decision, what: str = "approve", ts: float = 1010.0) -> Approval:
    return Approval(d.decision_id, what, "alice", "Checked the dashboards.", ts)


class Desk:
    """The agent's flow for one subject, without Kafka: receive, judge, gate."""

    def __init__(self, text: str = CONFIG, dry_run: bool = False) -> None:
        self.policy = policy(text, dry_run)
        self.desk = ApprovalDesk(self.policy)
        self.pending = PendingRecommendations()
        self.memory = DecisionMemory()

    def receive(self, d: Decision, now: float = 1001.0) -> AuditRecord:
        return self.desk.receive(d, self.pending, self.memory, now)

    def judge(self, a: Approval, now: float = 1010.0) -> Step | AuditRecord:
        judged = self.desk.judge(a, self.pending, self.memory, now)
        if isinstance(judged, AuditRecord):
            return judged
        assert judged.mode == "auto"
        screened = self.policy.screen(judged, self.memory, now)
        if isinstance(screened, AuditRecord):
            return self.desk.approved(screened, a)
        return screened


def test_a_recommendation_waits_for_approval_and_is_audited_pending() -> None:
    desk, d = Desk(), failover()
    record = desk.receive(d)
    assert (record.outcome, record.code, record.mode) == (
        "pending",
        "awaiting_approval",
        "recommend",
    )
    assert d.decision_id in record.reason and "900 s" in record.reason
    assert d.decision_id in desk.pending
    assert desk.receive(d).outcome == "duplicate"


def test_an_approved_recommendation_goes_through_the_gates_like_an_auto_one() -> None:
    desk, d = Desk(), failover()
    desk.receive(d)
    step = desk.judge(verdict(d))
    assert isinstance(step, Step) and step.api == "route53"
    assert step.params["records"][0] == {"name": "api.example.com.", "type": "A",
                                         "from": "use1", "to": "euw1"}  # fmt: skip
    assert desk.memory.get(d.decision_id) == ("pending", 1010.0)
    assert d.decision_id not in desk.pending
    # A second click, or a replay of the approval, applies nothing.
    again = desk.judge(verdict(d))
    assert isinstance(again, AuditRecord) and again.outcome == "duplicate"
    assert again.approval is not None and again.approval["by"] == "alice"


def test_an_approval_keeps_the_dry_run_and_the_allow_list() -> None:
    desk, d = Desk(dry_run=True), failover()
    desk.receive(d)
    record = desk.judge(verdict(d))
    assert isinstance(record, AuditRecord)
    assert (record.outcome, record.mode) == ("dry_run", "recommend")
    assert record.approval == {"verdict": "approve", "by": "alice",
                               "reason": "Checked the dashboards.", "ts": 1010.0}  # fmt: skip

    text = CONFIG.replace('"failover:shift_traffic",', "")
    desk, d = Desk(text), failover()
    desk.receive(d)
    record = desk.judge(verdict(d))
    assert isinstance(record, AuditRecord) and record.code == "action_not_allowed"


def test_a_late_approval_is_refused_and_the_decision_never_applied() -> None:
    desk, d = Desk(), failover(ts=1000.0)
    desk.receive(d)
    record = desk.judge(verdict(d, ts=1901.0), now=1901.0)
    assert isinstance(record, AuditRecord)
    assert (record.outcome, record.code) == ("refused", "approval_expired")
    assert "901 s after the decision" in record.reason
    again = desk.judge(verdict(d, ts=1902.0), now=1902.0)
    assert isinstance(again, AuditRecord) and again.outcome == "duplicate"


def test_a_rejected_recommendation_is_never_applied() -> None:
    desk, d = Desk(), failover()
    desk.receive(d)
    record = desk.judge(verdict(d, "reject"))
    assert isinstance(record, AuditRecord)
    assert (record.outcome, record.code) == ("rejected", "rejected")
    assert record.approval is not None and record.approval["verdict"] == "reject"
    later = desk.judge(verdict(d, "approve", ts=1020.0), now=1020.0)
    assert isinstance(later, AuditRecord) and later.outcome == "duplicate"
    assert "rejected" in later.reason
    # Replayed, the recommendation is not waiting again.
    assert desk.receive(d).outcome == "duplicate"
    assert d.decision_id not in desk.pending


def test_an_approval_of_an_unknown_decision_is_refused() -> None:
    desk, d = Desk(), failover()
    record = desk.judge(verdict(d))
    assert isinstance(record, AuditRecord)
    assert (record.outcome, record.code, record.decision_id) == (
        "refused", "unknown_decision", d.decision_id,
    )  # fmt: skip


def test_a_recommendation_the_actuator_cannot_apply_does_not_wait() -> None:
    desk = Desk()
    blocked = decision(kind="failover_blocked", action="hold_traffic", params=SHIFT,
                       subject={"region": "eu-west"}, mode="recommend")  # fmt: skip
    record = desk.receive(blocked)
    assert (record.outcome, record.code) == ("refused", "mode_recommend")
    assert len(desk.pending) == 0


def test_windows_are_configured_per_kind() -> None:
    config = parse_actuation_config("[approvals]\nwindow_s = 120\nby_kind = { failover = 30 }")
    assert config.approval_window("failover") == 30.0
    assert config.approval_window("scaling") == 120.0
    assert parse_actuation_config("").approval_window("scaling") == 300.0
    with pytest.raises(ActuationConfigError, match=r"approvals.by_kind.failover"):
        parse_actuation_config("[approvals]\nby_kind = { failover = 0 }")
    with pytest.raises(ActuationConfigError, match=r"approvals.windows: unknown key"):
        parse_actuation_config("[approvals]\nwindows = 5")


def test_pending_recommendations_are_bounded_and_survive_a_round_trip() -> None:
    pending = PendingRecommendations(capacity=3)
    decisions = [failover(ts=float(i)) for i in range(5)]
    for d in decisions:
        pending.add(d)
    assert [d.decision_id for d in pending.decisions()] == [d.decision_id for d in decisions[2:]]
    restored = PendingRecommendations.from_bytes(pending.to_bytes(), capacity=3)
    assert restored.decisions() == pending.decisions()


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("decision_id", "xyz", "decision_id"),
        ("verdict", "maybe", "verdict"),
        ("by", "alice smith", "by"),
        ("by", "", "by"),
        ("reason", "x" * 501, "reason"),
        ("ts", float("nan"), "ts"),
        ("ts", True, "ts"),
    ],
)
def test_a_malformed_approval_is_refused_naming_the_field(field, value, problem) -> None:
    fields = {"decision_id": "a" * 32, "verdict": "approve", "by": "alice", "reason": "",
              "ts": 1.0, field: value}  # fmt: skip
    with pytest.raises(ValueError, match=problem):
        Approval(**fields)

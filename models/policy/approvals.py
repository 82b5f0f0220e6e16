"""Approvals: a human turns a ``recommend`` decision into an action, or turns it down.

Pure and synchronous, like :mod:`models.policy.actuation`, whose gates an approved
recommendation then goes through exactly as an ``auto`` decision would (allow-lists,
mapping, rate limit, dry run). The actuator agent keeps, per subject, the recommendations
it could apply in a :class:`PendingRecommendations` and answers each message of
``decisions.approvals`` (:class:`schemas.approval.Approval`) with :meth:`ApprovalDesk.judge`:

* a decision already handled (applied, rejected, expired...) is a ``duplicate``: approvals
  dedupe by ``decision_id``, so a double click or a replay never applies anything twice;
* a decision the actuator does not hold is ``refused`` (``unknown_decision``);
* a rejection is ``rejected`` and remembered, so a later approval cannot apply it;
* an approval later than the kind's validity window after the decision is ``refused``
  (``approval_expired``): the world has moved on since it was decided;
* otherwise the decision, promoted to ``auto``, is handed back for the gates.

Memory is bounded per subject: ``capacity`` pending recommendations (the oldest goes first),
and the handled ids live in the subject's bounded :class:`~models.policy.actuation.DecisionMemory`.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import orjson

from models.policy.actuation import ActuationPolicy, AuditRecord, DecisionMemory
from schemas import Decision
from schemas.approval import Approval
from schemas.config.actuation import SUPPORTED_ACTIONS

__all__ = ["ApprovalDesk", "PendingRecommendations"]


class PendingRecommendations:
    """The recommendations of one subject that wait for a verdict, oldest first, bounded.

    Examples
    --------
    >>> d = Decision("a" * 32, "failover", 5.0, {"region": "us-east"}, "shift_traffic",
    ...     {}, "recommend", 0.9, "us-east is down.", {}, "m1")
    >>> pending = PendingRecommendations(capacity=4)
    >>> pending.add(d)
    >>> "a" * 32 in pending, len(pending)
    (True, 1)
    >>> again = PendingRecommendations.from_bytes(pending.to_bytes())
    >>> again.pop("a" * 32) == d, len(again)
    (True, 0)
    """

    def __init__(self, capacity: int = 64) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._entries: OrderedDict[str, Decision] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, decision_id: object) -> bool:
        return decision_id in self._entries

    def decisions(self) -> list[Decision]:
        """The pending decisions, oldest first."""
        return list(self._entries.values())

    def add(self, decision: Decision) -> None:
        """Keep ``decision`` until its verdict; the oldest goes when ``capacity`` is reached."""
        self._entries[decision.decision_id] = decision
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def pop(self, decision_id: str) -> Decision | None:
        """Take a decision out (it has its verdict); ``None`` when it is not pending."""
        return self._entries.pop(decision_id, None)

    def to_bytes(self) -> bytes:
        """The pending decisions as JSON, oldest first (the value stored in the table)."""
        return orjson.dumps([d.to_dict() for d in self._entries.values()])

    @classmethod
    def from_bytes(cls, data: bytes | None, capacity: int = 64) -> PendingRecommendations:
        """Rebuild from :meth:`to_bytes`; ``None`` gives an empty one."""
        pending = cls(capacity)
        for item in orjson.loads(data) if data else ():
            pending.add(Decision(**item))
        return pending


class ApprovalDesk:
    """Where recommendations wait and approvals are judged, for one actuator.

    Examples
    --------
    >>> from schemas.config.actuation import parse_actuation_config
    >>> policy = ActuationPolicy(parse_actuation_config('[approvals]\\nwindow_s = 60'))
    >>> desk = ApprovalDesk(policy)
    >>> d = Decision("b" * 32, "failover", 100.0, {"region": "us-east"}, "shift_traffic",
    ...     {}, "recommend", 0.9, "us-east is down.", {}, "m1")
    >>> pending, memory = PendingRecommendations(), DecisionMemory()
    >>> desk.receive(d, pending, memory, now=101.0).outcome
    'pending'
    >>> late = Approval("b" * 32, "approve", "alice", "", 170.0)
    >>> record = desk.judge(late, pending, memory, now=170.0)
    >>> record.outcome, record.code, record.approval["by"]
    ('refused', 'approval_expired', 'alice')
    >>> desk.judge(late, pending, memory, now=171.0).outcome
    'duplicate'
    """

    def __init__(self, policy: ActuationPolicy) -> None:
        self.policy = policy

    def receive(
        self,
        decision: Decision,
        pending: PendingRecommendations,
        memory: DecisionMemory,
        now: float,
    ) -> AuditRecord:
        """Audit a ``recommend`` decision, and keep it for a verdict if it could be applied."""
        seen = memory.get(decision.decision_id)
        if seen is not None:
            # Already judged (or approved and applied, or being applied when a worker died:
            # the approval's replay reconciles that one, not the recommendation's).
            outcome, when = seen
            return self._record(
                decision, "duplicate", "duplicate",
                f"Decision already handled ({outcome}) at {when:.3f}; not applied again.", now,
            )  # fmt: skip
        if decision.decision_id in pending:
            return self._record(
                decision, "duplicate", "duplicate", "Already waiting for approval.", now
            )
        action = f"{decision.kind}:{decision.action}"
        if action not in SUPPORTED_ACTIONS:
            return self._record(
                decision, "refused", "mode_recommend",
                f"Mode is recommend and the actuator has no call for {action}: "
                "the decision is for a human.",
                now,
            )  # fmt: skip
        pending.add(decision)
        window = self.policy.config.approval_window(decision.kind)
        return self._record(
            decision, "pending", "awaiting_approval",
            f"Recommendation: applied only if approved (autopilot approve "
            f"{decision.decision_id}) within {window:g} s of the decision.",
            now,
        )  # fmt: skip

    def judge(
        self,
        approval: Approval,
        pending: PendingRecommendations,
        memory: DecisionMemory,
        now: float,
    ) -> Decision | AuditRecord:
        """The verdict's audit record, or the approved decision promoted to ``auto``.

        The decision leaves ``pending`` either way; a rejection or an expiry is remembered in
        ``memory`` (so a later approval is a duplicate). An approved decision is not yet:
        hand it to :meth:`ActuationPolicy.screen`, which remembers it, then to :meth:`approved`.
        """
        seen = memory.get(approval.decision_id)
        if seen is not None:
            decision = pending.pop(approval.decision_id)
            outcome, when = seen
            return self._unheld(
                approval, "duplicate", "duplicate",
                f"Decision already handled ({outcome}) at {when:.3f}; the {approval.verdict} "
                "changes nothing.",
                now, decision,
            )  # fmt: skip
        decision = pending.pop(approval.decision_id)
        if decision is None:
            return self._unheld(
                approval, "refused", "unknown_decision",
                "No recommendation with this id waits for approval here (never received, not "
                "one the actuator can apply, or pushed out by newer ones).",
                now,
            )  # fmt: skip
        if approval.verdict == "reject":
            memory.remember(decision.decision_id, "rejected", now)
            return self._record(
                decision, "rejected", "rejected",
                f"Rejected by {approval.by}: it will not be applied.", now, approval,
            )  # fmt: skip
        window = self.policy.config.approval_window(decision.kind)
        if now - decision.ts > window:
            memory.remember(decision.decision_id, "expired", now)
            return self._record(
                decision, "refused", "approval_expired",
                f"Approved {now - decision.ts:.0f} s after the decision, past its {window:g} s "
                "window: the situation it answered has moved on.",
                now, approval,
            )  # fmt: skip
        return dataclasses.replace(decision, mode="auto")

    @staticmethod
    def approved(record: AuditRecord, approval: Approval) -> AuditRecord:
        """The gates' record of an approved decision, as the recommendation it was."""
        return dataclasses.replace(record, mode="recommend", approval=_verdict(approval))

    def _record(
        self,
        decision: Decision,
        outcome: str,
        code: str,
        reason: str,
        now: float,
        approval: Approval | None = None,
    ) -> AuditRecord:
        return AuditRecord.about(
            decision,
            resource=None,
            outcome=outcome,
            reason=reason,
            code=code,
            aws_request_id=None,
            attempts=0,
            call=None,
            dry_run=self.policy.dry_run,
            ts=now,
            approval=None if approval is None else _verdict(approval),
        )

    def _unheld(
        self,
        approval: Approval,
        outcome: str,
        code: str,
        reason: str,
        now: float,
        decision: Decision | None = None,
    ) -> AuditRecord:
        if decision is not None:
            return self._record(decision, outcome, code, reason, now, approval)
        return AuditRecord(
            decision_id=approval.decision_id,
            kind=None,
            action=None,
            subject={},
            mode=None,
            resource=None,
            outcome=outcome,
            reason=reason,
            code=code,
            aws_request_id=None,
            attempts=0,
            call=None,
            dry_run=self.policy.dry_run,
            ts=now,
            approval=_verdict(approval),
        )


def _verdict(approval: Approval) -> Mapping[str, Any]:
    return {
        "verdict": approval.verdict,
        "by": approval.by,
        "reason": approval.reason,
        "ts": approval.ts,
    }

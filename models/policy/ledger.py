"""The decision ledger: each recent decision, its audit trail, and the state that trail gives it.

Pure: the decision console (:mod:`streams.runtime.console`) feeds it the messages of the
decision topics, of ``decisions.approvals`` and of ``actions.audit``, in any interleaving,
and shows :meth:`DecisionLedger.snapshot`. A decision's state is read from its trail:

* ``recommended``: a recommendation waiting for a verdict (audited ``pending``);
* ``approved``: a verdict was sent, the actuator has not answered yet;
* ``applied``, ``dry_run``, ``failed``: what the actuator's call did;
* ``refused``: a gate stopped it (allow-list, mapping, rate limit...);
* ``advisory``: a recommendation the actuator has no call for: it informs a human;
* ``expired``: approved past its validity window, or still waiting past it;
* ``rejected``: a human turned it down;
* ``decided``: published and not (yet) seen by an actuator (none runs, or it lags).

Memory is bounded: ``capacity`` decisions (the oldest goes first), each with at most
``trail_cap`` audit records and verdicts.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["STATES", "DecisionLedger", "LedgerEntry"]

STATES = ("decided", "recommended", "approved", "applied", "dry_run", "failed", "refused",
          "expired", "rejected", "advisory")  # fmt: skip
"""Every state :meth:`DecisionLedger.state` can give a decision."""

_BY_OUTCOME = {"applied": "applied", "dry_run": "dry_run", "failed": "failed",
               "rejected": "rejected", "pending": "recommended", "refused": "refused"}  # fmt: skip


@dataclass
class LedgerEntry:
    """One decision (as published), the key it was published with, and what followed."""

    decision: dict[str, Any]
    key: str
    trail: list[dict[str, Any]] = field(default_factory=list)
    verdicts: list[dict[str, Any]] = field(default_factory=list)


class DecisionLedger:
    """The last ``capacity`` decisions, with their audit trails and verdicts.

    Examples
    --------
    >>> ledger = DecisionLedger(capacity=10)
    >>> d = {"decision_id": "a" * 32, "kind": "failover", "ts": 100.0, "mode": "recommend",
    ...      "subject": {"region": "us-east"}, "action": "shift_traffic"}
    >>> ledger.add_decision(d, "us-east")
    >>> ledger.add_audit({"decision_id": "a" * 32, "outcome": "pending", "ts": 101.0})
    >>> ledger.state("a" * 32, now=200.0, window=lambda kind: 900.0)
    'recommended'
    >>> ledger.state("a" * 32, now=2000.0, window=lambda kind: 900.0)
    'expired'
    >>> ledger.add_verdict({"decision_id": "a" * 32, "verdict": "approve", "ts": 150.0})
    >>> ledger.state("a" * 32, now=200.0, window=lambda kind: 900.0)
    'approved'

    An action plugin's call is in the trail, and leaves the state as it was:

    >>> ledger.add_audit({"decision_id": "a" * 32, "outcome": "failed", "ts": 150.5,
    ...                   "plugin": "webhook"})
    >>> ledger.state("a" * 32, now=200.0, window=lambda kind: 900.0)
    'approved'
    >>> ledger.add_audit({"decision_id": "a" * 32, "outcome": "applied", "ts": 151.0})
    >>> ledger.state("a" * 32, now=2000.0, window=lambda kind: 900.0)
    'applied'
    """

    def __init__(self, capacity: int = 500, trail_cap: int = 20) -> None:
        if capacity < 1 or trail_cap < 1:
            raise ValueError("capacity and trail_cap must be >= 1")
        self.capacity = capacity
        self.trail_cap = trail_cap
        self._entries: OrderedDict[str, LedgerEntry] = OrderedDict()
        # Audit records and verdicts read before their decision (other partitions, other
        # topics): kept, bounded, until it arrives.
        self._early: OrderedDict[str, list[tuple[str, dict[str, Any]]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, decision_id: str) -> LedgerEntry | None:
        """The entry of a decision, if it is among the recent ones."""
        return self._entries.get(decision_id)

    def add_decision(self, decision: Mapping[str, Any], key: str) -> None:
        """A decision as published, with its message key."""
        decision_id = decision["decision_id"]
        if decision_id in self._entries:
            return
        entry = self._entries[decision_id] = LedgerEntry(dict(decision), key)
        for what, record in self._early.pop(decision_id, ()):
            self._append(entry.trail if what == "audit" else entry.verdicts, record)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def add_audit(self, record: Mapping[str, Any]) -> None:
        """An ``actions.audit`` record (records of no decision are ignored)."""
        self._attach("audit", record)

    def add_verdict(self, approval: Mapping[str, Any]) -> None:
        """A message of ``decisions.approvals``."""
        self._attach("verdict", approval)

    def state(self, decision_id: str, now: float, window: Callable[[str], float]) -> str:
        """The decision's state (one of :data:`STATES`); ``window(kind)`` as the actuator's."""
        entry = self._entries[decision_id]
        state = "decided"
        # An action plugin's call (a webhook...) is shown in the trail but says nothing of
        # what the actuator did: it neither applies the decision nor answers a verdict.
        trail = [record for record in entry.trail if not record.get("plugin")]
        for record in trail:
            if record.get("outcome") == "duplicate":
                continue
            if record.get("code") == "approval_expired":
                state = "expired"
            elif record.get("code") == "mode_recommend":
                state = "advisory"
            else:
                state = _BY_OUTCOME.get(record.get("outcome", ""), state)
        answered = max((r.get("ts", 0.0) for r in trail), default=0.0)
        if state == "recommended" and any(v.get("ts", 0.0) > answered for v in entry.verdicts):
            return "approved"
        kind = entry.decision.get("kind", "")
        if state == "recommended" and now - entry.decision.get("ts", now) > window(kind):
            return "expired"
        return state

    def snapshot(self, now: float, window: Callable[[str], float]) -> list[dict[str, Any]]:
        """Every entry, newest first, with its state: what the console shows."""
        return [
            {
                "decision": entry.decision,
                "key": entry.key,
                "state": self.state(decision_id, now, window),
                "trail": list(entry.trail),
                "verdicts": list(entry.verdicts),
            }
            for decision_id, entry in reversed(self._entries.items())
        ]

    def _attach(self, what: str, record: Mapping[str, Any]) -> None:
        decision_id = record.get("decision_id")
        if not isinstance(decision_id, str):
            return
        entry = self._entries.get(decision_id)
        if entry is not None:
            self._append(entry.trail if what == "audit" else entry.verdicts, dict(record))
            return
        early = self._early.setdefault(decision_id, [])
        if len(early) < self.trail_cap:
            early.append((what, dict(record)))
        while len(self._early) > self.capacity:
            self._early.popitem(last=False)

    def _append(self, items: list[dict[str, Any]], record: dict[str, Any]) -> None:
        items.append(record)
        del items[: -self.trail_cap]

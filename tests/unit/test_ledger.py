"""The console's ledger: each decision's state from its trail, in any order of arrival."""

from __future__ import annotations

import pytest

from models.policy.ledger import STATES, DecisionLedger


def window(kind: str) -> float:
    return 900.0


def decision(n: int, mode: str = "recommend", ts: float = 100.0) -> dict:
    return {"decision_id": f"{n:032x}", "kind": "failover", "ts": ts, "mode": mode,
            "subject": {"region": "us-east"}, "action": "shift_traffic"}  # fmt: skip


def audit(n: int, outcome: str, ts: float, code: str | None = None, **extra) -> dict:
    return {"decision_id": f"{n:032x}", "outcome": outcome, "code": code, "ts": ts, **extra}


@pytest.mark.parametrize(
    ("trail", "state"),
    [
        ([], "decided"),
        ([("pending", "awaiting_approval")], "recommended"),
        ([("pending", "awaiting_approval"), ("applied", None)], "applied"),
        ([("pending", "awaiting_approval"), ("dry_run", None)], "dry_run"),
        ([("pending", "awaiting_approval"), ("refused", "approval_expired")], "expired"),
        ([("pending", "awaiting_approval"), ("rejected", "rejected")], "rejected"),
        ([("pending", "awaiting_approval"), ("refused", "rate_limited")], "refused"),
        ([("pending", "awaiting_approval"), ("failed", "Throttling")], "failed"),
        ([("pending", "awaiting_approval"), ("applied", None), ("duplicate", "duplicate")],
         "applied"),
        ([("refused", "mode_recommend")], "advisory"),
        ([("refused", "no_mapping")], "refused"),
    ],
)  # fmt: skip
def test_the_state_is_read_from_the_trail(trail: list, state: str) -> None:
    ledger = DecisionLedger()
    ledger.add_decision(decision(1), "us-east")
    for i, (outcome, code) in enumerate(trail):
        ledger.add_audit(audit(1, outcome, 101.0 + i, code))
    assert ledger.state(f"{1:032x}", now=200.0, window=window) == state
    assert state in STATES


def test_records_read_before_their_decision_are_kept_for_it() -> None:
    ledger = DecisionLedger()
    ledger.add_verdict({"decision_id": f"{2:032x}", "verdict": "approve", "by": "a", "ts": 150.0})
    ledger.add_audit(audit(2, "pending", 101.0, "awaiting_approval"))
    ledger.add_decision(decision(2), "us-east")
    assert ledger.state(f"{2:032x}", now=200.0, window=window) == "approved"
    ledger.add_audit(audit(2, "applied", 151.0))
    [entry] = ledger.snapshot(now=200.0, window=window)
    assert entry["state"] == "applied" and entry["key"] == "us-east"
    assert [r["outcome"] for r in entry["trail"]] == ["pending", "applied"]


def test_a_waiting_recommendation_expires_with_its_window() -> None:
    ledger = DecisionLedger()
    ledger.add_decision(decision(3, ts=100.0), "us-east")
    ledger.add_audit(audit(3, "pending", 101.0, "awaiting_approval"))
    assert ledger.state(f"{3:032x}", now=1000.0, window=window) == "recommended"
    assert ledger.state(f"{3:032x}", now=1001.0, window=window) == "expired"


def test_memory_is_bounded_and_newest_first() -> None:
    ledger = DecisionLedger(capacity=3, trail_cap=2)
    for n in range(5):
        ledger.add_decision(decision(n, ts=float(n)), "k")
        for i in range(4):
            ledger.add_audit(audit(n, "duplicate", float(i)))
    shown = ledger.snapshot(now=10.0, window=window)
    assert [e["decision"]["decision_id"] for e in shown] == [f"{n:032x}" for n in (4, 3, 2)]
    assert all(len(e["trail"]) == 2 for e in shown)
    for n in range(100, 110):  # records of decisions never seen stay bounded too
        ledger.add_audit(audit(n, "applied", 1.0))
    ledger.add_decision(decision(109), "k")
    assert ledger.state(f"{109:032x}", now=10.0, window=window) == "applied"
    assert ledger.get(f"{100:032x}") is None

"""The compliance report from trail entries: every section, and a broken chain shown."""

from __future__ import annotations

import orjson

from models.compliance.report import compliance_report, render_html, render_markdown
from models.compliance.trail import AuditChain, canonical, verify


def entries() -> list[dict]:
    chain = AuditChain(0)
    blocked = {
        "decision_id": "d1", "kind": "failover_blocked", "ts": 1.0e9, "action": "hold_traffic",
        "subject": {"region": "eu-west"}, "mode": "recommend", "reason": "No EU region is healthy.",
        "params": {"from": "eu-west", "data_classes": ["eu-personal"]},
    }  # fmt: skip
    applied = {"decision_id": "d2", "outcome": "applied", "kind": "scaling",
               "action": "scale_out", "resource": "asg:web", "ts": 1.0e9 + 5}  # fmt: skip
    erase = {"type": "erase", "tenant": "t_c162214972b5", "ts": 1.0e9 + 9,
             "request_id": "e1", "reason": "ticket 7"}  # fmt: skip
    return [
        chain.append("decisions.failover", 0, 0, orjson.dumps(blocked), ts=1.0e9),
        chain.append("actions.audit", 0, 0, orjson.dumps(applied), ts=1.0e9 + 5),
        chain.append("autopilot.control", 0, 0, orjson.dumps(erase), ts=1.0e9 + 9),
    ]


def test_every_section_is_there_and_no_tenant_is_named() -> None:
    rows = entries()
    chains = verify([(0, o, canonical(e)) for o, e in enumerate(rows)])
    report = compliance_report(rows, chains, {"email": 3.0}, start=None, end=2.0e9)
    md = render_markdown(report)
    for needle in ("All chains verify.", "failover_blocked", "eu-personal", "| email | 3 |",
                   "applied", "asg:web", "ticket 7", "e1"):  # fmt: skip
        assert needle in md, needle
    assert "t_c162214972b5" not in md
    page = render_html(report)
    assert page.startswith("<!doctype html>") and "<table>" in page and "http" not in page


def test_a_broken_chain_is_reported_with_its_offset() -> None:
    rows = entries()
    raws = [canonical(e) for e in rows]
    raws[1] = raws[1].replace(b"asg:web", b"asg:api")
    chains = verify([(0, o, r) for o, r in enumerate(raws)])
    md = render_markdown(compliance_report(rows, chains, {}, start=None, end=None))
    assert "Chains do NOT verify" in md and "altered@1" in md

"""The compliance report: what the audit trail and the workers say about a period.

Built from the trail's entries in the period (:mod:`models.compliance.trail`), the chain
verification of the whole trail, and the PII detections the workers counted. Sections:
residency decisions (failovers, blocked failovers, failbacks, with the data classes and
jurisdictions behind them), PII detections per class, actions the actuator applied or
refused, erasures (by request id and reason: the report names no tenant), and the chains'
verification status. Markdown, or the same as a self-contained HTML page.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from models.compliance.trail import ChainStatus

__all__ = ["compliance_report", "render_html", "render_markdown"]

_RESIDENCY_KINDS = ("failover", "failover_blocked", "failback")


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def compliance_report(
    entries: Sequence[Mapping[str, Any]],
    chains: Mapping[int, ChainStatus],
    pii: Mapping[str, float],
    *,
    start: float | None,
    end: float | None,
) -> dict[str, Any]:
    """The report's figures and rows, JSON-friendly.

    Parameters
    ----------
    entries
        Trail entries whose ``ts`` is in the period.
    chains
        :func:`~models.compliance.trail.verify` of the whole trail.
    pii
        Detections per class (``autopilot_pii_detected_total`` summed over the workers).
    start, end
        The period, epoch seconds (``None``: open).

    Examples
    --------
    >>> e = {"kind": "decision", "ts": 1.0, "source": {"offset": 3}, "body": {
    ...     "kind": "failover_blocked", "ts": 1.0, "subject": {"region": "eu-west"},
    ...     "action": "hold", "mode": "recommend", "reason": "No allowed region.",
    ...     "params": {"data_classes": ["eu-personal"]}, "decision_id": "d1"}}
    >>> r = compliance_report([e], {}, {"email": 2.0}, start=None, end=None)
    >>> r["residency"][0]["kind"], r["pii"], r["counts"]["decisions"]
    ('failover_blocked', {'email': 2}, 1)
    """
    residency, actions, erasures = [], [], []
    kinds: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    for entry in entries:
        body = entry.get("body") if isinstance(entry.get("body"), dict) else {}
        kinds[entry.get("kind", "?")] += 1
        if entry.get("kind") == "decision" and body.get("kind") in _RESIDENCY_KINDS:
            params = body.get("params") or {}
            evidence = body.get("evidence") or {}
            residency.append(
                {
                    "when": _when(body.get("ts")),
                    "kind": body.get("kind"),
                    "region": (body.get("subject") or {}).get("region", "-"),
                    "target": params.get("to") or params.get("target") or "-",
                    "data_classes": params.get("data_classes") or evidence.get("data_classes"),
                    "mode": body.get("mode"),
                    "reason": body.get("reason", ""),
                    "decision_id": body.get("decision_id"),
                }
            )
        elif entry.get("kind") == "actuation":
            outcomes[str(body.get("outcome"))] += 1
            if body.get("outcome") in ("applied", "dry_run", "failed"):
                actions.append(
                    {
                        "when": _when(body.get("ts")),
                        "outcome": body.get("outcome"),
                        "kind": body.get("kind"),
                        "action": body.get("action"),
                        "resource": body.get("resource") or "-",
                        "approval": _approval(body.get("approval")) or body.get("mode") or "-",
                        "decision_id": body.get("decision_id"),
                    }
                )
        elif entry.get("kind") == "erasure":
            erasures.append(
                {
                    "when": _when(body.get("ts")),
                    "request_id": body.get("request_id"),
                    "reason": body.get("reason") or "-",
                }
            )
    return {
        "period": {"from": _when(start), "to": _when(end)},
        "counts": {
            "entries": len(entries),
            "decisions": kinds["decision"],
            "actuations": kinds["actuation"],
            "erasures": kinds["erasure"],
            "actuation_outcomes": dict(sorted(outcomes.items())),
        },
        "residency": sorted(residency, key=lambda r: r["when"]),
        "pii": {cls: int(n) for cls, n in sorted(pii.items())},
        "actions": sorted(actions, key=lambda a: a["when"]),
        "erasures": sorted(erasures, key=lambda e: e["when"]),
        "chains": [status.to_dict() for status in chains.values()],
        "chains_ok": all(status.ok for status in chains.values()),
    }


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    if not rows:
        return ["(none)", ""]
    cell = lambda v: str(v if v is not None else "-").replace("|", "/")  # noqa: E731
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return [*lines, ""]


def _issues(chain: Mapping[str, Any]) -> str:
    if chain["ok"]:
        return "ok"
    return "; ".join(f"{i['problem']}@{i['offset']}" for i in chain["issues"][:3])


def render_markdown(report: Mapping[str, Any]) -> str:
    """The report as Markdown."""
    period, counts = report["period"], report["counts"]
    out = [
        "# Compliance report",
        "",
        f"Period: {period['from']} to {period['to']} UTC. Trail entries: {counts['entries']} "
        f"({counts['decisions']} decisions, {counts['actuations']} actuation records, "
        f"{counts['erasures']} erasure requests).",
        "",
        "The period selects entries by the time they were appended to the trail; `when` is "
        "the record's own time (a decision's is the event time it was made at).",
        "",
        "## Audit chain verification",
        "",
        "All chains verify." if report["chains_ok"] else "**Chains do NOT verify.**",
        "",
    ]
    out += _table(
        ["partition", "entries", "offsets", "status", "first bad offset", "head hash"],
        [
            (c["partition"], c["entries"], f"{c['first_offset']}..{c['last_offset']}",
             _issues(c),
             c["first_bad_offset"], (c["head"] or "-")[:16])
            for c in report["chains"]
        ],
    )  # fmt: skip
    out += ["## Residency decisions and blocked failovers", ""]
    out += _table(
        ["when", "kind", "region", "target", "data classes", "mode", "reason"],
        [
            (r["when"], r["kind"], r["region"], r["target"], ", ".join(r["data_classes"] or []),
             r["mode"], r["reason"])
            for r in report["residency"]
        ],
    )  # fmt: skip
    out += ["## PII detected in free text (redacted before use), per class", ""]
    out += _table(["class", "detections"], list(report["pii"].items()))
    out += ["## Actions", "", f"Actuator outcomes: {counts['actuation_outcomes'] or 'none'}.", ""]
    out += _table(
        ["when", "outcome", "kind", "action", "resource", "approval", "decision"],
        [
            (a["when"], a["outcome"], a["kind"], a["action"], a["resource"], a["approval"],
             a["decision_id"])
            for a in report["actions"]
        ],
    )  # fmt: skip
    out += ["## Erasures", ""]
    out += _table(
        ["when", "request", "reason"],
        [(e["when"], e["request_id"], e["reason"]) for e in report["erasures"]],
    )
    return "\n".join(out)


def render_html(report: Mapping[str, Any]) -> str:
    """The report as one self-contained HTML page (no external assets)."""
    body = []
    in_table = False
    for line in render_markdown(report).splitlines():
        if line.startswith("|"):
            cells = [html.escape(c.strip()) for c in line.strip("|").split("|")]
            if set(line) <= set("|-"):
                continue
            if not in_table:
                body.append("<table>")
                in_table = True
                body.append("<tr>" + "".join(f"<th>{c}</th>" for c in cells) + "</tr>")
            else:
                body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
            continue
        if in_table:
            body.append("</table>")
            in_table = False
        if line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line:
            body.append(f"<p>{html.escape(line).replace('**', '')}</p>")
    if in_table:
        body.append("</table>")
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:2px 6px;font-size:90%}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Compliance report</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>"
    )


def _approval(approval: object) -> str | None:
    """Who approved an applied recommendation (:class:`schemas.approval.Approval`), if anyone.

    >>> _approval({"verdict": "approve", "by": "oncall"}), _approval(None)
    ('approved by oncall', None)
    """
    if not isinstance(approval, dict):
        return None
    verdict = {"approve": "approved", "reject": "rejected"}.get(approval.get("verdict"), "judged")
    return f"{verdict} by {approval.get('by')}"

"""The decision console: one page on the worker's web server, for the on-call engineer.

``/console/`` (plain HTML, no external assets, works offline) polls ``/console/state.json``
every second: recent decisions grouped by topic with their reason, evidence, state
(:mod:`models.policy.ledger`) and audit trail, region health and failed-over regions, and
Approve/Reject buttons for recommendations waiting for a verdict, which POST to
``/console/verdict/``. That publishes the same :class:`schemas.approval.Approval` as
``autopilot approve``, keyed like the decision, so it reaches the actuator that holds it.

Every worker shows the whole picture: a task reads the decision topics, ``actions.audit`` and
``decisions.approvals`` with a consumer of its own, outside the consumer group, so each
worker sees every partition whichever it processes. Memory is the ledger's bound. The same
reader feeds the KEDA endpoint (:mod:`agents.keda`).

The console has no login: it binds where the web server does (``AUTOPILOT_WEB_HOST``,
127.0.0.1 by default), and anyone who reaches it can approve. Put it behind your SSO proxy
before exposing it. Verdicts must be JSON posted from the page's own origin, so another
site open in the same browser cannot approve by a cross-site form.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import orjson
from faust.web import View

from agents import actuator, failover, keda
from models.policy.ledger import DecisionLedger
from schemas.approval import Approval
from schemas.config.actuation import parse_actuation_config
from streams.runtime.app import app, declare_unless_stopping, settings, topic_names, topics

__all__ = ["ledger"]

log = logging.getLogger(__name__)

PAGE = Path(__file__).with_name("console.html")
SHOWN = 200
"""Decisions in one answer of ``state.json`` (newest first)."""
_RETRY_S = 5.0
_SETTLE_POLLS = 60
_SETTLE_S = 3.0

ledger = DecisionLedger()
_approvals = app.topic(topic_names.approvals, partitions=settings.partitions, internal=True)
_config = (
    actuator.actuator_settings.load_config()
    if actuator.actuator_settings.enabled
    else parse_actuation_config("")
)


def _window(kind: str) -> float:
    return _config.approval_window(kind)


def _ingest(topic: str, key: bytes | None, value: bytes | None) -> None:
    try:
        record = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return
    if not isinstance(record, dict):
        return
    if topic == topic_names.audit:
        ledger.add_audit(record)
    elif topic == topic_names.approvals:
        ledger.add_verdict(record)
    elif isinstance(record.get("decision_id"), str) and isinstance(record.get("kind"), str):
        ledger.add_decision(record, (key or b"").decode(errors="replace"))
        keda.note(record)


@app.task
async def follow_decisions() -> None:
    """Read every decision, verdict and audit record into the ledger, for as long as we run."""
    from aiokafka import AIOKafkaConsumer

    names = (*topic_names.decisions(), topic_names.audit, topic_names.approvals)
    # Started with the worker, while topics are still being created, the reader would log
    # leader-not-available errors: it waits until the worker has its partitions, creates
    # the topics it reads (as the worker would, with its partitions), and lets their
    # leaders be elected.
    for _ in range(_SETTLE_POLLS):
        if app.consumer.assignment():
            break
        await asyncio.sleep(1.0)
    declared = (topics.scaling, topics.failover, topics.remediation, topics.audit, _approvals)
    if not await declare_unless_stopping(*declared):
        return
    await asyncio.sleep(_SETTLE_S)
    while True:
        consumer = AIOKafkaConsumer(
            *names,
            bootstrap_servers=settings.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            metadata_max_age_ms=5000,
            **settings.aiokafka_security_kwargs(),
        )
        try:
            await consumer.start()
            async for message in consumer:
                _ingest(message.topic, message.key, message.value)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The console is a view: its reader failing must not take the worker down.
            log.exception("console: reading the decision topics failed; retrying")
            await asyncio.sleep(_RETRY_S)
        finally:
            await consumer.stop()


def _regions(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Health per region and the failed-over ones: live from the region brain on the worker
    that evaluates, else as the latest failover-topic decisions left them."""
    # Only the worker that owns the evaluator partition holds a region brain.
    brain = failover.store.brains.get(failover.EVALUATOR)
    reports = {} if brain is None else {r: rep.to_dict() for r, rep in brain.reports.items()}
    if brain is not None and reports:
        health = {
            r: {"score": rep["score"], "healthy": rep["healthy"], "ts": rep["ts"]}
            for r, rep in sorted(reports.items())
        }
        return {"health": health, "failed": sorted(brain.failed_regions), "live": True}
    health: dict[str, Any] = {}
    latest: dict[str, str] = {}
    for entry in reversed(entries):  # oldest first, so the newest wins
        decision = entry["decision"]
        seen = decision.get("evidence", {}).get("health")
        if isinstance(seen, dict) and isinstance(seen.get("region"), str):
            health[seen["region"]] = {k: seen.get(k) for k in ("score", "healthy", "ts")}
        region = decision.get("subject", {}).get("region")
        if decision.get("kind") in ("failover", "failover_blocked", "failback") and region:
            latest[region] = decision["kind"]
    failed = sorted(r for r, kind in latest.items() if kind != "failback")
    return {"health": dict(sorted(health.items())), "failed": failed, "live": False}


@app.page("/console/")
async def console_page(view, request):
    """The console page itself."""
    return view.html(PAGE.read_text(encoding="utf-8"))


@app.page("/console/state.json")
async def console_state(view, request):
    """Recent decisions with their state and trail, and region health."""
    entries = ledger.snapshot(time.time(), _window)
    return view.json(
        {
            "now": time.time(),
            "decisions": entries[:SHOWN],
            "regions": _regions(entries),
            "actuator": {
                "on": actuator.actuator_settings.enabled,
                "dry_run": actuator.actuator_settings.dry_run,
            },
        }
    )


@app.page("/console/verdict/")
class ConsoleVerdict(View):
    """POST ``{"decision_id", "verdict", "by", "reason"}``: approve or reject a recommendation."""

    async def post(self, request):
        if "application/json" not in request.headers.get("Content-Type", ""):
            return self.json({"error": "send JSON (Content-Type: application/json)"}, status=415)
        origin = request.headers.get("Origin")
        if origin is not None and origin.split("://", 1)[-1] != request.headers.get("Host"):
            return self.json({"error": "verdicts are taken from the console's own page"}, 403)
        try:
            body = orjson.loads(await request.read())
            entry = ledger.get(body["decision_id"]) if isinstance(body, dict) else None
            approval = Approval(
                body["decision_id"],
                body["verdict"],
                body.get("by") or "console",
                body.get("reason") or "",
                time.time(),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            return self.json({"error": f"not a verdict: {exc}"}, status=400)
        if entry is None:
            return self.json({"error": "no such recent decision"}, status=404)
        if entry.decision.get("mode") != "recommend":
            return self.json({"error": "only recommendations take a verdict"}, status=409)
        key = entry.key.encode()
        await (await _approvals.send(key=key, value=approval.to_bytes()))
        return self.json(
            {"ok": True, "decision_id": approval.decision_id, "verdict": approval.verdict}
        )

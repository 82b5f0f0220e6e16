"""The actuator agent: decisions -> AWS calls, through the gates of :mod:`models.policy.actuation`.

Off unless ``AUTOPILOT_ACTUATOR=on`` (``autopilot actuate`` sets it): a worker without
it declares neither the agent nor its table, so it does not even read the decision
topics. When on, every message on ``decisions.scaling``, ``decisions.failover`` and
``decisions.remediation`` gets exactly one record on ``actions.audit`` (keyed by
``decision_id``): ``applied``, ``dry_run``, ``refused``, ``failed`` or ``duplicate``.
(Action plugins' calls, :mod:`agents.actions`, add records of their own, marked ``plugin``.)
It is a dry run unless ``AUTOPILOT_ACTUATOR_DRY_RUN=false``.

Idempotency across restarts: the decisions handled per subject live in the Faust
table ``actuator-decisions`` (a compacted changelog), keyed by the decision topics'
message key (``service/region``, or the region). It is only written while a decision
is handled, so Faust puts each entry on the changelog partition numbered like the
decision partition it came from, and whoever consumes that partition after a restart
or rebalance has it. (``use_partitioner`` would ask the producer instead, which fails
until the producer has the changelog's metadata.) A decision
is written down there, and the producer flushed, before its call is made: a crash between
the two leaves it unapplied rather than applied twice.

Approvals. A ``recommend`` decision the actuator could apply is kept, per subject, in the
table ``actuator-recommendations`` and audited ``pending``; a message on
``decisions.approvals`` (``autopilot approve|reject``) then applies it through the same
gates as an ``auto`` one, or rejects it, or refuses a late approval
(:mod:`models.policy.approvals`). Approvals are keyed like the decision they judge and the
agent reads them with the decision topics: Faust assigns co-subscribed topics of equal
partition count together, so with N workers the approval reaches the worker that holds
the recommendation, and both tables are written on that partition's changelog.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import sys
import time

import click

from agents.compat.offsets import ordered
from agents.runtime.publish import subject_key
from models.policy.actuation import (
    ActuationPolicy,
    AuditRecord,
    DecisionMemory,
    decode_decision,
    unhandled_record,
)
from models.policy.approvals import ApprovalDesk, PendingRecommendations
from schemas import Decision
from schemas.approval import Approval
from streams.actuate.aws import ActuatorSettings, AwsExecutor
from streams.runtime.app import app, declare_unless_stopping, settings, topic_names, topics

__all__ = ["actuate", "actuator_settings"]

log = logging.getLogger(__name__)

actuator_settings = ActuatorSettings.from_env()


class _Actuator:
    """The agent's state: the policy, the executor and the table of handled decisions."""

    def __init__(self) -> None:
        self.policy = ActuationPolicy(
            actuator_settings.load_config(), dry_run=actuator_settings.dry_run
        )
        self.executor = AwsExecutor(self.policy.config)
        self.desk = ApprovalDesk(self.policy)
        self.handled = app.Table(
            "actuator-decisions",
            key_type=bytes,
            value_type=bytes,
            partitions=settings.partitions,
        )
        self.recommendations = app.Table(
            "actuator-recommendations",
            key_type=bytes,
            value_type=bytes,
            partitions=settings.partitions,
        )

    async def handle(
        self, key: bytes | None, value: bytes | None, topic: str | None = None
    ) -> AuditRecord:
        """Gate, carry out and audit one message of a decision topic or of the approvals."""
        if topic == topic_names.approvals:
            return await self.handle_approval(key, value)
        decision = decode_decision(value)
        if isinstance(decision, str):
            return unhandled_record(
                "refused", "invalid_decision", f"Not a decision: {decision}.", time.time(),
                self.policy.dry_run,
            )  # fmt: skip
        try:
            return await self._actuate(key or subject_key(decision), decision)
        except Exception as exc:
            # A bug must cost one decision, audited, not the agent (and with it the worker).
            log.exception("actuator: failed on decision %s", decision.decision_id)
            reason = f"The actuator failed on it ({type(exc).__name__}); see the worker's log."
            return unhandled_record(
                "failed", "processing_error", reason, time.time(), self.policy.dry_run, decision
            )

    async def handle_approval(self, key: bytes | None, value: bytes | None) -> AuditRecord:
        """Judge one approval or rejection, and apply the approved recommendation."""
        try:
            approval = Approval.from_bytes(value or b"")
        except (ValueError, TypeError) as exc:
            reason = f"Not an approval: {str(exc)[:200]}."
            return unhandled_record(
                "refused", "invalid_approval", reason, time.time(), self.policy.dry_run
            )
        if not key:
            return unhandled_record(
                "refused", "invalid_approval",
                "An approval must be keyed like the decision it judges.", time.time(),
                self.policy.dry_run,
            )  # fmt: skip
        try:
            memory = self.policy.new_memory(self.handled.get(key))
            pending = PendingRecommendations.from_bytes(self.recommendations.get(key))
            verdict = self.desk.judge(approval, pending, memory, time.time())
            if isinstance(verdict, AuditRecord):
                # Remembered before it leaves the pending ones: a crash between is a duplicate.
                self.handled[key] = memory.to_bytes()
                self.recommendations[key] = pending.to_bytes()
                return verdict
            record = await self._actuate(key, verdict, memory)
            self.recommendations[key] = pending.to_bytes()
            return self.desk.approved(record, approval)
        except Exception as exc:
            log.exception("actuator: failed on approval of %s", approval.decision_id)
            reason = f"The actuator failed on it ({type(exc).__name__}); see the worker's log."
            record = unhandled_record(
                "failed", "processing_error", reason, time.time(), self.policy.dry_run
            )
            return dataclasses.replace(record, decision_id=approval.decision_id)

    def _receive(self, subject: bytes, decision: Decision) -> AuditRecord:
        memory = self.policy.new_memory(self.handled.get(subject))
        pending = PendingRecommendations.from_bytes(self.recommendations.get(subject))
        record = self.desk.receive(decision, pending, memory, time.time())
        if record.outcome == "pending":
            self.recommendations[subject] = pending.to_bytes()
        return record

    async def _actuate(
        self, subject: bytes, decision: Decision, memory: DecisionMemory | None = None
    ) -> AuditRecord:
        if decision.mode == "recommend":
            return self._receive(subject, decision)
        if memory is None:
            memory = self.policy.new_memory(self.handled.get(subject))
        verdict = self.policy.screen(decision, memory, time.time())
        if isinstance(verdict, AuditRecord):
            if verdict.outcome == "dry_run":
                self.handled[subject] = memory.to_bytes()
            return verdict
        # Written down, and in the changelog, before the call: a replay after a crash is a
        # duplicate, not a repeat (a table write is only queued in the producer).
        self.handled[subject] = memory.to_bytes()
        await app.producer.flush()
        # boto3 blocks (and sleeps between retries): keep it off the event loop.
        execution = await asyncio.to_thread(self.executor.execute, verdict)
        record = self.policy.conclude(decision, verdict, execution, memory, time.time())
        self.handled[subject] = memory.to_bytes()
        return record

    async def run(self, stream) -> None:
        """Audit every message of ``stream``; the audit topic gets one record per message."""
        log.warning(
            "actuator on (%s) with mapping file %s",
            "dry run" if self.policy.dry_run else "APPLYING changes",
            actuator_settings.config_path,
        )
        if not await declare_unless_stopping(topics.audit):
            return
        # Decisions in their partition's order, also after faust dropped some at a restart:
        # one read late would be refused as superseded by a newer one.
        async for event in ordered("actuator", stream):
            key, value = event.key, event.value
            record = await self.handle(key, value, event.message.topic)
            audit_key = record.decision_id.encode() if record.decision_id else key
            # Awaited: an action the audit topic did not receive is not accounted for.
            await (await topics.audit.send(key=audit_key, value=record.to_bytes()))
            log.log(
                logging.WARNING if record.outcome == "failed" else logging.INFO,
                "actuator: %s %s:%s on %s -> %s%s",
                record.decision_id, record.kind, record.action, record.resource or "-",
                record.outcome, f" ({record.code})" if record.code else "",
            )  # fmt: skip


if actuator_settings.enabled:
    _actuator = _Actuator()
    _decisions = app.topic(
        topic_names.scaling,
        topic_names.failover,
        topic_names.remediation,
        topic_names.approvals,
        partitions=settings.partitions,
        internal=True,
    )

    @app.agent(_decisions, name="actuator")
    async def actuator(stream) -> None:
        await _actuator.run(stream)


@app.command(
    # Not "--apply": Faust's CLI reads any argument starting with "--app" as its --app.
    click.option(
        "--dry-run/--no-dry-run",
        default=None,
        help="Only audit what would be done, or make the AWS calls "
        "(default: AUTOPILOT_ACTUATOR_DRY_RUN, itself true by default).",
    ),
)
async def actuate(self, dry_run: bool | None) -> None:
    """Run a worker with the actuator on: the same as AUTOPILOT_ACTUATOR=on autopilot worker."""
    env = {**os.environ, "AUTOPILOT_ACTUATOR": "on"}
    if dry_run is not None:
        env["AUTOPILOT_ACTUATOR_DRY_RUN"] = "true" if dry_run else "false"
    # The agent is declared when its module is imported, so the flag must be in the
    # environment of a fresh process: this one becomes the worker.
    argv = [sys.executable, "-m", "streams", "worker", "-l", settings.log_level]
    os.execve(sys.executable, argv, env)

"""``autopilot approve ID`` / ``autopilot reject ID``: a human's verdict on a recommendation.

The command finds the decision on the decision topics (only its recent past: an approval
later than the longest validity window is refused anyway), then publishes an
:class:`schemas.approval.Approval` to ``decisions.approvals`` keyed like that decision, so
it reaches the worker whose actuator holds it. The actuator's answer (applied, dry run,
refused, rejected...) goes to ``actions.audit``; with ``--wait`` the command prints it.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import time
from collections.abc import Mapping
from typing import Any

import click
import orjson

from schemas import Decision
from schemas.approval import Approval
from schemas.topics import TopicNames
from streams.runtime.app import settings, topic_names

__all__ = ["approve", "find_decision", "reject", "send_verdict"]

_LOOKBACK_S = 86_400.0


async def partition_counts(
    bootstrap: str, topics: tuple[str, ...], security: Mapping[str, Any] | None = None
) -> dict[str, int]:
    """Partitions of each of ``topics`` that exists. Asked of the admin API, because a
    metadata request from a client may create a missing topic with the broker's defaults."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **(security or {}))
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    return {t["topic"]: len(t["partitions"]) for t in described if t["partitions"]}


async def find_decision(
    bootstrap: str,
    names: TopicNames,
    decision_id: str,
    since_ts: float,
    security: Mapping[str, Any] | None = None,
) -> tuple[bytes, Decision] | None:
    """The message key and decision with ``decision_id`` published since ``since_ts``, if any."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **(security or {})
    )
    counts = await partition_counts(bootstrap, names.decisions(), security)
    await consumer.start()
    try:
        partitions = [TopicPartition(t, p) for t, n in counts.items() for p in range(n)]
        if not partitions:
            return None
        consumer.assign(partitions)
        starts = await consumer.offsets_for_times({tp: int(since_ts * 1000) for tp in partitions})
        ends = await consumer.end_offsets(partitions)
        remaining = {}
        for tp in partitions:
            start = starts.get(tp)
            if start is None or start.offset >= ends[tp]:
                continue
            consumer.seek(tp, start.offset)
            remaining[tp] = ends[tp]
        needle = decision_id.encode()
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=2000)
            if not batch:
                break
            for tp, messages in batch.items():
                for message in messages:
                    # Cheap test first: most messages are other decisions.
                    if needle in (message.value or b""):
                        decision = Decision.from_bytes(message.value)
                        if decision.decision_id == decision_id:
                            return message.key or b"", decision
                if messages and messages[-1].offset + 1 >= remaining[tp]:
                    del remaining[tp]
        return None
    finally:
        await consumer.stop()


async def _audit_positions(
    bootstrap: str, topic: str, security: Mapping[str, Any] | None
) -> dict[int, int]:
    """The end offset of each partition of the audit topic, taken before a verdict is sent."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    counts = await partition_counts(bootstrap, (topic,), security)
    partitions = [TopicPartition(topic, p) for p in range(counts.get(topic, 0))]
    if not partitions:
        return {}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **(security or {})
    )
    await consumer.start()
    try:
        return {
            tp.partition: offset for tp, offset in (await consumer.end_offsets(partitions)).items()
        }
    finally:
        await consumer.stop()


async def _audit_of(
    bootstrap: str, topic: str, decision_id: str, positions: Mapping[int, int], timeout_s: float,
    security: Mapping[str, Any] | None,
) -> dict | None:  # fmt: skip
    """The first audit record of ``decision_id`` after ``positions`` that answers a verdict."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    if not positions:
        return None
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **(security or {})
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in positions])
        for partition, offset in positions.items():
            consumer.seek(TopicPartition(topic, partition), offset)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for messages in batch.values():
                for message in messages:
                    if message.key != decision_id.encode():
                        continue
                    record = orjson.loads(message.value)
                    if record.get("approval"):
                        return record
        return None
    finally:
        await consumer.stop()


async def send_verdict(
    bootstrap: str,
    names: TopicNames,
    key: bytes,
    approval: Approval,
    security: Mapping[str, Any] | None = None,
) -> None:
    """Publish ``approval`` keyed like its decision; fails if no actuator created the topic."""
    from aiokafka import AIOKafkaProducer

    # A topic created by this send would have the broker's default partitions, and
    # approvals would land on partitions no actuator pairs with their decisions.
    if names.approvals not in await partition_counts(bootstrap, (names.approvals,), security):
        raise click.ClickException(
            f"topic {names.approvals} does not exist: no worker runs the actuator"
        )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **(security or {}))
    await producer.start()
    try:
        await producer.send_and_wait(names.approvals, approval.to_bytes(), key=key)
    finally:
        await producer.stop()


def _approver() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER") or "unknown"


async def _verdict(
    verdict: str, decision_id: str, reason: str, by: str | None, wait: float
) -> None:
    security = settings.aiokafka_security_kwargs()
    bootstrap = settings.bootstrap_servers
    try:
        found = await find_decision(
            bootstrap, topic_names, decision_id, time.time() - _LOOKBACK_S, security
        )
    except ValueError as exc:
        raise click.ClickException(f"could not read the decision topics: {exc}") from None
    if found is None:
        raise click.ClickException(
            f"no decision {decision_id} on {', '.join(topic_names.decisions())} "
            f"in the last {_LOOKBACK_S / 3600:g} h"
        )
    key, decision = found
    if decision.mode != "recommend":
        raise click.ClickException(
            f"decision {decision_id} is mode {decision.mode}: only recommendations need a verdict"
        )
    try:
        approval = Approval(decision_id, verdict, by or _approver(), reason, time.time())
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    positions = await _audit_positions(bootstrap, topic_names.audit, security) if wait > 0 else {}
    await send_verdict(bootstrap, topic_names, key, approval, security)
    subject = "/".join(decision.subject.values())
    click.echo(
        f"{'approved' if verdict == 'approve' else 'rejected'} {decision_id}: "
        f"{decision.kind} {decision.action} {subject} ({decision.reason})"
    )
    if wait > 0:
        record = await _audit_of(
            bootstrap, topic_names.audit, decision_id, positions, wait, security
        )
        if record is None:
            click.echo(f"no answer on {topic_names.audit} within {wait:g} s")
        else:
            code = f" ({record['code']})" if record.get("code") else ""
            click.echo(f"actuator: {record['outcome']}{code}: {record['reason']}")


_OPTIONS = (
    click.argument("decision_id"),
    click.option("--reason", default="", help="Why, for the audit trail."),
    click.option("--by", default=None, help="Who decides (default: the login name)."),
    click.option(
        "--wait",
        type=float,
        default=10.0,
        show_default=True,
        help="Seconds to wait for the actuator's answer on actions.audit (0: do not wait).",
    ),
)


def _command(verdict: str, doc: str) -> click.Command:
    # Plain click commands, not Faust app commands: those run inside a mode worker, which
    # swallows a ClickException's message and exit status.
    def run(decision_id: str, reason: str, by: str | None, wait: float) -> None:
        asyncio.run(_verdict(verdict, decision_id, reason, by, wait))

    run.__doc__ = doc
    for option in reversed(_OPTIONS):
        run = option(run)
    return click.command(verdict)(run)


approve = _command(
    "approve", "Approve recommendation DECISION_ID: the actuator applies it as an auto decision."
)
reject = _command("reject", "Reject recommendation DECISION_ID: it is never applied.")

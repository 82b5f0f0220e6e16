"""The audit agent: every decision, actuation and erasure -> ``autopilot.audit``, hash-chained.

It reads the decision topics, ``actions.audit`` (what the actuator did) and
``autopilot.control`` (erasure requests), which all have the same partition count, and
appends one entry per record to partition ``p`` of ``autopilot.audit`` for a record read
from partition ``p`` (:class:`~models.compliance.trail.AuditChain`): one chain per
partition, written by the one worker that owns partition ``p`` of the sources, so several
workers never write to one chain.

The head of each chain (next sequence number, last hash, last source offset appended per
source partition, recent record ids) is written after every entry to the table
``audit-chain-head`` under ``b"<p>"`` on changelog partition ``p``. A worker that takes
partition ``p`` over (rebalance, restart) restores the head from there, then reads the last
:data:`~models.compliance.trail.RECENT_IDS` entries of the chain from the topic itself and
adopts any the head missed (the worker before it may have died between sending an entry and
writing the head): the topic is the truth, the table spares reading it from the start.

A record read again after a restart is not appended twice (its source offset is not past
the head's), nor is a decision published twice (its ``decision_id`` is among the recent).
Entries are sent one at a time, each awaited, so a chain is written in order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from agents.compat.offsets import ordered
from agents.runtime.checkpoints import partition_table
from models.compliance.trail import RECENT_IDS, AuditChain, canonical
from schemas import topics as names
from streams.runtime.app import app, declare_unless_stopping, settings, topic_names, topics

__all__ = ["audit_trail", "audit_trail_control", "chains"]

log = logging.getLogger(__name__)

# Prefixed source topic -> its logical name, which the entries record.
_SOURCES = {
    topic_names.scaling: names.SCALING,
    topic_names.failover: names.FAILOVER,
    topic_names.remediation: names.REMEDIATION,
    topic_names.approvals: names.APPROVALS,
    topic_names.audit: names.AUDIT,
    topic_names.control: names.CONTROL,
}

heads = partition_table("audit-chain-head", "Head of the audit chain of each partition.")
chains: dict[int, AuditChain] = {}
"""The chains of the partitions this worker owns, loaded on first use."""


async def _on_partitions_assigned(sender: Any, assigned: set[Any], **_: Any) -> None:
    # Another worker may have appended to a chain while it was not ours: reload it.
    owned = {tp.partition for tp in assigned if tp.topic in _SOURCES}
    for partition in set(chains) - owned:
        del chains[partition]


app.on_partitions_assigned.connect(_on_partitions_assigned)


async def _tail(partition: int, count: int) -> list[dict[str, Any]]:
    """The last ``count`` entries on ``partition`` of the trail, oldest first."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        **settings.aiokafka_security_kwargs(),
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic_names.audit_trail, partition)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        start = max((await consumer.beginning_offsets([tp]))[tp], end - count)
        if end <= start:
            return []
        consumer.seek(tp, start)
        entries: list[dict[str, Any]] = []
        while await consumer.position(tp) < end:
            for message in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                if message.offset < end:
                    entries.append(orjson.loads(message.value))
        return entries
    finally:
        await consumer.stop()


async def _chain(partition: int) -> AuditChain:
    chain = chains.get(partition)
    if chain is None:
        saved = heads.get(str(partition).encode())
        chain = (
            AuditChain(partition) if saved is None else AuditChain.from_state(orjson.loads(saved))
        )
        for entry in await _tail(partition, RECENT_IDS):
            chain.adopt(entry)
        chains[partition] = chain
    return chain


async def _append(message: Any) -> None:
    partition = message.partition
    # Two agents append to one chain (records and control requests): one at a time, each
    # entry delivered before the next is made, so a chain reaches the broker in order.
    async with _locks.setdefault(partition, asyncio.Lock()):
        chain = await _chain(partition)
        topic = _SOURCES[message.topic]
        entry = chain.append(topic, partition, message.offset, message.value, ts=time.time())
        if entry is not None:
            await (
                await topics.audit_trail.send(
                    key=entry["record_id"].encode(), value=canonical(entry), partition=partition
                )
            )
        heads[str(partition).encode()] = orjson.dumps(chain.to_state())


async def _run(stream: Any) -> None:
    if not await declare_unless_stopping(topics.audit_trail):
        return
    # The chain follows each partition's order, also after faust dropped some messages at a
    # restart.
    async for event in ordered("audit-trail", stream):
        try:
            await _append(event.message)
        except Exception:
            # The entry is missing (verify shows the gap once a later one is appended): the
            # worker carries on, and says so.
            log.exception(
                "audit: failed to append %s[%d]@%d",
                event.message.topic, event.message.partition, event.message.offset,
            )  # fmt: skip


_locks: dict[int, asyncio.Lock] = {}
_records = app.topic(
    topic_names.scaling,
    topic_names.failover,
    topic_names.remediation,
    topic_names.approvals,
    topic_names.audit,
    partitions=settings.partitions,
    internal=True,
)


@app.agent(_records, name="audit-trail")
async def audit_trail(stream) -> None:
    await _run(stream)


# Its own agent: the control topic's Faust object carries its compaction config, which a
# topic shared with the others could not.
@app.agent(topics.control, name="audit-trail-control")
async def audit_trail_control(stream) -> None:
    await _run(stream)

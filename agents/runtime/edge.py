"""The edge every agent reads through: decode, validate, redact, account, dead-letter.

A telemetry message is one record or an envelope ``{"samples": [...]}`` of records
(:func:`schemas.validate.parse_message`). The counters count records: every record
consumed ends in exactly one of two counters, processed (the handler returned) or
dead-lettered (invalid, refused by the handler, or the handler failed on it), so
``consumed = processed + dlq`` holds per topic once a message is handled. A record
refused inside an envelope is dead-lettered alone, naming the envelope's offset and
its index; the other records of the envelope are processed. A message that cannot be
read at all (not JSON, too large, not an object) is one record, dead-lettered whole.
The free-text fields of a valid record are redacted here, before any handler sees
them (:class:`~models.text.fields.FieldScrubber`), and what was found is counted in
``autopilot_pii_detected_total{class}``.

Back-pressure shows here too: once a message is handled, the wall time since it was produced
(its Kafka timestamp) is how far the decisions made on it trail the telemetry. Every
:data:`LAG_REPORT_S` the most of it per topic goes to ``autopilot_decision_lag_seconds``,
and the log says when a topic's lag passes :data:`LAG_WARN_S` and when it is back under.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from aiokafka.errors import MessageSizeTooLargeError

from agents.compat.offsets import ordered
from agents.runtime import checkpoints
from agents.runtime.checkpoints import gate
from models.text.fields import FieldScrubber
from schemas import DeadLetter, Limits, Rejection
from schemas.validate import Envelope, parse, parse_message
from streams.runtime.app import app, declare_unless_stopping, topics
from streams.runtime.exporter import (
    DECISION_LAG,
    DLQ,
    EVENTS_CONSUMED,
    EVENTS_PROCESSED,
    HANDLING_SECONDS,
    PII_DETECTED,
)

__all__ = [
    "ENVELOPE_KINDS",
    "LAG_REPORT_S",
    "LAG_WARN_S",
    "PROCESSING_ERROR",
    "UNKNOWN_DECISION",
    "Edge",
    "report_lag",
]

log = logging.getLogger(__name__)

# A handler bug must not stop the stream: the message is dead-lettered with
# this reason and the exception's type, and the worker carries on.
PROCESSING_ERROR = "processing_error"
# A valid outcome on feedback.remediation for a decision no brain here is waiting
# on (never made, expired, already answered, or made by another worker). With
# PROCESSING_ERROR, the only reasons besides schemas.REASONS: DLQ reason labels
# stay a closed set.
UNKNOWN_DECISION = "unknown_decision"
# What a dead letter keeps of a payload too large for the DLQ topic itself.
TRUNCATED_PAYLOAD_BYTES = 512 * 1024
ENVELOPE_KINDS = frozenset({"metrics", "errors", "interactions"})
"""Record kinds whose topics accept envelopes: the telemetry topics, where collectors batch."""
YIELD_EVERY_S = 0.01
"""Wall seconds an agent handles ready messages before it lets the event loop run."""
LAG_REPORT_S = 1.0
"""Wall seconds between two reports of the decision lag."""
LAG_WARN_S = 5.0
"""A topic whose messages wait longer than this to be handled is said to be behind."""
# The edge of each topic this worker reads, for the lag report.
_edges: dict[str, Edge] = {}
_spent = HANDLING_SECONDS.seconds


class Edge:
    """Read one telemetry topic through validation into a handler.

    Parameters
    ----------
    kind
        The record kind :func:`schemas.parse` expects for this topic (unused with
        ``decode``).
    label
        The topic's logical name, used as the ``topic`` metric label.
    limits
        Validation limits (sizes, skew, name pattern).
    clock
        Wall-clock seconds, for the timestamp-skew check.
    decode
        Builds the record from a message value, or returns the :class:`Rejection` saying
        why it cannot, never raising. By default :func:`schemas.validate.parse_message` of
        ``kind``, which also reads envelopes when ``kind`` is in :data:`ENVELOPE_KINDS`,
        else :func:`schemas.parse`. For an internal topic, whose records the worker wrote
        after validating them at its own edge: checking them again against the clock would
        refuse the ones read late.
    """

    def __init__(
        self,
        kind: str,
        label: str,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.time,
        decode: Callable[[bytes], Any] | None = None,
    ) -> None:
        self.kind = kind
        self.label = label
        self.limits = limits or Limits.from_env()
        self.clock = clock
        self.envelopes = decode is None and kind in ENVELOPE_KINDS
        self.decode = decode or self._parse
        self._consumed = EVENTS_CONSUMED.labels(label)
        self._processed = EVENTS_PROCESSED.labels(label)
        self._part = f"edge:{label}"
        _spent.setdefault(self._part, 0.0)
        self._scrubber = FieldScrubber()
        self.lag_s = 0.0
        """The most wall seconds a message waited from its produce time to being handled,
        since the last lag report."""
        self.behind = False
        _edges[label] = self

    async def run(
        self,
        stream: faust.StreamT,
        handle: Callable[[Any], Awaitable[Rejection | None]],
        handled: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Feed every valid record of ``stream`` to ``handle``; dead-letter the rest.

        A handler refuses a valid record by returning a :class:`Rejection` (with
        :data:`UNKNOWN_DECISION` as its reason): the record is dead-lettered with it.
        The records of an envelope are handled in order, within the envelope's event;
        ``handled()``, if given, is awaited after the last of them (an OTLP agent sends on
        what the records of one request add up to).
        """
        # Declared before the first dead letter, so the topic gets our config rather
        # than the broker's auto-create defaults (too small for large payloads).
        if not await declare_unless_stopping(topics.dlq):
            return
        # Faust's stream hands over the messages waiting without going back to the event
        # loop: a worker with a few hundred waiting handled them for up to 0.2 s in one go,
        # and the decisions made early on waited that long in the producer.
        yielded = time.perf_counter()
        async for event in ordered(self.label, stream):
            if time.perf_counter() - yielded >= YIELD_EVERY_S:
                await asyncio.sleep(0)
                yielded = time.perf_counter()
            message = event.message
            # A checkpoint is taken between messages, never in the middle of one.
            await gate.enter()
            try:
                await self._handle_message(message, handle, handled)
                last = checkpoints.handled.get(message.tp, -1)
                checkpoints.handled[message.tp] = max(last, message.offset)
            finally:
                gate.leave()

    async def _handle_message(
        self,
        message: Any,
        handle: Callable[[Any], Awaitable[Rejection | None]],
        handled: Callable[[], Awaitable[None]] | None,
    ) -> None:
        consumed, processed = self._consumed, self._processed
        raw = message.value if message.value is not None else b""
        started = time.perf_counter()
        result = self.decode(raw)
        _spent[self._part] += time.perf_counter() - started
        envelope = isinstance(result, Envelope)
        records = result.records if envelope else (result,)
        # Counted once a message, not once a record: an increment takes a lock.
        consumed.inc(len(records))
        done = 0
        try:
            for index, record in enumerate(records):
                if type(record) is Rejection:
                    refused = record
                else:
                    record, found = self._scrubber.scrub(record)
                    for cls, count in found.items():
                        PII_DETECTED.labels(cls).inc(count)
                    try:
                        refused = await handle(record)
                    except Exception as exc:
                        log.exception(
                            "handler failed on %s[%d]@%d%s; dead-lettered",
                            message.topic, message.partition, message.offset,
                            _at(index if envelope else None),
                        )  # fmt: skip
                        refused = Rejection(PROCESSING_ERROR, None, type(exc).__name__)
                    if refused is None:
                        done += 1
                        continue
                if envelope:
                    await self.dead_letter(message, result.payload(index), refused, index)
                else:
                    await self.dead_letter(message, raw, refused)
        finally:
            # Also when the worker stops mid-envelope: what was handled is counted.
            processed.inc(done)
        if handled is not None:
            await handled()
        if message.timestamp:
            self.lag_s = max(self.lag_s, time.time() - message.timestamp)

    def _parse(self, raw: bytes) -> Any:
        if self.envelopes:
            return parse_message(self.kind, raw, now=self.clock(), limits=self.limits)
        return parse(self.kind, raw, now=self.clock(), limits=self.limits)

    async def dead_letter(
        self, message: Any, raw: bytes, rejection: Rejection, index: int | None = None
    ) -> None:
        """Publish ``raw`` with its reason to the DLQ, count it and log it without content.

        Delivery is awaited: a dead letter the broker refuses is not a dead letter.
        One too large even for the DLQ topic keeps only a prefix of its payload, and
        ``payload_size`` still tells the original size. ``index`` is the place of a record
        refused inside the envelope ``message`` carries.
        """

        def letter(keep_bytes: int | None = None) -> bytes:
            return DeadLetter.from_rejection(
                rejection,
                source_topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                raw=raw,
                ts=self.clock(),
                keep_bytes=keep_bytes,
                envelope_index=index,
            ).to_bytes()

        try:
            await (await topics.dlq.send(key=message.key, value=letter()))
        except MessageSizeTooLargeError:
            await (await topics.dlq.send(key=message.key, value=letter(TRUNCATED_PAYLOAD_BYTES)))
        DLQ.labels(self.label, rejection.reason).inc()
        log.warning(
            "dead-lettered %s[%d]@%d%s reason=%s field=%s size=%d",
            message.topic, message.partition, message.offset, _at(index),
            rejection.reason, rejection.field, len(raw),
        )  # fmt: skip


@app.timer(LAG_REPORT_S)
async def report_lag() -> None:
    """Export each topic's decision lag of the last second; say when one falls behind."""
    for edge in list(_edges.values()):
        lag, edge.lag_s = edge.lag_s, 0.0
        DECISION_LAG.labels(edge.label).set(lag)
        if lag > LAG_WARN_S and not edge.behind:
            log.warning(
                "decisions on %s trail their telemetry by %.1f s: this worker cannot keep up "
                "(add workers, or partitions to share)", edge.label, lag,
            )  # fmt: skip
        elif edge.behind and lag <= LAG_WARN_S:
            log.info("decisions on %s caught up (lag %.1f s)", edge.label, lag)
        edge.behind = lag > LAG_WARN_S


def _at(index: int | None) -> str:
    """Where in its envelope a record is, for a log line (nothing for a single record)."""
    return "" if index is None else f"#{index}"

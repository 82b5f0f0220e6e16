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
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from aiokafka.errors import MessageSizeTooLargeError

from models.text.fields import FieldScrubber
from schemas import DeadLetter, Limits, Rejection
from schemas.validate import Envelope, parse, parse_message
from streams.runtime.app import topics
from streams.runtime.exporter import DLQ, EVENTS_CONSUMED, EVENTS_PROCESSED, PII_DETECTED

__all__ = ["ENVELOPE_KINDS", "PROCESSING_ERROR", "UNKNOWN_DECISION", "Edge"]

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
        self._scrubber = FieldScrubber()

    async def run(
        self, stream: faust.StreamT, handle: Callable[[Any], Awaitable[Rejection | None]]
    ) -> None:
        """Feed every valid record of ``stream`` to ``handle``; dead-letter the rest.

        A handler refuses a valid record by returning a :class:`Rejection` (with
        :data:`UNKNOWN_DECISION` as its reason): the record is dead-lettered with it.
        The records of an envelope are handled in order, within the envelope's event.
        """
        # Declared before the first dead letter, so the topic gets our config rather
        # than the broker's auto-create defaults (too small for large payloads).
        await topics.dlq.maybe_declare()
        consumed, processed = self._consumed, self._processed
        async for event in stream.events():
            message = event.message
            raw = message.value if message.value is not None else b""
            result = self.decode(raw)
            envelope = type(result) is Envelope
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


def _at(index: int | None) -> str:
    """Where in its envelope a record is, for a log line (nothing for a single record)."""
    return "" if index is None else f"#{index}"

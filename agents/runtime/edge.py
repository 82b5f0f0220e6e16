"""The edge every agent reads through: decode, validate, account, dead-letter.

Every message consumed ends in exactly one of two counters: processed (the
handler returned) or dead-lettered (invalid, refused by the handler, or the
handler failed on it), so ``consumed = processed + dlq`` holds per topic at all
times.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from aiokafka.errors import MessageSizeTooLargeError

from schemas import DeadLetter, Limits, Rejection, parse
from streams.runtime.app import topics
from streams.runtime.exporter import DLQ, EVENTS_CONSUMED, EVENTS_PROCESSED

__all__ = ["PROCESSING_ERROR", "UNKNOWN_DECISION", "Edge"]

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
        why it cannot, never raising; by default :func:`schemas.parse` of ``kind``. For an
        internal topic, whose records the worker wrote after validating them at its own
        edge: checking them again against the clock would refuse the ones read late.
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
        self.decode = decode or self._parse
        self._consumed = EVENTS_CONSUMED.labels(label)
        self._processed = EVENTS_PROCESSED.labels(label)

    async def run(
        self, stream: faust.StreamT, handle: Callable[[Any], Awaitable[Rejection | None]]
    ) -> None:
        """Feed every valid record of ``stream`` to ``handle``; dead-letter the rest.

        A handler refuses a valid record by returning a :class:`Rejection` (with
        :data:`UNKNOWN_DECISION` as its reason): the record is dead-lettered with it.
        """
        # Declared before the first dead letter, so the topic gets our config rather
        # than the broker's auto-create defaults (too small for large payloads).
        await topics.dlq.maybe_declare()
        async for event in stream.events():
            message = event.message
            self._consumed.inc()
            raw = message.value if message.value is not None else b""
            result = self.decode(raw)
            if isinstance(result, Rejection):
                await self.dead_letter(message, raw, result)
                continue
            try:
                refused = await handle(result)
            except Exception as exc:
                log.exception(
                    "handler failed on %s[%d]@%d; dead-lettered",
                    message.topic, message.partition, message.offset,
                )  # fmt: skip
                failure = Rejection(PROCESSING_ERROR, None, type(exc).__name__)
                await self.dead_letter(message, raw, failure)
                continue
            if refused is not None:
                await self.dead_letter(message, raw, refused)
                continue
            self._processed.inc()

    def _parse(self, raw: bytes) -> Any:
        return parse(self.kind, raw, now=self.clock(), limits=self.limits)

    async def dead_letter(self, message: Any, raw: bytes, rejection: Rejection) -> None:
        """Publish ``raw`` with its reason to the DLQ, count it and log it without content.

        Delivery is awaited: a dead letter the broker refuses is not a dead letter.
        One too large even for the DLQ topic keeps only a prefix of its payload, and
        ``payload_size`` still tells the original size.
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
            ).to_bytes()

        try:
            await (await topics.dlq.send(key=message.key, value=letter()))
        except MessageSizeTooLargeError:
            await (await topics.dlq.send(key=message.key, value=letter(TRUNCATED_PAYLOAD_BYTES)))
        DLQ.labels(self.label, rejection.reason).inc()
        log.warning(
            "dead-lettered %s[%d]@%d reason=%s field=%s size=%d",
            message.topic, message.partition, message.offset,
            rejection.reason, rejection.field, len(raw),
        )  # fmt: skip

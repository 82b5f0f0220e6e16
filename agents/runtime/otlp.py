"""What the OTLP agents share: their edge, and how they send on what a request said."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import faust

from agents.runtime.edge import Edge
from schemas.validate import pack_envelopes
from streams.runtime.app import settings

__all__ = ["otlp_edge", "send_enveloped"]


def otlp_edge(kind: str, label: str, read: Callable[..., Any]) -> Edge:
    """The edge of an OTLP topic: each message read by ``read``
    (:func:`schemas.otlp.read_metrics` or :func:`~schemas.otlp.read_logs`) in the
    deployment's encoding and mapping, item by item."""
    edge = Edge(
        kind,
        label,
        decode=lambda raw: read(
            raw,
            now=time.time(),
            encoding=settings.otlp_encoding,
            mapping=settings.otlp,
            limits=edge.limits,
        ),
    )
    return edge


async def send_enveloped(
    topic: faust.TopicT, records: dict[bytes, list[bytes]], edge: Edge
) -> None:
    """Send each key's encoded records, in order, in envelopes the edge of ``topic``
    accepts, and wait until the broker has them all: the request they came from is
    committed after this."""
    sent = [
        await topic.send(key=key, value=envelope)
        for key, encoded in records.items()
        for envelope in pack_envelopes(encoded, edge.limits)
    ]
    await asyncio.gather(*sent)

"""The OTLP logs agent: the OpenTelemetry Collector's ``otlp_logs`` -> ``telemetry.errors``.

Each message is one OTLP export request (:func:`schemas.otlp.read_logs`, in
``AUTOPILOT_OTLP_ENCODING``). Every log record is checked alone and accounted for: a bad one
is dead-lettered with its index in the request; one of severity WARN or above is an
:class:`~schemas.ErrorEvent`, redacted at this edge like any other, and sent keyed
``service/region`` to ``telemetry.errors``, where the errors brain of its series' partition
learns it; one under WARN is read and passed over. The events of one request are sent
together, and delivered before the request counts as handled.
"""

from __future__ import annotations

import asyncio
import time

from agents.runtime.edge import Edge
from schemas import ErrorEvent, encode
from schemas.otlp import read_logs
from schemas.topics import telemetry_key
from streams.runtime.app import app, settings, topics

__all__ = ["otlp_logs"]

edge = Edge(
    "errors",
    "otlp_logs",
    decode=lambda raw: read_logs(
        raw,
        now=time.time(),
        encoding=settings.otlp_encoding,
        mapping=settings.otlp,
        limits=edge.limits,
    ),
)
# The error events of the request being read.
_events: list[ErrorEvent] = []


async def _handle_log(event: ErrorEvent | None) -> None:
    if event is not None:
        _events.append(event)


async def _send_events() -> None:
    if not _events:
        return
    sent = [
        await topics.errors.send(key=telemetry_key(e.service, e.region), value=encode(e))
        for e in _events
    ]
    _events.clear()
    await asyncio.gather(*sent)


@app.agent(topics.otlp_logs)
async def otlp_logs(stream):
    await edge.run(stream, _handle_log, _send_events)

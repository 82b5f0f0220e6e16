"""The OTLP logs agent: the OpenTelemetry Collector's ``otlp_logs`` -> ``telemetry.errors``.

Each message is one OTLP export request (:func:`schemas.otlp.read_logs`, in
``AUTOPILOT_OTLP_ENCODING``). Every log record is checked alone and accounted for: a bad one
is dead-lettered with its index in the request; one of severity WARN or above is an
:class:`~schemas.ErrorEvent`, redacted at this edge like any other, and sent keyed
``service/region`` to ``telemetry.errors``, where the errors brain of its series' partition
learns it; one under WARN is read and passed over. The events of one request go in one
envelope a series, delivered before the request counts as handled.
"""

from __future__ import annotations

from agents.runtime.otlp import otlp_edge, send_enveloped
from schemas import ErrorEvent, encode
from schemas.otlp import read_logs
from schemas.topics import telemetry_key
from streams.runtime.app import app, topics

__all__ = ["otlp_logs"]

edge = otlp_edge("errors", "otlp_logs", read_logs)
# The error events of the request being read.
_events: list[ErrorEvent] = []


async def _handle_log(event: ErrorEvent | None) -> None:
    if event is not None:
        _events.append(event)


async def _send_events() -> None:
    """Send the request's events, one envelope a series."""
    series: dict[bytes, list[bytes]] = {}
    for event in _events:
        series.setdefault(telemetry_key(event.service, event.region), []).append(encode(event))
    _events.clear()
    await send_enveloped(topics.errors, series, edge)


@app.agent(topics.otlp_logs)
async def otlp_logs(stream):
    await edge.run(stream, _handle_log, _send_events)

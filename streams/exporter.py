"""Prometheus metrics of one worker, served on the worker's own web port at ``/metrics``.

Label values come from closed sets (logical topic names, DLQ reason codes,
decision kinds/actions/modes), never from message content, so the number of
series stays bounded whatever producers send. Each worker exports only what it
did itself; Prometheus sums across workers.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from streams.app import app

__all__ = [
    "DECISIONS",
    "DECISION_LATENCY",
    "DLQ",
    "EVENTS_CONSUMED",
    "EVENTS_PROCESSED",
    "MODEL_BYTES",
    "SERIES_TRACKED",
]

# The *_created series double the exposition for no operational use.
disable_created_metrics()

EVENTS_CONSUMED = Counter(
    "autopilot_events_consumed",
    "Messages read from a telemetry topic (consumed = processed + dead-lettered).",
    ["topic"],
)
EVENTS_PROCESSED = Counter(
    "autopilot_events_processed",
    "Valid messages fully handled by an agent.",
    ["topic"],
)
DLQ = Counter(
    "autopilot_dlq",
    "Messages sent to the dead-letter topic, by source topic and reason code.",
    ["topic", "reason"],
)
DECISIONS = Counter(
    "autopilot_decisions",
    "Decisions published, by kind, action and mode.",
    ["kind", "action", "mode"],
)
DECISION_LATENCY = Histogram(
    "autopilot_decision_latency_seconds",
    "Time from the triggering event's timestamp to the decision being published.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
SERIES_TRACKED = Gauge(
    "autopilot_series_tracked",
    "Keys currently held in memory by a model.",
    ["model"],
)
MODEL_BYTES = Gauge(
    "autopilot_model_bytes",
    "Approximate bytes of model state held in memory.",
    ["model"],
)


@app.page("/metrics")
async def metrics(view, request):
    """Prometheus text exposition of this worker's metrics."""
    return view.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

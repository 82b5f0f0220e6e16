"""The metrics agent: telemetry.metrics -> anomaly and scaling decisions."""

from __future__ import annotations

from agents.edge import Edge
from streams.app import app, topics

__all__ = ["metrics"]


async def _handle(_sample: object) -> None:
    """Validated samples are counted as processed."""


@app.agent(topics.metrics)
async def metrics(stream):
    await Edge("metrics", "telemetry.metrics").run(stream, _handle)

"""The interactions agent, whose learning arrives in a later issue.

It already reads its topic through the validating edge, so every message is
accounted for (processed or dead-lettered) from day one.
"""

from __future__ import annotations

from agents.edge import Edge
from streams.app import app, topics

__all__ = ["interactions"]


async def _accept(_record: object) -> None:
    """Validated records are counted as processed; models subscribe in a later issue."""


@app.agent(topics.interactions)
async def interactions(stream):
    await Edge("interactions", "telemetry.interactions").run(stream, _accept)

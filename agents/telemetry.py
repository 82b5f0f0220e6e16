"""Agents for the telemetry topics whose learning arrives in later issues.

Each already reads its topic through the validating edge, so every message is
accounted for (processed or dead-lettered) from day one.
"""

from __future__ import annotations

from agents.edge import Edge
from streams.app import app, topics

__all__ = ["errors", "interactions", "remediation_feedback"]


async def _accept(_record: object) -> None:
    """Validated records are counted as processed; models subscribe in later issues."""


@app.agent(topics.errors)
async def errors(stream):
    await Edge("errors", "telemetry.errors").run(stream, _accept)


@app.agent(topics.interactions)
async def interactions(stream):
    await Edge("interactions", "telemetry.interactions").run(stream, _accept)


@app.agent(topics.remediation_feedback)
async def remediation_feedback(stream):
    await Edge("remediation_feedback", "feedback.remediation").run(stream, _accept)

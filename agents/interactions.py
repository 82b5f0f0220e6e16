"""The interactions agent: telemetry.interactions -> region health and traffic per data class.

Each valid interaction gives its region's success rate one more observation and says which
data class (``data_class``, or ``default`` without one) the region serves, which decides
where its traffic may go on failover (:mod:`agents.failover`).
"""

from __future__ import annotations

from agents.edge import Edge
from agents.failover import observe_interaction
from schemas import Interaction
from streams.app import app, topics

__all__ = ["interactions"]


async def _handle(interaction: Interaction) -> None:
    observe_interaction(interaction)


@app.agent(topics.interactions)
async def interactions(stream):
    await Edge("interactions", "telemetry.interactions").run(stream, _handle)

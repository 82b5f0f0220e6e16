"""Thin Faust agents: read a topic through :mod:`agents.edge`, call :mod:`models`, publish.

Importing this package registers every agent with the app.
"""

from agents import metrics, telemetry

__all__ = ["metrics", "telemetry"]

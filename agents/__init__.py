"""Thin Faust agents: read a topic through :mod:`agents.edge`, call :mod:`models`, publish.

Importing this package registers every agent with the app, and the offset-commit watchdog.
"""

from agents import actuator, cost, errors, failover, interactions, metrics, offsets, tenants

__all__ = [
    "actuator",
    "cost",
    "errors",
    "failover",
    "interactions",
    "metrics",
    "offsets",
    "tenants",
]

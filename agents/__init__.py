"""Thin Faust agents, one per file: read a topic through :mod:`agents.runtime.edge`, call
:mod:`models`, publish.

Importing this package registers every agent with the app, the subscribers of the in-worker
fan-out (:mod:`agents.runtime.fanout`), and the offset-commit watchdog
(:mod:`agents.compat.offsets`, the one module that reads Faust internals).
"""

from agents import (
    actuator,
    budgets,
    cost,
    errors,
    failover,
    feedback,
    interactions,
    metrics,
    outcomes,
    region_evidence,
    routes,
    tenants,
)
from agents.compat import offsets

__all__ = [
    "actuator",
    "budgets",
    "cost",
    "errors",
    "failover",
    "feedback",
    "interactions",
    "metrics",
    "offsets",
    "outcomes",
    "region_evidence",
    "routes",
    "tenants",
]

"""Thin Faust agents, one per file: read a topic through :mod:`agents.runtime.edge`, call
:mod:`models`, publish.

Importing this package registers every agent with the app, and the offset-commit watchdog
(:mod:`agents.compat.offsets`, the one module that reads Faust internals).
"""

from agents import actuator, audit, cost, erasure, errors, failover, interactions, metrics, tenants
from agents.compat import offsets

__all__ = [
    "actuator",
    "audit",
    "cost",
    "erasure",
    "errors",
    "failover",
    "interactions",
    "metrics",
    "offsets",
    "tenants",
]

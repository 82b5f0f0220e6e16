"""Every agent the worker runs, and the offset-commit watchdog: importing this module
registers them with the app (:mod:`streams.cli.main` does, before it starts the worker)."""

from agents import (
    actuator,
    audit,
    console,
    cost,
    erasure,
    errors,
    failover,
    interactions,
    keda,
    metrics,
    tenants,
)
from agents.compat import offsets

__all__ = [
    "actuator",
    "audit",
    "console",
    "cost",
    "erasure",
    "errors",
    "failover",
    "interactions",
    "keda",
    "metrics",
    "offsets",
    "tenants",
]

"""Every agent the worker runs, the subscribers of the in-worker fan-out, and the
offset-commit watchdog: importing this module registers them with the app
(:mod:`streams.cli.main` does, before it starts the worker)."""

from agents import (
    actions,
    actuator,
    audit,
    budgets,
    console,
    cost,
    erasure,
    errors,
    failover,
    feedback,
    interactions,
    keda,
    metrics,
    otlp_logs,
    otlp_metrics,
    outcomes,
    plugins,
    region_evidence,
    routes,
    tenants,
)
from agents.compat import offsets

__all__ = [
    "actions",
    "actuator",
    "audit",
    "budgets",
    "console",
    "cost",
    "erasure",
    "errors",
    "failover",
    "feedback",
    "interactions",
    "keda",
    "metrics",
    "offsets",
    "otlp_logs",
    "otlp_metrics",
    "outcomes",
    "plugins",
    "region_evidence",
    "routes",
    "tenants",
]

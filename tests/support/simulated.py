"""Simulator output that several tests share, made without Kafka."""

from __future__ import annotations

import orjson

from streams.lab.scenario import FAULT_TYPES, parse_scenario
from streams.lab.simulator import SimConfig, generate


def all_fault_error_events() -> list[dict]:
    """Error events of one short burst of every simulated fault type, in order."""
    incidents = [
        {
            "type": "error_burst",
            "service": "checkout",
            "region": "eu-west",
            "fault_type": fault,
            "start_s": 30 + 10 * i,
            "duration_s": 10,
            "rate_per_s": 10,
        }
        for i, fault in enumerate(FAULT_TYPES)
    ]
    scenario = parse_scenario({"name": "all-faults", "duration_s": 200, "incidents": incidents})
    config = SimConfig.for_scenario(scenario, start_ts=1_700_000_000.0, tenants=0)
    return [orjson.loads(value) for attr, _, value, _ in generate(config) if attr == "errors"]

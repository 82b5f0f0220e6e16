"""The metrics agent's dashboards gauges: set once a message, from each series' last sample."""

from __future__ import annotations

import asyncio

from schemas import MetricSample
from streams.runtime.exporter import DEMAND_RPS, FORECAST_RPS, REPLICAS


def test_the_gauges_of_a_series_show_the_last_sample_of_the_message() -> None:
    from agents import metrics as agent

    key = ("gauged", "eu-west")
    for i, (rps, replicas) in enumerate(((100.0, 3.0), (250.0, 4.0), (180.0, 5.0))):
        sample = MetricSample(
            1_700_000_000.0 + 5 * i,
            key[1],
            key[0],
            {"rps": rps, "replicas": replicas, "cpu_util": 0.5},
        )
        agent.brain.observe(sample.ts, sample.service, sample.region, sample.metrics)
        agent._to_export[key] = sample
    asyncio.run(agent._export())

    assert DEMAND_RPS._values[key] == 180.0
    assert REPLICAS._values[key] == 5.0
    forecast = agent.brain.last_forecast(*key)
    assert forecast is not None and FORECAST_RPS._values[key] == forecast.mean
    # What was exported is not exported again with the next message's series.
    assert agent._to_export == {}

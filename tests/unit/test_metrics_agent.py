"""The metrics agent's dashboards gauges: set once a message, from each series' last sample."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from faust.types import TP

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


def test_the_records_of_one_message_are_learned_or_skipped_together(monkeypatch) -> None:
    # The bookkeeping of a series is done once a message: a message below the series'
    # checkpoint is skipped whole, one above it learned whole and noted changed once.
    from agents import metrics as agent
    from agents.runtime import checkpoints, fanout
    from schemas.topics import telemetry_key

    monkeypatch.setattr(fanout.metric_samples, "_subscribers", [])
    tp = TP(agent.topic_names.metrics, 3)
    handling = []  # the event of the message handled: one each
    monkeypatch.setattr(checkpoints, "current_event", lambda: handling[-1])
    key = ("memo", "eu-west")
    table_key = telemetry_key(*key)
    monkeypatch.setitem(agent._restored_at, table_key, {f"{tp.topic}/{tp.partition}": 10})
    noted, learned = [], []
    monkeypatch.setattr(agent, "changed", noted.append)
    monkeypatch.setattr(agent.brain, "observe", lambda ts, *_: learned.append(ts) or [])

    def message(offset: int, ts: float) -> list[MetricSample]:
        message = SimpleNamespace(tp=tp, topic=tp.topic, partition=3, offset=offset)
        handling.append(SimpleNamespace(message=message))
        samples = [MetricSample(ts + 5 * i, key[1], key[0], {"rps": 100.0}) for i in range(3)]
        for sample in samples:
            asyncio.run(agent._handle(sample))
        return samples

    message(9, 1_700_000_000.0)  # in the checkpoint already
    assert learned == [] and noted == []
    samples = message(10, 1_700_000_100.0)
    assert learned == [sample.ts for sample in samples]
    assert noted == [(agent.checkpoints.name, key)]
    assert agent._partition_of[table_key] == 3 and key in agent._dirty
    agent._dirty.discard(key)
    agent._partition_of.pop(table_key, None)

"""What a worker sends of its region evidence when a rebalance takes its partitions away."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import orjson
from faust.types import TP

from agents import region_evidence
from models.brains.region_evidence import EvidenceRecorder
from streams.runtime.app import topic_names

PARTITION = TP(topic_names.metrics, 1)


def test_revocation_sends_the_waiting_rows_and_asks_the_broker_nothing(monkeypatch) -> None:
    asked: list[TP] = []

    async def highwaters(*tps: TP) -> dict[TP, int]:
        # Inside a rebalance, a request a stop would cancel, killing the consumer's thread.
        asked.extend(tps)
        return {tp: 0 for tp in tps}

    sent: list[dict] = []

    async def send(*, key: bytes, value: bytes) -> None:
        sent.append(orjson.loads(value))

    fake_app = SimpleNamespace(
        consumer=SimpleNamespace(highwaters=highwaters, _committed_offset={}),
        assignor=SimpleNamespace(assigned_actives=lambda: {PARTITION}),
    )
    monkeypatch.setattr(region_evidence, "app", fake_app)
    monkeypatch.setattr(region_evidence.topics.region_evidence, "send", send)
    recorder = EvidenceRecorder()
    recorder.observe_metrics(1_700_000_000.0, "us-east", "checkout", {"error_rate": 0.01})
    monkeypatch.setattr(region_evidence, "_recorders", {PARTITION: recorder})
    # Read long ago: an idle mark would be due.
    monkeypatch.setattr(region_evidence, "_positions", {PARTITION: (41, time.monotonic() - 60)})
    monkeypatch.setattr(region_evidence, "_idle_marked", {})

    asyncio.run(region_evidence._on_partitions_revoked(None, {PARTITION}))

    assert asked == []
    assert [list(body) for body in sent] == [["source", "rows", "spans"]]
    assert region_evidence._recorders == {} and region_evidence._positions == {}

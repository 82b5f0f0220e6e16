"""When a worker sends a metrics partition's part of the budgets to the judge."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest
from faust.types import TP

from agents import cost
from agents.compat import offsets
from models.brains.cost import BudgetWatch, CostBrain
from schemas import MetricSample
from schemas.config.budgets import Budgets
from schemas.config.prices import load_price_table
from streams.runtime.app import topic_names

PARTITION = 1
TP1 = TP(topic_names.metrics, PARTITION)
END = 120
"""The partition's end offset."""
PRICES = load_price_table(Path(cost.__file__).parents[1] / "streams" / "config" / "prices.toml")


@pytest.fixture
def parts(monkeypatch) -> list[dict]:
    """The parts sent; the partition holds a brain that learned, and was read to its end by
    this worker's predecessor, which committed ``END``."""
    sent: list[dict] = []

    async def send(*, key: bytes, value: bytes) -> None:
        sent.append(orjson.loads(value))

    async def highwaters(*tps: TP) -> dict[TP, int]:
        return dict.fromkeys(tps, END)

    fake_app = SimpleNamespace(
        consumer=SimpleNamespace(highwaters=highwaters, _committed_offset={TP1: END}),
        rebalancing=False,
        tables=SimpleNamespace(recovery=SimpleNamespace(completed=asyncio.Event())),
    )
    fake_app.tables.recovery.completed.set()
    monkeypatch.setattr(cost, "app", fake_app)
    monkeypatch.setattr(offsets, "app", fake_app)
    monkeypatch.setattr(cost.topics.budget_evidence, "send", send)
    monkeypatch.setattr(cost, "budgets", BudgetWatch(Budgets(total=1.0)))
    brain = CostBrain(PRICES)
    brain.observe(MetricSample(1_704_067_200.0, "eu-west", "search", {"replicas": 4.0}))
    monkeypatch.setattr(cost.store, "owned", lambda: [PARTITION])
    monkeypatch.setattr(cost.store, "get", lambda partition: brain)
    for table in ("_read", "_summarized", "_empty_since"):
        monkeypatch.setattr(cost, table, {})
    return sent


def test_a_partition_read_to_its_end_by_its_previous_owner_sends_its_part(parts) -> None:
    # Restored from the hand-over checkpoint, nothing left to read: its part is due.
    asyncio.run(cost.send_parts())
    assert [part["source"] for part in parts] == [str(PARTITION)]


def test_a_partition_still_being_read_waits(parts, monkeypatch) -> None:
    cost.app.consumer._committed_offset[TP1] = END - cost.CAUGHT_UP_LAG - 1
    asyncio.run(cost.send_parts())
    assert parts == []


def test_what_was_read_of_a_partition_is_forgotten_when_it_is_revoked(parts) -> None:
    cost._read[PARTITION] = 3
    asyncio.run(cost._on_partitions_revoked(None, {TP1}))
    assert cost._read == {}
    asyncio.run(cost.send_parts())
    assert len(parts) == 1

"""Tenant requests stay in their partition's order when faust drops messages and the
watchdog reads them again (agents.compat.offsets): a tenant brain takes a source's position
below the latest it has for a repeat, so a request sent out of order would be lost."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import orjson
import pytest
from faust.types import TP

from agents import tenants
from agents.compat import offsets
from models.brains.interactions import TenantRequest
from streams.runtime.app import topic_names

INTERACTIONS = TP(topic_names.interactions, 1)
BY_TENANT = TP(topic_names.interactions_by_tenant, 2)
COMMITTED = 100


@pytest.fixture
def sent(monkeypatch) -> list[dict]:
    """What goes to ``interactions.by-tenant``, in order; reading starts at ``COMMITTED``."""
    out: list[dict] = []

    async def send(*, value: bytes, key: bytes | None = None, partition=None) -> None:
        out.append(orjson.loads(value))

    monkeypatch.setattr(tenants.topics.interactions_by_tenant, "send", send)
    consumer = SimpleNamespace(
        _committed_offset={INTERACTIONS: COMMITTED, BY_TENANT: COMMITTED}, unacked=[]
    )
    monkeypatch.setattr(offsets, "app", SimpleNamespace(consumer=consumer))
    monkeypatch.setattr(tenants, "app", SimpleNamespace(consumer=consumer))
    monkeypatch.setattr(offsets, "_read", {})
    for name in ("_positions", "_sent", "_told", "_held", "_waiting"):
        monkeypatch.setattr(tenants, name, {})
    return out


def handled(monkeypatch, tp: TP, offset: int) -> None:
    """The edge takes on the message at ``offset`` of ``tp``."""
    offsets.took(tp, offset)
    event = SimpleNamespace(message=SimpleNamespace(tp=tp, offset=offset))
    monkeypatch.setattr(tenants.faust, "current_event", lambda: event)


def test_requests_after_dropped_messages_go_out_once_those_are_read_again(
    sent, monkeypatch
) -> None:
    async def read(offset: int) -> None:
        handled(monkeypatch, INTERACTIONS, offset)
        await tenants.send_request(TenantRequest(float(offset), "t_1", "api", "eu", True))

    async def run() -> list[int]:
        # 102 to 104 dropped by faust; the watchdog reads them again after 106, and
        # 105 and 106 again, which the edge skips.
        for offset in (100, 101, 105, 106):
            await read(offset)
        await tenants.send_progress()
        told_while_behind = [r for r in sent if "tenant" not in r]
        assert told_while_behind == [], "progress told past messages still missing"
        for offset in (102, 103, 104, 107):
            await read(offset)
        return [r["offset"] for r in sent if "tenant" in r]

    assert asyncio.run(run()) == list(range(100, 108))


def test_by_tenant_records_after_dropped_messages_are_taken_in_their_order(
    sent, monkeypatch
) -> None:
    taken: list[float] = []

    async def take(brain, record) -> bool:
        taken.append(record.ts)
        return True

    monkeypatch.setattr(tenants, "_take", take)
    monkeypatch.setattr(tenants, "handling_partition", lambda: BY_TENANT.partition)
    monkeypatch.setattr(tenants.store, "learning", lambda partition: object())
    monkeypatch.setattr(tenants.store, "touch", lambda partition: None)

    async def run() -> None:
        for offset in (100, 103, 104, 101, 102, 105):
            handled(monkeypatch, BY_TENANT, offset)
            await tenants._handle(tenants.Progress("i/0", float(offset), False))

    asyncio.run(run())
    assert taken == [100.0, 101.0, 102.0, 103.0, 104.0, 105.0]


def test_a_partition_is_behind_from_where_its_reading_started(monkeypatch) -> None:
    consumer = SimpleNamespace(_committed_offset={INTERACTIONS: COMMITTED})
    monkeypatch.setattr(offsets, "app", SimpleNamespace(consumer=consumer))
    monkeypatch.setattr(offsets, "_read", {})
    # Faust dropped the first messages after a restart: 100 to 102.
    offsets.took(INTERACTIONS, 103)
    assert offsets.behind(INTERACTIONS)
    for offset in (100, 101, 102):
        offsets.took(INTERACTIONS, offset)
    assert not offsets.behind(INTERACTIONS)
    # A jump of one offset is a transaction's marker, not a drop.
    offsets.took(INTERACTIONS, 105)
    assert not offsets.behind(INTERACTIONS)

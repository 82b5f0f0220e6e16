"""What the interactions agent tells the tenant brains: each request with where it was read,
and each partition's progress, with the earliest event time of its latest envelope."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import orjson
import pytest
from faust.types import TP

from agents import tenants
from models.brains.interactions import TenantRequest
from streams.runtime.app import settings, topic_names

PARTITION = TP(topic_names.interactions, 1)
SOURCE = f"{PARTITION.topic}/{PARTITION.partition}"


@pytest.fixture
def sent(monkeypatch) -> list[tuple[bytes | None, dict]]:
    """The records sent to ``interactions.by-tenant``: (key, body)."""
    out: list[tuple[bytes | None, dict]] = []

    async def send(*, value: bytes, key: bytes | None = None, partition: int | None = None):
        out.append((key, orjson.loads(value)))

    monkeypatch.setattr(tenants.topics.interactions_by_tenant, "send", send)
    for name in ("_positions", "_lows", "_sent", "_told"):
        monkeypatch.setattr(tenants, name, {})
    return out


def _handle(monkeypatch, offset: int, *times: float) -> None:
    """The interactions of the message at ``offset``, in its order, each sent as a request."""
    event = SimpleNamespace(message=SimpleNamespace(tp=PARTITION, offset=offset))
    monkeypatch.setattr(tenants.faust, "current_event", lambda: event)
    for ts in times:
        request = TenantRequest(ts, "t_c162214972b5", "api", "eu-west", True)
        asyncio.run(tenants.send_request(request))


def test_the_requests_of_an_envelope_carry_its_earliest_event_time(sent, monkeypatch) -> None:
    _handle(monkeypatch, 5, 50.0, 70.0, 90.0)
    _handle(monkeypatch, 6, 55.0)
    bodies = [body for _, body in sent]
    assert [(b["offset"], b["index"], b.get("low")) for b in bodies] == [
        (5, 0, None), (5, 1, 50.0), (5, 2, 50.0), (6, 0, None),
    ]  # fmt: skip
    assert {key for key, _ in sent} == {b"t_c162214972b5"}


def test_progress_tells_the_latest_event_time_and_the_latest_envelopes_low(
    sent, monkeypatch
) -> None:
    _handle(monkeypatch, 5, 50.0, 90.0)
    _handle(monkeypatch, 6, 55.0, 60.0)
    sent.clear()
    asyncio.run(tenants.send_progress())
    # To every partition: the tenant brains there may hold none of this partition's requests.
    assert [body for _, body in sent] == [{"source": SOURCE, "ts": 90.0, "low": 55.0}] * (
        settings.partitions
    )
    sent.clear()
    asyncio.run(tenants.send_progress())
    assert sent == []
    # A message of single records: its low is its own event time, and goes unsaid.
    _handle(monkeypatch, 7, 95.0)
    sent.clear()
    asyncio.run(tenants.send_progress())
    assert [body for _, body in sent][:1] == [{"source": SOURCE, "ts": 95.0}]

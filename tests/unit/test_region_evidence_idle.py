"""When a worker tells the region evaluator that a telemetry partition is idle."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import orjson
import pytest
from faust.types import TP

from agents import region_evidence
from agents.runtime import checkpoints
from streams.runtime.app import topic_names

PARTITION = TP(topic_names.interactions, 2)
END = 42
"""The partition's end offset: its last message is at 41."""


@pytest.fixture
def marks(monkeypatch) -> tuple[list[dict], list]:
    """The idle marks sent, and the messages this worker is handling (empty at first)."""
    sent: list[dict] = []
    handling: list = []

    async def send(*, key: bytes, value: bytes) -> None:
        sent.append(orjson.loads(value))

    async def highwaters(*tps: TP) -> dict[TP, int]:
        return dict.fromkeys(tps, END)

    fake_app = SimpleNamespace(
        consumer=SimpleNamespace(
            highwaters=highwaters, _committed_offset={}, being_handled=lambda: handling
        ),
        assignor=SimpleNamespace(assigned_actives=lambda: {PARTITION}),
    )
    monkeypatch.setattr(region_evidence, "app", fake_app)
    monkeypatch.setattr(region_evidence.topics.region_evidence, "send", send)
    # The last message was read a minute ago: quiet for longer than IDLE_AFTER_S.
    monkeypatch.setattr(
        region_evidence, "_positions", {PARTITION: (END - 1, time.monotonic() - 60)}
    )
    monkeypatch.setattr(region_evidence, "_idle_marked", {})
    return sent, handling


def test_a_partition_read_to_its_end_and_quiet_is_marked_idle(marks) -> None:
    sent, _ = marks
    assert asyncio.run(region_evidence._send_idle_marks()) == [PARTITION]
    assert sent == [{"source": f"{PARTITION.topic}/{PARTITION.partition}", "idle": True}]


def test_no_idle_mark_while_its_last_message_is_being_handled(marks) -> None:
    # Its handler still awaits a publish: the tenant requests of its records, sent after,
    # must reach the tenant brains before the mark that lets their event time pass them.
    sent, handling = marks
    handling.append(SimpleNamespace(tp=PARTITION, offset=END - 1))
    assert asyncio.run(region_evidence._send_idle_marks()) == []
    assert sent == []
    handling.clear()
    assert asyncio.run(region_evidence._send_idle_marks()) == [PARTITION]


def test_reading_dropped_messages_again_does_not_take_the_partition_back(
    marks, monkeypatch
) -> None:
    # agents.compat.offsets seeks a partition back over messages faust dropped: they are read
    # again, the later ones (read already) skipped. The partition is still read to its end.
    def reading(offset: int) -> None:
        event = SimpleNamespace(message=SimpleNamespace(tp=PARTITION, offset=offset))
        monkeypatch.setattr(checkpoints, "current_event", lambda: event)
        region_evidence._recorder()

    monkeypatch.setattr(region_evidence, "_recorders", {})
    reading(END - 1)
    for dropped in (END - 10, END - 9):
        reading(dropped)
    assert region_evidence._next_offset(PARTITION) == END

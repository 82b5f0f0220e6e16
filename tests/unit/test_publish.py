"""Publishing decisions: each to its topic, keyed by subject; its topic declared once."""

from __future__ import annotations

from typing import Any

from agents.runtime import publish as publishing
from schemas import Decision


class _Topic:
    """A decision topic that records what is asked of it."""

    def __init__(self) -> None:
        self.declared = 0
        self.sent: list[tuple[bytes, bytes]] = []

    async def maybe_declare(self) -> None:
        self.declared += 1

    async def send(self, key: bytes, value: bytes, callback: Any) -> None:
        self.sent.append((key, value))


def _decision(service: str) -> Decision:
    return Decision(
        "0" * 32, "scaling", 1_700_000_000.0, {"service": service, "region": "us-east"},
        "scale_out", {}, "auto", 0.9, "Demand rises.", {}, "test",
    )  # fmt: skip


async def test_each_decision_goes_to_its_topic_which_is_declared_once(monkeypatch) -> None:
    topic = _Topic()
    monkeypatch.setitem(publishing._BY_TOPIC, _decision("a").topic, topic)
    monkeypatch.setattr(publishing, "_declared", set())
    for service in ("a", "b", "c"):
        await publishing.publish(_decision(service), 1_700_000_000.0)
    # Each declaration makes the producer fetch the metadata of every topic.
    assert topic.declared == 1
    assert [key for key, _ in topic.sent] == [b"a/us-east", b"b/us-east", b"c/us-east"]
    assert all(value == _decision(key.decode()[0]).to_bytes() for key, value in topic.sent)

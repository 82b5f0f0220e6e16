"""OncePerMessage: what a subscriber makes of a message is worked out once a message and key."""

from __future__ import annotations

from types import SimpleNamespace

from agents.runtime import checkpoints
from agents.runtime.checkpoints import OncePerMessage


def test_worked_out_once_a_message_and_key_and_again_after_forget(monkeypatch) -> None:
    handling: list[SimpleNamespace] = []
    monkeypatch.setattr(checkpoints, "current_event", lambda: handling[-1])
    calls: list[tuple[int, str]] = []

    def work(event: SimpleNamespace, key: str) -> tuple[int, str]:
        calls.append((event.message.offset, key))
        return event.message.offset, key

    memo = OncePerMessage(work)
    handling.append(SimpleNamespace(message=SimpleNamespace(offset=7)))
    # An envelope's records: one event; the work is done at the first, and at a new key.
    assert [memo("a"), memo("a"), memo("b"), memo("b")] == [
        (7, "a"), (7, "a"), (7, "b"), (7, "b")
    ]  # fmt: skip
    assert calls == [(7, "a"), (7, "b")]
    # The next message, even of the same key, is worked out anew.
    handling.append(SimpleNamespace(message=SimpleNamespace(offset=8)))
    assert memo("b") == (8, "b")
    assert calls[-1] == (8, "b")
    # Partitions revoked: what was worked out may be gone; the same message is worked out anew.
    memo.forget()
    memo("b")
    assert calls == [(7, "a"), (7, "b"), (8, "b"), (8, "b")]

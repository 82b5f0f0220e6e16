"""The audit chain and its verification: any single alteration, drop, swap or insertion of
an entry in a chain is found, at its offset; an untouched chain always verifies."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from models.compliance.trail import AuditChain, canonical, entry_hash, verify


def chain_of(n: int, partition: int = 0) -> list[bytes]:
    chain = AuditChain(partition)
    out = []
    for i in range(n):
        topic = "decisions.scaling" if i % 3 else "actions.audit"
        raw = orjson.dumps({"decision_id": f"d{i}", "outcome": "applied", "i": i})
        out.append(canonical(chain.append(topic, partition, i, raw, ts=float(i))))
    return out


def problems(rows: list[bytes]) -> list[tuple[int, str]]:
    status = verify([(0, offset, raw) for offset, raw in enumerate(rows)])[0]
    return [(i.offset, i.problem) for i in status.issues]


@given(st.integers(1, 40))
def test_an_untouched_chain_verifies(n: int) -> None:
    assert problems(chain_of(n)) == []


@settings(max_examples=60)
@given(st.integers(3, 30), st.data())
def test_one_altered_entry_is_found_at_its_offset(n: int, data: st.DataObject) -> None:
    rows = chain_of(n)
    k = data.draw(st.integers(0, n - 1))
    entry = orjson.loads(rows[k])
    entry["body"]["outcome"] = "refused"
    rows[k] = canonical(entry)
    assert problems(rows) == [(k, "altered")]
    # Recomputing its hash moves the evidence to the link after it (if there is one).
    entry["hash"] = entry_hash(entry)
    rows[k] = canonical(entry)
    assert problems(rows) == ([(k + 1, "broken_link")] if k < n - 1 else [])


@settings(max_examples=60)
@given(st.integers(3, 30), st.data())
def test_a_dropped_or_swapped_entry_is_found_at_its_offset(n: int, data: st.DataObject) -> None:
    rows = chain_of(n)
    k = data.draw(st.integers(0, n - 2))
    assert problems(rows[:k] + rows[k + 1 :]) == [(k, "gap")]
    swapped = [*rows[:k], rows[k + 1], rows[k], *rows[k + 2 :]]
    assert problems(swapped)[0] == (k, "reordered")


def test_a_replayed_or_duplicate_record_is_appended_once() -> None:
    chain = AuditChain(0)
    raw = b'{"decision_id": "d1"}'
    assert chain.append("decisions.scaling", 0, 5, raw, ts=1.0) is not None
    assert chain.append("decisions.scaling", 0, 5, raw, ts=2.0) is None  # same offset
    assert chain.append("decisions.scaling", 0, 9, raw, ts=3.0) is None  # same decision
    assert chain.append("decisions.failover", 0, 5, b"not json", ts=4.0)["body"] is None


def test_a_restored_head_continues_the_chain_and_adopts_what_it_missed() -> None:
    chain = AuditChain(1)
    first = chain.append("decisions.scaling", 1, 0, b'{"decision_id": "a"}', ts=1.0)
    saved = chain.to_state()
    lost = chain.append("decisions.scaling", 1, 1, b'{"decision_id": "b"}', ts=2.0)
    restored = AuditChain.from_state(saved)
    restored.adopt(lost)  # read back from the topic's tail
    assert restored.append("decisions.scaling", 1, 1, b'{"decision_id": "b"}', ts=3.0) is None
    last = restored.append("decisions.scaling", 1, 2, b'{"decision_id": "c"}', ts=4.0)
    rows = [canonical(e) for e in (first, lost, last)]
    status = verify([(1, o, r) for o, r in enumerate(rows)])[1]
    assert status.ok and status.entries == 3

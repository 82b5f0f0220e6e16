"""The audit trail: records hash-chained per partition, and their verification.

Every decision, actuation record and erasure request becomes one *entry* on
``autopilot.audit``. Entries are chained per partition of that topic: each carries its
sequence number in the chain, the hash of its predecessor (``prev``) and its own ``hash``,
the SHA-256 of its canonical JSON without the ``hash`` field. Altering an entry changes its
hash; dropping, duplicating or reordering entries breaks the sequence or the links. A
forger who rewrites an entry *and* every entry after it keeps the chain consistent, which
is why :func:`verify` reports each chain's head hash: written down elsewhere (a ticket, a
second system), a head hash anchors everything before it.

Canonical JSON (:func:`canonical`): keys sorted, no spaces, UTF-8, no NaN; floats as
Python's shortest round-trip ``repr``. It is what the entry is written as, so the verifier
hashes exactly what it reads back after parsing and re-encoding.

An entry::

    {"v": 1, "chain": 2, "seq": 41, "prev": "<64 hex>", "ts": 1764650000.1,
     "kind": "decision", "record_id": "<decision_id>",
     "source": {"topic": "decisions.scaling", "partition": 2, "offset": 977},
     "raw_sha256": "<64 hex of the source message's bytes>", "body": {...},
     "hash": "<64 hex>"}

``body`` is the source record as JSON (``null`` when it was not JSON: ``raw_sha256`` still
ties the entry to the bytes).
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from schemas import topics

__all__ = [
    "ENTRY_VERSION",
    "GENESIS",
    "KINDS",
    "RECENT_IDS",
    "AuditChain",
    "ChainIssue",
    "ChainStatus",
    "canonical",
    "entry_hash",
    "kind_of",
    "record_id_of",
    "verify",
]

ENTRY_VERSION = 1
GENESIS = "0" * 64
"""The ``prev`` of the first entry of a chain."""
KINDS = ("decision", "actuation", "erasure", "approval", "config")
"""What an entry records; approvals and plugin or config changes join through their topics."""
RECENT_IDS = 512
"""Record ids a chain remembers to drop duplicates (a brain restored from a checkpoint
re-publishes the decisions it made since: tens, not hundreds, per partition)."""

_SOURCE_KINDS = {
    topics.SCALING: "decision",
    topics.FAILOVER: "decision",
    topics.REMEDIATION: "decision",
    topics.AUDIT: "actuation",
}


def canonical(obj: Any) -> bytes:
    """The canonical JSON of ``obj``: sorted keys, no spaces, UTF-8.

    >>> canonical({"b": 1.5, "a": [True, None, "é"]})
    b'{"a":[true,null,"\\xc3\\xa9"],"b":1.5}'
    """
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def entry_hash(entry: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``entry`` without its ``hash`` field."""
    return hashlib.sha256(canonical({k: v for k, v in entry.items() if k != "hash"})).hexdigest()


def kind_of(topic: str, body: Any) -> str:
    """The entry kind of a record of (unprefixed) ``topic``.

    >>> kind_of("decisions.failover", {}), kind_of("autopilot.control", {"type": "erase"})
    ('decision', 'erasure')
    """
    if topic == topics.CONTROL:
        return "erasure" if isinstance(body, dict) and body.get("type") == "erase" else "config"
    return _SOURCE_KINDS.get(topic, "config")


def record_id_of(kind: str, body: Any, raw: bytes) -> str:
    """What identifies a record for deduplication: a decision's ``decision_id``, an
    erasure's ``request_id``, otherwise the SHA-256 of its bytes (a replayed copy).

    >>> record_id_of("decision", {"decision_id": "ab12"}, b"")
    'ab12'
    >>> record_id_of("actuation", {"decision_id": "ab12"}, b"x")[:12]
    '2d711642b726'
    """
    if isinstance(body, dict):
        name = {"decision": "decision_id", "erasure": "request_id"}.get(kind)
        value = body.get(name) if name else None
        if isinstance(value, str) and value:
            return value
    return hashlib.sha256(raw).hexdigest()


@dataclass
class AuditChain:
    """The head of one partition's chain, and the appending of entries to it.

    Parameters
    ----------
    chain
        The partition of ``autopilot.audit`` the chain lives on.

    Notes
    -----
    Memory is bounded: the head hash, the last offset appended per source partition
    (topics x partitions integers) and :data:`RECENT_IDS` record ids.

    A record is appended once: one read again after a restart (its source offset is not
    past the last appended) or whose record id is among the recent ones (a decision
    published twice) is skipped.

    Examples
    --------
    >>> c = AuditChain(0)
    >>> e1 = c.append("decisions.scaling", 0, 10, b'{"decision_id": "d1"}', ts=1.0)
    >>> e2 = c.append("decisions.scaling", 0, 11, b'{"decision_id": "d1"}', ts=2.0)
    >>> e3 = c.append("actions.audit", 0, 5, b'{"outcome": "applied"}', ts=3.0)
    >>> (e1["seq"], e1["prev"] == GENESIS), e2, (e3["seq"], e3["prev"] == e1["hash"])
    ((0, True), None, (1, True))
    >>> c.append("decisions.scaling", 0, 10, b'{"decision_id": "d9"}', ts=4.0) is None
    True
    >>> AuditChain.from_state(c.to_state()).next_seq
    2
    """

    chain: int
    next_seq: int = 0
    head: str = GENESIS
    offsets: dict[str, int] = field(default_factory=dict)
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT_IDS))

    def append(
        self, topic: str, partition: int, offset: int, raw: bytes | None, *, ts: float
    ) -> dict[str, Any] | None:
        """The entry recording message ``raw`` of (unprefixed) ``topic``, or ``None`` when
        it is one already recorded. Never raises on the message's content."""
        raw = raw or b""
        source = f"{topic}/{partition}"
        if offset <= self.offsets.get(source, -1):
            return None
        self.offsets[source] = offset
        try:
            body = json.loads(raw)
            canonical(body)
        except ValueError:
            body = None
        kind = kind_of(topic, body)
        record_id = record_id_of(kind, body, raw)
        if record_id in self.recent:
            return None
        entry: dict[str, Any] = {
            "v": ENTRY_VERSION,
            "chain": self.chain,
            "seq": self.next_seq,
            "prev": self.head,
            "ts": ts,
            "kind": kind,
            "record_id": record_id,
            "source": {"topic": topic, "partition": partition, "offset": offset},
            "raw_sha256": hashlib.sha256(raw).hexdigest(),
            "body": body,
        }
        entry["hash"] = entry_hash(entry)
        self._advance(entry)
        return entry

    def adopt(self, entry: Mapping[str, Any]) -> None:
        """Catch up with an entry already on the topic (written before a crash that lost the
        head's last update): later entries then link to it, and its record is not
        appended again."""
        if entry.get("chain") != self.chain or entry.get("seq", -1) < self.next_seq:
            return
        source = entry["source"]
        key = f"{source['topic']}/{source['partition']}"
        self.offsets[key] = max(self.offsets.get(key, -1), source["offset"])
        self._advance(entry)

    def _advance(self, entry: Mapping[str, Any]) -> None:
        self.next_seq = entry["seq"] + 1
        self.head = entry["hash"]
        self.recent.append(entry["record_id"])

    def to_state(self) -> dict[str, Any]:
        """JSON-friendly head of the chain (hashes, offsets and record ids only)."""
        return {
            "chain": self.chain,
            "next_seq": self.next_seq,
            "head": self.head,
            "offsets": self.offsets,
            "recent": list(self.recent),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> AuditChain:
        return cls(
            state["chain"],
            state["next_seq"],
            state["head"],
            dict(state["offsets"]),
            deque(state["recent"], maxlen=RECENT_IDS),
        )


@dataclass(frozen=True)
class ChainIssue:
    """Something wrong at one offset of a chain.

    ``problem`` is ``altered`` (the entry's hash is not the hash of its content, or it is
    not an entry at all), ``broken_link`` (its ``prev`` is not the hash of the entry before:
    one of the two was rewritten), ``gap`` (entries are missing before it), ``reordered``
    (it is out of sequence and the missing one comes later) or ``duplicate`` (a sequence
    number seen before).
    """

    partition: int
    offset: int
    problem: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "offset": self.offset,
            "problem": self.problem,
            "detail": self.detail,
        }


@dataclass
class ChainStatus:
    """What :func:`verify` found on one partition."""

    partition: int
    entries: int = 0
    first_offset: int | None = None
    last_offset: int | None = None
    head: str | None = None
    issues: list[ChainIssue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.issues

    def to_dict(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "entries": self.entries,
            "first_offset": self.first_offset,
            "last_offset": self.last_offset,
            "head": self.head,
            "ok": self.ok,
            "first_bad_offset": self.issues[0].offset if self.issues else None,
            "issues": [i.to_dict() for i in self.issues],
        }


def verify(
    messages: Iterable[tuple[int, int, bytes | None]], *, anchored: Mapping[int, bool] | None = None
) -> dict[int, ChainStatus]:
    """Check the chains in ``messages``: ``(partition, offset, value)`` in offset order.

    Parameters
    ----------
    messages
        The audit topic's messages, each partition's in offset order.
    anchored
        Per partition, whether its first message is the chain's first entry (read from the
        start of the topic): then it must be ``seq`` 0 with the genesis ``prev``. Otherwise
        (a ``--from`` in the middle) the first entry read is trusted as the start.

    Examples
    --------
    >>> c = AuditChain(0)
    >>> raws = [canonical(c.append("decisions.scaling", 0, i, b'{"decision_id": "d%d"}' % i,
    ...                            ts=float(i))) for i in range(4)]
    >>> verify([(0, o, r) for o, r in enumerate(raws)])[0].ok
    True
    >>> def problems(rows):
    ...     status = verify([(0, offset, raw) for offset, raw in enumerate(rows)])[0]
    ...     return [(i.offset, i.problem) for i in status.issues]
    >>> problems([raws[0], raws[2], raws[1], raws[3]])
    [(1, 'reordered'), (2, 'reordered')]
    >>> problems(raws[:1] + [raws[1].replace(b'"d1"', b'"dX"')] + raws[2:])
    [(1, 'altered')]
    >>> problems(raws[:1] + raws[2:])
    [(1, 'gap')]
    """
    by_partition: dict[int, list[tuple[int, bytes | None]]] = {}
    for partition, offset, value in messages:
        by_partition.setdefault(partition, []).append((offset, value))
    anchored = anchored or {}
    return {
        p: _verify_chain(p, rows, anchored.get(p, True)) for p, rows in sorted(by_partition.items())
    }


def _parse(value: bytes | None) -> dict[str, Any] | None:
    try:
        entry = json.loads(value or b"")
    except ValueError:
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("seq"), int):
        return None
    if not all(isinstance(entry.get(k), str) for k in ("prev", "hash")):
        return None
    return entry


def _verify_chain(
    partition: int, rows: list[tuple[int, bytes | None]], anchored: bool
) -> ChainStatus:
    status = ChainStatus(partition, entries=len(rows))
    if rows:
        status.first_offset, status.last_offset = rows[0][0], rows[-1][0]
    entries = [(offset, _parse(value)) for offset, value in rows]
    later_seqs: dict[int, int] = {}  # seq -> how many times it occurs in the rest
    for _, entry in entries:
        if entry is not None:
            later_seqs[entry["seq"]] = later_seqs.get(entry["seq"], 0) + 1
    expected_seq: int | None = 0 if anchored else None
    # The hash of each sequence number read so far: an entry's prev must be its
    # predecessor's, wherever that one was found.
    hashes: dict[int, str] = {-1: GENESIS} if anchored else {}
    issues = status.issues
    for offset, entry in entries:
        if entry is None:
            issues.append(ChainIssue(partition, offset, "altered", "not an audit entry"))
            continue
        seq = entry["seq"]
        later_seqs[seq] -= 1
        if entry_hash(entry) != entry["hash"] or entry.get("chain") != partition:
            problem, detail = "altered", f"seq {seq}: content does not match its hash"
        elif seq in hashes:
            problem, detail = "duplicate", f"seq {seq} appeared before"
        elif expected_seq is not None and seq != expected_seq:
            if seq < expected_seq or later_seqs.get(expected_seq, 0) > 0:
                problem, detail = "reordered", f"seq {seq} where {expected_seq} was due"
            else:
                problem = "gap"
                detail = f"seq {seq} where {expected_seq} was due: {seq - expected_seq} missing"
        elif seq - 1 in hashes and entry["prev"] != hashes[seq - 1]:
            problem = "broken_link"
            detail = f"seq {seq}: prev is not the hash of seq {seq - 1} (one of them was rewritten)"
        else:
            problem = ""
        if problem:
            issues.append(ChainIssue(partition, offset, problem, detail))
        hashes.setdefault(seq, entry["hash"])
        if expected_seq is None or seq >= expected_seq:
            expected_seq = seq + 1
        status.head = entry["hash"]
    return status

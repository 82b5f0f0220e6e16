"""The tenants agent: interactions.by-tenant -> tenant SLO burn, usage peaks and behaviour.

A tenant's interactions span services and regions, hence partitions of
``telemetry.interactions`` (keyed ``service/region``). So that each tenant is judged once,
on all its traffic, the interactions agent repartitions them: every interaction it handles
becomes a :class:`~models.brains.interactions.TenantRequest`, sent by :func:`send_request` to
the internal topic ``interactions.by-tenant`` keyed by the tenant's pseudonym. This agent
reads that topic with one :class:`~models.brains.tenants.TenantBrain` per partition, so all
of a tenant's requests meet in one brain, and publishes what it decides: ``slo_burn``
(subject ``{"tenant"}``) and ``anomaly`` (``tenant_drop``, ``tenant_surge``) on
``decisions.remediation``, ``scheduled_scaling`` on ``decisions.scaling``.

The record on the topic is JSON: ``{"ts": <epoch s>, "tenant": "t_<12 hex>", "service":
..., "region": ..., "good": <bool>, "source": "<interactions topic>/<partition>", "offset":
<int>, "index": <int>}``, ``good`` meaning the request met its service's SLO, and the last
three where the interaction was read (``index``: its place among the requests of its
message, an envelope holding several); plus ``"low": <epoch s>``, the earliest event time
of its message's requests so far, when older than its own. No tenant name, user id or
feedback: only what the tenant brain needs.

Order. The brain learns in event time over the interactions partitions, whichever workers
read them and at whatever pace (:class:`~models.brains.tenants.TenantBrain`: ``receive``,
``advance``), so that a tenant's decisions are the same with one worker or several. A
partition's requests tell its progress to the by-tenant partitions they go to; the others
learn it from progress records ``{"source": ..., "ts": <latest request's event time>}``
(with ``"low"``, that of its latest message, when older),
which the reader of each interactions partition sends to every partition of the topic with
the region evidence (:func:`agents.region_evidence.flush`, every
:data:`~agents.region_evidence.FLUSH_EVERY_S`, :func:`send_progress`), and from its idle
marks ``{"source": ..., "idle": true}``, sent when region evidence marks the partition idle.
A request read again by a partition's next reader (from the committed offset) carries its
first position, and is learned once. It is an internal
record, written and read by the worker itself, rather than one of the topic contracts of
:mod:`schemas` (what outside producers write, with their JSON Schemas): the interaction it
comes from was validated where it came in, so it is only decoded here
(:func:`decode_request`); checking its timestamp against the clock again would refuse the
records of a worker catching up. It still goes through :class:`~agents.runtime.edge.Edge`, so each
one read is counted as processed or dead-lettered (one that cannot be decoded, e.g. from an
incompatible version), under the topic label ``interactions.by-tenant``.

Each brain is checkpointed every ``AUTOPILOT_CHECKPOINT_INTERVAL_S`` to the Faust table
``tenant-brain`` (changelog ``<app>-tenant-brain-changelog``, compacted) under the key
``b"<p>"`` on changelog partition ``p``, and restored by the worker that gets partition
``p`` of ``interactions.by-tenant``.

Erasure (:mod:`agents.erasure`): a brain restored from a checkpoint forgets the tenants
erased since (:data:`erasures`), and a request of an erased tenant timed no later than its
erasure is not learned from (it counts as processed).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import faust
import orjson
from faust.types import TP

from agents.runtime.checkpoints import PartitionBrains, handling_partition
from agents.runtime.edge import Edge
from agents.runtime.publish import publish
from agents.runtime.sources import source_name, source_names
from models.brains.interactions import TenantRequest
from models.brains.tenants import Position, TenantBrain
from models.compliance.erasure import ErasureLog
from schemas import Rejection
from streams.runtime.app import app, settings, topic_names, topics
from streams.runtime.exporter import SERIES_TRACKED

__all__ = [
    "Progress",
    "Sourced",
    "brains",
    "decode_request",
    "encode_request",
    "erasures",
    "gauges",
    "send_progress",
    "send_request",
    "tenants",
]

LABEL = "interactions.by-tenant"

# Field name -> the JSON types it may have (a bool is not a number here).
_FIELDS: tuple[tuple[str, tuple[type, ...]], ...] = (
    ("ts", (int, float)),
    ("tenant", (str,)),
    ("service", (str,)),
    ("region", (str,)),
    ("good", (bool,)),
    ("offset", (int,)),
    ("index", (int,)),
)


@dataclass(frozen=True, slots=True)
class Sourced:
    """A request, with the interactions partition it was read from and where, and the
    earliest event time of the message it came in if older than its own (``low``)."""

    request: TenantRequest
    source: str
    position: Position
    low: float | None = None


@dataclass(frozen=True, slots=True)
class Progress:
    """A partition's progress: every request up to ``ts`` sent, the earliest of its latest
    message at ``low`` if older; or ``idle``."""

    source: str
    ts: float
    idle: bool
    low: float | None = None


def encode_request(sourced: Sourced) -> bytes:
    """The JSON record of a request on ``interactions.by-tenant``.

    >>> request = TenantRequest(1700000000.0, "t_c162214972b5", "api", "eu-west", True)
    >>> encode_request(Sourced(request, "telemetry.interactions/2", (41, 0)))[92:]
    b'"source":"telemetry.interactions/2","offset":41,"index":0}'
    >>> encode_request(Sourced(request, "telemetry.interactions/2", (41, 1), 1699999990.0))[140:]
    b'"index":1,"low":1699999990.0}'
    """
    r, (offset, index) = sourced.request, sourced.position
    record = {
        "ts": r.ts, "tenant": r.tenant, "service": r.service, "region": r.region,
        "good": r.good, "source": sourced.source, "offset": offset, "index": index,
    }  # fmt: skip
    if sourced.low is not None:
        record["low"] = sourced.low
    return orjson.dumps(record)


def decode_request(raw: bytes) -> Sourced | Progress | Rejection:
    """The request or the progress in a record of ``interactions.by-tenant``, or why there is
    none.

    Never raises; reasons are those of :data:`schemas.REASONS`.

    >>> request = TenantRequest(1.0, "t_1", "api", "eu-west", False)
    >>> decode_request(encode_request(Sourced(request, "i/0", (5, 1)))) == Sourced(
    ...     request, "i/0", (5, 1))
    True
    >>> decode_request(b'{"source": "i/0", "ts": 12}')
    Progress(source='i/0', ts=12.0, idle=False, low=None)
    >>> decode_request(b'{"source": "i/0", "ts": 12, "low": 7}')
    Progress(source='i/0', ts=12.0, idle=False, low=7.0)
    >>> decode_request(b'{"source": "i/0", "ts": 12, "low": true}').field
    'low'
    >>> decode_request(b'{"source": "i/0", "idle": true}')
    Progress(source='i/0', ts=-inf, idle=True, low=None)
    >>> decode_request(b'{"ts": 1, "tenant": "t_1", "service": "api", "region": "eu-west",'
    ...                b' "source": "i/0"}')
    Rejection(reason='missing_field', field='good', detail="required field 'good' is missing")
    >>> decode_request(b'{"ts": true, "source": "i/0"}').reason, decode_request(b"{").reason
    ('wrong_type', 'invalid_json')
    """
    if not raw:
        return Rejection("empty_payload", None, "payload is empty")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return Rejection("invalid_json", None, "not a JSON document")
    if type(obj) is not dict:
        return Rejection("not_an_object", None, "the top-level value is not an object")
    source = obj.get("source")
    if type(source) is not str:
        return Rejection("missing_field", "source", "required field 'source' is missing")
    if obj.get("idle") is True:
        return Progress(source, -math.inf, True)
    values = []
    for name, types in _FIELDS if "tenant" in obj else _FIELDS[:1]:
        value = obj.get(name)
        if value is None:
            return Rejection("missing_field", name, f"required field {name!r} is missing")
        if type(value) not in types:
            return Rejection("wrong_type", name, f"field {name!r} has the wrong type")
        values.append(value)
    ts, low = values[0], obj.get("low")
    if not math.isfinite(ts):
        return Rejection("not_finite", "ts", "field 'ts' is not a finite number")
    if low is not None:
        if type(low) not in (int, float) or not math.isfinite(low):
            return Rejection("wrong_type", "low", "field 'low' is not a finite number")
        low = float(low)
    if len(values) == 1:
        return Progress(source, float(ts), False, low)
    _, tenant, service, region, good, offset, index = values
    request = TenantRequest(float(ts), tenant, service, region, good)
    return Sourced(request, source, (offset, index), low)


_SOURCES = source_names([topic_names.interactions], settings.partitions)
# Interactions partition -> (offset, index) of the latest request sent, the earliest event
# time of the requests of that offset's message, the latest event time sent, and the latest
# (event time, low) told as progress.
_positions: dict[TP, Position] = {}
_lows: dict[TP, float] = {}
_sent: dict[TP, float] = {}
_told: dict[TP, tuple[float, float | None]] = {}


async def send_request(request: TenantRequest) -> None:
    """Send ``request``, of the interaction being handled, to ``interactions.by-tenant``,
    keyed by the tenant's pseudonym, with where it was read.

    Awaiting hands it to the producer; Faust flushes the producer before it commits the
    offset of the interaction being handled, so an interaction whose request was not
    delivered is read again after a crash (at least once, as decisions are).
    """
    event = faust.current_event()
    if event is None:
        raise RuntimeError("a tenant request sent outside an agent's event")
    tp, offset = event.message.tp, event.message.offset
    last = _positions.get(tp)
    same_message = last is not None and last[0] == offset
    position = (offset, last[1] + 1 if same_message else 0)
    _positions[tp] = position
    # (An envelope's records come in the order its producer wrote them, one series' window in
    # time order: the low of the records handled so far is the message's low by the time the
    # brains may pass it.)
    low = _lows[tp] = min(_lows[tp], request.ts) if same_message else request.ts
    await topics.interactions_by_tenant.send(
        key=request.tenant.encode(),
        value=encode_request(
            Sourced(request, source_name(tp), position, low if low < request.ts else None)
        ),
    )
    _sent[tp] = max(request.ts, _sent.get(tp, -math.inf))


async def _tell(tp: TP, body: dict[str, Any]) -> None:
    value = orjson.dumps({"source": source_name(tp), **body})
    for partition in range(settings.partitions):
        await topics.interactions_by_tenant.send(value=value, partition=partition)


async def send_progress(idle: Iterable[TP] = ()) -> None:
    """Tell every tenant brain how far each interactions partition read here has sent
    requests, then which of them are ``idle``."""
    for tp, ts in list(_sent.items()):
        low = _lows[tp] if _lows[tp] < ts else None
        if (ts, low) != _told.get(tp):
            _told[tp] = (ts, low)
            await _tell(tp, {"ts": ts} if low is None else {"ts": ts, "low": low})
    for tp in idle:
        await _tell(tp, {"idle": True})


async def _on_partitions_revoked(sender: Any, revoked: set[TP], **_: Any) -> None:
    # The partitions' next readers tell their progress, from the committed offsets.
    for tp in revoked:
        _positions.pop(tp, None)
        _lows.pop(tp, None)
        _sent.pop(tp, None)
        _told.pop(tp, None)


app.on_partitions_revoked.connect(_on_partitions_revoked)


erasures = ErasureLog()
"""Tenants erased, filled by :mod:`agents.erasure`: a brain restored from an older
checkpoint forgets them, and their requests from before the erasure are not learned from."""


def _load(state: dict | None) -> TenantBrain:
    brain = TenantBrain() if state is None else TenantBrain.from_state(state)
    brain.expect(_SOURCES)
    if state is not None:
        erasures.scrub(brain)
    return brain


store: PartitionBrains[TenantBrain] = PartitionBrains(
    "tenant-brain",
    "Tenant brain state per interactions.by-tenant partition.",
    topic_names.interactions_by_tenant,
    _load,
)
brains = store.brains


async def _handle(record: Sourced | Progress) -> None:
    partition = handling_partition()
    brain = store.learning(partition)
    if brain is None:
        return
    if type(record) is Progress and record.idle and record.source in brain.clock.idle:
        # A mark renewed (every 2 s while its partition stays idle) changes nothing; taken
        # for a change, it would hold the partition's commit until the brain's next write,
        # for good while the marks go on.
        return
    if type(record) is Progress:
        if record.idle:
            brain.mark_idle(record.source)
        else:
            brain.progress(record.source, record.ts, record.low)
    elif erasures.erased(record.request.tenant, record.request.ts):
        # Not learned from; its position still counts, so that it is not learned later.
        brain.progress(record.source, record.request.ts, record.low)
    else:
        brain.receive(record.request, record.source, record.position, record.low)
    for decision in brain.advance():
        await publish(decision, decision.ts)
    store.touch(partition)


@app.agent(topics.interactions_by_tenant)
async def tenants(stream):
    await Edge(LABEL, LABEL, decode=decode_request).run(stream, _handle)


@app.timer(settings.checkpoint_interval_s)
async def gauges() -> None:
    """The brains' sizes (they are written at every commit: agents.runtime.checkpoints)."""
    SERIES_TRACKED.labels("tenant_brain").set(sum(len(b.slo) for b in brains.values()))

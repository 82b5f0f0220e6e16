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
..., "region": ..., "good": <bool>}``, ``good`` meaning the request met its service's SLO.
No tenant name, user id or feedback: only what the tenant brain needs. It is an internal
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

import orjson

from agents.runtime.checkpoints import PartitionBrains, handling_partition
from agents.runtime.edge import Edge
from agents.runtime.publish import publish
from models.brains.interactions import TenantRequest
from models.brains.tenants import TenantBrain
from models.compliance.erasure import ErasureLog
from schemas import Rejection
from streams.runtime.app import app, settings, topic_names, topics
from streams.runtime.exporter import SERIES_TRACKED

__all__ = [
    "brains",
    "checkpoint",
    "decode_request",
    "encode_request",
    "erasures",
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
)


def encode_request(request: TenantRequest) -> bytes:
    """The JSON record of ``request`` on ``interactions.by-tenant``.

    >>> encode_request(TenantRequest(1700000000.0, "t_c162214972b5", "api", "eu-west", True))
    b'{"ts":1700000000.0,"tenant":"t_c162214972b5","service":"api","region":"eu-west","good":true}'
    """
    return orjson.dumps(request)


def decode_request(raw: bytes) -> TenantRequest | Rejection:
    """The request in a record of ``interactions.by-tenant``, or why there is none.

    Never raises; reasons are those of :data:`schemas.REASONS`.

    >>> decode_request(encode_request(TenantRequest(1.0, "t_1", "api", "eu-west", False)))
    TenantRequest(ts=1.0, tenant='t_1', service='api', region='eu-west', good=False)
    >>> decode_request(b'{"ts": 1, "tenant": "t_1", "service": "api", "region": "eu-west"}')
    Rejection(reason='missing_field', field='good', detail="required field 'good' is missing")
    >>> decode_request(b'{"ts": true, "tenant": "t_1", "service": "api", "region": "eu-west",'
    ...                b' "good": true}').reason, decode_request(b"{").reason
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
    values = []
    for name, types in _FIELDS:
        value = obj.get(name)
        if value is None:
            return Rejection("missing_field", name, f"required field {name!r} is missing")
        if type(value) not in types:
            return Rejection("wrong_type", name, f"field {name!r} has the wrong type")
        values.append(value)
    ts, tenant, service, region, good = values
    if not math.isfinite(ts):
        return Rejection("not_finite", "ts", "field 'ts' is not a finite number")
    return TenantRequest(float(ts), tenant, service, region, good)


async def send_request(request: TenantRequest) -> None:
    """Send ``request`` to ``interactions.by-tenant``, keyed by the tenant's pseudonym.

    Awaiting hands it to the producer; Faust flushes the producer before it commits the
    offset of the interaction being handled, so an interaction whose request was not
    delivered is read again after a crash (at least once, as decisions are).
    """
    await topics.interactions_by_tenant.send(
        key=request.tenant.encode(), value=encode_request(request)
    )


erasures = ErasureLog()
"""Tenants erased, filled by :mod:`agents.erasure`: a brain restored from an older
checkpoint forgets them, and their requests from before the erasure are not learned from."""


def _load(state: dict | None) -> TenantBrain:
    if state is None:
        return TenantBrain()
    brain = TenantBrain.from_state(state)
    erasures.scrub(brain)
    return brain


store: PartitionBrains[TenantBrain] = PartitionBrains(
    "tenant-brain",
    "Tenant brain state per interactions.by-tenant partition.",
    topic_names.interactions_by_tenant,
    _load,
)
brains = store.brains


async def _handle(request: TenantRequest) -> None:
    if erasures.erased(request.tenant, request.ts):
        return
    partition = handling_partition()
    for decision in store.get(partition).observe(request):
        await publish(decision, request.ts)
    store.touch(partition)


@app.agent(topics.interactions_by_tenant)
async def tenants(stream):
    await Edge(LABEL, LABEL, decode=decode_request).run(stream, _handle)


@app.timer(settings.checkpoint_interval_s)
async def checkpoint() -> None:
    """Evict idle keys and write every brain that learned since the last checkpoint."""
    store.checkpoint()
    SERIES_TRACKED.labels("tenant_brain").set(sum(len(b.slo) for b in brains.values()))

"""Erasure: every worker forgets a tenant when ``autopilot erase`` asks it to.

``autopilot erase --tenant ID`` writes an :class:`~models.compliance.erasure.ErasureRequest`
to the compacted topic ``autopilot.control``, keyed ``erase/<pseudonym>``. Every worker
reads every partition of that topic from its start (:mod:`agents.runtime.control`), so a worker
started later learns of every erasure still on the topic. For each new request it

* records it in :data:`agents.tenants.erasures`, so that a tenant brain restored later from
  an older checkpoint is scrubbed of the tenant, and the tenant's requests from before the
  erasure (a backlog, a replay after a crash) are not learned from again;
* forgets the tenant in the tenant brain of every ``interactions.by-tenant`` partition it
  owns (restoring it from its checkpoint if need be) and checkpoints those brains at once,
  so the latest value of each ``tenant-brain`` changelog key no longer names the tenant;
* with the actuator on, deletes the tenant's entries from ``actuator-decisions`` (keyed by
  decision subject, e.g. the pseudonym alone) with a tombstone on their changelog partition.

The audit agent (:mod:`agents.audit`) appends the request to the trail. What is *not*
erased: the decisions already published about the tenant and the trail's entries for them
(evidence kept under the accountability exemptions), the ``interactions.by-tenant`` records
until their retention ends, and superseded changelog values until the log cleaner compacts
their segment (see the README's Erasure section).
"""

from __future__ import annotations

import logging

import orjson
from aiokafka.partitioner import DefaultPartitioner

from agents import tenants
from agents.actuator import actuator_settings
from agents.runtime.control import follow_control
from models.compliance.erasure import ErasureRequest
from streams.runtime.app import app, settings, topic_names

__all__ = ["apply", "follow_erasures", "tenant_view"]

log = logging.getLogger(__name__)

_partitioner = DefaultPartitioner()


async def apply(request: ErasureRequest) -> int:
    """Forget ``request``'s tenant here; return how many brains and table entries held it."""
    await app.tables.recovery.completed.wait()
    owned = {
        tp.partition
        for tp in app.assignor.assigned_actives()
        if tp.topic == topic_names.interactions_by_tenant
    }
    held = 0
    for partition in sorted(owned | set(tenants.store.brains)):
        if tenants.store.get(partition).forget(request.tenant):
            tenants.store.touch(partition)
            held += 1
    tenants.store.checkpoint()
    return held + await _tombstone_actuator_entries(request.tenant)


async def _tombstone_actuator_entries(tenant: str) -> int:
    if not actuator_settings.enabled:
        return 0
    from agents import actuator

    table = actuator._actuator.handled
    needle = tenant.encode()
    keys = [key for key in list(table.data.keys()) if needle in key]
    for key in keys:
        # The entry was written on the changelog partition numbered like the decision
        # partition its subject key hashes to (see agents.actuator).
        partitions = list(range(settings.partitions))
        partition = _partitioner(key, partitions, partitions)
        table.data.pop(key, None)
        await table.changelog_topic.send(key=key, value=None, partition=partition)
    return len(keys)


async def _handle(key: bytes, value: bytes | None) -> None:
    try:
        request = ErasureRequest.from_dict(orjson.loads(value or b"null"))
    except orjson.JSONDecodeError:
        request = None
    if request is None:
        return  # not an erasure request: the audit trail keeps it
    if not tenants.erasures.add(request):
        return
    held = await apply(request)
    log.warning(
        "erasure %s applied: %d brains or entries held the tenant", request.request_id, held
    )


@app.task
async def follow_erasures() -> None:
    """Read every erasure request, old and new, and apply each new one."""
    await follow_control(settings, topic_names.control, "erase", _handle)


@app.page("/tenants/{tenant}/")
async def tenant_view(view, request, tenant: str):
    """What this worker's tenant brains hold of one tenant (a pseudonym), in counts, per
    ``interactions.by-tenant`` partition it owns: what an access request or an erasure check
    asks. ``erased`` says whether an erasure of the tenant has reached this worker."""
    ready = not app.rebalancing and app.tables.recovery.completed.is_set()
    if ready:
        owned = sorted(
            tp.partition
            for tp in app.assignor.assigned_actives()
            if tp.topic == topic_names.interactions_by_tenant
        )
    else:
        owned = sorted(tenants.store.brains)
    held = {str(p): tenants.store.get(p).holds(tenant) for p in owned}
    return view.json(
        {
            "tenant": tenant,
            "ready": ready,
            "erased": tenant in tenants.erasures,
            "held": {p: counts for p, counts in held.items() if any(counts.values())},
        }
    )

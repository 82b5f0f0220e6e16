"""The interactions agent: telemetry.interactions -> region health, SLO burn, usage series.

Each valid interaction is emitted on :data:`agents.runtime.fanout.interactions`: region
health (:mod:`agents.region_evidence`) counts it for its region's success rate and learns
which data class (``data_class``, or ``default`` without one) the region serves, which
decides where its traffic may go on failover.

It also feeds the :class:`~models.brains.interactions.InteractionsBrain` of its partition and
publishes what it decides: ``slo_burn`` (``decisions.remediation``) when a (service, region)
burns its error budget too fast. The brain's SLO burn and feedback surges per region are
emitted on :data:`~agents.runtime.fanout.health_evidence`; its success tallies are off,
since region health already gets every interaction. Then the interaction,
as its tenant's request (pseudonymous tenant, service, region, whether it met its SLO), goes
to ``interactions.by-tenant``, keyed by tenant, where :mod:`agents.tenants` judges each
tenant on all its traffic; the interaction counts as processed once that request is handed
to the producer.

One brain per partition of ``telemetry.interactions``, as in :mod:`agents.errors`: the topic
is keyed ``service/region``, so each (service, region) burn is complete in one brain. Each
brain is checkpointed every ``AUTOPILOT_CHECKPOINT_INTERVAL_S`` to the Faust table
``interactions-brain`` (changelog ``<app>-interactions-brain-changelog``, compacted) as one
JSON value under the key ``b"<p>"`` on changelog partition ``p``, so the worker that gets
interactions partition ``p`` restores its brain. ``GET /interactions/`` shows, per
partition this worker owns, what its interactions and tenant brains hold, in counts.

Privacy: tenant names become keyed pseudonyms (``AUTOPILOT_PSEUDONYM_SALT``) before anything
leaves the brain; user ids and feedback text are neither kept nor published.
"""

from __future__ import annotations

from typing import Any

from agents import tenants
from agents.runtime import fanout
from agents.runtime.checkpoints import PartitionBrains, handling_partition
from agents.runtime.edge import Edge
from agents.runtime.publish import publish
from models.brains.interactions import InteractionsBrain
from models.health.slo import SLO
from schemas import Interaction
from streams.runtime.app import app, settings, topic_names, topics
from streams.runtime.exporter import SERIES_TRACKED

__all__ = ["SERVICE_SLOS", "brains", "gauges", "interactions", "interactions_view"]

SERVICE_SLOS = {"checkout": SLO(target=0.995, latency_ms=1000.0)}
"""Services held to their own SLO; the others get the default 99.9 % within 300 ms.
Checkout calls payment providers: it is slower and fails more often by design (about
0.5 % at a 210 ms median in the simulator), which the default SLO would call a burn."""


def _settings() -> dict[str, Any]:
    return {
        "salt": settings.pseudonym_salt.encode(),
        "slos": SERVICE_SLOS,
        "health_tallies": False,
    }


store: PartitionBrains[InteractionsBrain] = PartitionBrains(
    "interactions-brain",
    "Interactions brain state per telemetry.interactions partition.",
    topic_names.interactions,
    lambda state: (
        InteractionsBrain(**_settings())
        if state is None
        else InteractionsBrain.from_state(state, **_settings())
    ),
)
brains = store.brains


async def _handle(interaction: Interaction) -> None:
    await fanout.interactions.emit(interaction)
    partition = handling_partition()
    brain = store.learning(partition)
    if brain is None:
        return
    out = brain.observe(interaction)
    for evidence in out.health:
        await fanout.health_evidence.emit(evidence)
    for decision in out.decisions:
        await publish(decision, interaction.ts)
    store.touch(partition)
    await tenants.send_request(out.tenant)


@app.agent(topics.interactions)
async def interactions(stream):
    await Edge("interactions", "telemetry.interactions").run(stream, _handle)


@app.timer(settings.checkpoint_interval_s)
async def gauges() -> None:
    """The brains' sizes (they are written at every commit: agents.runtime.checkpoints)."""
    SERIES_TRACKED.labels("interactions_brain").set(sum(len(b.slo) for b in brains.values()))


@app.page("/interactions/")
async def interactions_view(view, request):
    """What the interactions and tenant brains hold, per partition, in counts only.

    Once the tables are recovered, the brain of every partition this worker owns is shown,
    restored from its checkpoint if it has not learned since the worker started; before,
    only the brains in memory (``ready`` is false), since loading one from a table still
    recovering would start it empty.
    """
    ready = not app.rebalancing and app.tables.recovery.completed.is_set()

    def held(partitions: PartitionBrains[Any]) -> dict[str, dict[str, int]]:
        owned = partitions.owned() if ready else sorted(partitions.brains)
        return {str(p): partitions.get(p).stats() for p in owned}

    return view.json({"ready": ready, "interactions": held(store), "tenants": held(tenants.store)})

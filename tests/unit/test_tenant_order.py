"""The tenant brain decides the same whatever order its sources' requests arrive in.

A tenant's requests reach its brain from every interactions partition, interleaved as the
readers of those partitions go; with one worker or three the interleaving differs. Fed
through ``receive``/``advance``, the brain must make the decisions it makes on the requests
sorted in event time, also when a source delivers part of its requests again (a new reader
after a rebalance) and across a checkpoint.
"""

from __future__ import annotations

import random
import zlib

import orjson
import pytest

from models.brains.interactions import InteractionsBrain
from models.brains.tenants import TenantBrain
from models.health.slo import SLO
from schemas import Interaction
from streams.lab.scenario import parse_scenario
from streams.lab.simulator import SimConfig, generate

START = 1_704_067_200.0 + 10 * 3600  # a Monday, 10:00 UTC
SOURCES = [f"telemetry.interactions/{p}" for p in range(3)]


@pytest.fixture(scope="module")
def sourced() -> list[tuple[str, tuple[int, int], object]]:
    """Requests of 40 minutes with a ten-minute eu-west brownout, each with the partition it
    would be read from (by its ``service/region`` key) and its position there."""
    scenario = parse_scenario(
        {
            "name": "t",
            "duration_s": 2400.0,
            "incidents": [
                {"type": "brownout", "region": "eu-west", "start_s": 1800, "duration_s": 600,
                 "error_rate": 0.3, "latency_factor": 2.0},
            ],
        }
    )  # fmt: skip
    config = SimConfig.for_scenario(scenario, start_ts=START, errors_per_s=0.0)
    brain = InteractionsBrain(salt=b"s", slos={"checkout": SLO(target=0.995, latency_ms=1e3)})
    offsets = dict.fromkeys(SOURCES, 0)
    out = []
    for attr, key, value, _ in generate(config):
        if attr != "interactions":
            continue
        source = SOURCES[zlib.crc32(key) % len(SOURCES)]
        request = brain.observe(Interaction(**orjson.loads(value))).tenant
        out.append((source, (offsets[source], 0), request))
        offsets[source] += 1
    return out


def in_event_time(sourced) -> list[str]:
    brain = TenantBrain()
    ordered = sorted(sourced, key=lambda s: (s[2].ts, s[0], s[1]))
    return [d.decision_id for _, _, r in ordered for d in brain.observe(r)]


def fed(brain: TenantBrain, deliveries, lows: dict | None = None) -> list[str]:
    """Deliver ``(source, position, request)`` in the order given (with its envelope's low
    from ``lows``, by source and position, if given), advancing after each, then mark every
    source idle; the ids of the decisions, in order."""
    ids = []
    for source, position, request in deliveries:
        brain.receive(request, source, position, lows and lows[source, position])
        ids += [d.decision_id for d in brain.advance()]
    for source in SOURCES:
        brain.mark_idle(source)
    return ids + [d.decision_id for d in brain.advance()]


def interleaved(sourced, seed: int, repeat_every: int = 0):
    """The requests of each source in their order, the sources interleaved at random in
    runs of 1 to 400; every ``repeat_every`` runs, a source delivers its last 50 again."""
    rng = random.Random(seed)
    queues = {s: [x for x in sourced if x[0] == s] for s in SOURCES}
    at = dict.fromkeys(SOURCES, 0)
    out, runs = [], 0
    while any(at[s] < len(queues[s]) for s in SOURCES):
        source = rng.choice([s for s in SOURCES if at[s] < len(queues[s])])
        start = at[source]
        if repeat_every and runs % repeat_every == repeat_every - 1:
            start = max(0, start - 50)
        at[source] += rng.randint(1, 400)
        out += queues[source][start : at[source]]
        runs += 1
    return out


def test_the_stream_has_tenant_burns(sourced):
    brain = TenantBrain()
    kinds = {d.kind for _, _, r in sorted(sourced, key=lambda s: s[2].ts) for d in brain.observe(r)}
    assert "slo_burn" in kinds


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_any_interleaving_of_the_sources_gives_the_event_time_decisions(sourced, seed):
    brain = TenantBrain()
    brain.expect(SOURCES)
    ids = fed(brain, interleaved(sourced, seed))
    assert ids and ids == in_event_time(sourced)
    assert brain.pending == brain.forced == brain.late == 0


def test_requests_delivered_again_are_learned_once(sourced):
    brain = TenantBrain()
    brain.expect(SOURCES)
    ids = fed(brain, interleaved(sourced, 3, repeat_every=4))
    assert brain.replayed > 0
    assert ids == in_event_time(sourced)


def in_envelopes(sourced, window_s: float):
    """Each source's requests as a collector batching ``window_s`` windows sends them: one
    envelope per (window, service and region) in turn, each in time order. Returns
    ``(source, position, request, low)`` in each source's order, ``low`` being the earliest
    event time of the request's envelope if older than the request's own."""
    out = []
    for source in SOURCES:
        envelopes: dict[tuple, list] = {}
        for _, _, r in (x for x in sourced if x[0] == source):
            envelopes.setdefault((r.ts // window_s, r.service, r.region), []).append(r)
        for offset, key in enumerate(sorted(envelopes)):
            requests = sorted(envelopes[key], key=lambda r: r.ts)
            low = requests[0].ts
            out += [
                (source, (offset, index), r, low if low < r.ts else None)
                for index, r in enumerate(requests)
            ]
    return out


@pytest.mark.parametrize("with_lows", [True, False])
def test_envelopes_spanning_more_than_the_lateness_give_the_event_time_decisions(
    sourced, with_lows
):
    # Each envelope of a series spans a minute, six times the lateness the brain allows: the
    # next series' envelope of the same minute goes back that far. Without the low its
    # requests carry, the horizon passes the earlier records of that minute.
    enveloped = in_envelopes(sourced, 60.0)
    lows = {(source, position): low for source, position, _, low in enveloped}
    brain = TenantBrain()
    brain.expect(SOURCES)
    ids = fed(brain, interleaved([x[:3] for x in enveloped], 5), lows if with_lows else None)
    if with_lows:
        assert ids == in_event_time([x[:3] for x in enveloped])
        assert brain.late == 0
    else:
        assert brain.late > 0


def test_one_source_alone_holds_back_until_the_others_are_heard_from(sourced):
    brain = TenantBrain()
    brain.expect(SOURCES)
    first = [x for x in sourced if x[0] == SOURCES[0]][:500]
    for source, position, request in first:
        brain.receive(request, source, position)
    assert brain.advance() == [] and brain.pending == 500
    brain.progress(SOURCES[1], first[-1][2].ts)
    brain.mark_idle(SOURCES[2])
    brain.advance()
    # Requests within lateness_s of the latest wait: one might still come before them.
    waiting = sum(1 for *_, r in first if r.ts > first[-1][2].ts - brain.lateness_s)
    assert 0 < brain.pending <= waiting
    brain.mark_idle(SOURCES[0])
    brain.mark_idle(SOURCES[1])
    brain.advance()
    assert brain.pending == 0


def test_a_checkpoint_with_requests_buffered_resumes_to_the_same_decisions(sourced):
    deliveries = interleaved(sourced, 4)
    half = len(deliveries) // 2
    first = TenantBrain()
    first.expect(SOURCES)
    ids = []
    for source, position, request in deliveries[:half]:
        first.receive(request, source, position)
        ids += [d.decision_id for d in first.advance()]
    assert first.pending > 0
    state = orjson.loads(orjson.dumps(first.to_state()))
    restored = TenantBrain.from_state(state)
    restored.expect(SOURCES)
    # A restart reads on from before the checkpoint: the overlap is delivered again.
    ids += fed(restored, deliveries[half - 300 :])
    assert ids == in_event_time(sourced)


def test_the_buffer_is_bounded(sourced):
    brain = TenantBrain(max_pending=100)
    brain.expect(SOURCES)
    for source, position, request in [x for x in sourced if x[0] == SOURCES[0]][:300]:
        brain.receive(request, source, position)
    assert brain.pending == 100 and brain.forced == 200


def test_an_erased_tenant_leaves_the_buffer(sourced):
    brain = TenantBrain()
    brain.expect(SOURCES)
    for source, position, request in sourced[:200]:
        brain.receive(request, source, position)
    tenant = sourced[0][2].tenant
    held = sum(1 for _, _, r in sourced[:200] if r.tenant == tenant)
    assert brain.forget(tenant)
    assert brain.pending == 200 - held

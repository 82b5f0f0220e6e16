"""Residency of telemetry itself: what the product derives from an interaction and writes to
its shared topics and tables carries none of the interaction's personal fields.

The product runs one set of topics and tables, shared by every region and jurisdiction. An
interaction of a data class that may not leave its jurisdiction (``eu-personal``...) reaches
them only as: its tenant request on ``interactions.by-tenant`` (pseudonym, service, region,
whether it met its SLO), the brains' checkpoints (``interactions-brain``, ``tenant-brain``)
and decisions. For any interactions, none of those holds the tenant's name, the user id or
the feedback text, raw or redacted. Where traffic of a data class may *go* is the failover
policy's to decide, and ``test_failover_properties`` states that it never sends it to a
jurisdiction its rules forbid.
"""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from models.brains.interactions import InteractionsBrain
from models.brains.tenants import TenantBrain
from schemas import Interaction

RESTRICTED = ("eu-personal", "us-health", "uk-finance")
START = 1_704_067_200.0
hexes = st.text("0123456789abcdef", min_size=10, max_size=10)


@st.composite
def interactions(draw: st.DrawFn) -> list[Interaction]:
    tenants = [f"tenant-{draw(hexes)}" for _ in range(draw(st.integers(1, 3)))]
    out = []
    ts = START
    for _ in range(draw(st.integers(1, 200))):
        ts += draw(st.floats(0.0, 30.0))
        feedback = draw(st.sampled_from([None, "mail", "phone", "words"]))
        text = {
            None: None,
            "mail": f"reach me at ann.{draw(hexes)}@example.com",
            "phone": f"call +44 20 {draw(st.integers(1000, 9999))} {draw(st.integers(1000, 9999))}",
            "words": f"slow checkout again {draw(hexes)}",
        }[feedback]
        out.append(
            Interaction(
                ts=ts,
                region=draw(st.sampled_from(["eu-west", "us-east", "ap-south"])),
                tenant=draw(st.sampled_from(tenants)),
                service=draw(st.sampled_from(["checkout", "search"])),
                user_id=f"u-{draw(hexes)}",
                action="pay",
                latency_ms=draw(st.floats(1.0, 5000.0)),
                success=draw(st.booleans()),
                feedback_text=text,
                data_class=draw(st.sampled_from(RESTRICTED)),
            )
        )
    return out


@settings(max_examples=60, deadline=None)
@given(interactions())
def test_no_personal_field_reaches_a_shared_topic_or_table(batch: list[Interaction]) -> None:
    brain = InteractionsBrain(salt=b"property")
    tenant_brain = TenantBrain()
    written: list[bytes] = []
    for i in batch:
        out = brain.observe(i)
        written.append(orjson.dumps(out.tenant))  # the interactions.by-tenant record
        written += [d.to_bytes() for d in out.decisions]
        written += [d.to_bytes() for d in tenant_brain.observe(out.tenant)]
    written.append(orjson.dumps(brain.to_state()))  # the checkpoints
    written.append(orjson.dumps(tenant_brain.to_state()))
    blob = b"\n".join(written)
    for i in batch:
        personal = [i.tenant, i.user_id, *([i.feedback_text] if i.feedback_text else [])]
        for value in personal:
            assert value.encode() not in blob, value
    # The pseudonym is what stands for the tenant.
    assert brain.pseudonym(batch[0].tenant).encode() in blob


@given(interactions())
@settings(max_examples=20, deadline=None)
def test_a_request_stays_in_the_region_that_served_it(batch: list[Interaction]) -> None:
    # Repartitioning by tenant moves the request between partitions, never between regions:
    # the record names the region that served it, and nothing else of the interaction.
    brain = InteractionsBrain(salt=b"property")
    for i in batch:
        request = brain.observe(i).tenant
        assert request.region == i.region
        assert set(orjson.loads(orjson.dumps(request))) == {
            "ts",
            "tenant",
            "service",
            "region",
            "good",
        }

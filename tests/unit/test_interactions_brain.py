"""The interactions and tenant brains on the simulator's interactions: burns, health,
tenant peaks and drops, privacy, state."""

from __future__ import annotations

import re

import numpy as np
import orjson
import pytest

from models.brains.interactions import InteractionsBrain, TenantRequest, pseudonym
from models.brains.tenants import TenantBrain
from models.detect.behaviour import TenantBehaviour
from models.forecast.usage import UsageModel, UsageProfile
from models.health.region import RegionHealthBank
from models.health.slo import SLO
from schemas import Interaction
from streams.lab.scenario import parse_scenario
from streams.lab.simulator import (
    _BAD_FEEDBACK,
    _GOOD_FEEDBACK,
    SimConfig,
    _daily,
    _weekly,
    generate,
)

MONDAY = 1_704_067_200.0  # 2024-01-01 00:00 UTC
DAY = 86_400.0
START = MONDAY + 10 * 3600  # Monday 10:00 UTC
ONSET_S = 1800.0
SALT = b"test-salt"
REGIONS = ["us-east", "eu-west", "ap-south"]
# The simulator's checkout fails 0.4-0.5 % of requests and its checkout action takes about
# 200 ms at the median: its SLO is looser than the 99.9 % within 300 ms of the others.
SLOS = {"checkout": SLO(target=0.995, latency_ms=1000.0)}


def brain(**settings) -> InteractionsBrain:
    return InteractionsBrain(salt=SALT, slos=SLOS, **settings)


def simulated(incidents, duration_s=2400.0):
    scenario = parse_scenario({"name": "t", "duration_s": duration_s, "incidents": incidents})
    config = SimConfig.for_scenario(scenario, start_ts=START, errors_per_s=0.0)
    return [
        Interaction(**orjson.loads(value))
        for attr, _, value, _ in generate(config)
        if attr == "interactions"
    ]


@pytest.fixture(scope="module")
def brownout() -> list[Interaction]:
    """30 clean minutes, then 30 % of eu-west's requests fail for ten minutes."""
    return simulated(
        [
            {
                "type": "brownout",
                "region": "eu-west",
                "start_s": ONSET_S,
                "duration_s": 600,
                "error_rate": 0.3,
                "latency_factor": 2.0,
            }
        ]
    )


def replay(b, interactions, bank=None, marks=(), tenants=None):
    """Feed ``b``, and the tenant brain ``tenants`` with what ``b`` passes on, as the
    interactions and tenants agents do; return the decisions of both and health reports."""
    decisions, reports, marks = [], {}, list(marks)
    for i in interactions:
        out = b.observe(i)
        decisions += out.decisions
        if tenants is not None:
            decisions += tenants.observe(out.tenant)
        if bank is not None:
            for evidence in out.health:
                evidence.apply(bank)
            while marks and i.ts - START >= marks[0]:
                reports[marks.pop(0)] = bank.evaluate()
    return decisions, reports


@pytest.fixture(scope="module")
def brownout_run(brownout):
    b, tenants = brain(), TenantBrain()
    bank = RegionHealthBank(REGIONS)
    marks = (ONSET_S - 60, ONSET_S + 300)
    decisions, reports = replay(b, brownout, bank, marks=marks, tenants=tenants)
    return (b, tenants), decisions, reports


def test_a_clean_stream_yields_no_decision(brownout_run):
    _, decisions, reports = brownout_run
    assert [d for d in decisions if d.ts < START + ONSET_S] == []
    assert all(r.healthy for r in reports[ONSET_S - 60].values())


def test_a_regional_burst_of_failures_pages_for_that_region(brownout_run):
    _, decisions, _ = brownout_run
    assert {d.kind for d in decisions} == {"slo_burn"}
    services = [d for d in decisions if "service" in d.subject]
    assert {d.subject["region"] for d in services} == {"eu-west"}
    # 30 % bad: the 1 h window reaches 14.4x (1.44 % bad) after 0.0144 / 0.3 h = 173 s.
    first = min(services, key=lambda d: d.ts)
    assert first.ts - (START + ONSET_S) <= 240.0
    assert (first.action, first.mode, first.topic) == ("page", "recommend", "decisions.remediation")
    assert first.params["rule"] == "1h/5m"
    ev = first.evidence
    assert ev["long"]["burn_rate"] >= 14.4 and ev["short"]["burn_rate"] >= 14.4
    assert ev["budget_consumed"] == pytest.approx(ev["long"]["burn_rate"] / 720, rel=1e-3)
    assert "eu-west" in first.reason and "14.4x" in first.reason
    # The tenants of eu-west burn too, each named by its pseudonym only.
    tenants = {d.subject["tenant"] for d in decisions if "tenant" in d.subject}
    assert tenants and all(re.fullmatch(r"t_[0-9a-f]{12}", t) for t in tenants)
    # One decision per rule and key, not one per request.
    keys = [(tuple(d.subject.items()), d.params["rule"]) for d in decisions]
    assert len(keys) == len(set(keys))


def test_the_burn_moves_that_regions_health_only(brownout_run):
    _, _, reports = brownout_run
    during = reports[ONSET_S + 300]
    assert not during["eu-west"].healthy
    assert during["eu-west"].components["slo_burn"] < 0.5
    assert during["eu-west"].signals["slo_burn"] > 14.4
    for region in ("us-east", "ap-south"):
        assert during[region].healthy
        assert during[region].components["slo_burn"] == pytest.approx(1.0, abs=1e-3)


def test_nothing_personal_is_published_or_kept(brownout, brownout_run):
    (b, tenants), decisions, _ = brownout_run
    requests = [b.observe(i).tenant for i in brownout[:1000]]
    blob = b"".join(d.to_bytes() for d in decisions) + orjson.dumps(
        [b.to_state(), tenants.to_state(), requests]
    )
    tenants = {i.tenant for i in brownout}
    users = {i.user_id for i in brownout}
    assert not any(t.encode() in blob for t in tenants)
    assert not any(u.encode() in blob for u in users)
    texts = {i.feedback_text for i in brownout if i.feedback_text}
    assert texts  # the stream has feedback...
    fragments = ["timing out", "would not load", "payment failed", "fast and easy", "@"]
    assert not any(f.encode() in blob for f in fragments)  # ...and none of it is kept


def test_state_round_trip_gives_the_same_decisions(brownout):
    stream = [i for i in brownout if i.ts < START + ONSET_S + 300]
    split = next(k for k, i in enumerate(stream) if i.ts >= START + ONSET_S - 60)
    whole, _ = replay(brain(), stream, tenants=TenantBrain())
    first, first_tenants = brain(), TenantBrain()
    before, _ = replay(first, stream[:split], tenants=first_tenants)
    state = orjson.loads(orjson.dumps(first.to_state()))
    restored = InteractionsBrain.from_state(state, salt=SALT, slos=SLOS)
    tenant_state = orjson.loads(orjson.dumps(first_tenants.to_state()))
    restored_tenants = TenantBrain.from_state(tenant_state)
    after, _ = replay(restored, stream[split:], tenants=restored_tenants)
    subjects = {frozenset(d.subject) for d in after}
    assert subjects == {frozenset({"service", "region"}), frozenset({"tenant"})}
    assert [d.decision_id for d in before + after] == [d.decision_id for d in whole]


def test_a_version_1_state_loses_its_tenant_part(brownout):
    b = brain()
    replay(b, brownout[:2000])
    state = orjson.loads(orjson.dumps(b.to_state()))
    tenant = "t_0123456789ab"
    tenant_keys = [{**state["slo"]["keys"][0], "key": ["tenant", tenant]}]
    tenant_usage = [[tenant, "catalog", "eu-west", None, UsageProfile().to_state()]]
    old = {
        **state,
        "v": 1,
        "slo": {**state["slo"], "keys": state["slo"]["keys"] + tenant_keys},
        "usage": {**state["usage"], "tenants": tenant_usage},
        "behaviour": {"v": 1, "tenants": []},
        "checked_ts": None,
    }
    restored = InteractionsBrain.from_state(old, salt=SALT, slos=SLOS)
    assert restored.stats() == b.stats()
    assert all(key[0] == "service" for key in restored.slo) and len(restored.usage) == 0


def tenant_stream(days, per_hour=60.0, seed=0, tenant="acme", start=1_704_067_200.0):
    """One tenant's interactions with catalog in eu-west, following the simulator's cycle."""
    rng = np.random.default_rng(seed)
    for minute in range(int(days * 1440)):
        t = start + 60.0 * minute
        rate = per_hour * _daily(t, 0.0) * _weekly(t, 0.0) / 60.0
        for offset in np.sort(rng.uniform(0, 60, rng.poisson(rate))):
            yield Interaction(t + offset, "eu-west", tenant, "catalog", "u-1", "view", 30.0, True)


def test_scheduled_scaling_ahead_of_a_tenants_peak_and_a_drop_when_it_goes_quiet():
    b = brain()
    tenants = TenantBrain(
        usage=UsageModel(min_peak_per_hour=10.0),
        behaviour=TenantBehaviour(min_expected_per_hour=20.0),
    )
    decisions, _ = replay(b, tenant_stream(15), tenants=tenants)  # two weeks and a Monday
    scheduled = [d for d in decisions if d.kind == "scheduled_scaling"]
    monday = [d for d in scheduled if d.ts >= 1_704_067_200.0 + 14 * 86_400]
    assert len(monday) == 1
    d = monday[0]
    t_id = pseudonym("acme", SALT)
    assert d.subject == {"service": "catalog", "region": "eu-west", "tenant": t_id}
    assert (d.action, d.mode, d.topic) == ("scale_ahead", "recommend", "decisions.scaling")
    assert 900 <= d.evidence["lead_s"] <= 3600
    assert d.evidence["peak_ts"] - d.ts >= 900
    assert d.evidence["weeks_seen"] == 2 and d.confidence == pytest.approx(2 / 3, abs=1e-4)
    assert "acme" not in d.reason
    assert [x for x in decisions if x.kind != "scheduled_scaling"] == []
    # The tenant goes quiet on Tuesday at 13:00: a drop, found by the regular check.
    tuesday = 1_704_067_200.0 + 15 * 86_400
    quiet_from = tuesday + 13 * 3600
    assert replay(b, tenant_stream(13 / 24, start=tuesday, seed=1), tenants=tenants)[0] != []
    assert tenants.check(quiet_from) == []
    drops = []
    for minute in range(1, 31):
        drops += tenants.check(quiet_from + 60.0 * minute)
    assert [(x.kind, x.action, x.subject) for x in drops] == [
        ("anomaly", "tenant_drop", {"tenant": t_id})
    ]
    assert drops[0].evidence["ratio"] < 0.2


def test_a_surge_of_negative_feedback_is_health_evidence_not_a_decision():
    b = brain()
    bank = RegionHealthBank(REGIONS)
    rng = np.random.default_rng(0)
    evidence, decisions = [], []
    for k in range(3000):  # an interaction a second, feedback on 5 % of them
        ts = START + k
        text = None
        if rng.random() < 0.05:
            pool = _BAD_FEEDBACK if k > 2400 or rng.random() < 0.05 else _GOOD_FEEDBACK
            text = str(rng.choice(pool)).format(n=1, email="a@b.c")
        out = b.observe(
            Interaction(ts, "ap-south", "acme", "search", "u-1", "search", 40.0, True, text)
        )
        decisions += out.decisions
        for e in out.health:
            e.apply(bank)
            evidence.append(e)
    feedback = [e for e in evidence if e.kind == "feedback"]
    assert decisions == []
    assert feedback and all(e.ts > START + 2400 for e in feedback)
    assert {(e.region, e.service) for e in feedback} == {("ap-south", "search")}
    assert 0.5 < feedback[-1].value < 1.0
    assert bank.evaluate()["ap-south"].components["anomaly"] < 1.0


def test_the_prior_comes_from_the_learned_profiles():
    b = brain()
    replay(b, tenant_stream(8, per_hour=20.0))
    prior = b.prior_for("catalog", "eu-west")
    assert prior is not None and len(prior) == 168
    assert b.prior_for("search", "eu-west") is None


def test_salt_and_pseudonyms():
    assert re.fullmatch(r"t_[0-9a-f]{12}", pseudonym("acme", b"k"))
    assert pseudonym("acme", b"k") != pseudonym("acme", b"j")
    with pytest.raises(ValueError):
        InteractionsBrain(salt=b"")


def test_tallies_can_be_left_to_another_agent():
    b = brain(health_tallies=False)
    kinds = set()
    for k in range(30):
        out = b.observe(Interaction(START + k, "eu-west", "acme", "catalog", "u-1", "v", 9.0, True))
        kinds |= {e.kind for e in out.health}
    assert kinds == {"slo_burn"}


def test_idle_keys_are_evicted():
    b, tenants = brain(), TenantBrain()
    out = b.observe(Interaction(START, "eu-west", "acme", "catalog", "u-1", "view", 30.0, True))
    tenants.observe(out.tenant)
    assert b.stats() == {"series": 1, "requests_in_windows": 1, "usage_series": 1, "regions": 1}
    assert len(tenants.slo) == len(tenants.usage) == len(tenants.behaviour) == 1
    assert b.evict_idle(START + 30 * 86_400) == 3
    assert b.stats() == dict.fromkeys(b.stats(), 0)
    assert tenants.evict_idle(START + 30 * 86_400) == 3
    assert len(tenants.slo) == len(tenants.usage) == len(tenants.behaviour) == 0


def spread_requests(days, pairs, per_hour, seed=0, tenant="t_0123456789ab", start=MONDAY):
    """One tenant's requests spread evenly over (service, region) ``pairs``, following the
    simulator's daily and weekly cycle: ``per_hour`` in all, at mean load."""
    rng = np.random.default_rng(seed)
    for minute in range(int(days * 1440)):
        t = start + 60.0 * minute
        rate = per_hour * _daily(t, 0.0) * _weekly(t, 0.0) / 60.0
        for offset in np.sort(rng.uniform(0, 60, rng.poisson(rate))):
            service, region = pairs[rng.integers(len(pairs))]
            yield TenantRequest(float(t + offset), tenant, service, region, True)


def test_a_tenant_spread_over_partitions_that_goes_silent_gets_one_drop():
    # 280 an hour over four (service, region) pairs: below the 120 an hour a tenant needs to
    # be judged on any one of them, even at the daily peak; about 410 in all at 13:00.
    pairs = [("catalog", "eu-west"), ("search", "eu-west"), ("checkout", "eu-west"),
             ("catalog", "us-east")]  # fmt: skip
    merged = TenantBrain()
    per_pair = {pair: TenantBrain() for pair in pairs}  # one tenant brain per partition
    decisions = []
    quiet_from = MONDAY + 14 * DAY + 13 * 3600
    for r in spread_requests((quiet_from - MONDAY) / DAY, pairs, 280.0):
        decisions += merged.observe(r)
        decisions += per_pair[(r.service, r.region)].observe(r)
    # Peaks of its services are announced; nothing else while its traffic is normal.
    assert {d.kind for d in decisions} == {"scheduled_scaling"}
    drops = []
    for minute in range(1, 31):
        drops += merged.check(quiet_from + 60.0 * minute)
        for brain_of_pair in per_pair.values():
            assert brain_of_pair.check(quiet_from + 60.0 * minute) == []
    assert [(d.kind, d.action, d.subject) for d in drops] == [
        ("anomaly", "tenant_drop", {"tenant": "t_0123456789ab"})
    ]
    assert drops[0].evidence["expected_per_hour"] > 120.0


def quiet_service_after_an_incident(b: InteractionsBrain) -> tuple[list[float], list[float]]:
    """A request every 3 s to one service: 20 % bad for ten minutes, then clean but for one
    failure 55 minutes in. The region's burns during the incident and in its last minutes."""
    during, last = [], []
    for i in range(1200):
        ts = START + i * 3.0
        good = i % 5 != 0 if i < 200 else i != 1100
        out = b.observe(Interaction(ts, "us-east", "acme", "search", "u-1", "view", 40.0, good))
        burns = [e.value for e in out.health if e.kind == "slo_burn"]
        (during if i < 200 else last if i > 1100 else []).extend(burns)
    return during, last


def test_one_failure_among_a_quiet_services_few_requests_is_no_burn():
    # The hour still holds the incident (its window burns at about 30x): the last five
    # minutes decide, and their 100 requests with one failure are a 10x burn by their ratio
    # but not beyond doubt. Taken as 10x, region health failed the region over.
    during, last = quiet_service_after_an_incident(brain())
    assert max(during) > 14.4
    assert last and max(last) < 2.0
    _, by_ratio = quiet_service_after_an_incident(brain(burn_z=0.0))
    assert max(by_ratio) >= 9.0


def test_each_service_sends_its_own_burn_and_region_health_takes_their_median():
    # A partition reads some of a region's services: a median taken here was that
    # partition's, and the region's burn was whichever partition had sent last.
    b = brain()
    bank = RegionHealthBank(REGIONS)
    burns = {}
    for i in range(400):
        for service in ("search", "catalog", "cart"):
            good = service != "search" or i % 2 == 0
            out = b.observe(
                Interaction(START + i, "us-east", "acme", service, "u-1", "view", 40.0, good)
            )
            for evidence in out.health:
                evidence.apply(bank)
                if evidence.kind == "slo_burn":
                    burns[evidence.service] = evidence.value
    assert set(burns) == {"search", "catalog", "cart"}
    assert burns["search"] > 14.4 and burns["catalog"] == burns["cart"] == 0.0
    assert bank.evaluate()["us-east"].signals["slo_burn"] == 0.0

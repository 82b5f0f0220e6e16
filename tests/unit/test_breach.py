"""The breach forecaster and the metrics brain's risk decisions, without Kafka."""

from __future__ import annotations

import math
import random

import orjson
import pytest

from models.brains.metrics import MetricsBrain
from models.forecast.breach import DEFAULT_LIMITS, BreachForecaster, BreachLimit

T0 = 1_700_000_000.0
MEM = DEFAULT_LIMITS["mem_util"]


def leak(
    rng: random.Random,
    hours: float,
    start: float,
    rate_per_h: float,
    tick: float = 30.0,
    onset_h: float = 6.0,
):
    """Memory flat at ``start`` until ``onset_h``, then climbing ``rate_per_h``, with wandering
    noise. The flat hours are what a forecaster needs before it trusts a trend."""
    wander = 0.0
    for i in range(int(hours * 3600 / tick)):
        wander = 0.9 * wander + rng.gauss(0, 0.004)
        climbed = max(0.0, i * tick / 3600 - onset_h)
        yield T0 + i * tick, start + rate_per_h * climbed + wander


def test_a_leak_opens_one_episode_before_the_breach_and_a_restart_closes_it() -> None:
    rng = random.Random(1)
    forecaster = BreachForecaster(MEM)
    samples = list(leak(rng, 14, 0.45, 0.08))
    breach = next(ts for ts, x in samples if x >= MEM.limit)
    opened = []
    for ts, x in samples:
        if ts > breach:
            break
        risk = forecaster.update(ts, x)
        if risk.opens:
            opened.append((ts, risk))
    assert len(opened) == 1
    ts, risk = opened[0]
    assert breach - ts >= 30 * 60, "warned less than half an hour ahead"
    assert risk.probability > 0.7 and risk.trend_per_s * 3600 == pytest.approx(0.08, rel=0.3)
    assert risk.time_to_breach_s == pytest.approx(breach - ts, rel=0.3)
    # The OOM restart: memory back at 45 % and flat. The episode closes, and nothing opens.
    after = [
        forecaster.update(breach + 30 * (i + 1), 0.45 + rng.gauss(0, 0.004)) for i in range(240)
    ]
    assert not after[-1].in_episode and not any(r.opens for r in after)


@pytest.mark.parametrize("seed", range(3))
def test_a_noisy_plateau_near_the_limit_and_a_step_are_no_risk(seed) -> None:
    rng = random.Random(seed)
    plateau, step = BreachForecaster(MEM), BreachForecaster(MEM)
    risks = []
    for i in range(24 * 120):
        ts = T0 + 30 * i
        risks.append(plateau.update(ts, 0.90 + rng.gauss(0, 0.01)))
        # Memory steps from 40 % to 75 % (a load surge) and stays there.
        risks.append(step.update(ts, (0.40 if i < 600 else 0.75) + rng.gauss(0, 0.005)))
    assert not any(r.opens or r.in_episode for r in risks)


def test_nothing_opens_while_the_fits_are_young() -> None:
    forecaster = BreachForecaster(MEM)
    # A steep climb right from the first value: too little history to call it a trend.
    risks = [forecaster.update(T0 + 30 * i, 0.5 + 0.004 * i) for i in range(60)]
    assert all(r.probability == 0.0 and not r.opens for r in risks)


def test_a_surge_in_a_new_series_first_hours_is_no_risk() -> None:
    """A pool's load surges from 35 % to 80 % in 20 minutes, 100 minutes after the series
    is first seen, and stays there for an hour. With a young fit's short window the slow
    slope agreed with the fast one and this was warned as a coming exhaustion."""
    pool = DEFAULT_LIMITS["conn_pool_util"]
    rng = random.Random(7)
    forecaster = BreachForecaster(pool)
    risks = []
    for i in range(6 * 60):
        minute = i - 100
        share = min(1.0, max(0.0, minute / 20)) if minute < 80 else max(0.0, (100 - minute) / 20)
        risks.append(forecaster.update(T0 + 60 * i, 0.35 + 0.45 * share + rng.gauss(0, 0.01)))
    assert not any(r.opens for r in risks)


def test_state_round_trip_through_json_gives_identical_risks() -> None:
    rng = random.Random(4)
    samples = list(leak(rng, 6, 0.5, 0.06))
    original = BreachForecaster(MEM)
    for ts, x in samples[:300]:
        original.update(ts, x)
    restored = BreachForecaster.from_state(orjson.loads(orjson.dumps(original.to_state())), MEM)
    rest = samples[300:]
    assert [restored.update(*s) for s in rest] == [original.update(*s) for s in rest]
    with pytest.raises(ValueError):
        BreachForecaster.from_state({**original.to_state(), "v": 0}, MEM)


def test_bad_values_and_limits_are_rejected() -> None:
    forecaster = BreachForecaster(MEM)
    with pytest.raises(ValueError):
        forecaster.update(T0, math.nan)
    with pytest.raises(ValueError):
        BreachLimit(math.inf, 60.0, 60.0, "scale_out")
    with pytest.raises(ValueError):
        BreachLimit(1.0, 0.0, 60.0, "scale_out")


def run(brain: MetricsBrain, samples, metric: str = "mem_util") -> list:
    out = []
    for ts, x in samples:
        out += brain.observe(ts, "api", "eu-west", {metric: x})
    return out


def test_brain_publishes_one_risk_decision_with_its_evidence_and_a_stable_id() -> None:
    samples = list(leak(random.Random(5), 14, 0.45, 0.08))
    first = [d for d in run(MetricsBrain(), samples) if d.kind == "risk"]
    again = [d for d in run(MetricsBrain(), samples) if d.kind == "risk"]
    assert [d.decision_id for d in first] == [d.decision_id for d in again]
    decision = first[0]
    assert decision.topic == "decisions.remediation" and decision.mode == "recommend"
    assert decision.action == "restart_before_oom"
    assert decision.params == {"metric": "mem_util", "limit": 0.95}
    for key in ("value", "level", "trend_per_s", "limit", "horizon_s", "probability",
                "threshold", "time_to_breach_s"):  # fmt: skip
        assert key in decision.evidence, key
    assert "mem_util of api in eu-west" in decision.reason
    # One per episode: the leak runs on to the breach without a second warning.
    breach = next(ts for ts, x in samples if x >= 0.95)
    assert len([d for d in first if d.ts <= breach]) == 1


def test_brain_checkpoint_keeps_the_risk_state_and_reads_one_from_before_it() -> None:
    samples = list(leak(random.Random(6), 8, 0.45, 0.08))
    original = MetricsBrain()
    run(original, samples[:400])
    state = orjson.loads(orjson.dumps(original.state_of(("api", "eu-west"))))
    restored = MetricsBrain()
    restored.restore(("api", "eu-west"), state)
    assert run(restored, samples[400:]) == run(original, samples[400:])
    older = {k: v for k, v in state.items() if k != "risks"}
    fresh = MetricsBrain()
    fresh.restore(("api", "eu-west"), older)
    assert fresh.state_of(("api", "eu-west"))["risks"] == {}

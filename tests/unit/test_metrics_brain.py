"""The metrics brain without Kafka: episodes, scaling news, checkpoints, replay determinism."""

from __future__ import annotations

import itertools
import math
import random

import orjson

from models.brains.metrics import MetricsBrain
from models.detect.anomaly import SeriesDetector

T0 = 1_700_000_000.0


def healthy(i: int, rng: random.Random, rps: float = 200.0) -> dict[str, float]:
    day = 1.0 + 0.3 * math.sin(2 * math.pi * i * 5 / 86400)
    demand = rps * day * (1 + rng.gauss(0, 0.03))
    return {
        "rps": demand,
        "replicas": 8,
        "cpu_util": min(1.0, demand / (8 * 50)),
        "latency_p99_ms": 120 + rng.gauss(0, 4),
        "error_rate": max(0.0, 0.001 + rng.gauss(0, 0.0002)),
        "queue_depth": float(rng.random() < 0.05),
    }


def run(brain: MetricsBrain, samples: list[dict[str, float]], start: int = 0) -> list:
    out = []
    for i, metrics in enumerate(samples, start):
        out += brain.observe(T0 + 5 * i, "api", "eu-west", metrics)
    return out


def test_one_decision_per_anomalous_episode_and_none_on_healthy_noise() -> None:
    rng = random.Random(1)
    brain = MetricsBrain()
    quiet = run(brain, [healthy(i, rng) for i in range(1500)])
    assert [d for d in quiet if d.kind == "anomaly"] == []
    broken = [{**healthy(i, rng), "error_rate": 0.3} for i in range(1500, 1530)]
    anomalies = [d for d in run(brain, broken, 1500) if d.kind == "anomaly"]
    assert len(anomalies) == 1
    (decision,) = anomalies
    assert decision.params["metric"] == "error_rate" and decision.mode == "recommend"
    assert decision.evidence["score"] >= decision.evidence["threshold"]
    assert "error_rate of api in eu-west" in decision.reason


def test_scaling_decision_only_when_desired_count_changes() -> None:
    rng = random.Random(2)
    brain = MetricsBrain(scaling_warmup_s=60)
    decisions = run(brain, [healthy(i, rng) for i in range(300)])
    surge = [{**healthy(i, rng, rps=900.0)} for i in range(300, 330)]
    scaling = [d for d in decisions + run(brain, surge, 300) if d.kind == "scaling"]
    outs = [d for d in scaling if d.action == "scale_out"]
    assert outs, "a 4x surge got no scale-out"
    desired = [d.params["desired_replicas"] for d in scaling]
    assert all(a != b for a, b in itertools.pairwise(desired))
    assert outs[-1].evidence["rule"] in {"surge", "forecast", "step_limit"}


def test_replaying_the_same_input_gives_the_same_decision_ids() -> None:
    rng = random.Random(3)
    samples = [healthy(i, rng, rps=200.0 if i < 400 else 800.0) for i in range(500)]
    samples[450]["error_rate"] = 0.5
    first = run(MetricsBrain(scaling_warmup_s=60), samples)
    second = run(MetricsBrain(scaling_warmup_s=60), samples)
    assert first, "the replay produced no decision to compare"
    assert [d.decision_id for d in first] == [d.decision_id for d in second]
    assert len({d.decision_id for d in first}) == len(first)


def test_checkpoint_round_trip_resumes_exactly() -> None:
    rng = random.Random(4)
    samples = [healthy(i, rng) for i in range(800)]
    original = MetricsBrain(scaling_warmup_s=60)
    run(original, samples[:600])
    state = orjson.loads(orjson.dumps(original.state_of(("api", "eu-west"))))
    restored = MetricsBrain(scaling_warmup_s=60)
    restored.restore(("api", "eu-west"), state)
    assert restored.samples(("api", "eu-west")) == original.samples(("api", "eu-west"))
    later_a = run(original, samples[600:], 600)
    later_b = run(restored, samples[600:], 600)
    assert [d.decision_id for d in later_a] == [d.decision_id for d in later_b]
    assert restored.forecast("api", "eu-west", 300) == original.forecast("api", "eu-west", 300)


def test_a_restart_replaying_from_before_its_checkpoint_makes_the_same_decisions() -> None:
    """The checkpoint holds the samples up to 624, five seconds into a surge; the committed
    offset is at 600: the restarted worker reads 600-624 again, and must not learn them
    twice (the surge would look twice as long, and the replicas wanted differ)."""
    rng = random.Random(5)
    samples = [healthy(i, rng, rps=200.0 if i < 620 else 900.0) for i in range(700)]
    original = MetricsBrain(scaling_warmup_s=60)
    run(original, samples[:625])
    state = orjson.loads(orjson.dumps(original.state_of(("api", "eu-west"))))
    first = run(original, samples[625:], 625)
    restored = MetricsBrain(scaling_warmup_s=60)
    restored.restore(("api", "eu-west"), state)
    again = run(restored, samples[600:], 600)
    assert [d.kind for d in first].count("scaling") >= 1
    assert [d.decision_id for d in again] == [d.decision_id for d in first]
    assert restored.replayed == 25


def test_idle_series_are_evicted_and_series_are_capped() -> None:
    brain = MetricsBrain(max_series=2, ttl_s=60)
    brain.observe(T0, "a", "r", {"rps": 1.0})
    brain.observe(T0 + 1, "b", "r", {"rps": 1.0})
    brain.observe(T0 + 2, "c", "r", {"rps": 1.0})
    assert list(brain) == [("b", "r"), ("c", "r")]
    brain.observe(T0 + 100, "c", "r", {"rps": 1.0})
    assert brain.evict_idle(brain.watermark) == 1
    assert list(brain) == [("c", "r")]


def test_a_quantised_series_stepping_by_one_is_not_an_anomaly() -> None:
    rng = random.Random(5)
    detector = SeriesDetector()
    flags = [
        detector.update(T0 + 5 * i, float(rng.random() < 0.03)).is_anomaly for i in range(3000)
    ]
    assert not any(flags[200:])
    assert detector.update(T0 + 5 * 3000, 12.0).is_anomaly


def test_a_usage_prior_shapes_the_forecast_and_survives_a_checkpoint() -> None:
    """A young series knows no seasonality of its own: the prior its interactions taught
    (here: every hour is quiet but the next one, at twice the mean) raises the forecast
    ahead of the peak, and is part of the series' checkpoint."""
    rng = random.Random(5)
    samples = [healthy(i, rng) for i in range(200)]
    plain, primed = MetricsBrain(), MetricsBrain()
    run(plain, samples)
    run(primed, samples)
    now = T0 + 5 * 199
    next_hour = int((now + 3600) // 3600)
    # Hour of the week of the next hour: the epoch (1970-01-01) was a Thursday (index 3).
    peak = (next_hour + 3 * 24) % 168
    prior = [2.0 if h == peak else 1.0 for h in range(168)]
    assert primed.set_prior("api", "eu-west", prior)
    base = plain.forecast("api", "eu-west", 3600).mean
    assert primed.forecast("api", "eu-west", 3600).mean > base * 1.05
    restored = MetricsBrain()
    restored.restore(("api", "eu-west"), primed.state_of(("api", "eu-west")))
    assert restored.forecast("api", "eu-west", 3600) == primed.forecast("api", "eu-west", 3600)


def test_latency_falling_is_not_news_but_rising_is() -> None:
    """A scale-out halves latency: scored, but no decision. The same step up is one."""
    rng = random.Random(6)
    decisions = {}
    for name, factor in (("falls", 0.5), ("rises", 2.0)):
        brain = MetricsBrain()
        run(brain, [healthy(i, rng) for i in range(1500)])
        stepped = [healthy(i, rng) for i in range(1500, 1530)]
        for sample in stepped:
            sample["latency_p99_ms"] *= factor
        decisions[name] = [d for d in run(brain, stepped, 1500) if d.kind == "anomaly"]
    assert decisions["falls"] == []
    assert [d.params["metric"] for d in decisions["rises"]] == ["latency_p99_ms"]

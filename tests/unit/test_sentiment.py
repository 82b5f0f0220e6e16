"""Feedback sentiment: scoring with VADER plus a service-complaint lexicon, and surges."""

from __future__ import annotations

import orjson
import pytest

from models.text.sentiment import FeedbackMonitor, FeedbackScorer
from streams.lab.simulator import _BAD_FEEDBACK, _GOOD_FEEDBACK


@pytest.fixture(scope="module")
def scorer() -> FeedbackScorer:
    return FeedbackScorer()


def test_the_simulators_complaints_are_negative_and_its_praise_is_not(scorer):
    bad = [t.format(n=123, email="anna.smith1@example.com") for t in _BAD_FEEDBACK]
    assert [t for t in bad if not scorer.is_negative(t)] == []
    assert [t for t in _GOOD_FEEDBACK if scorer.is_negative(t)] == []


@pytest.mark.parametrize(
    "text",
    [
        "the app crashed again",
        "site is down",
        "checkout timed out",
        "couldn't connect at all",
        "my order never arrived",
        "search is so laggy",
        "terrible, useless service",
    ],
)
def test_service_complaints_are_negative(scorer, text):
    assert scorer.is_negative(text)


@pytest.mark.parametrize("text", ["not bad at all", "love it, really fast", "ok", ""])
def test_praise_and_neutral_text_are_not(scorer, text):
    assert not scorer.is_negative(text)


def test_negation_still_works_on_domain_words(scorer):
    assert scorer.score_one("not slow at all") > scorer.score_one("slow")


def test_the_domain_lexicon_can_be_replaced():
    plain = FeedbackScorer(extra_lexicon={})
    assert not plain.is_negative("app is really slow today")  # VADER alone misses it
    assert FeedbackScorer(extra_lexicon={"meh": -2.0}).is_negative("meh")


def calm_then(mon, negative_every, n=200, start=0.0, step=20.0, key=("checkout", "eu-west")):
    return [
        mon.learn_one(start + i * step, *key, negative=(i % negative_every == 0)) for i in range(n)
    ]


def test_a_surge_of_negative_feedback_is_found_once():
    mon = FeedbackMonitor()
    assert not any(calm_then(mon, 20, n=1000))  # 5 % negative for 5.5 hours: the baseline
    burst = calm_then(mon, 2, n=60, start=20_000.0)
    surges = [s for s in burst if s is not None]
    assert len(surges) == 1
    s = surges[0]
    assert s.negative_share >= 0.2
    assert s.negative_share >= 3 * s.baseline_share
    assert s.feedback >= 5
    assert 0 < s.severity < 1
    assert mon.is_surging("checkout", "eu-west")
    assert not mon.is_surging("checkout", "us-east")
    # The evidence is counts and shares, never text.
    assert set(s.to_dict()) == {
        "negative_share",
        "baseline_share",
        "recent_feedback",
        "recent_negative",
    }


def test_the_baseline_does_not_learn_during_a_surge_and_the_surge_ends():
    mon = FeedbackMonitor()
    calm_then(mon, 20, n=1000)
    baseline = mon._baseline_share(mon._keys[("checkout", "eu-west")])
    calm_then(mon, 1, n=200, start=20_000.0)  # an hour of nothing but complaints
    # Learned, that hour would lift the baseline above 20 %; it moves only by the few
    # complaints before the surge was established and by the decay towards the prior.
    assert mon._baseline_share(mon._keys[("checkout", "eu-west")]) == pytest.approx(
        baseline, abs=0.01
    )
    assert mon.is_surging("checkout", "eu-west")
    calm_then(mon, 1000, n=200, start=30_000.0)
    assert not mon.is_surging("checkout", "eu-west")


def test_a_single_complaint_is_no_surge():
    mon = FeedbackMonitor()
    assert mon.learn_one(0.0, "search", "ap-south", True) is None
    assert mon.learn_one(3600.0, "search", "ap-south", True) is None


def test_state_round_trip_and_bounds():
    mon = FeedbackMonitor(max_keys=2, ttl_s=100.0)
    calm_then(mon, 20, n=50)
    mon.learn_one(0.0, "a", "r", False)
    mon.learn_one(1.0, "b", "r", True)
    assert len(mon) == 2 and ("checkout", "eu-west") not in set(mon)
    restored = FeedbackMonitor(max_keys=2, ttl_s=100.0)
    restored.load_state(orjson.loads(orjson.dumps(mon.to_state())))
    assert restored.negative_share("b", "r") == mon.negative_share("b", "r") == 1.0
    assert restored.evict_idle(1000.0) == 2

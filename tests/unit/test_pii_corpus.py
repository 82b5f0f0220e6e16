"""The PII classifier on the held-back synthetic corpus: precision and recall per class.

Run with ``-s`` to see the figures; they are also the README's.
"""

from __future__ import annotations

import orjson

from models.text.fields import FieldScrubber
from models.text.redact import PII_CLASSES, Redactor
from schemas import ErrorEvent
from tests.support.pii_corpus import corpus, score

R = Redactor()


def scan(text: str) -> tuple[str, dict[str, int]]:
    result = R.scan(text)
    return result.text, result.counts


def test_precision_and_recall_of_every_class_are_at_least_95_percent() -> None:
    samples = corpus()
    figures = score(samples, scan)
    print("\nPII corpus:", orjson.dumps(figures).decode())
    assert set(figures["classes"]) == set(PII_CLASSES)
    for cls, f in figures["classes"].items():
        assert f["tp"] >= 150, cls  # enough positives to measure
        assert f["precision"] >= 0.95 and f["recall"] >= 0.95, (cls, f)
    assert figures["leaks"] == 0


def test_hard_negatives_alone_are_left_as_they_are() -> None:
    negatives = [s for s in corpus() if not s.expected]
    assert len(negatives) == 1500
    changed = [s.text for s in negatives if R.scan(s.text).counts]
    assert len(changed) <= 0.01 * len(negatives), changed[:10]


def test_a_scorer_that_finds_nothing_scores_zero_recall() -> None:
    # The measure itself can fail: a blind classifier is caught.
    figures = score(corpus(positives_per_class=20, negatives=20), lambda text: (text, {}))
    assert all(f["recall"] == 0.0 for f in figures["classes"].values())
    assert figures["leaks"] > 0


def test_every_free_text_field_is_redacted_and_counted() -> None:
    event = ErrorEvent(
        ts=1.0, region="eu-west", service="pay", severity="error", error_type="CardError",
        message="card 4111 1111 1111 1111 of ann@example.com declined",
        stack="at charge (pay.py:12) token=ghp_" + "a1B2" * 9,
    )  # fmt: skip
    clean, counts = FieldScrubber().scrub(event)
    assert counts == {"card": 1, "email": 1, "api_key": 1}
    assert "4111" not in clean.message and "ann@" not in clean.message
    assert "ghp_" not in (clean.stack or "")

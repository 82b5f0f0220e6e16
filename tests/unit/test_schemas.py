"""Topic contracts: every rejection reason pinned by a concrete payload, plus the records."""

from __future__ import annotations

import base64
import copy

import orjson
import pytest

from schemas import (
    DECISION_TOPICS,
    DLQ_TOPIC,
    KIND_RECORDS,
    KINDS,
    REASONS,
    TOPICS,
    DeadLetter,
    Decision,
    ErrorEvent,
    Interaction,
    Limits,
    MetricSample,
    Rejection,
    RemediationOutcome,
    decision_id_for,
    encode,
    field_specs,
    parse,
    parse_rfc3339,
)

NOW = 1_700_000_000.0
LIMITS = Limits()
YEAR = 365 * 86_400.0
MARKER = "alice@example.com"

VALID: dict[str, dict] = {
    "metrics": {
        "ts": NOW - 5,
        "region": "eu-west-1",
        "service": "checkout",
        "instance": "pod-7",
        "metrics": {"cpu_util": 0.5, "rps": 120, "latency_p99_ms": 180.0, "gc_pause_ms": 3},
    },
    "errors": {
        "ts": NOW - 5,
        "region": "eu-west-1",
        "service": "checkout",
        "severity": "error",
        "error_type": "TimeoutError",
        "message": "upstream timed out",
        "stack": "Traceback ...",
        "trace_id": "4bf92f3577b34da6",
        "deploy_version": "v1.2.3",
    },
    "interactions": {
        "ts": NOW - 5,
        "region": "eu-west-1",
        "tenant": "acme",
        "service": "checkout",
        "user_id": "u-5f1e9c",
        "action": "pay",
        "latency_ms": 42,
        "success": True,
        "feedback_text": "slow today",
        "data_class": "eu-personal",
    },
    "remediation_feedback": {
        "decision_id": "0123456789abcdef0123456789abcdef",
        "ts": NOW - 5,
        "success": False,
        "notes": "rolled back by hand",
    },
}


def payload(kind: str, **changes: object) -> bytes:
    """A valid payload of ``kind`` with some fields replaced (``...`` removes a field)."""
    doc = copy.deepcopy(VALID[kind])
    for key, value in changes.items():
        if value is ...:
            doc.pop(key, None)
        else:
            doc[key] = value
    return orjson.dumps(doc)


def metrics_payload(**metrics: object) -> bytes:
    return payload("metrics", metrics=metrics)


def run(kind: str, raw: bytes | None, limits: Limits = LIMITS):
    return parse(kind, raw, now=NOW, limits=limits)


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


DEEP_EXTRA = payload("metrics", extra=[[[[[[[[[1]]]]]]]]])

# (kind, raw, limits, reason, field): one concrete case per rejection, covering every reason.
REJECTIONS = [
    ("metrics", b"", LIMITS, "empty_payload", None),
    ("metrics", None, LIMITS, "empty_payload", None),
    ("errors", b" \r\n\t ", LIMITS, "empty_payload", None),
    ("metrics", b"\xff\xfe\x00{", LIMITS, "invalid_utf8", None),
    ("errors", b'{"message": "caf\xe9"}', LIMITS, "invalid_utf8", None),
    ("metrics", payload("metrics")[:-7], LIMITS, "invalid_json", None),
    ("metrics", b'{"ts": 1,}', LIMITS, "invalid_json", None),
    ("metrics", b"\xef\xbb\xbf{}", LIMITS, "invalid_json", None),
    ("metrics", b"[" * 10_000 + b"]" * 10_000, LIMITS, "too_deep", None),
    ("metrics", nested(10_000), LIMITS, "too_deep", None),
    ("metrics", DEEP_EXTRA, LIMITS, "too_deep", None),
    ("metrics", b"[1, 2]", LIMITS, "not_an_object", None),
    ("interactions", b'"hello"', LIMITS, "not_an_object", None),
    ("errors", b"null", LIMITS, "not_an_object", None),
    ("metrics", b" " * (5 * 1024 * 1024), LIMITS, "payload_too_large", None),
    ("metrics", b"{" * (5 * 1024 * 1024), LIMITS, "payload_too_large", None),
    ("metrics", b'{"ts": NaN}', LIMITS, "not_finite", None),
    ("metrics", b'{"ts": Infinity}', LIMITS, "not_finite", None),
    ("metrics", b'{"ts": -Infinity}', LIMITS, "not_finite", None),
    ("metrics", b'{"ts": 1e400}', LIMITS, "not_finite", None),
    ("metrics", b'{"metrics": {"cpu_util": -1e400}}', LIMITS, "not_finite", None),
    ("metrics", b'{"metrics": {"x": ' + b"9" * 400 + b"}}", LIMITS, "not_finite", None),
    ("metrics", payload("metrics", region=...), LIMITS, "missing_field", "region"),
    ("metrics", payload("metrics", region=None), LIMITS, "missing_field", "region"),
    ("errors", payload("errors", severity=...), LIMITS, "missing_field", "severity"),
    ("interactions", payload("interactions", success=...), LIMITS, "missing_field", "success"),
    (
        "remediation_feedback",
        payload("remediation_feedback", decision_id=...),
        LIMITS,
        "missing_field",
        "decision_id",
    ),
    ("metrics", metrics_payload(cpu_util="0.5"), LIMITS, "wrong_type", "metrics.cpu_util"),
    ("metrics", metrics_payload(cpu_util=True), LIMITS, "wrong_type", "metrics.cpu_util"),
    ("metrics", metrics_payload(gc_pause_ms="3"), LIMITS, "wrong_type", "metrics"),
    ("metrics", metrics_payload(gc_pause_ms=None), LIMITS, "wrong_type", "metrics"),
    ("metrics", payload("metrics", metrics=[1, 2]), LIMITS, "wrong_type", "metrics"),
    ("metrics", payload("metrics", ts=True), LIMITS, "wrong_type", "ts"),
    ("metrics", payload("metrics", region=7), LIMITS, "wrong_type", "region"),
    ("interactions", payload("interactions", latency_ms="12"), LIMITS, "wrong_type", "latency_ms"),
    ("interactions", payload("interactions", latency_ms=False), LIMITS, "wrong_type", "latency_ms"),
    ("interactions", payload("interactions", success=1), LIMITS, "wrong_type", "success"),
    ("errors", payload("errors", message=["a"]), LIMITS, "wrong_type", "message"),
    ("metrics", metrics_payload(cpu_util=1.5), LIMITS, "out_of_range", "metrics.cpu_util"),
    ("metrics", metrics_payload(error_rate=-0.1), LIMITS, "out_of_range", "metrics.error_rate"),
    ("metrics", metrics_payload(replicas=-1), LIMITS, "out_of_range", "metrics.replicas"),
    ("interactions", payload("interactions", latency_ms=-1), LIMITS, "out_of_range", "latency_ms"),
    ("metrics", payload("metrics", ts=NOW - YEAR), LIMITS, "timestamp_skew", "ts"),
    ("metrics", payload("metrics", ts=NOW + YEAR), LIMITS, "timestamp_skew", "ts"),
    ("metrics", payload("metrics", ts=NOW + 301), LIMITS, "timestamp_skew", "ts"),
    ("metrics", payload("metrics", ts=NOW * 1000), LIMITS, "timestamp_skew", "ts"),
    ("errors", payload("errors", ts="2022-11-14T22:13:20Z"), LIMITS, "timestamp_skew", "ts"),
    ("metrics", payload("metrics", ts="yesterday"), LIMITS, "bad_timestamp", "ts"),
    ("metrics", payload("metrics", ts="2023-11-14T22:13:20"), LIMITS, "bad_timestamp", "ts"),
    ("metrics", payload("metrics", ts="2023-02-30T00:00:00Z"), LIMITS, "bad_timestamp", "ts"),
    ("metrics", payload("metrics", ts="2023-11-14T22:13:20+25:00"), LIMITS, "bad_timestamp", "ts"),
    ("metrics", payload("metrics", region="a" * 2000), LIMITS, "too_long", "region"),
    ("errors", payload("errors", message="m" * 9000), LIMITS, "too_long", "message"),
    ("errors", payload("errors", error_type="E" * 1025), LIMITS, "too_long", "error_type"),
    ("errors", payload("errors", ts="2" * 2000), LIMITS, "too_long", "ts"),
    (
        "metrics",
        payload("metrics", metrics={f"m{i}": i for i in range(100_000)}),
        Limits(max_payload_bytes=8 * 1024 * 1024),
        "too_many_entries",
        "metrics",
    ),
    (
        "metrics",
        payload("metrics", metrics={f"m{i}": i for i in range(100_000)}),
        LIMITS,
        "payload_too_large",
        None,
    ),
    ("metrics", payload("metrics", region="EU_West"), LIMITS, "bad_name", "region"),
    ("errors", payload("errors", service="-checkout"), LIMITS, "bad_name", "service"),
    ("metrics", payload("metrics", service="api\n"), LIMITS, "bad_name", "service"),
    ("metrics", metrics_payload(**{"CPU-Util": 0.5}), LIMITS, "bad_name", "metrics"),
    ("metrics", metrics_payload(**{"": 0.5}), LIMITS, "bad_name", "metrics"),
    ("errors", payload("errors", severity="fatal"), LIMITS, "bad_value", "severity"),
    ("interactions", payload("interactions", user_id=""), LIMITS, "bad_value", "user_id"),
    (
        "interactions",
        payload("interactions", data_class="EU Personal"),
        LIMITS,
        "bad_value",
        "data_class",
    ),
    (
        "remediation_feedback",
        payload("remediation_feedback", decision_id="not-a-decision"),
        LIMITS,
        "bad_value",
        "decision_id",
    ),
]


@pytest.mark.parametrize(
    ("kind", "raw", "limits", "reason", "field"),
    REJECTIONS,
    ids=[f"{i}-{case[3]}" for i, case in enumerate(REJECTIONS)],
)
def test_rejection_reason(kind, raw, limits, reason, field):
    result = run(kind, raw, limits)
    assert isinstance(result, Rejection)
    assert (result.reason, result.field) == (reason, field)
    assert result.detail


def test_every_reason_is_pinned_and_the_set_is_closed():
    # invalid_otlp is the OTLP readers' alone: pinned in tests/unit/test_otlp.py.
    assert {case[3] for case in REJECTIONS} | {"invalid_otlp"} == set(REASONS)
    assert len(REASONS) == len(set(REASONS))


def test_oversized_payload_is_refused_before_decoding():
    # Garbage that would be invalid JSON is still reported as too large: size comes first.
    result = run("metrics", b"\xff" * (LIMITS.max_payload_bytes + 1))
    assert result.reason == "payload_too_large"
    assert run("metrics", b"\xff" * 10).reason == "invalid_utf8"


def test_depth_bound_is_inclusive_and_ignores_brackets_in_strings():
    seven_lists = [[[[[[[1]]]]]]]  # depth 2..8 under the top-level object
    assert isinstance(run("metrics", payload("metrics", extra=seven_lists)), MetricSample)
    assert isinstance(run("metrics", payload("metrics", extra="[" * 5000)), MetricSample)
    eight_lists = payload("metrics", extra=[seven_lists])
    assert run("metrics", eight_lists).reason == "too_deep"
    assert isinstance(run("metrics", eight_lists, Limits(max_depth=9)), MetricSample)


def test_truncated_shallow_document_with_many_brackets_is_invalid_json():
    many_lists = payload("metrics", **{f"k{i}": [i] for i in range(20)})
    assert run("metrics", many_lists[:-3]).reason == "invalid_json"
    assert run("metrics", b"[" * 20).reason == "too_deep"


@pytest.mark.parametrize("kind", KINDS)
def test_valid_payloads_build_records(kind):
    record = run(kind, payload(kind))
    assert isinstance(record, KIND_RECORDS[kind])
    assert record.ts == NOW - 5


@pytest.mark.parametrize(
    ("kind", "spec"),
    [(kind, spec) for kind in KINDS for spec in field_specs(KIND_RECORDS[kind])],
    ids=lambda value: getattr(value, "name", value),
)
def test_each_field_is_required_or_optional_as_declared(kind, spec):
    result = run(kind, payload(kind, **{spec.name: ...}))
    if spec.required:
        assert (result.reason, result.field) == ("missing_field", spec.name)
    else:
        assert getattr(result, spec.name) is None


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_extra_fields_are_accepted_and_ignored(kind):
    raw = payload(kind, schema_version=3, labels={"team": "payments"}, tags=["a", "b"])
    assert run(kind, raw) == run(kind, payload(kind))


@pytest.mark.parametrize("kind", KINDS)
def test_null_optional_fields_mean_absent(kind):
    optional = [s.name for s in field_specs(KIND_RECORDS[kind]) if not s.required]
    record = run(kind, payload(kind, **dict.fromkeys(optional)))
    assert all(getattr(record, name) is None for name in optional)


@pytest.mark.parametrize("kind", KINDS)
def test_encode_round_trips(kind):
    record = run(kind, payload(kind))
    assert run(kind, encode(record)) == record
    assert orjson.loads(encode(record)) == record.to_dict()


def test_metric_sample_values():
    sample = run("metrics", payload("metrics"))
    assert sample.metrics == {
        "cpu_util": 0.5,
        "rps": 120.0,
        "latency_p99_ms": 180.0,
        "gc_pause_ms": 3.0,
    }
    assert all(type(v) is float for v in sample.metrics.values())
    assert run("metrics", metrics_payload(custom_delta=-42.5)).metrics == {"custom_delta": -42.5}
    assert run("metrics", metrics_payload(cpu_util=0, error_rate=1)).metrics["error_rate"] == 1.0


def test_to_dict_is_a_copy():
    sample = run("metrics", payload("metrics"))
    sample.to_dict()["metrics"]["cpu_util"] = 0.9
    assert sample.metrics["cpu_util"] == 0.5


@pytest.mark.parametrize(
    ("text", "epoch"),
    [
        ("2023-11-14T22:13:20Z", NOW),
        ("2023-11-14t22:13:20z", NOW),
        ("2023-11-14 22:13:20Z", NOW),
        ("2023-11-14T22:13:20.125Z", NOW + 0.125),
        ("2023-11-14T23:43:20+01:30", NOW),
        ("2023-11-14T17:13:20-05:00", NOW),
        ("2023-11-14T22:13:19.123456789Z", NOW - 1 + 0.123456789),
        ("2016-12-31T23:59:60Z", 1_483_228_800.0),
    ],
)
def test_rfc3339_timestamps(text, epoch):
    assert parse_rfc3339(text) == pytest.approx(epoch, abs=1e-6)


@pytest.mark.parametrize(
    "text",
    ["", "2023-11-14", "2023-11-14T22:13Z", "2023-13-01T00:00:00Z", "１２３４-11-14T22:13:20Z"],
)
def test_rfc3339_refuses(text):
    assert parse_rfc3339(text) is None


def test_timestamps_epoch_and_rfc3339_agree():
    as_epoch = run("metrics", payload("metrics", ts=NOW))
    as_int = run("metrics", payload("metrics", ts=int(NOW)))
    as_text = run("metrics", payload("metrics", ts="2023-11-14T22:13:20Z"))
    assert as_epoch == as_int == as_text
    assert as_epoch.ts == NOW


def test_timestamp_skew_bounds_are_inclusive_and_configurable():
    assert isinstance(run("metrics", payload("metrics", ts=NOW - 86_400)), MetricSample)
    assert isinstance(run("metrics", payload("metrics", ts=NOW + 300)), MetricSample)
    wide = Limits(max_past_s=2 * YEAR)
    assert isinstance(run("metrics", payload("metrics", ts=NOW - YEAR), wide), MetricSample)


def test_name_pattern_is_configurable():
    limits = Limits(name_pattern=r"^[A-Za-z_]+$")
    assert isinstance(run("metrics", payload("metrics", region="EU_West"), limits), MetricSample)
    assert run("metrics", payload("metrics", region="eu-west-1"), limits).reason == "bad_name"


@pytest.mark.parametrize(
    ("kind", "raw"),
    [
        ("metrics", payload("metrics", region=MARKER)),
        ("metrics", payload("metrics", region=MARKER * 100)),
        ("interactions", payload("interactions", user_id=MARKER * 100)),
        ("interactions", payload("interactions", data_class=MARKER)),
        ("errors", payload("errors", severity=MARKER)),
        ("errors", payload("errors", ts=MARKER)),
        ("metrics", payload("metrics", metrics={MARKER: 1.0})),
        ("metrics", payload("metrics", metrics={"user_alice": MARKER})),
        ("remediation_feedback", payload("remediation_feedback", decision_id=MARKER)),
        ("metrics", payload("metrics")[:-1] + MARKER.encode()),
        ("metrics", MARKER.encode()),
    ],
)
def test_rejections_never_quote_the_payload(kind, raw):
    result = run(kind, raw)
    assert isinstance(result, Rejection)
    for text in (result.detail, result.field or ""):
        assert "alice" not in text
        assert "example" not in text


def test_bytes_like_inputs_are_accepted():
    raw = payload("metrics")
    assert run("metrics", bytearray(raw)) == run("metrics", memoryview(raw)) == run("metrics", raw)


def test_unknown_kind_is_a_programming_error():
    with pytest.raises(ValueError, match="kind must be one of"):
        parse("logs", b"{}", now=NOW, limits=LIMITS)


def test_topics():
    assert TOPICS == {
        "metrics": "telemetry.metrics",
        "errors": "telemetry.errors",
        "interactions": "telemetry.interactions",
        "remediation_feedback": "feedback.remediation",
    }
    assert set(DECISION_TOPICS.values()) == {
        "decisions.scaling",
        "decisions.failover",
        "decisions.remediation",
    }
    assert DLQ_TOPIC == "autopilot.dlq"
    assert ErrorEvent.TOPIC == "telemetry.errors"
    assert Interaction.TOPIC == "telemetry.interactions"
    assert RemediationOutcome.TOPIC == "feedback.remediation"


# Limits


def test_limits_defaults():
    limits = Limits()
    assert limits.max_payload_bytes == 256 * 1024
    assert limits.max_depth == 8
    assert (limits.max_string_len, limits.max_text_len, limits.max_metrics) == (1024, 8192, 256)
    assert (limits.max_past_s, limits.max_future_s) == (86_400, 300)
    assert limits.name_pattern == r"^[a-z0-9][a-z0-9-]{0,62}$"
    assert Limits.from_env({}) == limits


def test_limits_from_env():
    limits = Limits.from_env(
        {
            "AUTOPILOT_MAX_PAYLOAD_BYTES": "1024",
            "AUTOPILOT_MAX_PAST_S": "3600",
            "AUTOPILOT_MAX_FUTURE_S": "0.5",
            "AUTOPILOT_NAME_PATTERN": "^[a-z]+$",
            "AUTOPILOT_MAX_METRICS": " 16 ",
            "AUTOPILOT_UNRELATED": "x",
        }
    )
    assert limits == Limits(
        max_payload_bytes=1024,
        max_past_s=3600.0,
        max_future_s=0.5,
        name_pattern="^[a-z]+$",
        max_metrics=16,
    )
    assert limits.name_re.fullmatch("eu") and not limits.name_re.fullmatch("eu-1")


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("AUTOPILOT_MAX_PAYLOAD_BYTES", "lots"),
        ("AUTOPILOT_MAX_PAYLOAD_BYTES", "0"),
        ("AUTOPILOT_MAX_PAYLOAD_BYTES", "1.5"),
        ("AUTOPILOT_MAX_METRICS", "-3"),
        ("AUTOPILOT_MAX_PAST_S", "a day"),
        ("AUTOPILOT_MAX_PAST_S", "-1"),
        ("AUTOPILOT_MAX_FUTURE_S", "nan"),
        ("AUTOPILOT_MAX_FUTURE_S", "inf"),
        ("AUTOPILOT_NAME_PATTERN", "[a-z"),
    ],
)
def test_limits_from_env_names_the_bad_variable(var, value):
    with pytest.raises(ValueError, match=var):
        Limits.from_env({var: value})


def test_limits_reject_nonsense():
    with pytest.raises(ValueError, match="max_metrics"):
        Limits(max_metrics=0)
    with pytest.raises(ValueError, match="max_past_s"):
        Limits(max_past_s=-1)
    with pytest.raises(ValueError, match="max_depth"):
        Limits(max_depth=2000)


# Decisions


def make_decision(**changes: object) -> Decision:
    subject = {"service": "checkout", "region": "eu-west-1"}
    params = {"replicas": 4}
    fields = {
        "decision_id": decision_id_for("scaling", subject, "scale_out", params, [NOW, "k"]),
        "kind": "scaling",
        "ts": NOW,
        "subject": subject,
        "action": "scale_out",
        "params": params,
        "mode": "recommend",
        "confidence": 0.8,
        "reason": "p99 latency is forecast to breach the SLO within 10 minutes.",
        "evidence": {"forecast_p99_ms": 480.0, "threshold_ms": 400.0},
        "model_version": "forecast-1",
    }
    fields.update(changes)
    return Decision(**fields)


ID_ARGS = {
    "kind": "failover",
    "subject": {"region": "eu-west-1", "service": "db"},
    "action": "promote",
    "params": {"to": "eu-west-2"},
    "basis": [NOW, "db"],
}


def test_decision_id_is_deterministic():
    first = decision_id_for(**ID_ARGS)
    assert first == decision_id_for(**copy.deepcopy(ID_ARGS))
    assert len(first) == 32 and int(first, 16) >= 0
    # Canonical JSON sorts keys, so dict order does not matter.
    reordered = {**ID_ARGS, "subject": {"service": "db", "region": "eu-west-1"}}
    assert decision_id_for(**reordered) == first


@pytest.mark.parametrize(
    "change",
    [
        {"kind": "scaling"},
        {"subject": {"region": "eu-west-2", "service": "db"}},
        {"action": "demote"},
        {"params": {"to": "us-east-1"}},
        {"basis": [NOW + 1, "db"]},
    ],
    ids=lambda change: next(iter(change)),
)
def test_decision_id_differs_when_any_input_differs(change):
    assert decision_id_for(**{**ID_ARGS, **change}) != decision_id_for(**ID_ARGS)


def test_decision_round_trip_and_topic():
    decision = make_decision()
    assert Decision.from_bytes(decision.to_bytes()) == decision
    assert decision.topic == "decisions.scaling"
    assert orjson.loads(decision.to_bytes())["confidence"] == 0.8


@pytest.mark.parametrize(
    "changes",
    [
        {"mode": "yolo"},
        {"kind": "scale"},
        {"confidence": 1.5},
        {"confidence": float("nan")},
        {"subject": {"pod": "p-1"}},
    ],
)
def test_decision_invariants(changes):
    with pytest.raises(ValueError):
        make_decision(**changes)


def test_decision_from_bytes_rejects_non_decisions():
    with pytest.raises(ValueError, match="lacks field"):
        Decision.from_bytes(b'{"kind": "scaling"}')
    with pytest.raises(ValueError):
        Decision.from_bytes(b"[]")


# Dead letters


@pytest.mark.parametrize(
    "raw",
    [b"", b"\x00\xff\xfe binary \x80", b'{"ts": NaN}', payload("metrics"), bytes(range(256)) * 8],
)
def test_dead_letter_round_trip_keeps_exact_bytes(raw):
    rejection = run("errors", raw) if raw else Rejection("empty_payload", None, "payload is empty")
    letter = DeadLetter.from_rejection(
        rejection, source_topic="telemetry.errors", partition=3, offset=1234, raw=raw, ts=NOW
    )
    back = DeadLetter.from_bytes(letter.to_bytes())
    assert back == letter
    assert back.payload() == raw
    assert base64.b64decode(back.payload_b64) == raw
    assert back.payload_size == len(raw)
    assert (back.partition, back.offset, back.ts) == (3, 1234, NOW)


def test_dead_letter_of_a_tombstone_and_truncation():
    empty = Rejection("empty_payload", None, "payload is empty")
    letter = DeadLetter.from_rejection(
        empty, source_topic="telemetry.metrics", partition=0, offset=0, raw=None, ts=NOW
    )
    assert letter.payload() == b"" and letter.payload_size == 0
    big = b"x" * 10_000
    short = DeadLetter.from_rejection(
        run("metrics", big),
        source_topic="t",
        partition=0,
        offset=1,
        raw=big,
        ts=NOW,
        keep_bytes=100,
    )
    assert short.payload() == big[:100]
    assert short.payload_size == 10_000


def test_dead_letter_detail_never_holds_the_payload():
    raw = payload("interactions", user_id=MARKER, latency_ms="slow")
    letter = DeadLetter.from_rejection(
        run("interactions", raw), source_topic="t", partition=0, offset=0, raw=raw, ts=NOW
    )
    assert letter.reason == "wrong_type" and letter.field == "latency_ms"
    visible = orjson.loads(letter.to_bytes())
    del visible["payload_b64"]
    assert MARKER not in orjson.dumps(visible).decode()


def test_dead_letter_from_bytes_rejects_non_dead_letters():
    with pytest.raises(ValueError, match="lacks field"):
        DeadLetter.from_bytes(b'{"reason": "invalid_json"}')


# Envelopes: {"samples": [...]} of records validated one by one.


def test_envelope_records_are_validated_on_their_own() -> None:
    from schemas.validate import Envelope, parse_message

    good = VALID["metrics"]
    bad = {**good, "metrics": {"cpu_util": 2.0}}
    raw = orjson.dumps({"samples": [good, bad, 7, good], "collector": {"name": "otel"}})
    envelope = parse_message("metrics", raw, now=NOW, limits=LIMITS)
    assert isinstance(envelope, Envelope)
    kinds = [type(r).__name__ for r in envelope.records]
    assert kinds == ["MetricSample", "Rejection", "Rejection", "MetricSample"]
    assert [envelope.records[i].reason for i in (1, 2)] == ["out_of_range", "not_an_object"]
    assert orjson.loads(envelope.payload(1)) == bad
    assert envelope.records[0] == parse("metrics", orjson.dumps(good), now=NOW, limits=LIMITS)


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({"samples": "x"}, "wrong_type"),
        ({"samples": None}, "wrong_type"),
        ({"samples": []}, "bad_value"),
        ({"samples": [VALID["metrics"]] * 4}, "too_many_entries"),
        ({"samples": [VALID["metrics"]], "x": [[[[[[[[[1]]]]]]]]]}, "too_deep"),
    ],
)
def test_an_unreadable_envelope_is_refused_whole(doc: dict, reason: str) -> None:
    from schemas.validate import parse_message

    limits = Limits(max_envelope_records=3)
    result = parse_message("metrics", orjson.dumps(doc), now=NOW, limits=limits)
    assert isinstance(result, Rejection) and result.reason == reason


def test_envelope_and_single_record_size_bounds() -> None:
    from schemas.validate import Envelope, parse_message

    limits = Limits(max_payload_bytes=1024, max_envelope_bytes=4096)
    record = orjson.dumps({**VALID["metrics"], "pad": "x" * 600})
    envelope = b'{"samples":[' + b",".join([record] * 3) + b"]}"
    assert isinstance(parse_message("metrics", envelope, now=NOW, limits=limits), Envelope)
    too_big = b'{"samples":[' + b",".join([record] * 7) + b"]}"
    assert parse_message("metrics", too_big, now=NOW, limits=limits).reason == "payload_too_large"
    single = orjson.dumps({**VALID["metrics"], "pad": "x" * 2000})
    assert parse_message("metrics", single, now=NOW, limits=limits).reason == "payload_too_large"
    # Without envelopes a payload of that size is one as well.
    assert parse("metrics", envelope, now=NOW, limits=limits).reason == "payload_too_large"


def test_envelope_limits_come_from_the_environment() -> None:
    env = {"AUTOPILOT_MAX_ENVELOPE_RECORDS": "500", "AUTOPILOT_MAX_ENVELOPE_BYTES": "65536"}
    limits = Limits.from_env(env)
    assert (limits.max_envelope_records, limits.max_envelope_bytes) == (500, 65536)
    with pytest.raises(ValueError, match="AUTOPILOT_MAX_ENVELOPE_RECORDS"):
        Limits.from_env({"AUTOPILOT_MAX_ENVELOPE_RECORDS": "0"})


def test_dead_letter_names_the_envelope_index() -> None:
    rejection = Rejection("missing_field", "region", "required field 'region' is missing")
    letter = DeadLetter.from_rejection(
        rejection, source_topic="telemetry.metrics", partition=2, offset=9, raw=b"{}", ts=NOW,
        envelope_index=3,
    )  # fmt: skip
    assert DeadLetter.from_bytes(letter.to_bytes()).envelope_index == 3
    older = {k: v for k, v in letter.to_dict().items() if k != "envelope_index"}
    assert DeadLetter.from_bytes(orjson.dumps(older)).envelope_index is None

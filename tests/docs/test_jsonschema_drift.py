"""The committed JSON Schema files are exactly what the record definitions generate."""

from __future__ import annotations

import dataclasses

import jsonschema
import orjson
import pytest

from schemas import (
    KIND_RECORDS,
    TOPICS,
    DeadLetter,
    Decision,
    Limits,
    Rejection,
    decision_id_for,
    encode,
    field_specs,
    parse,
)
from schemas.generate import ENVELOPES, JSON_DIR, SOURCES, build_schemas, main, render
from schemas.validate import Envelope, parse_message

NOW = 1_700_000_000.0
REGENERATE = "regenerate with `python -m schemas.generate` and commit the result"
SCHEMAS = build_schemas()


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_committed_file_matches_generator(name):
    path = JSON_DIR / f"{name}.schema.json"
    assert path.is_file(), f"{path} is missing; {REGENERATE}"
    assert path.read_text(encoding="utf-8") == render(SCHEMAS[name]), (
        f"{path} differs from the record definitions; {REGENERATE}"
    )


def test_no_stale_schema_files():
    committed = {path.name for path in JSON_DIR.glob("*.schema.json")}
    expected = {f"{name}.schema.json" for name in SCHEMAS}
    assert committed == expected, f"unexpected files {committed - expected}; {REGENERATE}"


def test_expected_topics_have_schemas():
    assert set(SCHEMAS) == {
        "telemetry.metrics",
        "telemetry.errors",
        "telemetry.interactions",
        "feedback.remediation",
        "decision",
        "autopilot.dlq",
        "decisions.approvals",
        "telemetry.metrics.envelope",
        "telemetry.errors.envelope",
        "telemetry.interactions.envelope",
    }


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_schema_is_valid_draft_2020_12(name):
    schema = SCHEMAS[name]
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_properties_and_required_match_the_record(name):
    cls, additional, _ = SOURCES[name]
    schema = SCHEMAS[name]
    assert list(schema["properties"]) == [f.name for f in dataclasses.fields(cls)]
    assert schema["required"] == [s.name for s in field_specs(cls) if s.required]
    assert schema["additionalProperties"] is additional
    assert additional is (cls in KIND_RECORDS.values())


def test_check_mode_reports_stale_files(tmp_path, capsys):
    assert main(["--check", "--out", str(tmp_path)]) == 1
    assert "python -m schemas.generate" in capsys.readouterr().err
    assert main(["--out", str(tmp_path)]) == 0
    assert main(["--check", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{name}.schema.json" for name in SCHEMAS
    )


# Examples validated against the generated schemas.

EXAMPLES = {
    "telemetry.metrics": {
        "ts": "2023-11-14T22:13:20Z",
        "region": "eu-west-1",
        "service": "checkout",
        "metrics": {"cpu_util": 0.5, "rps": 120, "custom_gauge": -3.5},
        "build": {"sha": "abc"},
    },
    "telemetry.errors": {
        "ts": NOW,
        "region": "eu-west-1",
        "service": "checkout",
        "severity": "critical",
        "error_type": "OOMKilled",
        "message": "",
        "trace_id": None,
    },
    "telemetry.interactions": {
        "ts": NOW,
        "region": "us-east-1",
        "tenant": "acme",
        "service": "search",
        "user_id": "u-1",
        "action": "query",
        "latency_ms": 12.5,
        "success": False,
        "data_class": "eu-personal",
    },
    "feedback.remediation": {"decision_id": "f" * 32, "ts": NOW, "success": True},
}

INVALID = [
    ("telemetry.metrics", "metrics", {"metrics": {"cpu_util": 1.5}}),
    ("telemetry.metrics", "metrics", {"metrics": {"Bad-Name": 1}}),
    ("telemetry.metrics", "metrics", {"metrics": {"rps": "12"}}),
    ("telemetry.metrics", "metrics", {"region": "EU West"}),
    ("telemetry.metrics", "metrics", {"ts": "yesterday"}),
    ("telemetry.errors", "errors", {"severity": "fatal"}),
    ("telemetry.errors", "errors", {"error_type": ""}),
    ("telemetry.errors", "errors", {"message": "m" * 9000}),
    ("telemetry.interactions", "interactions", {"success": 1}),
    ("telemetry.interactions", "interactions", {"latency_ms": True}),
    ("telemetry.interactions", "interactions", {"latency_ms": -1}),
    ("telemetry.interactions", "interactions", {"user_id": None}),
    ("feedback.remediation", "remediation_feedback", {"decision_id": "xyz"}),
]


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_valid_examples_validate_and_parse(name):
    doc = EXAMPLES[name]
    jsonschema.validate(doc, SCHEMAS[name], cls=jsonschema.Draft202012Validator)
    kind = next(k for k, topic in TOPICS.items() if topic == name)
    record = parse(kind, orjson.dumps(doc), now=NOW, limits=Limits())
    assert not isinstance(record, Rejection), record
    jsonschema.validate(orjson.loads(encode(record)), SCHEMAS[name])


@pytest.mark.parametrize(("name", "kind", "change"), INVALID)
def test_parser_and_schema_agree_on_invalid_examples(name, kind, change):
    doc = {**EXAMPLES[name], **change}
    assert not jsonschema.Draft202012Validator(SCHEMAS[name]).is_valid(doc)
    assert isinstance(parse(kind, orjson.dumps(doc), now=NOW, limits=Limits()), Rejection)


def test_decision_and_dead_letter_validate():
    subject = {"service": "checkout", "region": "eu-west-1"}
    decision = Decision(
        decision_id=decision_id_for("remediation", subject, "rollback", {}, [NOW]),
        kind="remediation",
        ts=NOW,
        subject=subject,
        action="rollback",
        params={},
        mode="auto",
        confidence=1.0,
        reason="Error rate tripled right after deploy v1.2.3.",
        evidence={"error_rate": 0.3, "baseline": 0.1},
        model_version="rules-1",
    )
    jsonschema.validate(orjson.loads(decision.to_bytes()), SCHEMAS["decision"])
    raw = b"\x00\xffnot json"
    letter = DeadLetter.from_rejection(
        parse("metrics", raw, now=NOW, limits=Limits()),
        source_topic="telemetry.metrics",
        partition=1,
        offset=7,
        raw=raw,
        ts=NOW,
    )
    jsonschema.validate(orjson.loads(letter.to_bytes()), SCHEMAS["autopilot.dlq"])
    bad = {**orjson.loads(decision.to_bytes()), "mode": "maybe"}
    assert not jsonschema.Draft202012Validator(SCHEMAS["decision"]).is_valid(bad)


@pytest.mark.parametrize("name", sorted(ENVELOPES))
def test_parser_and_envelope_schema_agree(name):
    topic = ENVELOPES[name]
    kind = next(k for k, t in TOPICS.items() if t == topic)
    validator = jsonschema.Draft202012Validator(SCHEMAS[name])
    record = EXAMPLES[topic]
    envelope = {"samples": [record, record], "collector": "otel"}
    assert validator.is_valid(envelope)
    parsed = parse_message(kind, orjson.dumps(envelope), now=NOW, limits=Limits())
    assert isinstance(parsed, Envelope)
    assert not any(isinstance(r, Rejection) for r in parsed.records)
    bad_record = {k: v for k, v in record.items() if k != "region"}
    for doc in (
        {"samples": []},
        {"samples": record},
        {"samples": [record] * (Limits().max_envelope_records + 1)},
        {"samples": [record, bad_record]},
    ):
        assert not validator.is_valid(doc)
        parsed = parse_message(kind, orjson.dumps(doc), now=NOW, limits=Limits())
        refused = parsed if isinstance(parsed, Rejection) else parsed.records[-1]
        assert isinstance(refused, Rejection)

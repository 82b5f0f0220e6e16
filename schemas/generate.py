"""Generate the JSON Schema (draft 2020-12) files of the topics from the record specs.

Run ``python -m schemas.generate`` after changing a record to rewrite
``schemas/json/<name>.schema.json``; ``python -m schemas.generate --check`` exits with
status 1, naming the stale files, when the committed files differ from the records.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from schemas.approval import Approval
from schemas.dead_letter import DeadLetter
from schemas.decision import Decision
from schemas.fields import (
    BASE64,
    BOOLEAN,
    ENUM,
    EPOCH,
    IDENT,
    INTEGER,
    KNOWN_METRICS,
    METRIC_NAME_PATTERN,
    METRICS,
    NAME,
    NUMBER,
    OBJECT,
    SUBJECT,
    SUBJECT_KEYS,
    TEXT,
    TIMESTAMP,
    FieldSpec,
    field_specs,
)
from schemas.limits import Limits
from schemas.records import ErrorEvent, Interaction, MetricSample, RemediationOutcome
from schemas.timestamps import RFC3339_PATTERN

__all__ = [
    "ENVELOPES",
    "JSON_DIR",
    "SOURCES",
    "build_schemas",
    "envelope_schema_for",
    "main",
    "render",
    "schema_for",
]

JSON_DIR = Path(__file__).parent / "json"
"""Where the generated files are committed."""

SOURCES: dict[str, tuple[type, bool, str]] = {
    MetricSample.TOPIC: (MetricSample, True, "Payloads of topic telemetry.metrics."),
    ErrorEvent.TOPIC: (ErrorEvent, True, "Payloads of topic telemetry.errors."),
    Interaction.TOPIC: (Interaction, True, "Payloads of topic telemetry.interactions."),
    RemediationOutcome.TOPIC: (
        RemediationOutcome,
        True,
        "Payloads of topic feedback.remediation.",
    ),
    "decision": (
        Decision,
        False,
        "Payloads of topics decisions.scaling, decisions.failover and decisions.remediation.",
    ),
    DeadLetter.TOPIC: (DeadLetter, False, "Payloads of topic autopilot.dlq."),
    Approval.TOPIC: (Approval, False, "Payloads of topic decisions.approvals."),
}
"""Schema name -> (record class, whether unknown properties are allowed, description)."""

ENVELOPES: dict[str, str] = {
    f"{topic}.envelope": topic
    for topic in (MetricSample.TOPIC, ErrorEvent.TOPIC, Interaction.TOPIC)
}
"""Envelope schema name -> the schema of the records it carries (a telemetry topic's)."""

_DRAFT = "https://json-schema.org/draft/2020-12/schema"
_INPUT_NOTE = (
    " Bounds are those of the default limits (AUTOPILOT_* settings may change them);"
    " timestamps must also lie within the accepted clock skew of the processing time."
    " Unknown properties are accepted and ignored."
)


def schema_for(
    name: str, cls: type, *, description: str, additional: bool, limits: Limits | None = None
) -> dict[str, Any]:
    """Return the JSON Schema named ``name`` of a record class.

    Parameters
    ----------
    name
        Schema name, usually the topic; it makes the ``$id``.
    cls
        Record class whose field specs define the properties.
    description
        What the schema describes.
    additional
        Whether unknown properties are allowed (true for telemetry, which ignores them).
    limits
        Bounds to publish; the defaults when ``None``.

    Examples
    --------
    >>> s = schema_for("feedback", RemediationOutcome, description="Feedback.", additional=True)
    >>> s["required"], s["properties"]["notes"]["type"]
    (['decision_id', 'ts', 'success'], ['string', 'null'])

    """
    limits = Limits() if limits is None else limits
    specs = field_specs(cls)
    return {
        "$schema": _DRAFT,
        "$id": f"urn:paas-autopilot:schema:{name}",
        "title": cls.__name__,
        "description": description + (_INPUT_NOTE if additional else ""),
        "type": "object",
        "properties": {spec.name: _property(spec, limits) for spec in specs},
        "required": [spec.name for spec in specs if spec.required],
        "additionalProperties": additional,
    }


def envelope_schema_for(
    name: str, record: dict[str, Any], limits: Limits | None = None
) -> dict[str, Any]:
    """Return the JSON Schema named ``name`` of an envelope of ``record`` documents.

    The record schema is embedded under ``$defs``, so the file stands alone.

    Examples
    --------
    >>> record = schema_for("feedback", RemediationOutcome, description="F.", additional=True)
    >>> s = envelope_schema_for("feedback.envelope", record)
    >>> s["required"], s["properties"]["samples"]["maxItems"]
    (['samples'], 2000)
    """
    limits = Limits() if limits is None else limits
    topic = record["$id"].rsplit(":", 1)[1]
    embedded = {k: v for k, v in record.items() if k not in ("$schema", "$id")}
    return {
        "$schema": _DRAFT,
        "$id": f"urn:paas-autopilot:schema:{name}",
        "title": f"{record['title']}Envelope",
        "description": (
            f"A batch of records of topic {topic} in one message, all with the message's key."
            " Each record is validated on its own: a refused one is dead-lettered alone, with"
            " the envelope's offset and its index. A payload of the topic is either one record"
            " or an envelope (an object with a samples member). Bounds are those of the default"
            " limits (AUTOPILOT_MAX_ENVELOPE_RECORDS, AUTOPILOT_MAX_ENVELOPE_BYTES)."
            " Other properties are ignored."
        ),
        "type": "object",
        "properties": {
            "samples": {
                "description": "The records, in the order they are to be processed.",
                "type": "array",
                "minItems": 1,
                "maxItems": limits.max_envelope_records,
                "items": {"$ref": "#/$defs/record"},
            }
        },
        "required": ["samples"],
        "additionalProperties": True,
        "$defs": {"record": embedded},
    }


def build_schemas(limits: Limits | None = None) -> dict[str, dict[str, Any]]:
    """Return every topic schema, keyed by schema name (the file is ``<name>.schema.json``)."""
    schemas = {
        name: schema_for(name, cls, description=description, additional=additional, limits=limits)
        for name, (cls, additional, description) in SOURCES.items()
    }
    for name, topic in ENVELOPES.items():
        schemas[name] = envelope_schema_for(name, schemas[topic], limits)
    return schemas


def render(schema: dict[str, Any]) -> str:
    """Return the committed text of a schema: indented JSON ending with a newline."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write the schema files, or with ``--check`` report the stale ones; return the status."""
    parser = argparse.ArgumentParser(prog="python -m schemas.generate", description=__doc__)
    parser.add_argument("--out", type=Path, default=JSON_DIR, help="directory to write to")
    parser.add_argument(
        "--check", action="store_true", help="only check that the files are up to date"
    )
    args = parser.parse_args(argv)
    stale = []
    for name, schema in build_schemas().items():
        path = args.out / f"{name}.schema.json"
        text = render(schema)
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if args.check and stale:
        names = ", ".join(str(path) for path in stale)
        sys.stderr.write(f"stale: {names}; run python -m schemas.generate\n")
        return 1
    return 0


def _property(spec: FieldSpec, limits: Limits) -> dict[str, Any]:
    schema: dict[str, Any] = {"description": spec.description, **_SHAPES[spec.kind](spec, limits)}
    if spec.nullable:
        if "anyOf" in schema:
            schema["anyOf"].append({"type": "null"})
        else:
            schema["type"] = [schema["type"], "null"]
            if "enum" in schema:
                schema["enum"].append(None)
    return schema


def _timestamp(spec: FieldSpec, limits: Limits) -> dict[str, Any]:
    return {
        "anyOf": [
            {"type": "number", "description": "Epoch seconds."},
            {
                "type": "string",
                "format": "date-time",
                "pattern": RFC3339_PATTERN,
                "maxLength": limits.max_string_len,
                "description": "RFC 3339 date-time with an offset.",
            },
        ]
    }


def _ident(spec: FieldSpec, limits: Limits) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": limits.max_string_len}
    if spec.pattern is not None:
        schema["pattern"] = spec.pattern
    return schema


def _number(spec: FieldSpec, limits: Limits) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer" if spec.kind == INTEGER else "number"}
    if spec.minimum is not None:
        schema["minimum"] = spec.minimum
    if spec.maximum is not None:
        schema["maximum"] = spec.maximum
    return schema


def _metrics(spec: FieldSpec, limits: Limits) -> dict[str, Any]:
    known = {}
    for name, (minimum, maximum, description) in KNOWN_METRICS.items():
        known[name] = {"description": description, "type": "number", "minimum": minimum}
        if maximum is not None:
            known[name]["maximum"] = maximum
    return {
        "type": "object",
        "maxProperties": limits.max_metrics,
        "propertyNames": {"pattern": METRIC_NAME_PATTERN},
        "properties": known,
        "additionalProperties": {"type": "number"},
    }


def _subject(spec: FieldSpec, limits: Limits) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            key: {"type": "string", "minLength": 1, "maxLength": limits.max_string_len}
            for key in SUBJECT_KEYS
        },
        "additionalProperties": False,
    }


_SHAPES = {
    TIMESTAMP: _timestamp,
    EPOCH: lambda spec, limits: {"type": "number"},
    NAME: lambda spec, limits: {
        "type": "string",
        "maxLength": limits.max_string_len,
        "pattern": limits.name_pattern,
    },
    IDENT: _ident,
    TEXT: lambda spec, limits: {"type": "string", "maxLength": limits.max_text_len},
    BASE64: lambda spec, limits: {"type": "string", "contentEncoding": "base64"},
    NUMBER: _number,
    INTEGER: _number,
    BOOLEAN: lambda spec, limits: {"type": "boolean"},
    ENUM: lambda spec, limits: {"type": "string", "enum": list(spec.choices)},
    METRICS: _metrics,
    OBJECT: lambda spec, limits: {"type": "object"},
    SUBJECT: _subject,
}

if __name__ == "__main__":
    raise SystemExit(main())

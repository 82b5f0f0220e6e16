"""Topic contracts: records, edge validation, decisions, dead letters and JSON Schemas.

Producers in any language write JSON to the input topics; :func:`parse` turns those bytes
into a record or a :class:`Rejection` with one of :data:`REASONS`, and never raises.

Examples
--------
>>> import schemas
>>> raw = b'{"ts": "2023-11-14T22:13:20Z", "region": "eu-west-1", "service": "api",'
>>> raw += b' "metrics": {"cpu_util": 0.42}, "team": "ignored"}'
>>> sample = schemas.parse("metrics", raw, now=1700000000.0, limits=schemas.Limits())
>>> sample.ts, sample.metrics
(1700000000.0, {'cpu_util': 0.42})
>>> schemas.parse("metrics", b'{"ts": NaN}', now=1700000000.0, limits=schemas.Limits()).reason
'not_finite'

"""

from schemas.dead_letter import DeadLetter
from schemas.decision import DECISION_KINDS, DECISION_TOPICS, MODES, Decision, decision_id_for
from schemas.fields import KNOWN_METRICS, FieldSpec, field_specs
from schemas.limits import Limits
from schemas.records import (
    KIND_RECORDS,
    KINDS,
    SEVERITIES,
    TOPICS,
    ErrorEvent,
    Interaction,
    MetricSample,
    Record,
    RemediationOutcome,
)
from schemas.rejection import REASONS, Rejection
from schemas.timestamps import parse_rfc3339
from schemas.topics import DLQ as DLQ_TOPIC
from schemas.validate import encode, parse

__all__ = [
    "DECISION_KINDS",
    "DECISION_TOPICS",
    "DLQ_TOPIC",
    "KINDS",
    "KIND_RECORDS",
    "KNOWN_METRICS",
    "MODES",
    "REASONS",
    "SEVERITIES",
    "TOPICS",
    "DeadLetter",
    "Decision",
    "ErrorEvent",
    "FieldSpec",
    "Interaction",
    "Limits",
    "MetricSample",
    "Record",
    "Rejection",
    "RemediationOutcome",
    "decision_id_for",
    "encode",
    "field_specs",
    "parse",
    "parse_rfc3339",
]

"""Whatever the bytes, ``parse`` returns a record or a known rejection and never raises."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import KIND_RECORDS, KINDS, REASONS, Limits, Rejection, encode, field_specs, parse

NOW = 1_700_000_000.0
LIMITS = Limits()
SETTINGS = settings(max_examples=150, deadline=None)

kinds = st.sampled_from(KINDS)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)

names = st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}", fullmatch=True)
idents = st.text(min_size=1, max_size=30)
texts = st.text(max_size=60)
timestamps = st.floats(min_value=NOW - 86_400, max_value=NOW + 300) | st.integers(
    min_value=int(NOW) - 86_400, max_value=int(NOW) + 300
)
fractions = st.floats(min_value=0.0, max_value=1.0)
non_negative = st.floats(min_value=0.0, max_value=1e12) | st.integers(0, 2**53)
custom_metric_names = st.from_regex(r"[a-z][a-z0-9_]{0,30}", fullmatch=True).filter(
    lambda name: (
        name
        not in {
            "cpu_util",
            "mem_util",
            "error_rate",
            "rps",
            "latency_p50_ms",
            "latency_p99_ms",
            "replicas",
            "queue_depth",
            "cost_per_hour",
        }
    )
)
metric_maps = st.fixed_dictionaries(
    {},
    optional={
        "cpu_util": fractions,
        "mem_util": fractions,
        "error_rate": fractions,
        "rps": non_negative,
        "latency_p99_ms": non_negative,
        "replicas": st.integers(0, 1000),
    },
).flatmap(
    lambda known: st.dictionaries(
        custom_metric_names, st.floats(allow_nan=False, allow_infinity=False), max_size=5
    ).map(lambda custom: {**custom, **known})
)


def optional(strategy: st.SearchStrategy) -> st.SearchStrategy:
    return st.none() | strategy


VALID_DOCS = {
    "metrics": st.fixed_dictionaries(
        {"ts": timestamps, "region": names, "service": names, "metrics": metric_maps},
        optional={"instance": optional(idents)},
    ),
    "errors": st.fixed_dictionaries(
        {
            "ts": timestamps,
            "region": names,
            "service": names,
            "severity": st.sampled_from(["debug", "info", "warning", "error", "critical"]),
            "error_type": idents,
            "message": texts,
        },
        optional={
            "stack": optional(texts),
            "trace_id": optional(idents),
            "deploy_version": optional(idents),
        },
    ),
    "interactions": st.fixed_dictionaries(
        {
            "ts": timestamps,
            "region": names,
            "tenant": idents,
            "service": names,
            "user_id": idents,
            "action": idents,
            "latency_ms": non_negative,
            "success": st.booleans(),
        },
        optional={
            "feedback_text": optional(texts),
            "data_class": optional(names),
        },
    ),
    "remediation_feedback": st.fixed_dictionaries(
        {
            "decision_id": st.from_regex(r"[0-9a-f]{32}", fullmatch=True),
            "ts": timestamps,
            "success": st.booleans(),
        },
        optional={"notes": optional(texts)},
    ),
}
valid_cases = kinds.flatmap(lambda kind: st.tuples(st.just(kind), VALID_DOCS[kind]))


def check(kind: str, raw: bytes):
    result = parse(kind, raw, now=NOW, limits=LIMITS)
    if isinstance(result, Rejection):
        assert result.reason in REASONS
        assert isinstance(result.detail, str) and result.detail
    else:
        assert isinstance(result, KIND_RECORDS[kind])
    return result


@SETTINGS
@given(kind=kinds, raw=st.binary(max_size=512))
def test_arbitrary_bytes(kind, raw):
    check(kind, raw)


@SETTINGS
@given(kind=kinds, value=json_values)
def test_arbitrary_json(kind, value):
    check(kind, orjson.dumps(value))


@SETTINGS
@given(case=valid_cases)
def test_valid_documents_parse_and_round_trip(case):
    kind, doc = case
    record = check(kind, orjson.dumps(doc))
    assert not isinstance(record, Rejection), record
    assert parse(kind, encode(record), now=NOW, limits=LIMITS) == record


@SETTINGS
@given(case=valid_cases, data=st.data())
def test_mutated_documents(case, data):
    kind, doc = case
    specs = {spec.name: spec for spec in field_specs(KIND_RECORDS[kind])}
    name = data.draw(st.sampled_from(sorted(specs)))
    mutation = data.draw(st.sampled_from(["delete", "replace", "extra"]))
    if mutation == "delete":
        doc.pop(name, None)
    elif mutation == "replace":
        doc[name] = data.draw(json_values)
    else:
        doc[data.draw(st.text(max_size=10).filter(lambda k: k not in specs))] = data.draw(
            json_values
        )
    result = check(kind, orjson.dumps(doc))
    if mutation == "delete" and specs[name].required:
        assert (result.reason, result.field) == ("missing_field", name)
    if mutation == "extra":
        assert not isinstance(result, Rejection) or result.reason == "too_deep"


@SETTINGS
@given(case=valid_cases, data=st.data())
def test_corrupted_bytes(case, data):
    kind, doc = case
    raw = bytearray(orjson.dumps(doc))
    cut = data.draw(st.integers(0, len(raw)))
    if data.draw(st.booleans()):
        raw = raw[:cut]
    else:
        raw[min(cut, len(raw) - 1)] = data.draw(st.integers(0, 255))
    check(kind, bytes(raw))


@SETTINGS
@given(kind=kinds, depth=st.integers(1, 3000), opener=st.sampled_from([b"[", b'{"k":']))
def test_deep_documents(kind, depth, opener):
    closer = b"]" if opener == b"[" else b"}"
    result = check(kind, opener * depth + b"0" + closer * depth)
    assert isinstance(result, Rejection)
    assert result.reason == ("too_deep" if depth > LIMITS.max_depth else "missing_field") or (
        depth <= LIMITS.max_depth and opener == b"[" and result.reason == "not_an_object"
    )

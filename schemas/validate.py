"""Validation at the edge: producer bytes in, a record or a :class:`Rejection` out.

:func:`parse` runs for every event, so the happy path is a straight walk over the
pre-built field plan: no regex compilation, no exceptions, a few type checks per field.
Every failure is a :class:`Rejection` carrying one of :data:`schemas.REASONS`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from typing import Any

import orjson

from schemas.fields import (
    BOOLEAN,
    ENUM,
    IDENT,
    KNOWN_METRICS,
    METRIC_NAME_PATTERN,
    METRICS,
    NAME,
    NUMBER,
    TEXT,
    TIMESTAMP,
    FieldSpec,
    field_specs,
)
from schemas.limits import Limits
from schemas.records import KIND_RECORDS, KINDS, Record
from schemas.rejection import Rejection
from schemas.timestamps import parse_rfc3339

__all__ = [
    "ENVELOPE_FIELD",
    "Envelope",
    "check_metrics",
    "encode",
    "pack_envelopes",
    "parse",
    "parse_message",
    "validate",
]

_Check = Callable[[FieldSpec, Any, float, Limits], Any]

ENVELOPE_FIELD = "samples"
"""The member of an envelope that holds its records."""

_EMPTY = Rejection("empty_payload", None, "payload is empty")
_METRIC_NAME_RE = re.compile(METRIC_NAME_PATTERN)
_METRIC_BOUNDS = {
    name: (known.minimum, math.inf if known.maximum is None else known.maximum)
    for name, known in KNOWN_METRICS.items()
}
# A string literal, escapes included; removing these leaves only JSON structure.
_STRING_RE = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_BRACES_TO_BRACKETS = bytes.maketrans(b"{}", b"[]")
# What orjson refuses where a number should start: NaN/Infinity literals or digits that
# overflow a double. ``Infinity`` before ``inf`` so the longer literal wins.
_NUMBER_RE = re.compile(
    r"-?(?:(?P<word>(?i:nan|infinity|inf))|[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)"
)
_JSON_TYPES = {
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    dict: "an object",
    list: "an array",
    type(None): "null",
}


def parse(kind: str, raw: bytes | None, *, now: float, limits: Limits) -> Record | Rejection:
    """Validate a payload and build its record, or say why it is refused.

    Never raises for any payload. Unknown extra fields are ignored; ``null`` in an optional
    field means absent. Integers are stored as floats in number fields.

    Parameters
    ----------
    kind
        One of :data:`schemas.KINDS`: ``metrics``, ``errors``, ``interactions``,
        ``remediation_feedback``.
    raw
        The message value as produced; ``None`` (a tombstone) counts as empty.
    now
        Processing time in epoch seconds, the reference for timestamp skew.
    limits
        Bounds to enforce.

    Returns
    -------
    Record | Rejection
        A :class:`schemas.MetricSample`, :class:`schemas.ErrorEvent`,
        :class:`schemas.Interaction` or :class:`schemas.RemediationOutcome`, or a
        :class:`schemas.Rejection`.

    Raises
    ------
    ValueError
        When ``kind`` is not one of :data:`schemas.KINDS` (a programming error).

    Examples
    --------
    >>> limits = Limits()
    >>> raw = b'{"ts": 1700000000, "region": "eu-west-1", "service": "api",'
    >>> raw += b' "metrics": {"cpu_util": 0.5, "rps": 120}}'
    >>> parse("metrics", raw, now=1700000010.0, limits=limits)  # doctest: +NORMALIZE_WHITESPACE
    MetricSample(ts=1700000000.0, region='eu-west-1', service='api',
                 metrics={'cpu_util': 0.5, 'rps': 120.0}, instance=None)
    >>> parse("metrics", b'{"ts": 1700000000}', now=1700000010.0, limits=limits)
    ... # doctest: +NORMALIZE_WHITESPACE
    Rejection(reason='missing_field', field='region',
              detail="required field 'region' is missing or null")
    >>> parse("metrics", b"[]", now=1700000010.0, limits=limits).reason
    'not_an_object'

    """
    plan = _plan(kind)
    if raw is not None and type(raw) is not bytes:
        raw = bytes(raw)
    obj = _decode(raw, limits.max_payload_bytes, limits)
    if type(obj) is Rejection:
        return obj
    return _build(plan, obj, now, limits)


def validate(kind: str, document: Any, *, now: float, limits: Limits) -> Record | Rejection:
    """Like :func:`parse`, for a document already decoded from another format (OTLP).

    Examples
    --------
    >>> doc = {"ts": 1700000000, "region": "eu-west-1", "service": "api", "metrics": {"rps": -1}}
    >>> validate("metrics", doc, now=1700000000.0, limits=Limits()).reason
    'out_of_range'

    """
    return _build(_plan(kind), document, now, limits)


@dataclasses.dataclass(frozen=True, slots=True)
class Envelope:
    """The records of one envelope message, each validated on its own.

    Parameters
    ----------
    records
        In envelope order, a record or the :class:`Rejection` of that record alone.
    documents
        The decoded records, in the same order, kept so that a refused one can be
        dead-lettered on its own (:meth:`payload`).
    """

    records: list[Record | Rejection]
    documents: list[Any]

    def payload(self, index: int) -> bytes:
        """Record ``index`` alone, as compact JSON: what its dead letter keeps.

        The envelope was decoded, so this is the record's JSON re-encoded, equal in value
        to what the producer sent, not necessarily in bytes (spacing, ``1`` read as
        ``1.0`` in a metrics map).
        """
        return orjson.dumps(self.documents[index])


def parse_message(
    kind: str, raw: bytes | None, *, now: float, limits: Limits
) -> Record | Rejection | Envelope:
    """Like :func:`parse`, but a payload may also be an envelope of records.

    An envelope is a JSON object with a ``samples`` array of up to
    ``limits.max_envelope_records`` records (other members are ignored); it may be up to
    ``limits.max_envelope_bytes`` long. Each of its records is validated as :func:`parse`
    validates a single one. An envelope that cannot be read as one (not JSON, too large,
    ``samples`` not a non-empty array, too many records) is a :class:`Rejection` as a whole.

    Examples
    --------
    >>> limits, now = Limits(), 1700000010.0
    >>> raw = b'{"samples": [{"ts": 1700000000, "region": "eu-west-1", "service": "api",'
    >>> raw += b' "metrics": {"rps": 120}}, {"ts": 1700000005, "region": "eu-west-1"}]}'
    >>> envelope = parse_message("metrics", raw, now=now, limits=limits)
    >>> [type(r).__name__ for r in envelope.records]
    ['MetricSample', 'Rejection']
    >>> envelope.records[1].reason, envelope.payload(1)
    ('missing_field', b'{"ts":1700000005,"region":"eu-west-1"}')
    >>> parse_message("metrics", b'{"samples": []}', now=now, limits=limits).reason
    'bad_value'
    >>> parse_message("metrics", b'{"ts": 1700000000}', now=now, limits=limits).reason
    'missing_field'

    """
    plan = _plan(kind)
    if raw is not None and type(raw) is not bytes:
        raw = bytes(raw)
    obj = _decode(raw, limits.max_envelope_bytes, limits)
    if type(obj) is Rejection:
        return obj
    if type(obj) is dict and ENVELOPE_FIELD in obj:
        return _unpack(plan, obj, now, limits)
    # The envelope bound let it through; a single record has the tighter one.
    size = len(raw)  # type: ignore[arg-type]
    if size > limits.max_payload_bytes:
        return _too_large(size, limits.max_payload_bytes)
    return _build(plan, obj, now, limits)


_Plan = tuple[type, tuple[tuple[str, "_Check", FieldSpec], ...], frozenset[str]]


def check_metrics(metrics: dict[str, Any], limits: Limits) -> dict[str, float] | Rejection:
    """The metrics map of a sample, checked as :func:`parse` checks one (names, numbers,
    known ranges, size), or why it is refused; its integers become floats in place.

    Examples
    --------
    >>> check_metrics({"cpu_util": 1, "queue_depth": 3}, Limits())
    {'cpu_util': 1.0, 'queue_depth': 3.0}
    >>> check_metrics({"cpu_util": 1.5}, Limits()).field
    'metrics.cpu_util'

    """
    return _check_metrics(_METRICS_SPEC, metrics, 0.0, limits)


def pack_envelopes(records: list[bytes], limits: Limits) -> list[bytes]:
    """Encoded records (JSON objects) packed, in order, into as few envelopes as
    :func:`parse_message` accepts under ``limits``.

    Examples
    --------
    >>> pack_envelopes([b'{"a":1}', b'{"b":2}', b'{"c":3}'], Limits(max_envelope_records=2))
    [b'{"samples":[{"a":1},{"b":2}]}', b'{"samples":[{"c":3}]}']
    >>> [len(e) for e in pack_envelopes([b'{"a":"xxxxxxxx"}'] * 4, Limits(max_envelope_bytes=50))]
    [47, 47]

    """
    head, tail = b'{"' + ENVELOPE_FIELD.encode() + b'":[', b"]}"
    room = limits.max_envelope_bytes - len(head) - len(tail)
    packed: list[bytes] = []
    batch: list[bytes] = []
    size = 0
    for record in records:
        if batch and (len(batch) >= limits.max_envelope_records or size + len(record) >= room):
            packed.append(head + b",".join(batch) + tail)
            batch, size = [], 0
        batch.append(record)
        size += len(record) + 1
    if batch:
        packed.append(head + b",".join(batch) + tail)
    return packed


def _plan(kind: str) -> _Plan:
    plan = _PLANS.get(kind)
    if plan is None:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    return plan


def _too_large(size: int, bound: int) -> Rejection:
    return Rejection("payload_too_large", None, f"payload has {size} bytes (max {bound})")


def _decode(raw: bytes | None, max_bytes: int, limits: Limits) -> Any:
    """The decoded JSON value of ``raw``, or the :class:`Rejection` of the payload as a whole."""
    if raw is None:
        return _EMPTY
    size = len(raw)
    if size > max_bytes:
        return _too_large(size, max_bytes)
    if size == 0:
        return _EMPTY
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return _decode_rejection(raw, exc, limits.max_depth)


def _unpack(plan: _Plan, obj: dict[str, Any], now: float, limits: Limits) -> Envelope | Rejection:
    samples = obj[ENVELOPE_FIELD]
    if type(samples) is not list:
        return Rejection(
            "wrong_type", ENVELOPE_FIELD, f"samples must be an array, got {_json_type(samples)}"
        )
    if not samples:
        return Rejection("bad_value", ENVELOPE_FIELD, "an envelope holds at least one record")
    if len(samples) > limits.max_envelope_records:
        return Rejection(
            "too_many_entries",
            ENVELOPE_FIELD,
            f"envelope has {len(samples)} records (max {limits.max_envelope_records})",
        )
    if len(obj) > 1:
        for key, value in obj.items():
            if key != ENVELOPE_FIELD and _deeper_than(value, limits.max_depth - 1):
                return _too_deep(limits.max_depth)
    return Envelope([_build(plan, doc, now, limits) for doc in samples], samples)


def _build(plan: _Plan, obj: Any, now: float, limits: Limits) -> Record | Rejection:
    """The record of one decoded document, or why it is refused."""
    max_depth = limits.max_depth
    if type(obj) is not dict:
        if _deeper_than(obj, max_depth):
            return _too_deep(max_depth)
        return Rejection("not_an_object", None, f"top-level value is {_json_type(obj)}")
    cls, checks, names = plan
    values = []
    present = 0
    for name, check, spec in checks:
        value = obj.get(name)
        if value is None:
            if spec.required:
                # Excess nesting is the more fundamental fault, so it is reported first.
                if _deeper_than(obj, max_depth):
                    return _too_deep(max_depth)
                return Rejection(
                    "missing_field", name, f"required field {name!r} is missing or null"
                )
        else:
            present += 1
            value = check(spec, value, now, limits)
            if type(value) is Rejection:
                return _too_deep(max_depth) if _deeper_than(obj, max_depth) else value
        values.append(value)
    # Validated fields are scalars or a flat metrics map, so only other keys can nest deeply
    # and a payload without them skips the walk. orjson stops at depth 1024, which bounds
    # the walk; deeper documents are caught on the decode error path.
    if len(obj) > present:
        for key, value in obj.items():
            if (
                (type(value) is dict or type(value) is list)
                and key not in names
                and _deeper_than(value, max_depth - 1)
            ):
                return _too_deep(max_depth)
    return cls(*values)


def encode(record: Any) -> bytes:
    """Encode a record (or a decision or dead letter) as JSON bytes that :func:`parse` reads.

    Examples
    --------
    >>> from schemas.records import RemediationOutcome
    >>> encode(RemediationOutcome("ab" * 16, 1700000000.0, True))
    b'{"decision_id":"abababababababababababababababab","ts":1700000000.0,"success":true,"notes":null}'

    """
    return orjson.dumps(record.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY)


def _raw_deeper_than(raw: bytes, max_depth: int) -> bool:
    """Whether the brackets of ``raw``, outside strings, nest more than ``max_depth`` levels.

    Each round of deleting adjacent ``[]`` pairs (after mapping braces to brackets) removes
    exactly one level, so ``max_depth`` C-speed rounds answer without a Python loop over
    the bytes. What remains of a truncated document is its unclosed openings.
    """
    skeleton = _STRING_RE.sub(b"", raw).translate(_BRACES_TO_BRACKETS, _NOT_BRACKETS)
    for _ in range(max_depth):
        reduced = skeleton.replace(b"[]", b"")
        if len(reduced) == len(skeleton):
            break
        skeleton = reduced
    return b"[]" in skeleton or skeleton.count(b"[") > max_depth


def _deeper_than(value: Any, max_depth: int) -> bool:
    """Whether objects and arrays in ``value`` nest more than ``max_depth`` levels.

    ``value`` itself is level 1 when it is an object or an array.
    """
    if type(value) is not dict and type(value) is not list:
        return False
    stack = [(value, 1)]
    while stack:
        container, depth = stack.pop()
        if depth > max_depth:
            return True
        for child in container.values() if type(container) is dict else container:
            if type(child) is dict or type(child) is list:
                stack.append((child, depth + 1))
    return False


def _too_deep(max_depth: int) -> Rejection:
    return Rejection("too_deep", None, f"objects and arrays nest deeper than {max_depth}")


def _decode_rejection(raw: bytes, exc: orjson.JSONDecodeError, max_depth: int) -> Rejection:
    """Classify a payload orjson refused; only runs on the error path."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return Rejection(
            "invalid_utf8", None, f"payload is not valid UTF-8 (bad byte at offset {err.start})"
        )
    # orjson refuses documents deeper than 1024 as generic invalid JSON. Counting brackets
    # is a fast C scan; only payloads with more brackets than the bound pay for the exact
    # measure, which ignores brackets inside strings.
    if raw.count(b"{") + raw.count(b"[") > max_depth and _raw_deeper_than(raw, max_depth):
        return _too_deep(max_depth)
    if not text.strip(" \t\r\n"):
        return _EMPTY
    # orjson reports ``-Infinity`` one character after the sign.
    pos = exc.pos
    if 0 < pos <= len(text) and text[pos - 1] == "-":
        pos -= 1
    number = _NUMBER_RE.match(text, pos)
    if number is not None and (number["word"] or math.isinf(float(number[0]))):
        return Rejection(
            "not_finite",
            None,
            f"a number at character {pos} is NaN, infinite or beyond the double range",
        )
    # orjson's messages are fixed phrases (e.g. "unexpected end of data"), never payload text.
    return Rejection("invalid_json", None, f"payload is not JSON: {exc.msg} at character {pos}")


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), "an unsupported value")


def _wrong_type(spec: FieldSpec, value: Any, expected: str) -> Rejection:
    return Rejection(
        "wrong_type", spec.name, f"{spec.name} must be {expected}, got {_json_type(value)}"
    )


def _too_long(spec: FieldSpec, length: int, bound: int) -> Rejection:
    return Rejection("too_long", spec.name, f"{spec.name} has {length} characters (max {bound})")


def _check_timestamp(spec: FieldSpec, value: Any, now: float, limits: Limits) -> Any:
    kind = type(value)
    if kind is float or kind is int:
        ts = float(value)
    elif kind is str:
        if len(value) > limits.max_string_len:
            return _too_long(spec, len(value), limits.max_string_len)
        parsed = parse_rfc3339(value)
        if parsed is None:
            return Rejection(
                "bad_timestamp",
                spec.name,
                f"{spec.name} is not an RFC 3339 date-time with offset, e.g. 2024-05-01T12:00:00Z",
            )
        ts = parsed
    else:
        return _wrong_type(spec, value, "epoch seconds or an RFC 3339 string")
    if now - ts > limits.max_past_s:
        return Rejection(
            "timestamp_skew",
            spec.name,
            f"{spec.name} is {now - ts:.0f} s before processing time "
            f"(max {limits.max_past_s:.0f} s; epoch seconds expected)",
        )
    if ts - now > limits.max_future_s:
        return Rejection(
            "timestamp_skew",
            spec.name,
            f"{spec.name} is {ts - now:.0f} s after processing time "
            f"(max {limits.max_future_s:.0f} s; epoch seconds expected)",
        )
    return ts


def _check_name(spec: FieldSpec, value: Any, now: float, limits: Limits) -> Any:
    if type(value) is not str:
        return _wrong_type(spec, value, "a string")
    if len(value) > limits.max_string_len:
        return _too_long(spec, len(value), limits.max_string_len)
    if limits.name_re.fullmatch(value) is None:
        return Rejection("bad_name", spec.name, f"{spec.name} does not match {limits.name_pattern}")
    return value


def _check_ident(spec: FieldSpec, value: Any, now: float, limits: Limits) -> Any:
    if type(value) is not str:
        return _wrong_type(spec, value, "a string")
    if not value:
        return Rejection("bad_value", spec.name, f"{spec.name} must not be empty")
    if len(value) > limits.max_string_len:
        return _too_long(spec, len(value), limits.max_string_len)
    if spec.pattern_re is not None and spec.pattern_re.fullmatch(value) is None:
        return Rejection("bad_value", spec.name, f"{spec.name} does not match {spec.pattern}")
    return value


def _check_text(spec: FieldSpec, value: Any, now: float, limits: Limits) -> Any:
    if type(value) is not str:
        return _wrong_type(spec, value, "a string")
    if len(value) > limits.max_text_len:
        return _too_long(spec, len(value), limits.max_text_len)
    return value


def _check_number(spec: FieldSpec, value: Any, now: float, limits: Limits) -> Any:
    # orjson never yields NaN or infinities (it refuses them while decoding), so a decoded
    # float is finite; booleans are refused because ``type(True) is bool``, not ``int``.
    kind = type(value)
    if kind is int:
        value = float(value)
    elif kind is not float:
        return _wrong_type(spec, value, "a number")
    if (spec.minimum is not None and value < spec.minimum) or (
        spec.maximum is not None and value > spec.maximum
    ):
        return Rejection(
            "out_of_range",
            spec.name,
            f"{spec.name} must be in {_interval(spec.minimum, spec.maximum)}",
        )
    return value


def _check_boolean(spec: FieldSpec, value: Any, now: float, limits: Limits) -> Any:
    if type(value) is not bool:
        return _wrong_type(spec, value, "true or false")
    return value


def _check_enum(spec: FieldSpec, value: Any, now: float, limits: Limits) -> Any:
    if type(value) is not str:
        return _wrong_type(spec, value, "a string")
    if value not in spec.choices:
        return Rejection(
            "bad_value", spec.name, f"{spec.name} must be one of {', '.join(spec.choices)}"
        )
    return value


def _check_metrics(spec: FieldSpec, value: Any, now: float, limits: Limits) -> Any:
    if type(value) is not dict:
        return _wrong_type(spec, value, "an object")
    if len(value) > limits.max_metrics:
        return Rejection(
            "too_many_entries",
            spec.name,
            f"{spec.name} has {len(value)} entries (max {limits.max_metrics})",
        )
    # The decoded dict is ours alone, so integers are converted in place instead of copying
    # every entry into a new dict; replacing values of existing keys while iterating is safe.
    for name, number in value.items():
        kind = type(number)
        if kind is int:
            value[name] = number = float(number)
        elif kind is not float:
            return _metric_problem(spec, value, name)
        bounds = _METRIC_BOUNDS.get(name)
        if bounds is None:
            if _METRIC_NAME_RE.fullmatch(name) is None:
                return _metric_problem(spec, value, name)
        elif not bounds[0] <= number <= bounds[1]:
            known = KNOWN_METRICS[name]
            return Rejection(
                "out_of_range",
                f"{spec.name}.{name}",
                f"{spec.name}.{name} must be in {_interval(known.minimum, known.maximum)}",
            )
    return value


def _metric_problem(spec: FieldSpec, metrics: dict[str, Any], name: str) -> Rejection:
    """Explain a badly named or non-numeric metric entry; only runs on the error path."""
    got = _json_type(metrics[name])
    if name in KNOWN_METRICS:
        where = f"{spec.name}.{name}"
        return Rejection("wrong_type", where, f"{where} must be a number, got {got}")
    # Custom metric names are payload content, so the entry is located by position instead.
    entry = f"entry #{list(metrics).index(name)} of {spec.name}"
    if _METRIC_NAME_RE.fullmatch(name) is None:
        return Rejection(
            "bad_name", spec.name, f"the name of {entry} does not match {METRIC_NAME_PATTERN}"
        )
    return Rejection("wrong_type", spec.name, f"{entry} must be a number, got {got}")


def _interval(minimum: float | None, maximum: float | None) -> str:
    low = "-inf" if minimum is None else f"{minimum:g}"
    if maximum is None:
        return f"[{low}, +inf)"
    return f"[{low}, {maximum:g}]"


_CHECKS: dict[str, _Check] = {
    TIMESTAMP: _check_timestamp,
    NAME: _check_name,
    IDENT: _check_ident,
    TEXT: _check_text,
    NUMBER: _check_number,
    BOOLEAN: _check_boolean,
    ENUM: _check_enum,
    METRICS: _check_metrics,
}

_PLANS: dict[str, _Plan] = {
    kind: (
        cls,
        tuple((spec.name, _CHECKS[spec.kind], spec) for spec in field_specs(cls)),
        frozenset(spec.name for spec in field_specs(cls)),
    )
    for kind, cls in KIND_RECORDS.items()
}
_METRICS_SPEC = next(spec for spec in field_specs(KIND_RECORDS["metrics"]) if spec.kind == METRICS)

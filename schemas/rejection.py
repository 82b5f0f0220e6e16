"""Why a payload was refused: a closed set of reason codes and the rejection record."""

from __future__ import annotations

import dataclasses

__all__ = ["REASONS", "Rejection"]

REASONS: tuple[str, ...] = (
    "payload_too_large",
    "empty_payload",
    "invalid_utf8",
    "invalid_json",
    "too_deep",
    "not_an_object",
    "missing_field",
    "wrong_type",
    "not_finite",
    "out_of_range",
    "timestamp_skew",
    "bad_timestamp",
    "too_long",
    "too_many_entries",
    "bad_name",
    "bad_value",
    "invalid_otlp",
)
"""Every reason code :func:`schemas.parse` (and :mod:`schemas.otlp`'s readers) can return.

The set is closed and small because the worker uses the codes as Prometheus label values.

- ``payload_too_large``: more bytes than ``Limits.max_payload_bytes`` (checked before decoding).
- ``empty_payload``: no bytes, only whitespace, or a null (tombstone) message.
- ``invalid_utf8``: the bytes are not UTF-8.
- ``invalid_json``: not a JSON document (truncated, trailing garbage, byte order mark, ...).
- ``too_deep``: objects and arrays nested deeper than ``Limits.max_depth``.
- ``not_an_object``: the top-level value is not a JSON object.
- ``missing_field``: a required field is absent or null.
- ``wrong_type``: e.g. a string or a boolean where a number belongs.
- ``not_finite``: NaN, Infinity or a number beyond the double range such as ``1e400``.
- ``out_of_range``: e.g. a fraction outside [0, 1] or a negative count.
- ``timestamp_skew``: a timestamp too far in the past or the future of the processing time.
- ``bad_timestamp``: a timestamp string that is not RFC 3339.
- ``too_long``: a string longer than its bound.
- ``too_many_entries``: a map with more entries than its bound.
- ``bad_name``: a region, service or metric name that does not match its pattern.
- ``bad_value``: a value outside an enumeration, an empty identifier, or a malformed id.
- ``invalid_otlp``: not an OTLP export request in the topic's encoding (truncated protobuf,
  JSON where protobuf is expected, ...): :mod:`schemas.otlp`.
"""


@dataclasses.dataclass(frozen=True, slots=True)
class Rejection:
    """A refused payload: what was wrong, where, and a human-readable explanation.

    ``detail`` describes the problem without ever quoting the payload, so it is safe to log
    and to publish to the dead-letter topic.

    Parameters
    ----------
    reason
        One of :data:`REASONS`.
    field
        Which field was wrong (``metrics.cpu_util`` for a known metric), or ``None`` when the
        payload as a whole was refused.
    detail
        What was wrong, for humans.

    Examples
    --------
    >>> r = Rejection("missing_field", "service", "required field 'service' is missing")
    >>> r.reason in REASONS
    True
    >>> r.to_dict()["field"]
    'service'

    """

    reason: str
    field: str | None
    detail: str

    def to_dict(self) -> dict[str, str | None]:
        """Return the rejection as a JSON-encodable dict."""
        return {"reason": self.reason, "field": self.field, "detail": self.detail}

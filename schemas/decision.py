"""The decision envelope shared by every ``decisions.*`` topic, and its deterministic id."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Mapping
from typing import Any

import orjson

from schemas import topics
from schemas.fields import (
    DECISION_ID_PATTERN,
    ENUM,
    EPOCH,
    IDENT,
    NUMBER,
    OBJECT,
    SUBJECT,
    SUBJECT_KEYS,
    TEXT,
    field_specs,
    spec,
)
from schemas.records import record_to_dict

__all__ = [
    "DECISION_KINDS",
    "DECISION_TOPICS",
    "KIND_TOPICS",
    "MODES",
    "Decision",
    "decision_id_for",
]

KIND_TOPICS: dict[str, str] = {
    "scaling": topics.SCALING,
    "scheduled_scaling": topics.SCALING,
    "rightsize": topics.SCALING,
    "budget": topics.SCALING,
    "failover": topics.FAILOVER,
    "failback": topics.FAILOVER,
    "failover_blocked": topics.FAILOVER,
    "remediation": topics.REMEDIATION,
    "anomaly": topics.REMEDIATION,
    "slo_burn": topics.REMEDIATION,
    "risk": topics.REMEDIATION,
}
"""Each decision kind and the (unprefixed) topic it is published to."""
DECISION_TOPICS: dict[str, str] = dict(KIND_TOPICS)
"""Output topic of each decision kind, e.g. ``decisions.scaling``."""
DECISION_KINDS = tuple(KIND_TOPICS)
"""Decision kinds, a closed set: the worker uses them as Prometheus label values."""
MODES = ("auto", "recommend")
"""``auto``: the action is applied; ``recommend``: a human is asked to apply it."""

_ID_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def decision_id_for(
    kind: str,
    subject: Mapping[str, Any],
    action: str,
    params: Mapping[str, Any],
    basis: Any,
) -> str:
    """Return a deterministic 32-hex-digit id for a decision.

    The id is a BLAKE2b digest of the canonical JSON (sorted keys) of the arguments, so a
    replay of the same input yields the same id and consumers can deduplicate.

    Parameters
    ----------
    kind, subject, action, params
        As in :class:`Decision`.
    basis
        Whatever identifies the triggering input, e.g. ``[event_ts, key]``; must be
        JSON-encodable.

    Examples
    --------
    >>> a = decision_id_for("scaling", {"service": "api"}, "scale_out", {"to": 3}, [1.0, "k"])
    >>> b = decision_id_for("scaling", {"service": "api"}, "scale_out", {"to": 3}, [1.0, "k"])
    >>> a == b, len(a)
    (True, 32)
    >>> a == decision_id_for("scaling", {"service": "api"}, "scale_out", {"to": 4}, [1.0, "k"])
    False

    """
    canonical = orjson.dumps([kind, subject, action, params, basis], option=_ID_OPTIONS)
    return hashlib.blake2b(canonical, digest_size=16).hexdigest()


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    """An explained decision: what to do, to what, how sure, and why.

    Construction checks the invariants consumers rely on and raises :class:`ValueError`
    when ``kind``, ``mode``, ``subject`` or ``confidence`` is invalid.

    Examples
    --------
    >>> subject = {"service": "api", "region": "eu-west-1"}
    >>> params = {"replicas": 4}
    >>> d = Decision(
    ...     decision_id=decision_id_for("scaling", subject, "scale_out", params, [1.0, "api"]),
    ...     kind="scaling",
    ...     ts=1700000000.0,
    ...     subject=subject,
    ...     action="scale_out",
    ...     params=params,
    ...     mode="recommend",
    ...     confidence=0.9,
    ...     reason="p99 latency is forecast to breach the SLO within 10 minutes.",
    ...     evidence={"forecast_p99_ms": 480.0, "slo_ms": 400.0},
    ...     model_version="snarimax-1",
    ... )
    >>> d.topic
    'decisions.scaling'
    >>> Decision.from_bytes(d.to_bytes()) == d
    True

    """

    decision_id: str = dataclasses.field(
        metadata=spec(
            IDENT, "Deterministic id from the decision inputs.", pattern=DECISION_ID_PATTERN
        )
    )
    kind: str = dataclasses.field(
        metadata=spec(ENUM, "Decision kind; selects the topic.", choices=DECISION_KINDS)
    )
    ts: float = dataclasses.field(
        metadata=spec(EPOCH, "When the decision was made, epoch seconds.")
    )
    subject: dict[str, str] = dataclasses.field(
        metadata=spec(SUBJECT, "What the decision is about.")
    )
    action: str = dataclasses.field(metadata=spec(IDENT, "What to do, e.g. scale_out."))
    params: dict[str, Any] = dataclasses.field(metadata=spec(OBJECT, "Parameters of the action."))
    mode: str = dataclasses.field(
        metadata=spec(ENUM, "Applied automatically or recommended to a human.", choices=MODES)
    )
    confidence: float = dataclasses.field(
        metadata=spec(NUMBER, "Confidence in the decision.", minimum=0.0, maximum=1.0)
    )
    reason: str = dataclasses.field(
        metadata=spec(TEXT, "One human sentence explaining the decision.")
    )
    evidence: dict[str, Any] = dataclasses.field(
        metadata=spec(OBJECT, "Inputs, scores and thresholds behind it.")
    )
    model_version: str = dataclasses.field(
        metadata=spec(IDENT, "Version of the model or policy that decided.")
    )

    def __post_init__(self) -> None:
        if self.kind not in DECISION_KINDS:
            raise ValueError(f"kind must be one of {', '.join(DECISION_KINDS)}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        if not (math.isfinite(self.confidence) and 0.0 <= self.confidence <= 1.0):
            raise ValueError("confidence must be a number in [0, 1]")
        if not set(self.subject) <= set(SUBJECT_KEYS):
            raise ValueError(f"subject keys must be among {', '.join(SUBJECT_KEYS)}")

    @property
    def topic(self) -> str:
        """The (unprefixed) topic this decision is published to."""
        return KIND_TOPICS[self.kind]

    def to_dict(self) -> dict[str, Any]:
        """Return the decision as a JSON-encodable dict."""
        return record_to_dict(self)

    def to_bytes(self) -> bytes:
        """Encode the decision as JSON (numpy scalars in ``evidence`` are accepted)."""
        return orjson.dumps(self.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY)

    @classmethod
    def from_bytes(cls, data: bytes) -> Decision:
        """Decode a decision written by :meth:`to_bytes`; for tests and tools.

        Raises
        ------
        ValueError
            When ``data`` is not a decision.

        """
        obj = orjson.loads(data)
        if type(obj) is not dict:
            raise ValueError("a decision is a JSON object")
        try:
            return cls(**{f.name: obj[f.name] for f in field_specs(cls)})
        except KeyError as exc:
            raise ValueError(f"decision lacks field {exc.args[0]!r}") from None

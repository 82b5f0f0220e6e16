"""A human's verdict on a ``recommend`` decision (topic ``decisions.approvals``).

An approval is keyed like the decision it judges (``service/region``, or the region): it
then lands on the partition numbered like the decision's, which the worker holding that
decision also consumes (Faust assigns co-subscribed topics of equal partition count
together), so the verdict reaches the actuator that keeps the recommendation.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, ClassVar

import orjson

from schemas import topics
from schemas.fields import DECISION_ID_PATTERN, ENUM, EPOCH, IDENT, TEXT, spec
from schemas.records import record_to_dict

__all__ = ["APPROVER_PATTERN", "MAX_REASON_CHARS", "VERDICTS", "Approval"]

VERDICTS = ("approve", "reject")
"""What a human may say of a recommendation."""
APPROVER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$"
"""Who approved: an operator's account name, not free text (it is written to the audit)."""
MAX_REASON_CHARS = 500
"""Longer reasons are refused: the audit keeps a sentence, not an essay."""

_DECISION_ID = re.compile(DECISION_ID_PATTERN)
_APPROVER = re.compile(APPROVER_PATTERN)


@dataclasses.dataclass(frozen=True, slots=True)
class Approval:
    """Approve or reject one recommendation, by whom and why.

    Construction checks every field and raises :class:`ValueError` naming the first bad one.

    Examples
    --------
    >>> a = Approval("0" * 32, "approve", "alice", "Runbook says so.", 1700000000.0)
    >>> Approval.from_bytes(a.to_bytes()) == a
    True
    >>> Approval("0" * 32, "maybe", "alice", "", 1.0)
    Traceback (most recent call last):
    ...
    ValueError: verdict must be one of approve, reject
    """

    TOPIC: ClassVar[str] = topics.APPROVALS

    decision_id: str = dataclasses.field(
        metadata=spec(IDENT, "Id of the recommendation judged.", pattern=DECISION_ID_PATTERN)
    )
    verdict: str = dataclasses.field(
        metadata=spec(ENUM, "Apply the recommendation, or never apply it.", choices=VERDICTS)
    )
    by: str = dataclasses.field(
        metadata=spec(IDENT, "Account name of who judged it.", pattern=APPROVER_PATTERN)
    )
    reason: str = dataclasses.field(metadata=spec(TEXT, "Why, in the approver's words."))
    ts: float = dataclasses.field(metadata=spec(EPOCH, "When it was judged, epoch seconds."))

    def __post_init__(self) -> None:
        if not isinstance(self.decision_id, str) or not _DECISION_ID.fullmatch(self.decision_id):
            raise ValueError("decision_id must be 32 hexadecimal digits")
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}")
        if not isinstance(self.by, str) or not _APPROVER.fullmatch(self.by):
            raise ValueError("by must be an account name (letters, digits, . _ @ -)")
        if not isinstance(self.reason, str) or len(self.reason) > MAX_REASON_CHARS:
            raise ValueError(f"reason must be a string of at most {MAX_REASON_CHARS} characters")
        if isinstance(self.ts, bool) or not isinstance(self.ts, int | float):
            raise ValueError("ts must be a number")
        if not math.isfinite(self.ts):
            raise ValueError("ts must be finite")

    def to_dict(self) -> dict[str, Any]:
        """The approval as a JSON-encodable dict."""
        return record_to_dict(self)

    def to_bytes(self) -> bytes:
        """The approval as JSON."""
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_bytes(cls, data: bytes) -> Approval:
        """Decode an approval; unknown fields are ignored.

        Raises
        ------
        ValueError
            When ``data`` is not an approval, naming what is wrong.
        """
        obj = orjson.loads(data)
        if type(obj) is not dict:
            raise ValueError("an approval is a JSON object")
        try:
            return cls(**{f.name: obj[f.name] for f in dataclasses.fields(cls)})
        except KeyError as exc:
            raise ValueError(f"approval lacks field {exc.args[0]!r}") from None

"""Field-level classification of the free text in telemetry records, redacted on the way in.

Producers write free text in a few fields: an error's ``message`` and ``stack``, a user's
``feedback_text``, an operator's remediation ``notes``. :class:`FieldScrubber` runs the
:class:`~models.text.redact.Redactor` over each of those fields of a record and returns the
record with every one redacted, and what it found per class
(:data:`~models.text.redact.PII_CLASSES`). The worker's edge calls it on every valid record
before any agent sees it, so no brain, table, decision or log line can hold the raw text.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from models.text.redact import Redactor
from schemas import ErrorEvent, Interaction, RemediationOutcome

__all__ = ["FREE_TEXT_FIELDS", "FieldScrubber"]

FREE_TEXT_FIELDS: dict[type, tuple[str, ...]] = {
    ErrorEvent: ("message", "stack"),
    Interaction: ("feedback_text",),
    RemediationOutcome: ("notes",),
}
"""The free-text fields of each record class; the others are identifiers, numbers and
names from closed sets, checked by :mod:`schemas`."""

R = TypeVar("R")


class FieldScrubber:
    """Redact the free-text fields of records and count what was found per class.

    Examples
    --------
    >>> e = ErrorEvent(ts=1.0, region="eu", service="api", severity="error",
    ...                error_type="LoginError", message="no user bo@example.com",
    ...                stack="at login (10.0.0.7)")
    >>> clean, counts = FieldScrubber().scrub(e)
    >>> clean.message, clean.stack, counts
    ('no user <EMAIL>', 'at login (<IP>)', {'email': 1, 'ip': 1})
    >>> FieldScrubber().scrub(clean)[1]
    {}
    """

    def __init__(self, redactor: Redactor | None = None) -> None:
        self.redactor = Redactor() if redactor is None else redactor

    def scrub(self, record: R) -> tuple[R, dict[str, int]]:
        """``record`` with its free-text fields redacted, and the counts per class."""
        fields = FREE_TEXT_FIELDS.get(type(record), ())
        counts: dict[str, int] = {}
        changes: dict[str, Any] = {}
        for name in fields:
            text = getattr(record, name)
            if not text:
                continue
            scan = self.redactor.scan(text)
            if scan.counts:
                changes[name] = scan.text
                for cls, n in scan.counts.items():
                    counts[cls] = counts.get(cls, 0) + n
        return (dataclasses.replace(record, **changes) if changes else record), counts  # type: ignore[type-var]

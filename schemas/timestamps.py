"""RFC 3339 timestamps on the wire, float epoch seconds in code."""

from __future__ import annotations

import datetime as dt
import re

__all__ = ["RFC3339_PATTERN", "parse_rfc3339"]

RFC3339_PATTERN = (
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
"""RFC 3339 ``date-time``: date, time, optional fraction and a mandatory offset."""

_RFC3339_RE = re.compile(RFC3339_PATTERN)
_UTC = dt.UTC


def parse_rfc3339(text: str) -> float | None:
    """Return the epoch seconds of an RFC 3339 date-time, or ``None`` when it is not one.

    Timestamps without an offset are refused because their instant is ambiguous. A leap
    second (``:60``) is read as the first instant of the next minute.

    Examples
    --------
    >>> parse_rfc3339("2023-11-14T22:13:20Z")
    1700000000.0
    >>> parse_rfc3339("2023-11-14T23:13:20.25+01:00")
    1700000000.25
    >>> parse_rfc3339("2023-11-14T22:13:20") is None
    True
    >>> parse_rfc3339("2023-02-30T00:00:00Z") is None
    True

    """
    match = _RFC3339_RE.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    sec = int(second)
    leap = sec == 60
    try:
        epoch = dt.datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            59 if leap else sec,
            tzinfo=_UTC,
        ).timestamp()
    except (ValueError, OverflowError):
        return None
    if offset not in ("Z", "z"):
        off_hours, off_minutes = int(offset[1:3]), int(offset[4:6])
        if off_hours > 23 or off_minutes > 59:
            return None
        shift = off_hours * 3600 + off_minutes * 60
        epoch += -shift if offset[0] == "+" else shift
    return epoch + (1 if leap else 0) + (float(fraction) if fraction else 0.0)

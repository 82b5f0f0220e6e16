"""Parameter types the commands share."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

__all__ = ["TIMESTAMP", "Timestamp"]


class Timestamp(click.ParamType):
    """A moment given as epoch seconds or as an ISO 8601 time, UTC unless it says otherwise.

    >>> TIMESTAMP.convert("1700000000", None, None)
    1700000000.0
    >>> TIMESTAMP.convert("2023-11-14T22:13:20Z", None, None)
    1700000000.0
    >>> TIMESTAMP.convert("2023-11-14 23:13:20+01:00", None, None)
    1700000000.0
    >>> TIMESTAMP.convert("2023-11-14T22:13:20", None, None)
    1700000000.0
    """

    name = "timestamp"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None):
        try:
            return float(value)
        except ValueError:
            pass
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            self.fail(f"{value!r} is neither epoch seconds nor an ISO 8601 time", param, ctx)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()


TIMESTAMP = Timestamp()

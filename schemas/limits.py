"""Bounds applied to every payload at the edge of the system."""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping

__all__ = ["Limits"]

_DEFAULT_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    """Bounds for payloads, strings, maps, nesting and clock skew.

    One instance is built at start-up and passed to every :func:`schemas.parse` call; the
    name pattern is compiled once here so that validation never compiles a regex per event.

    Parameters
    ----------
    max_payload_bytes
        Largest accepted payload of a single record, checked before decoding.
    max_envelope_bytes
        Largest accepted envelope (``{"samples": [...]}``), checked before decoding; the
        broker's default largest message.
    max_envelope_records
        Most records accepted in one envelope.
    max_depth
        Deepest accepted nesting of objects and arrays (the top-level object is depth 1),
        at most 1024 because orjson refuses deeper documents anyway.
    max_string_len
        Longest accepted identifier-like string (names, ids, types), in characters.
    max_text_len
        Longest accepted free text (message, stack, feedback, notes), in characters.
    max_metrics
        Most entries accepted in a metrics map.
    max_past_s
        How far in the past of ``now`` a timestamp may be, in seconds.
    max_future_s
        How far in the future of ``now`` a timestamp may be, in seconds.
    name_pattern
        Regular expression that region and service names must match in full.

    Examples
    --------
    >>> limits = Limits(max_metrics=16)
    >>> limits.max_metrics, limits.max_payload_bytes, limits.max_envelope_records
    (16, 262144, 2000)
    >>> bool(limits.name_re.fullmatch("eu-west-1"))
    True
    >>> Limits.from_env({"AUTOPILOT_MAX_PAST_S": "3600"}).max_past_s
    3600.0
    >>> Limits.from_env({"AUTOPILOT_MAX_METRICS": "many"})
    Traceback (most recent call last):
    ...
    ValueError: AUTOPILOT_MAX_METRICS must be a positive integer, got 'many'

    """

    max_payload_bytes: int = 256 * 1024
    max_envelope_bytes: int = 1024 * 1024
    max_envelope_records: int = 2000
    max_depth: int = 8
    max_string_len: int = 1024
    max_text_len: int = 8192
    max_metrics: int = 256
    max_past_s: float = 86_400.0
    max_future_s: float = 300.0
    name_pattern: str = _DEFAULT_NAME_PATTERN
    name_re: re.Pattern[str] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in (
            "max_payload_bytes",
            "max_envelope_bytes",
            "max_envelope_records",
            "max_depth",
            "max_string_len",
            "max_text_len",
        ):
            _require_positive_int(name, getattr(self, name))
        _require_positive_int("max_metrics", self.max_metrics)
        if self.max_depth > 1024:
            raise ValueError(f"max_depth must be at most 1024, got {self.max_depth}")
        for name in ("max_past_s", "max_future_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        # Frozen dataclasses forbid normal assignment; the compiled pattern is derived state.
        object.__setattr__(self, "name_re", re.compile(self.name_pattern))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Limits:
        """Build limits from ``AUTOPILOT_*`` variables, defaulting whatever is unset.

        Reads ``AUTOPILOT_MAX_PAYLOAD_BYTES``, ``AUTOPILOT_MAX_ENVELOPE_BYTES``,
        ``AUTOPILOT_MAX_ENVELOPE_RECORDS``, ``AUTOPILOT_MAX_PAST_S``,
        ``AUTOPILOT_MAX_FUTURE_S``, ``AUTOPILOT_NAME_PATTERN`` and ``AUTOPILOT_MAX_METRICS``.

        Raises
        ------
        ValueError
            Naming the variable when a value is not usable.

        """
        env = os.environ if environ is None else environ
        kwargs: dict[str, object] = {}
        for var, name in (
            ("AUTOPILOT_MAX_PAYLOAD_BYTES", "max_payload_bytes"),
            ("AUTOPILOT_MAX_ENVELOPE_BYTES", "max_envelope_bytes"),
            ("AUTOPILOT_MAX_ENVELOPE_RECORDS", "max_envelope_records"),
            ("AUTOPILOT_MAX_METRICS", "max_metrics"),
        ):
            if (text := env.get(var)) is not None:
                try:
                    value = int(text.strip())
                except ValueError:
                    value = 0
                if value <= 0:
                    raise ValueError(f"{var} must be a positive integer, got {text!r}")
                kwargs[name] = value
        for var, name in (
            ("AUTOPILOT_MAX_PAST_S", "max_past_s"),
            ("AUTOPILOT_MAX_FUTURE_S", "max_future_s"),
        ):
            if (text := env.get(var)) is not None:
                try:
                    seconds = float(text.strip())
                except ValueError:
                    seconds = math.nan
                if not (math.isfinite(seconds) and seconds >= 0):
                    raise ValueError(f"{var} must be a number of seconds >= 0, got {text!r}")
                kwargs[name] = seconds
        if (pattern := env.get("AUTOPILOT_NAME_PATTERN")) is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"AUTOPILOT_NAME_PATTERN is not a valid regular expression: {exc}"
                ) from None
            kwargs["name_pattern"] = pattern
        return cls(**kwargs)  # type: ignore[arg-type]


def _require_positive_int(name: str, value: object) -> None:
    if type(value) is not int or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")

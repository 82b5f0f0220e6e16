"""Dead letters: refused payloads kept byte for byte with the reason they were refused."""

from __future__ import annotations

import base64
import dataclasses
from typing import Any, ClassVar

import orjson

from schemas import topics
from schemas.fields import BASE64, CODE_PATTERN, EPOCH, IDENT, INTEGER, TEXT, field_specs, spec
from schemas.records import record_to_dict
from schemas.rejection import Rejection

__all__ = ["DeadLetter"]


@dataclasses.dataclass(frozen=True, slots=True)
class DeadLetter:
    """A payload that could not be used, with where it came from and why it was refused.

    ``detail`` never quotes the payload; the payload itself is only in ``payload_b64``, so
    dead letters can be counted and triaged without exposing what they contain. A record
    refused inside an envelope is dead-lettered alone: ``offset`` is the envelope's,
    ``envelope_index`` its place in it, and the payload that record's JSON.

    Examples
    --------
    >>> raw = b'{"ts": "yesterday"'
    >>> dl = DeadLetter.from_rejection(
    ...     Rejection("invalid_json", None, "unexpected end of data"),
    ...     source_topic="telemetry.metrics", partition=0, offset=42, raw=raw, ts=1.0,
    ... )
    >>> back = DeadLetter.from_bytes(dl.to_bytes())
    >>> back == dl, back.payload() == raw, back.payload_size
    (True, True, 18)

    """

    TOPIC: ClassVar[str] = topics.DLQ

    source_topic: str = dataclasses.field(metadata=spec(IDENT, "Topic the payload was read from."))
    partition: int = dataclasses.field(
        metadata=spec(INTEGER, "Partition the payload was read from.", minimum=0)
    )
    offset: int = dataclasses.field(
        metadata=spec(INTEGER, "Offset of the payload in its partition.", minimum=0)
    )
    payload_b64: str = dataclasses.field(
        metadata=spec(BASE64, "The payload bytes, base64; a prefix when shorter than payload_size.")
    )
    payload_size: int = dataclasses.field(
        metadata=spec(INTEGER, "Size of the original payload in bytes.", minimum=0)
    )
    reason: str = dataclasses.field(
        metadata=spec(
            IDENT, "Machine-readable reason code, e.g. invalid_json.", pattern=CODE_PATTERN
        )
    )
    field: str | None = dataclasses.field(
        metadata=spec(IDENT, "Field at fault, or null.", nullable=True)
    )
    detail: str = dataclasses.field(
        metadata=spec(TEXT, "What was wrong, for humans; never quotes the payload.")
    )
    ts: float = dataclasses.field(
        metadata=spec(EPOCH, "When the payload was dead-lettered, epoch seconds.")
    )
    envelope_index: int | None = dataclasses.field(
        default=None,
        metadata=spec(
            INTEGER,
            "Index of the refused record in its envelope (the message at offset), or null"
            " when the message as a whole was refused.",
            minimum=0,
        ),
    )

    @classmethod
    def from_rejection(
        cls,
        rejection: Rejection,
        *,
        source_topic: str,
        partition: int,
        offset: int,
        raw: bytes | None,
        ts: float,
        keep_bytes: int | None = None,
        envelope_index: int | None = None,
    ) -> DeadLetter:
        """Build the dead letter of a refused payload.

        Parameters
        ----------
        keep_bytes
            Keep only this many leading bytes of the payload, so that dead letters of
            oversized payloads fit the dead-letter topic; ``payload_size`` stays the
            original size. ``None`` keeps the exact payload.
        envelope_index
            Where the refused record sits in its envelope, for a record refused alone.

        """
        data = raw or b""
        kept = data if keep_bytes is None else data[:keep_bytes]
        return cls(
            source_topic=source_topic,
            partition=partition,
            offset=offset,
            payload_b64=base64.b64encode(kept).decode("ascii"),
            payload_size=len(data),
            reason=rejection.reason,
            field=rejection.field,
            detail=rejection.detail,
            ts=ts,
            envelope_index=envelope_index,
        )

    def payload(self) -> bytes:
        """Return the kept payload bytes."""
        return base64.b64decode(self.payload_b64, validate=True)

    def to_dict(self) -> dict[str, Any]:
        """Return the dead letter as a JSON-encodable dict."""
        return record_to_dict(self)

    def to_bytes(self) -> bytes:
        """Encode the dead letter as JSON."""
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_bytes(cls, data: bytes) -> DeadLetter:
        """Decode a dead letter written by :meth:`to_bytes`; for tests and tools.

        Optional fields may be absent (dead letters written before they existed).

        Raises
        ------
        ValueError
            When ``data`` is not a dead letter.

        """
        obj = orjson.loads(data)
        if type(obj) is not dict:
            raise ValueError("a dead letter is a JSON object")
        try:
            return cls(
                **{f.name: obj[f.name] if f.required else obj.get(f.name) for f in field_specs(cls)}
            )
        except KeyError as exc:
            raise ValueError(f"dead letter lacks field {exc.args[0]!r}") from None

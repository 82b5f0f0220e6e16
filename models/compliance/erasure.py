"""Erasure requests: which tenants (pseudonyms) to forget, and since when.

An erasure request asks every worker to forget what it learned of one tenant. Workers keep
the requests they know of in an :class:`ErasureLog`: a brain restored from a checkpoint
written before the request is scrubbed of the tenant (:meth:`ErasureLog.scrub`), and a
request of the tenant timed no later than the erasure is not learned from again
(:meth:`ErasureLog.erased`), which covers the backlog and the replay after a crash.
Requests timed after the erasure are new processing and are learned from.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from models.base import Erasable

__all__ = ["PSEUDONYM", "ErasureLog", "ErasureRequest"]

PSEUDONYM = re.compile(r"^t_[0-9a-f]{12}$")
"""What a tenant pseudonym looks like (:func:`models.brains.interactions.pseudonym`)."""


@dataclass(frozen=True, slots=True)
class ErasureRequest:
    """One request: forget ``tenant`` (a pseudonym) as of ``ts`` (epoch seconds).

    >>> r = ErasureRequest.from_dict({"type": "erase", "tenant": "t_c162214972b5", "ts": 5.0,
    ...                               "request_id": "e1", "reason": "GDPR Art. 17"})
    >>> r.tenant, ErasureRequest.from_dict({"type": "erase", "tenant": "acme"})
    ('t_c162214972b5', None)
    """

    tenant: str
    ts: float
    request_id: str
    reason: str = ""

    @classmethod
    def from_dict(cls, obj: Any) -> ErasureRequest | None:
        """The request in a control record, or ``None`` if it is not a valid one."""
        if not isinstance(obj, Mapping) or obj.get("type") != "erase":
            return None
        tenant, ts, rid = obj.get("tenant"), obj.get("ts"), obj.get("request_id")
        if not isinstance(tenant, str) or not PSEUDONYM.match(tenant):
            return None
        if type(ts) not in (int, float) or not math.isfinite(ts) or not isinstance(rid, str):
            return None
        reason = obj.get("reason")
        return cls(tenant, float(ts), rid, reason if isinstance(reason, str) else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "erase",
            "tenant": self.tenant,
            "ts": self.ts,
            "request_id": self.request_id,
            "reason": self.reason,
        }


class ErasureLog:
    """The erasures a worker knows of: pseudonym -> time of the latest request.

    Notes
    -----
    One float per erased tenant: bounded by the number of erasures ever requested (the
    compacted control topic holds as many).

    Examples
    --------
    >>> log = ErasureLog()
    >>> log.add(ErasureRequest("t_c162214972b5", 100.0, "e1"))
    True
    >>> log.add(ErasureRequest("t_c162214972b5", 100.0, "e1"))
    False
    >>> log.erased("t_c162214972b5", 99.0), log.erased("t_c162214972b5", 101.0)
    (True, False)
    >>> "t_c162214972b5" in log, log.erased("t_000000000000", 0.0)
    (True, False)
    """

    def __init__(self) -> None:
        self._since: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._since)

    def __contains__(self, tenant: object) -> bool:
        return tenant in self._since

    def add(self, request: ErasureRequest) -> bool:
        """Record ``request``; return whether it is news (not known, or later than known)."""
        if self._since.get(request.tenant, -math.inf) >= request.ts:
            return False
        self._since[request.tenant] = request.ts
        return True

    def erased(self, tenant: str, ts: float) -> bool:
        """Whether what ``tenant`` did at ``ts`` falls under an erasure."""
        return ts <= self._since.get(tenant, -math.inf)

    def scrub(self, brain: Erasable) -> int:
        """Forget in ``brain`` every erased tenant it has not heard from since its erasure;
        return how many it held."""
        return sum(brain.forget(tenant, since) for tenant, since in self._since.items())

"""KEDA's ``metrics-api`` scaler reads autopilot's latest scaling decision for a service.

``GET /keda/{service}/{region}/`` answers ``{"desired_replicas": N, ...}`` from the latest
``scaling`` decision of ``service/region``: a ``ScaledObject`` whose trigger points at it
(``valueLocation: desired_replicas``, ``targetValue: "1"``) lets the HPA that KEDA manages
run exactly that many replicas (README, section KEDA). KEDA is then the one writer of the
Deployment's replicas and autopilot its metric source; the actuator must not also scale it.

The console's reader (:mod:`agents.console`), which sees every partition, feeds
:func:`note`. Memory: one small entry per ``service/region``, at most :data:`MAX_SERIES`
(the least recently decided goes first). Before the first decision the answer is 404, which
KEDA counts as a failure of the scaler: its ``fallback`` replicas then apply.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from streams.runtime.app import app

__all__ = ["MAX_SERIES", "answer", "note"]

MAX_SERIES = 10_000

_latest: OrderedDict[str, dict[str, Any]] = OrderedDict()


def note(decision: Mapping[str, Any]) -> None:
    """Remember ``decision`` if it is the newest scaling decision of its service/region."""
    if decision.get("kind") != "scaling":
        return
    subject, params = decision.get("subject"), decision.get("params")
    if not isinstance(subject, dict) or not isinstance(params, dict):
        return
    desired = params.get("desired_replicas")
    if not isinstance(desired, int) or isinstance(desired, bool) or desired < 0:
        return
    key = f"{subject.get('service')}/{subject.get('region')}"
    seen = _latest.get(key)
    if seen is not None and seen["ts"] > decision.get("ts", 0.0):
        return
    _latest[key] = {
        "service": subject.get("service"),
        "region": subject.get("region"),
        "desired_replicas": desired,
        "current_replicas": params.get("current_replicas"),
        "decision_id": decision.get("decision_id"),
        "ts": decision.get("ts"),
        "reason": decision.get("reason"),
    }
    _latest.move_to_end(key)
    while len(_latest) > MAX_SERIES:
        _latest.popitem(last=False)


def answer(service: str, region: str) -> dict[str, Any] | None:
    """What the endpoint answers for ``service/region``; ``None`` before its first decision.

    >>> note({"kind": "scaling", "subject": {"service": "doc", "region": "r1"}, "ts": 5.0,
    ...       "params": {"desired_replicas": 6, "current_replicas": 4}, "decision_id": "x",
    ...       "reason": "Demand rises."})
    >>> answer("doc", "r1")["desired_replicas"], answer("doc", "r2")
    (6, None)
    """
    return _latest.get(f"{service}/{region}")


@app.page("/keda/{service}/{region}/")
async def keda_view(view, request, service: str, region: str):
    """The latest desired replicas of one service in one region, for KEDA's metrics-api."""
    found = answer(service, region)
    if found is None:
        return view.json(
            {"service": service, "region": region, "error": "no scaling decision yet"},
            status=404,
        )
    return view.json(found)

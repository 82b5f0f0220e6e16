"""The README's KEDA ScaledObject is valid, points at the worker's endpoint, and, with the
endpoint's answers, makes KEDA's HPA run the replicas autopilot decided."""

from __future__ import annotations

import math
import re

import yaml

from agents import keda
from tests.support.paths import ROOT

MARKER = "<!-- keda-scaledobject -->"


def scaled_object() -> dict:
    readme = (ROOT / "README.md").read_text()
    after = readme.split(MARKER, 1)[1]
    block = re.match(r"\s*```yaml\n(.*?)```", after, re.S)
    assert block, "the ScaledObject example must follow its marker in a yaml block"
    return yaml.safe_load(block.group(1))


def value_at(document: dict, location: str) -> float:
    """KEDA's valueLocation (GJSON) for the plain dotted paths the example uses."""
    value = document
    for part in location.split("."):
        value = value[part]
    return float(value)


def replicas(obj: dict, value: float) -> int:
    """What KEDA's HPA wants for an AverageValue external metric, within the bounds."""
    trigger = obj["spec"]["triggers"][0]
    wanted = math.ceil(value / float(trigger["metadata"]["targetValue"]))
    spec = obj["spec"]
    return max(spec["minReplicaCount"], min(spec["maxReplicaCount"], wanted))


def test_the_example_is_a_metrics_api_scaled_object() -> None:
    obj = scaled_object()
    assert obj["apiVersion"] == "keda.sh/v1alpha1" and obj["kind"] == "ScaledObject"
    assert obj["spec"]["scaleTargetRef"]["name"]
    assert 0 < obj["spec"]["minReplicaCount"] <= obj["spec"]["maxReplicaCount"]
    assert obj["spec"]["fallback"]["replicas"] > 0
    [trigger] = obj["spec"]["triggers"]
    assert trigger["type"] == "metrics-api" and trigger["metricType"] == "AverageValue"
    metadata = trigger["metadata"]
    assert set(metadata) == {"url", "format", "valueLocation", "targetValue"}
    # KEDA's metadata values are strings.
    assert all(isinstance(v, str) for v in metadata.values())
    assert metadata["format"] == "json"
    assert re.fullmatch(r"http://[^/]+:6066/keda/[a-z0-9-]+/[a-z0-9-]+/", metadata["url"])


def test_the_endpoints_answers_give_the_decided_replicas() -> None:
    obj = scaled_object()
    metadata = obj["spec"]["triggers"][0]["metadata"]
    service, region = metadata["url"].rstrip("/").split("/")[-2:]
    assert keda.answer(service, region) is None  # before any decision: 404, KEDA's fallback

    def decide(desired: int, ts: float) -> None:
        keda.note({
            "kind": "scaling", "decision_id": f"{ts:032.0f}", "ts": ts, "reason": "Load.",
            "subject": {"service": service, "region": region}, "action": "scale_out",
            "params": {"desired_replicas": desired, "current_replicas": 3},
        })  # fmt: skip

    decide(7, 100.0)
    answer = keda.answer(service, region)
    assert answer is not None
    assert replicas(obj, value_at(answer, metadata["valueLocation"])) == 7
    decide(9, 90.0)  # older, read late from another partition: not the latest
    assert keda.answer(service, region)["desired_replicas"] == 7
    decide(500, 110.0)  # more than the ScaledObject allows: KEDA caps it
    assert replicas(obj, value_at(keda.answer(service, region), "desired_replicas")) == 40
    keda.note({"kind": "anomaly", "subject": {"service": service, "region": region},
               "params": {"desired_replicas": 1}, "ts": 200.0})  # fmt: skip
    assert keda.answer(service, region)["desired_replicas"] == 500

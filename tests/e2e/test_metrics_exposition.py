"""/metrics: every family the README documents, on live workers that never double count;
and per-series label cardinality held under the configured cap."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import orjson
import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Counter

from agents.runtime.edge import PROCESSING_ERROR, UNKNOWN_DECISION
from schemas import REASONS
from schemas.decision import DECISION_KINDS
from schemas.topics import TopicNames
from streams.runtime import exporter
from tests.conftest import AUTOPILOT, wait_until
from tests.support.worker_views import exposition, lag_partitions

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 4


def documented() -> dict[str, set[str]]:
    """Metric name -> label names, from the README's Metrics table."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \|([^|]*)\|", section, flags=re.MULTILINE)
    return {name: set(re.findall(r"`(\w+)`", labels)) for name, labels in rows}


def test_readme_documents_the_families_dashboards_need() -> None:
    families = documented()
    assert families["autopilot_dlq_total"] == {"topic", "reason"}
    assert families["autopilot_anomaly_score"] == {"service", "region", "metric"}
    assert families["autopilot_worker_up"] == set()


@pytest.mark.kafka
def test_two_workers_expose_every_documented_family_and_never_double_count(
    start_worker, tmp_path: Path
) -> None:
    workers = [start_worker(name="first"), start_worker(name="second")]
    telemetry = {(topic, str(p)) for topic in TopicNames().telemetry() for p in range(PARTITIONS)}

    def settled() -> bool:
        owned = [lag_partitions(w).keys() for w in workers]
        return all(owned) and owned[0].isdisjoint(owned[1]) and owned[0] | owned[1] == telemetry

    # Every telemetry partition is exported by exactly one worker once the group settles.
    wait_until(settled, 90, "the two workers did not split the telemetry partitions")

    summary_path = tmp_path / "summary.json"
    sim = subprocess.run(
        [str(AUTOPILOT), "simulate", "--scenario", "healthy", "--duration", "600",
         "--summary-json", str(summary_path)],
        env=workers[0].env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert sim.returncode == 0, sim.stderr[-2000:]
    sent = orjson.loads(summary_path.read_bytes())["sent"]

    def consumed(topic: str) -> float:
        return sum(w.metric("autopilot_events_consumed_total", topic=topic) for w in workers)

    # Every record, not only the metric samples: the simulator sends envelopes, which the
    # workers read faster than they handle the interactions that came with them.
    for kind in ("metrics", "errors", "interactions"):
        wait_until(
            lambda kind=kind: consumed(f"telemetry.{kind}") >= sent[kind],
            180,
            f"the workers did not consume {sent[kind]} {kind} records",
        )
    assert consumed("telemetry.metrics") == sent["metrics"]
    assert all(w.metric("autopilot_events_consumed_total") > 0 for w in workers)
    wait_until(
        lambda: settled() and not any(any(lag_partitions(w).values()) for w in workers),
        30,
        "consumer lag did not fall to 0 after everything was consumed",
    )

    for worker in workers:
        types, samples = exposition(worker)
        for name, labels in documented().items():
            assert name in types, f"{name} is documented but not on /metrics"
            assert (types[name] == "counter") == name.endswith("_total"), name
            for sample, found, _ in samples:
                if sample in (name, f"{name}_bucket", f"{name}_sum", f"{name}_count"):
                    assert set(found) - {"le"} == labels, (name, found)
        assert worker.metric("autopilot_worker_up") == 1
        assert worker.metric("process_resident_memory_bytes") > 0

    # What a bench polls: only the samples asked for, with the same values.
    names = ("autopilot_events_consumed_total", "autopilot_dlq_total")
    query = "&".join(f"name[]={name}" for name in names)
    url = f"http://127.0.0.1:{workers[0].web_port}/metrics?{query}"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    assert {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")} == set(
        names
    )
    assert 'autopilot_events_consumed_total{topic="telemetry.metrics"} ' in text


def test_label_sets_stay_under_the_cap_with_10000_distinct_series() -> None:
    family = "autopilot_anomaly_score"
    capped = exporter.ANOMALY_SCORE

    def label_sets() -> int:
        return sum(len(m.samples) for m in REGISTRY.collect() if m.name == family)

    def dropped() -> float:
        return REGISTRY.get_sample_value(
            "autopilot_metrics_series_dropped_total", {"family": family}
        )

    before, dropped_before = label_sets(), dropped()
    try:
        for i in range(10_000):
            exporter.record_anomaly_score(
                f"svc-{i % 100}", f"r-{i // 100 % 10}", f"m{i // 1000}", 0.7
            )
        assert label_sets() == capped.cap < 10_000
        assert dropped() - dropped_before == 10_000 - (capped.cap - before)
        kept = REGISTRY.get_sample_value(
            family, {"service": "svc-0", "region": "r-0", "metric": "m0"}
        )
        refused = {"service": "svc-99", "region": "r-9", "metric": "m9"}
        assert kept == 0.7 and REGISTRY.get_sample_value(family, refused) is None
    finally:
        capped.expire(now=math.inf)
    assert label_sets() == 0


def test_idle_label_sets_expire_and_free_their_place() -> None:
    registry, now = CollectorRegistry(), [0.0]
    dropped = Counter("dropped", "doc", ["family"], registry=registry)
    capped = exporter.CappedGauge("g", "doc", ["service"], 2, dropped, registry, lambda: now[0])
    capped.set(("a",), 1.0)
    now[0] = 500.0
    capped.set(("b",), 2.0)
    capped.set(("c",), 3.0)
    assert registry.get_sample_value("g", {"service": "c"}) is None
    now[0] = 700.0
    assert capped.expire() == 1
    capped.set(("c",), 3.0)
    assert registry.get_sample_value("g", {"service": "a"}) is None
    assert registry.get_sample_value("g", {"service": "c"}) == 3.0
    assert registry.get_sample_value("dropped_total", {"family": "g"}) == 1.0


def test_the_cap_comes_from_the_environment() -> None:
    CAP_SCRIPT = "from streams.runtime.exporter import ANOMALY_SCORE as a; print(a.cap)"

    def cap_with(value: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", CAP_SCRIPT],
            env={**os.environ, "AUTOPILOT_METRICS_SERIES_CAP": value},
            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    assert cap_with("50").stdout.strip() == "50"
    refused = cap_with("lots")
    assert refused.returncode != 0 and "AUTOPILOT_METRICS_SERIES_CAP='lots'" in refused.stderr


def test_closed_label_sets_exist_at_zero_before_any_traffic() -> None:
    for topic in TopicNames().telemetry():
        for reason in (*REASONS, PROCESSING_ERROR, UNKNOWN_DECISION):
            labels = {"topic": topic, "reason": reason}
            assert REGISTRY.get_sample_value("autopilot_dlq_total", labels) is not None
    for kind in DECISION_KINDS:
        count = REGISTRY.get_sample_value(
            "autopilot_decision_latency_seconds_count", {"kind": kind}
        )
        assert count is not None
    for outcome in ("success", "failure"):
        labels = {"outcome": outcome}
        assert REGISTRY.get_sample_value("autopilot_remediation_outcomes_total", labels) is not None

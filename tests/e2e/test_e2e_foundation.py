"""End to end: simulator -> real broker -> `autopilot worker`, every event accounted for."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import orjson
import pytest

from tests.conftest import AUTOPILOT, wait_until

pytestmark = pytest.mark.kafka

LABELS = {
    "metrics": "telemetry.metrics",
    "errors": "telemetry.errors",
    "interactions": "telemetry.interactions",
}


def test_worker_consumes_every_event_the_simulator_sent(start_worker, tmp_path: Path) -> None:
    worker = start_worker()
    summary_path = tmp_path / "summary.json"
    truth_path = tmp_path / "truth.json"
    sim = subprocess.run(
        [
            str(AUTOPILOT), "simulate", "--scenario", "error_burst", "--duration", "600",
            "--summary-json", str(summary_path), "--ground-truth", str(truth_path),
        ],
        env=worker.env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert sim.returncode == 0, sim.stderr[-2000:]
    summary = orjson.loads(summary_path.read_bytes())
    assert summary["failed"] == 0
    assert summary["sent"]["metrics"] > 0 and summary["sent"]["errors"] > 0
    assert orjson.loads(truth_path.read_bytes())["incidents"]

    def consumed_all() -> bool:
        return all(
            worker.metric("autopilot_events_consumed_total", topic=LABELS[kind]) == count
            for kind, count in summary["sent"].items()
        )

    wait_until(consumed_all, 120, f"worker did not consume all of {summary['sent']}")
    for kind, count in summary["sent"].items():
        topic = LABELS[kind]
        processed = worker.metric("autopilot_events_processed_total", topic=topic)
        dead = worker.metric("autopilot_dlq_total", topic=topic)
        assert processed + dead == count, (topic, processed, dead, count)
        assert dead == 0, f"the simulator's own {topic} events were dead-lettered"
    assert worker.proc.poll() is None
    # Once started, the worker took what it held out of the collector's walks.
    frozen = re.search(r"garbage collection: (\d+) objects frozen at start-up", worker.log())
    assert frozen and int(frozen[1]) > 0, "the worker did not tune garbage collection"

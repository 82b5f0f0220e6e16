"""The interactions brain on the real broker: a regional brownout burns its SLO error budget,
is published as ``slo_burn`` and lowers the region's health; a clean run burns nothing."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import orjson
import pytest

from tests.conftest import WorkerProcess, wait_until
from tests.test_e2e_metrics import decisions

pytestmark = pytest.mark.kafka

DURATION_S = 600
# Half of eu-west's requests fail from minute 4 to the end: 500x the 99.9 % SLO's budget
# rate, so the 1h/5m rule (14.4x) fires as soon as the 5-minute window holds enough
# requests (models.slo min_events), a minute or two into the brownout.
BROWNOUT = {
    "name": "eu_west_brownout",
    "duration_s": DURATION_S,
    "tick_s": 5,
    "incidents": [
        {"type": "brownout", "region": "eu-west", "start_s": 240, "duration_s": 360,
         "error_rate": 0.5, "latency_factor": 2},
    ],
}  # fmt: skip


def view(worker: WorkerProcess) -> dict:
    """The worker's region brain (``GET /failover/``)."""
    url = f"http://127.0.0.1:{worker.web_port}/failover/"
    with urllib.request.urlopen(url, timeout=5) as response:
        return orjson.loads(response.read())


def test_brownout_burns_the_slo_and_lowers_region_health(
    start_worker, kafka_bootstrap, topic_names, tmp_path: Path
) -> None:
    worker = start_worker()
    scenario = tmp_path / "brownout.json"
    scenario.write_bytes(orjson.dumps(BROWNOUT))
    summary, _ = worker.simulate(tmp_path, "--scenario", str(scenario))
    worker.wait_consumed("telemetry.interactions", summary["sent"]["interactions"])
    onset = summary["event_start_ts"] + 240
    burns = [d for d in decisions(kafka_bootstrap, topic_names.remediation) if d.kind == "slo_burn"]
    regional = [d for d in burns if d.subject.get("region") == "eu-west"]
    assert regional, f"no slo_burn for eu-west; got {[d.subject for d in burns]}"
    assert all(d.subject.get("region", "eu-west") == "eu-west" for d in burns)
    first = min(regional, key=lambda d: d.ts)
    assert first.ts >= onset
    assert first.evidence["budget_consumed"] > 0.0
    assert first.evidence["long"]["burn_rate"] >= first.evidence["threshold"]
    # Tenants appear as pseudonyms only.
    assert all(d.subject["tenant"].startswith("t_") for d in burns if "tenant" in d.subject)

    end = summary["event_start_ts"] + DURATION_S - 30
    wait_until(lambda: (view(worker)["evaluated_to"] or 0.0) >= end, 60, "not evaluated")
    regions = view(worker)["regions"]
    assert regions["eu-west"]["signals"]["slo_burn"] >= 14.4, regions["eu-west"]
    assert regions["eu-west"]["components"]["slo_burn"] < 1.0
    others = [r for name, r in regions.items() if name != "eu-west"]
    assert others and all(r["signals"]["slo_burn"] < 14.4 for r in others)
    assert all(regions["eu-west"]["score"] < r["score"] for r in others)


def test_clean_run_burns_no_slo(start_worker, kafka_bootstrap, topic_names, tmp_path) -> None:
    worker = start_worker()
    summary, _ = worker.simulate(tmp_path, "--scenario", "healthy", "--duration", str(DURATION_S))
    assert summary["sent"]["interactions"] > 1000
    worker.wait_consumed("telemetry.interactions", summary["sent"]["interactions"])
    burns = [d for d in decisions(kafka_bootstrap, topic_names.remediation) if d.kind == "slo_burn"]
    assert burns == [], [d.reason for d in burns]

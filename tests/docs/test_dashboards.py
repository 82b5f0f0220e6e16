"""Grafana dashboards: well-formed, and every panel query answered by a real Prometheus.

The live test runs Debian's ``prometheus`` with ``prometheus/prometheus.yml`` (the
file docker-compose.yml mounts), rewritten only to point at a real worker fed by
the simulator on the real broker, and runs every panel query of every dashboard.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from streams.kafka.local import free_port
from tests.conftest import AUTOPILOT, WorkerProcess, wait_until
from tests.support.debian import ensure_debian_package
from tests.support.paths import GRAFANA_DASHBOARDS, GRAFANA_PROVISIONING, PROMETHEUS_CONFIG, ROOT

DASHBOARD_UIDS = {"autopilot-overview", "autopilot-decisions", "autopilot-cost"}

# Grafana's variables, as the test substitutes them: every service and region, a
# rate window of a few test scrapes, and a range covering the whole test.
SUBSTITUTIONS = {
    "$__rate_interval": "1m",
    "$__range": "1h",
    "$service": ".*",
    "$region": ".*",
}
_PROMQL_WORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
    "group_right", "offset", "bool", "inf", "nan",
}  # fmt: skip
_LABEL_VALUES = re.compile(r"^label_values\((\w+),\s*(\w+)\)$")


def dashboards() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted(GRAFANA_DASHBOARDS.glob("*.json"))}


def panels(container: dict) -> Iterator[dict]:
    """Every panel, including those nested in (collapsed) rows."""
    for panel in container.get("panels", []):
        yield panel
        yield from panels(panel)


def queries(dashboard: dict) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL with the dashboard variables substituted) of every target."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in sorted(SUBSTITUTIONS.items(), key=lambda kv: -len(kv[0])):
                expr = expr.replace(name, value)
            yield panel["title"], expr


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (not functions, keywords or label names)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = re.findall(r"\b([a-zA-Z_:][\w:]*)\b(?!\s*\()", text)
    return {n for n in names if n.lower() not in _PROMQL_WORDS and not re.fullmatch(r"\d\w*", n)}


def variable_queries(dashboard: dict) -> Iterator[tuple[str, str]]:
    """(metric, label) of every ``label_values(metric, label)`` template variable."""
    for variable in dashboard.get("templating", {}).get("list", []):
        match = _LABEL_VALUES.match(variable["query"])
        assert match, f"{variable['name']}: unexpected variable query {variable['query']!r}"
        yield match.group(1), match.group(2)


def test_metric_names_are_extracted_from_promql() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, kind) (rate(autopilot_x_bucket{kind="a"}[1m])))'
        " / on (kind) group_left clamp_min(sum(autopilot_y_total offset 5m), 1e-9) > 0"
    )
    assert metric_names(expr) == {"autopilot_x_bucket", "autopilot_y_total"}


def test_dashboards_are_provisioned_grafana_json() -> None:
    found = dashboards()
    assert {d["uid"] for d in found.values()} == DASHBOARD_UIDS
    provisioning = yaml.safe_load(
        (GRAFANA_PROVISIONING / "datasources" / "prometheus.yml").read_text()
    )
    datasource_uid = provisioning["datasources"][0]["uid"]
    for name, dashboard in found.items():
        assert dashboard["schemaVersion"] >= 39, name
        ids = [p["id"] for p in panels(dashboard)]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        for panel in panels(dashboard):
            if panel["type"] == "row":
                continue
            where = f"{name}: {panel['title']!r}"
            assert panel["targets"], f"{where} has no query"
            assert panel["datasource"]["uid"] == datasource_uid, where
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, f"{where} is wider than the grid"
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == datasource_uid, where
                assert target["expr"].strip(), f"{where} has an empty query"
                assert set(re.findall(r"\$\w+", target["expr"])) <= set(SUBSTITUTIONS), where
        for metric, _label in variable_queries(dashboard):
            assert metric.startswith("autopilot_"), f"{name}: variable over {metric}"


def test_dashboards_use_only_documented_metrics() -> None:
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"^\| `(autopilot_\w+)` \|", readme, flags=re.MULTILINE))
    for name, dashboard in dashboards().items():
        for title, expr in queries(dashboard):
            for metric in metric_names(expr):
                if metric.startswith("process_"):
                    continue  # prometheus-client's own process metrics
                family = re.sub(r"_(bucket|sum|count)$", "", metric)
                assert metric in documented or family in documented, (
                    f"{name}: {title!r} uses {metric}, which the README's Metrics table lacks"
                )


class Prometheus:
    """A real Prometheus scraping one worker, with a temporary TSDB."""

    def __init__(self, binary: str, worker: WorkerProcess, workdir: Path) -> None:
        config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
        # Only the target address and the scrape interval differ from docker-compose.
        config["global"]["scrape_interval"] = "1s"
        config["global"]["evaluation_interval"] = "1s"
        (job,) = config["scrape_configs"]
        job["static_configs"] = [{"targets": [f"127.0.0.1:{worker.web_port}"]}]
        self.job = job["job_name"]
        config_path = workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.log_path = workdir / "prometheus.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={workdir / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def get(self, path: str, **params: str) -> dict:
        url = f"http://127.0.0.1:{self.port}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read())
        assert body["status"] == "success", f"{path} {params}: {body.get('error')}"
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        return self.get("/api/v1/query", query=expr)["result"]

    def ready(self) -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2):
            return True

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def prometheus_for(tmp_path: Path) -> Iterator:
    binary = ensure_debian_package("prometheus")
    started: list[Prometheus] = []

    def start(worker: WorkerProcess) -> Prometheus:
        prometheus = Prometheus(binary, worker, tmp_path)
        started.append(prometheus)
        wait_until(
            lambda: prometheus.proc.poll() is None and prometheus.ready(),
            60,
            f"prometheus did not start: {prometheus.log_path.read_text()[-2000:]}",
        )
        return prometheus

    yield start
    for prometheus in started:
        prometheus.stop()


def exposed_names(worker: WorkerProcess) -> set[str]:
    """Names of the samples on the worker's /metrics."""
    return {
        re.split(r"[{ ]", line, maxsplit=1)[0]
        for line in worker.metrics_text().splitlines()
        if line and not line.startswith("#")
    }


@pytest.mark.kafka
def test_every_panel_query_returns_series_from_a_live_worker(
    start_worker, prometheus_for, tmp_path: Path
) -> None:
    # A plugin serves checkout's latency, so that the plugin panels have series.
    plugins_file = tmp_path / "plugins.toml"
    plugins_file.write_text(
        '[[detectors]]\nplugin = "ceiling"\nservice = "checkout"\nmetric = "latency_p99_ms"\n'
    )
    worker = start_worker({
        "AUTOPILOT_CHECKPOINT_INTERVAL_S": "1",
        "AUTOPILOT_PLUGIN_MODULES": "tests.support.plugins.e2e",
        "AUTOPILOT_PLUGINS_FILE": str(plugins_file),
    })  # fmt: skip
    prometheus = prometheus_for(worker)
    summary_path = tmp_path / "summary.json"
    # mixed: load surges and incidents after the detectors' warm-up, so there are
    # scaling and anomaly decisions as well as plain throughput.
    sim = subprocess.run(
        [str(AUTOPILOT), "simulate", "--scenario", "mixed", "--summary-json", str(summary_path)],
        env=worker.env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert sim.returncode == 0, sim.stderr[-2000:]
    sent = json.loads(summary_path.read_text())["sent"]["metrics"]
    wait_until(
        lambda: worker.metric("autopilot_events_consumed_total", topic="telemetry.metrics") >= sent,
        120,
        f"worker did not consume {sent} metric samples",
    )

    every_query = [
        (name, title, expr) for name, d in dashboards().items() for title, expr in queries(d)
    ]

    def unanswered() -> list[str]:
        return [
            f"{name}: {title!r}: {expr}"
            for name, title, expr in every_query
            if not prometheus.query(expr)
        ]

    # A few scrapes after the last event, and the timers (lag, checkpoint) have run.
    deadline = time.monotonic() + 60
    while (empty := unanswered()) and time.monotonic() < deadline:
        time.sleep(1)
    assert not empty, "panel queries without series:\n" + "\n".join(empty)

    names = exposed_names(worker)
    for name, title, expr in every_query:
        missing = metric_names(expr) - names
        assert not missing, f"{name}: {title!r} names metrics the worker lacks: {missing}"
    for name, dashboard in dashboards().items():
        for metric, label in variable_queries(dashboard):
            values = prometheus.get(f"/api/v1/label/{label}/values", **{"match[]": metric})
            assert values, f"{name}: variable label_values({metric}, {label}) is empty"
    targets = prometheus.get("/api/v1/targets")["activeTargets"]
    assert [t["labels"]["job"] for t in targets] == [prometheus.job]
    assert targets[0]["health"] == "up", targets[0].get("lastError")

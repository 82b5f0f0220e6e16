"""docker-compose.yml, checked without a Docker engine: services, pinned images, wiring."""

from __future__ import annotations

from pathlib import Path

import yaml

from streams.kafka.local import kafka_version
from tests.support.paths import GRAFANA_DASHBOARDS, GRAFANA_PROVISIONING, PROMETHEUS_CONFIG

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def mounts(service: dict) -> dict[str, Path]:
    """Container path -> the host path of every bind mount of a service."""
    found = {}
    for volume in service["volumes"]:
        source, target = volume.split(":")[:2]
        found[target] = (ROOT / source).resolve()
    return found


def test_services_and_pinned_images() -> None:
    services = compose()["services"]
    assert {"kafka", "worker", "simulator", "prometheus", "grafana"} <= set(services)
    assert services["kafka"]["image"] == f"apache/kafka:{kafka_version()}"
    for service in services.values():
        image = service.get("image", "")
        assert ":" in image and not image.endswith(":latest"), f"unpinned image {image!r}"
    assert services["worker"]["build"] == "."
    assert services["simulator"]["image"] == services["worker"]["image"]


def test_worker_and_simulator_are_wired_to_the_broker() -> None:
    services = compose()["services"]
    kafka_env = services["kafka"]["environment"]
    advertised = kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    internal = next(a for a in advertised if a.startswith("PLAINTEXT://"))
    broker = "kafka://" + internal.removeprefix("PLAINTEXT://")
    for name in ("worker", "simulator"):
        assert services[name]["environment"]["AUTOPILOT_BROKER"] == broker
        assert services[name]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["worker"]["command"][0] == "worker"
    assert services["simulator"]["command"][0] == "simulate"
    port = services["worker"]["environment"]["AUTOPILOT_WEB_PORT"]
    assert f"{port}:{port}" in services["worker"]["ports"]


def test_prometheus_scrapes_the_worker_with_the_config_the_tests_use() -> None:
    services = compose()["services"]
    prometheus = services["prometheus"]
    flags = dict(arg.removeprefix("--").split("=", 1) for arg in prometheus["command"])
    assert mounts(prometheus)[flags["config.file"]] == PROMETHEUS_CONFIG
    (job,) = yaml.safe_load(PROMETHEUS_CONFIG.read_text())["scrape_configs"]
    port = services["worker"]["environment"]["AUTOPILOT_WEB_PORT"]
    assert job["static_configs"] == [{"targets": [f"worker:{port}"]}]
    assert job["metrics_path"] == "/metrics"
    assert "9090:9090" in prometheus["ports"] and "web.listen-address" not in flags


def test_grafana_provisions_the_dashboards_and_datasource_the_tests_use() -> None:
    services = compose()["services"]
    grafana = services["grafana"]
    grafana_mounts = mounts(grafana)
    assert grafana_mounts["/etc/grafana/provisioning"] == GRAFANA_PROVISIONING
    dashboards_yml = GRAFANA_PROVISIONING / "dashboards" / "dashboards.yml"
    (provider,) = yaml.safe_load(dashboards_yml.read_text())["providers"]
    dashboards_path = provider["options"]["path"]
    assert grafana_mounts[dashboards_path] == GRAFANA_DASHBOARDS
    datasources_yml = GRAFANA_PROVISIONING / "datasources" / "prometheus.yml"
    (datasource,) = yaml.safe_load(datasources_yml.read_text())["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    home = Path(grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert str(home.parent) == dashboards_path and (GRAFANA_DASHBOARDS / home.name).is_file()
    assert "3000:3000" in grafana["ports"]

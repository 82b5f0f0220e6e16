"""docker-compose.yml, checked without a Docker engine: services, pinned images, wiring."""

from __future__ import annotations

from pathlib import Path

import yaml

from streams.kafka_local import kafka_version

ROOT = Path(__file__).resolve().parents[1]


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_and_pinned_images() -> None:
    services = compose()["services"]
    assert {"kafka", "worker", "simulator"} <= set(services)
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

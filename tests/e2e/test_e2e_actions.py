"""Action plugins in a worker on the real broker: a decision is POSTed once to the webhook
bound to its kind, a failing binding costs a counted, audited failure and nothing else."""

from __future__ import annotations

import asyncio
import http.server
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from schemas import Decision, decision_id_for
from schemas.topics import TopicNames
from tests.conftest import wait_until
from tests.e2e.test_e2e_actuator import audits

SUBJECT = {"service": "search", "region": "us-east"}
TOKEN = "T0K3N-e2e"


class _Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append(orjson.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def decision(n: int) -> Decision:
    params = {"desired_replicas": n, "current_replicas": 2}
    ts = time.time()
    return Decision(
        decision_id=decision_id_for("scaling", SUBJECT, "scale_out", params, [ts]),
        kind="scaling", ts=ts, subject=SUBJECT, action="scale_out", params=params,
        mode="recommend", confidence=0.9, reason="Demand is forecast to outrun capacity.",
        evidence={}, model_version="test",
    )  # fmt: skip


async def _send(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=b"search/us-east")
    finally:
        await producer.stop()


@pytest.mark.kafka
def test_a_decision_is_posted_once_and_a_failing_action_is_only_counted(
    start_worker, kafka_bootstrap: str, topic_names: TopicNames, tmp_path: Path, hook
) -> None:
    plugins = tmp_path / "plugins.toml"
    plugins.write_text(
        f"""
[[actions]]
plugin = "webhook"
kind = "scaling"
config = {{ url = "http://127.0.0.1:{hook.server_address[1]}/hooks/{TOKEN}" }}

[[actions]]
plugin = "webhook"
config = {{ url = "http://127.0.0.1:{closed_port()}/hooks/{TOKEN}", timeout_s = 1.0 }}
"""
    )
    worker = start_worker({"AUTOPILOT_PLUGINS_FILE": str(plugins)})
    first, sentinel = decision(5), decision(6)
    # The replay and the sentinel share the first's partition: once the sentinel is
    # posted, the replay has been read.
    values = [first.to_bytes(), first.to_bytes(), sentinel.to_bytes()]
    asyncio.run(_send(kafka_bootstrap, topic_names.scaling, values))
    wait_until(lambda: len(hook.received) >= 2, 30, f"nothing posted; log: {worker.log()[-2000:]}")
    assert hook.received == [first.to_dict(), sentinel.to_dict()]

    def plugin_records() -> list[dict]:
        return [r for r in audits(kafka_bootstrap, topic_names) if r.get("plugin")]

    wait_until(lambda: len(plugin_records()) == 4, 30, "the calls were not all audited")
    records = plugin_records()
    outcomes = sorted((r["decision_id"] == first.decision_id, r["outcome"]) for r in records)
    assert outcomes == [(False, "applied"), (False, "failed"), (True, "applied"), (True, "failed")]
    assert all(r["plugin"] == "webhook" for r in records)
    assert worker.metric("autopilot_action_calls_total", plugin="webhook", outcome="success") == 2
    assert worker.metric("autopilot_action_calls_total", plugin="webhook", outcome="failure") == 2
    assert TOKEN not in worker.log() and TOKEN not in orjson.dumps(records).decode()
    assert worker.proc.poll() is None

"""End to end over SASL_SSL: SCRAM-SHA-512 credentials and a private CA, made by the test.

The module starts its own broker with a SASL_SSL listener; the worker and the
simulator reach it only through that listener.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from streams.kafka.local import BrokerSecurity, KafkaLocal, free_port
from tests.conftest import AUTOPILOT, WorkerProcess, spawn_worker, wait_until
from tests.support.tls import make_ca

pytestmark = pytest.mark.kafka

USER = "autopilot-worker"
LABELS = {
    "metrics": "telemetry.metrics",
    "errors": "telemetry.errors",
    "interactions": "telemetry.interactions",
}


@dataclass(frozen=True)
class SecureBroker:
    bootstrap: str
    ca: Path
    """The CA that signed the broker's certificate."""
    stranger_ca: Path
    """A CA that did not."""
    password: str = field(repr=False)


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    """A broker of its own whose SASL_SSL listener knows one SCRAM user."""
    tls_dir = tmp_path_factory.mktemp("tls")
    ca = make_ca(tls_dir / "ca")
    stranger = make_ca(tls_dir / "stranger", name="not-the-broker-ca")
    broker_tls = ca.broker(tls_dir / "broker", password=secrets.token_hex(12))
    password = secrets.token_hex(16)
    security = BrokerSecurity(
        port=free_port(),
        keystore=broker_tls.keystore,
        keystore_password=broker_tls.password,
        scram_users={USER: password},
    )
    broker = KafkaLocal(
        port=free_port(), data_dir=tmp_path_factory.mktemp("kafka-sasl"), security=security
    )
    broker.start(owned=True)
    try:
        assert broker.secure_bootstrap is not None
        yield SecureBroker(broker.secure_bootstrap, ca.cert, stranger.cert, password)
    finally:
        broker.stop()


def secure_env(broker: SecureBroker, tmp_path: Path, **overrides: str) -> dict[str, str]:
    """The environment of an ``autopilot`` command that talks to ``broker`` as ``USER``."""
    return {
        **os.environ,
        "AUTOPILOT_BROKER": f"kafka://{broker.bootstrap}",
        "AUTOPILOT_SECURITY_PROTOCOL": "SASL_SSL",
        "AUTOPILOT_SASL_USERNAME": USER,
        "AUTOPILOT_SASL_PASSWORD": broker.password,
        "AUTOPILOT_SSL_CAFILE": str(broker.ca),
        "AUTOPILOT_TOPIC_PREFIX": f"t{secrets.token_hex(5)}.",
        "AUTOPILOT_PARTITIONS": "4",
        "AUTOPILOT_DATA_DIR": str(tmp_path / "worker-data"),
        **overrides,
    }


@pytest.fixture
def start_secure_worker(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], WorkerProcess]]:
    """Start ``autopilot worker`` with a given environment; stopped at teardown."""
    started: list[WorkerProcess] = []

    def start(env: dict[str, str]) -> WorkerProcess:
        return spawn_worker(env, tmp_path, "worker", started)

    yield start
    for worker in started:
        worker.stop()


def run_worker_until_exit(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """Run ``autopilot worker`` that is expected to give up; a hang fails the test."""
    try:
        return subprocess.run(
            [str(AUTOPILOT), "worker", "-l", "info", "--web-port", str(free_port())],
            env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("the worker kept running for 60 s instead of reporting the failure")


def test_worker_consumes_simulator_traffic_over_sasl_ssl(
    secure_broker: SecureBroker, start_secure_worker, tmp_path: Path
) -> None:
    worker = start_secure_worker(secure_env(secure_broker, tmp_path))
    summary, _ = worker.simulate(tmp_path, "--scenario", "error_burst", "--duration", "600")
    assert summary["failed"] == 0
    assert summary["sent"]["metrics"] > 0 and summary["sent"]["errors"] > 0

    def consumed_all() -> bool:
        return all(
            worker.metric("autopilot_events_consumed_total", topic=LABELS[kind]) == count
            for kind, count in summary["sent"].items()
        )

    wait_until(consumed_all, 120, f"worker did not consume all of {summary['sent']}")
    assert worker.proc.poll() is None
    assert f"Authenticated as {USER} via SCRAM-SHA-512" in worker.log()
    assert secure_broker.password not in worker.log()
    assert secure_broker.password not in worker.metrics_text()


def test_wrong_password_is_a_one_line_authentication_error(
    secure_broker: SecureBroker, tmp_path: Path
) -> None:
    wrong = secrets.token_hex(16)
    password_file = tmp_path / "sasl-password"
    password_file.write_text(wrong + "\n")
    env = secure_env(secure_broker, tmp_path, AUTOPILOT_SASL_PASSWORD_FILE=str(password_file))
    del env["AUTOPILOT_SASL_PASSWORD"]
    result = run_worker_until_exit(env, tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip() == (
        f"autopilot: cannot connect to the broker: authentication failed: the broker at "
        f"{secure_broker.bootstrap} rejected SASL user '{USER}' with SCRAM-SHA-512 "
        "(check AUTOPILOT_SASL_USERNAME and AUTOPILOT_SASL_PASSWORD)"
    )
    output = result.stdout + result.stderr
    assert wrong not in output and secure_broker.password not in output


def test_broker_certificate_from_another_ca_is_a_one_line_tls_error(
    secure_broker: SecureBroker, tmp_path: Path
) -> None:
    env = secure_env(secure_broker, tmp_path, AUTOPILOT_SSL_CAFILE=str(secure_broker.stranger_ca))
    result = run_worker_until_exit(env, tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("autopilot: cannot connect to the broker: TLS verification failed")
    assert f"is not signed by {secure_broker.stranger_ca}" in lines[0], lines[0]
    assert secure_broker.password not in result.stdout + result.stderr

"""`autopilot kafka start|stop|status` against the real broker jars."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from streams.kafka.local import KafkaLocal, free_port, our_java_pids
from tests.conftest import AUTOPILOT, wait_until

pytestmark = pytest.mark.kafka


def autopilot(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(AUTOPILOT), *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_start_twice_stop_twice_and_nothing_left(tmp_path: Path) -> None:
    port, data = str(free_port()), str(tmp_path / "k")
    first = autopilot("kafka", "start", "--port", port, "--data-dir", data)
    assert first.returncode == 0, first.stderr
    assert f"AUTOPILOT_BROKER=kafka://127.0.0.1:{port}" in first.stdout
    try:
        second = autopilot("kafka", "start", "--port", port, "--data-dir", data)
        assert second.returncode == 0
        assert "already running" in second.stdout
        # Without --port, status and stop find the broker on the port it was started with.
        status = autopilot("kafka", "status", "--data-dir", data)
        assert status.returncode == 0
        assert f"running on 127.0.0.1:{port} (pid" in status.stdout
        assert status.stdout.rstrip().endswith(", answering")
    finally:
        stopped = autopilot("kafka", "stop", "--data-dir", data)
    assert stopped.returncode == 0, stopped.stderr
    assert f"on 127.0.0.1:{port} stopped" in stopped.stderr
    assert our_java_pids(Path(data)) == []
    again = autopilot("kafka", "stop", "--port", port, "--data-dir", data)
    assert again.returncode == 0 and "not running" in again.stdout
    status = autopilot("kafka", "status", "--port", port, "--data-dir", data)
    assert status.returncode == 3 and "not running" in status.stdout


def test_port_in_use_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = str(squatter.getsockname()[1])
        result = autopilot("kafka", "start", "--port", port, "--data-dir", str(tmp_path / "k"))
    assert result.returncode != 0
    assert f"port {port} on 127.0.0.1 is in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_java_is_a_one_line_error(tmp_path: Path) -> None:
    bare = tmp_path / "bin"
    bare.mkdir()
    result = autopilot(
        "kafka", "start", "--port", str(free_port()), "--data-dir", str(tmp_path / "k"),
        env={"PATH": str(bare)},
    )  # fmt: skip
    assert result.returncode != 0
    assert "java is not on PATH" in result.stderr
    assert "Traceback" not in result.stderr


def test_broker_exiting_during_start_shows_its_log(tmp_path: Path) -> None:
    data = tmp_path / "k"
    result = autopilot(
        "kafka", "start", "--port", str(free_port()), "--data-dir", str(data),
        env={"AUTOPILOT_KAFKA_HEAP": "not-a-size"},
    )  # fmt: skip
    assert result.returncode != 0
    assert "exited with code" in result.stderr
    assert "Invalid maximum heap size" in result.stderr
    assert our_java_pids(data) == []


def test_owned_broker_dies_with_its_killed_caller(tmp_path: Path) -> None:
    data = tmp_path / "k"
    caller = subprocess.Popen(
        [
            sys.executable, "-c",
            "import sys, time; from streams.kafka.local import KafkaLocal; "
            "KafkaLocal(port=int(sys.argv[1]), data_dir=sys.argv[2]).start(owned=True); "
            "print('ready', flush=True); time.sleep(600)",
            str(free_port()), str(data),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert caller.stdout is not None
    assert caller.stdout.readline().strip() == "ready"
    assert len(our_java_pids(data)) == 1
    caller.send_signal(signal.SIGKILL)
    caller.wait()
    wait_until(lambda: our_java_pids(data) == [], 30, "broker outlived its killed caller")
    assert KafkaLocal(port=1, data_dir=data).pid() is None

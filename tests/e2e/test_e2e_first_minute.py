"""The first minute of ``make run``: every kind of decision on screen, no alarming noise.

``autopilot up`` runs as ``make run`` runs it (on the session broker, so that it starts no
broker of its own); ``autopilot tail`` is started right after "up", as a newcomer would.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from schemas.decision import KIND_TOPICS
from schemas.topics import FAILOVER, REMEDIATION, SCALING, TopicNames
from streams.kafka.local import free_port
from tests.conftest import AUTOPILOT, wait_until

pytestmark = pytest.mark.kafka

FIRST = re.compile(r"^\+(\d+)s first (\w+) decision: ", re.MULTILINE)


def firsts(log: Path) -> dict[str, int]:
    """Each decision kind ``up`` announced, with the seconds after "up" it said."""
    return {kind: int(s) for s, kind in FIRST.findall(log.read_text(errors="replace"))}


def topics_of(kinds: dict[str, int]) -> set[str]:
    return {KIND_TOPICS[kind] for kind in kinds}


def test_up_shows_scaling_remediation_and_failover_within_a_minute_and_tail_stays_quiet(
    kafka_bootstrap: str, topic_names: TopicNames, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "AUTOPILOT_BROKER": f"kafka://{kafka_bootstrap}",
        "AUTOPILOT_TOPIC_PREFIX": topic_names.prefix,
        "AUTOPILOT_PARTITIONS": "4",
        "AUTOPILOT_WEB_PORT": str(free_port()),
        "AUTOPILOT_DATA_DIR": str(tmp_path / "data"),
    }
    up_log, tail_log = tmp_path / "up.log", tmp_path / "tail.log"
    with up_log.open("wb") as out:
        up = subprocess.Popen(
            [str(AUTOPILOT), "up", "--run-dir", str(tmp_path / "run")],
            env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    tail = None
    try:
        wait_until(lambda: "\nup in " in up_log.read_text(), 180, "autopilot up never came up")
        with tail_log.open("wb") as out:
            tail = subprocess.Popen(
                [str(AUTOPILOT), "tail"],
                env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        # Every decision topic, within a minute of "up": a scaling decision, an anomaly or
        # remediation decision, and a failover recommendation.
        wanted = {SCALING, REMEDIATION, FAILOVER}
        wait_until(
            lambda: topics_of(firsts(up_log)) >= wanted,
            60,
            f"not every kind of decision within a minute of up: {firsts(up_log)}",
        )
        announced = firsts(up_log)
        assert {"scaling", "failover"} <= set(announced), announced
        assert {"remediation", "anomaly"} & set(announced), announced
        # What tail printed: the decisions, and no ERROR (no missing topic, no leader).
        shown = re.compile(r"^\d\d:\d\d:\d\d failover ", re.MULTILINE)
        wait_until(lambda: shown.search(tail_log.read_text()), 30, "tail showed no failover")
        tail.send_signal(signal.SIGINT)
        tail.wait(30)
        printed = tail_log.read_text(errors="replace")
        assert "ERROR" not in printed and "Traceback" not in printed, printed[-3000:]
        assert re.search(r"^\d\d:\d\d:\d\d scaling ", printed, re.MULTILINE), printed[-3000:]
    finally:
        for proc in (tail, up):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
    # Ctrl-C stops everything up started, and says so; the run was clean.
    said = up_log.read_text(errors="replace")
    assert up.returncode == 0, said[-3000:]
    assert "stopped worker" in said and "stopped simulator" in said
    assert "Traceback" not in said and "Warning" not in said, said[-3000:]

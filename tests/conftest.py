"""Shared fixtures: one real Kafka broker per test session, fresh topics per test.

The broker is the project's own :class:`streams.kafka.local.KafkaLocal` on a
free port, bound to this pytest process (it dies with it, even on SIGKILL).
Set ``AUTOPILOT_TEST_BROKER=host:port`` to run against a broker you manage.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from schemas.topics import TopicNames
from streams.kafka.local import KafkaLocal, free_port
from streams.lab.bench.support import delete_topics, handled_counts, metric_sum

ROOT = Path(__file__).resolve().parents[1]
# A worker script run as a subprocess by tests/e2e/test_offsets_watchdog.py: importing it
# (as --doctest-modules would) needs that test's environment.
collect_ignore = ["support/offsets_worker.py"]
AUTOPILOT = Path(sys.executable).with_name("autopilot")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``kafka`` every test that uses the broker, so ``make test`` runs it in the
    broker's session (``-m kafka``) and never in the parallel one (``-m "not kafka"``)."""
    for item in items:
        if "kafka_bootstrap" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.kafka)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a real Apache Kafka broker for the whole session."""
    if external := os.environ.get("AUTOPILOT_TEST_BROKER"):
        yield external.removeprefix("kafka://")
        return
    broker = KafkaLocal(port=free_port(), data_dir=tmp_path_factory.mktemp("kafka"))
    broker.start(owned=True)
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def topic_names(request: pytest.FixtureRequest) -> Iterator[TopicNames]:
    """A fresh topic prefix per test, so tests never see each other's messages.

    On a broker of one's own (``AUTOPILOT_TEST_BROKER``), every topic under the prefix
    (the workers' changelogs and internal topics too: their app id carries it) is deleted
    after the test: a development broker had gathered thousands, and a worker there no
    longer handled anything in the soak bench's short run. The session's own broker goes
    with its session.
    """
    names = TopicNames(f"t{uuid.uuid4().hex[:10]}.")
    yield names
    if os.environ.get("AUTOPILOT_TEST_BROKER") and "kafka_bootstrap" in request.fixturenames:
        bootstrap = request.getfixturevalue("kafka_bootstrap")
        try:
            asyncio.run(asyncio.wait_for(delete_topics(bootstrap, names.prefix), 60))
        except Exception as exc:  # the test's own outcome matters more than its clean-up
            warnings.warn(f"could not delete the topics of {names.prefix}: {exc!r}", stacklevel=1)


@dataclass
class WorkerProcess:
    """An ``autopilot worker`` subprocess and the ways a test talks to it."""

    proc: subprocess.Popen
    web_port: int
    log_path: Path
    env: dict[str, str]

    def metrics_text(self) -> str:
        url = f"http://127.0.0.1:{self.web_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode()

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels``."""
        return metric_sum(self.metrics_text(), name, **labels)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def simulate(self, out_dir: Path, *args: str, name: str = "sim") -> tuple[dict, dict]:
        """Run ``autopilot simulate *args`` against this worker's broker and topics.

        Returns the simulator's summary and ground truth, written under ``out_dir``.
        """
        return simulate(self.env, out_dir, *args, name=name)

    def wait_handled(self, topic: str, count: int, timeout: float = 300) -> None:
        """Wait until this worker has consumed ``count`` records of logical ``topic`` and
        handled (processed or dead-lettered) every record it consumed.

        Both are read from one scrape. An envelope's records count as consumed before the
        first is handled, so the consumed count alone can be reached while the last envelope
        (tens of records) is still being learned.

        The simulator sends envelopes, so a worker reads the other topics' records faster
        than before and ``topic``'s come later: on a loaded machine, minutes later.
        """

        def caught_up() -> bool:
            consumed, handled = handled_counts(self.metrics_text(), topic)
            return consumed >= count and handled >= consumed

        wait_until(
            caught_up,
            timeout,
            f"worker did not consume and handle {count} messages of {topic}",
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def simulate(
    env: dict[str, str], out_dir: Path, *args: str, name: str = "sim"
) -> tuple[dict, dict]:
    """Run ``autopilot simulate *args`` with ``env`` (its broker and topic prefix) to the end.

    Returns the simulator's summary and ground truth, written under ``out_dir``.
    """
    summary_path = out_dir / f"{name}-summary.json"
    truth_path = out_dir / f"{name}-truth.json"
    sim = subprocess.run(
        [str(AUTOPILOT), "simulate", *args, "--summary-json", str(summary_path),
         "--ground-truth", str(truth_path)],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert sim.returncode == 0, sim.stderr[-2000:]
    return orjson.loads(summary_path.read_bytes()), orjson.loads(truth_path.read_bytes())


def wait_until(
    predicate: Callable[[], bool],
    timeout: float,
    message: str | Callable[[], str],
    interval: float = 0.25,
) -> None:
    """Poll ``predicate`` until it holds; fail the test with ``message`` otherwise.

    A callable ``message`` is called at the timeout, to say what held then.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(interval)
    said = message() if callable(message) else message
    raise AssertionError(f"timed out after {timeout:.0f}s: {said}")


def wait_progressing(
    progress: Callable[[], float], target: float, stall_s: float, describe: Callable[[], str]
) -> None:
    """Poll ``progress`` until it reaches ``target``; fail the test with ``describe()`` (and
    the last value) once it has not risen for ``stall_s``. For work whose pace depends on the
    machine and its load, where only a standstill is a failure."""
    last, risen_at = -math.inf, time.monotonic()
    while True:
        try:
            value = progress()
        except OSError:
            value = last
        if value >= target:
            return
        if value > last:
            last, risen_at = value, time.monotonic()
        elif time.monotonic() - risen_at > stall_s:
            raise AssertionError(f"stalled at {last} of {target} for {stall_s:.0f}s: {describe()}")
        time.sleep(0.25)


def spawn_worker(
    env: dict[str, str], cwd: Path, name: str, started: list[WorkerProcess]
) -> WorkerProcess:
    """Start ``autopilot worker`` with ``env`` on a free web port; wait until it is ready.

    The worker is appended to ``started`` first, so the caller stops it even if it never
    becomes ready.
    """
    port = free_port()
    env = {**env, "AUTOPILOT_WEB_PORT": str(port)}
    log_path = cwd / f"{name}.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [str(AUTOPILOT), "worker", "-l", "info", "--web-port", str(port)],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    worker = WorkerProcess(proc, port, log_path, env)
    started.append(worker)
    wait_until(
        lambda: proc.poll() is None and "Worker ready" in worker.log(),
        90,
        f"worker did not become ready; log tail: {worker.log()[-2000:]}",
    )
    return worker


@pytest.fixture
def start_worker(
    kafka_bootstrap: str, topic_names: TopicNames, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start ``autopilot worker`` subprocesses on the session broker; stopped at teardown."""
    started: list[WorkerProcess] = []

    def start(extra_env: dict[str, str] | None = None, name: str = "worker") -> WorkerProcess:
        env = {
            **os.environ,
            "AUTOPILOT_BROKER": f"kafka://{kafka_bootstrap}",
            "AUTOPILOT_TOPIC_PREFIX": topic_names.prefix,
            "AUTOPILOT_PARTITIONS": "4",
            "AUTOPILOT_DATA_DIR": str(tmp_path / f"{name}-data"),
            **(extra_env or {}),
        }
        return spawn_worker(env, tmp_path, name, started)

    yield start
    for worker in started:
        worker.stop()


def run_async(coro):
    """Run a coroutine from a synchronous test."""
    return asyncio.run(coro)


# The moto server fixtures live beside the helpers that use them; importing them here
# makes them available to every test module.
from tests.support.aws import aws, moto_server  # noqa: E402, F401

"""What the Kafka benches share: a broker for the run, a worker subprocess and its figures.

A bench uses the broker it is given or starts a :class:`~streams.kafka.local.KafkaLocal`
of its own for the run, starts the real worker (or another Faust app) as a
subprocess on fresh topics, and reads its progress from its web port and its
memory from ``/proc``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from models.forecast.load import DAY_S
from schemas.topics import TopicNames
from streams.kafka.local import KafkaLocal, free_port

__all__ = [
    "CONSERVATION_COUNTERS",
    "START_IN_WEEK_S",
    "Log",
    "WorkerRun",
    "assigned_partitions",
    "bench_broker",
    "handled_counts",
    "machine_cpu_seconds",
    "metric_by_label",
    "metric_sum",
    "proc_cpu_seconds",
    "proc_status_bytes",
    "run_rounds",
    "spread",
]

Log = Callable[[str], None]

START_IN_WEEK_S = 5 * DAY_S + 13 * 3600.0
"""Where in the week (from the epoch's Thursday 00:00 UTC) the simulated demand of the
scale-out, latency and throughput benches starts, whatever the hour they run at
(:meth:`~streams.lab.simulator.SimConfig.playing_week_from`): a Tuesday at 13:00 UTC, when
demand rises in us-east (08:00 there) and eu-west (13:00) and falls in ap-south (18:30)."""

CONSERVATION_COUNTERS = (
    "autopilot_events_consumed_total",
    "autopilot_events_processed_total",
    "autopilot_dlq_total",
)
"""The samples a bench polls to know how far a worker got."""


def spread(rounds: Sequence[Mapping[str, Any]], names: Iterable[str]) -> dict[str, Any]:
    """The min, median and max of each figure of ``names`` over ``rounds``, for a bench run
    several times: a machine of this kind drifts by a fifth within minutes, so one round
    says little, and the median of several is the headline. A round without a figure
    (``None``: not measured) is left out of it.

    >>> spread([{"p99_ms": 120.0}, {"p99_ms": 90.0}, {"p99_ms": None}], ["p99_ms"])
    {'p99_ms': {'min': 90.0, 'median': 105.0, 'max': 120.0}}
    """
    out: dict[str, Any] = {}
    for name in names:
        values = [r[name] for r in rounds if r.get(name) is not None]
        out[name] = {
            "min": round(min(values), 4) if values else None,
            "median": round(statistics.median(values), 4) if values else None,
            "max": round(max(values), 4) if values else None,
        }
    return out


@contextlib.contextmanager
def bench_broker(broker: str | None, workdir: Path, log: Log) -> Iterator[str]:
    """Yield ``host:port`` of ``broker``, or of a local broker started for the run."""
    if broker is not None:
        yield broker.removeprefix("kafka://")
        return
    local = KafkaLocal(port=free_port(), data_dir=workdir / "kafka", log=log)
    local.start(owned=True)
    try:
        yield local.bootstrap
    finally:
        local.stop()


def run_rounds(
    rounds: int, broker: str | None, log: Log, one_round: Callable[[str, Path], dict[str, Any]]
) -> list[dict[str, Any]]:
    """The figures of ``one_round(bootstrap, workdir)``, run ``rounds`` times on one broker
    (``broker``, or a local one started for them all) with one scratch directory."""
    if rounds < 1:
        raise ValueError("need at least one round")
    done = []
    with (
        tempfile.TemporaryDirectory(prefix="autopilot-bench-") as tmp,
        bench_broker(broker, Path(tmp), log) as bootstrap,
    ):
        for number in range(1, rounds + 1):
            if rounds > 1:
                log(f"round {number} of {rounds}")
            done.append(one_round(bootstrap, Path(tmp)))
    return done


@contextlib.contextmanager
def bench_topics(bootstrap: str, log: Log, label: str = "") -> Iterator[TopicNames]:
    """Topic names under a prefix of their own, ``bench-<label><random>.``; every topic
    under it (the workers' changelogs and internal topics too: their app id carries it) is
    deleted at the end. A bench run against a shared broker leaves nothing behind: each
    scale-out run left 31 topics, and a development broker had gathered 3,709."""
    topics = TopicNames(f"bench-{label}{uuid.uuid4().hex[:8]}.")
    try:
        yield topics
    finally:
        try:
            deleted = asyncio.run(delete_topics(bootstrap, topics.prefix))
        except Exception as exc:  # the run's own outcome matters more than its clean-up
            log(f"could not delete the topics of {topics.prefix}: {exc!r}")
        else:
            log(f"deleted the {deleted} topics of {topics.prefix}")


async def delete_topics(bootstrap: str, prefix: str) -> int:
    """Delete every topic whose name starts with ``prefix``; return how many there were."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [name for name in await admin.list_topics() if name.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
        return len(names)
    finally:
        await admin.close()


def _samples(text: str, name: str, **labels: str) -> Iterator[tuple[dict[str, str], float]]:
    """The labels and value of each sample of metric ``name`` in Prometheus ``text`` whose
    labels include ``labels``."""
    for match in re.finditer(rf"^{re.escape(name)}(?:\{{([^}}]*)\}})? (\S+)$", text, re.M):
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            yield found, float(match.group(2))


def metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of metric ``name`` in Prometheus ``text`` whose labels include ``labels``.

    >>> text = 'a_total{topic="m",reason="x"} 2.0\\na_total{topic="e"} 5.0\\na_totals 7.0\\n'
    >>> metric_sum(text, "a_total", topic="m"), metric_sum(text, "a_total")
    (2.0, 7.0)
    """
    return sum((value for _, value in _samples(text, name, **labels)), 0.0)


def handled_counts(text: str, topic: str) -> tuple[float, float]:
    """Records of logical ``topic`` consumed, and handled (processed or dead-lettered), in a
    worker's Prometheus ``text``; each record of an envelope counts.

    >>> handled_counts(
    ...     'autopilot_events_consumed_total{topic="m"} 5.0\\n'
    ...     'autopilot_events_processed_total{topic="m"} 3.0\\n'
    ...     'autopilot_dlq_total{topic="m",reason="schema"} 1.0\\n', "m")
    (5.0, 4.0)
    """
    consumed = metric_sum(text, "autopilot_events_consumed_total", topic=topic)
    processed = metric_sum(text, "autopilot_events_processed_total", topic=topic)
    return consumed, processed + metric_sum(text, "autopilot_dlq_total", topic=topic)


def assigned_partitions(text: str, topic: str) -> set[int]:
    """Partitions of logical ``topic`` a worker holds, by the consumer lag it exports for
    them (``autopilot_consumer_lag``, refreshed every few seconds) in its Prometheus ``text``.

    >>> sorted(assigned_partitions(
    ...     'autopilot_consumer_lag{partition="2",topic="m"} 0.0\\n'
    ...     'autopilot_consumer_lag{partition="0",topic="m"} 7.0\\n'
    ...     'autopilot_consumer_lag{partition="1",topic="e"} 0.0\\n', "m"))
    [0, 2]
    """
    lags = _samples(text, "autopilot_consumer_lag", topic=topic)
    return {int(found["partition"]) for found, _ in lags}


def metric_by_label(text: str, name: str, label: str) -> dict[str, float]:
    """Samples of metric ``name`` in Prometheus ``text``, summed by the value of ``label``.

    >>> metric_by_label('m{model="a"} 2.0\\nm{model="b"} 3.0\\n', "m", "model")
    {'a': 2.0, 'b': 3.0}
    """
    values: dict[str, float] = {}
    for found, value in _samples(text, name):
        if label in found:
            values[found[label]] = values.get(found[label], 0.0) + value
    return values


def proc_status_bytes(pid: int, field: str) -> int:
    """A memory field of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``...) in bytes; 0 if gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0
    for line in lines:
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    return 0


def proc_cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds used so far by process ``pid``; 0.0 if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # The command name, in parentheses, may hold spaces: count fields after it.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> dict[str, float]:
    """CPU seconds of the whole machine since boot, summed over its cores: ``busy`` (user,
    nice, system, interrupts), ``steal`` (taken by the hypervisor for other guests) and
    ``total`` (busy, steal, idle and I/O wait). Differences over a span give how many cores
    everything on the machine kept busy (a broker, a bench's own process, a neighbour).

    >>> seconds = machine_cpu_seconds()
    >>> 0 <= seconds["busy"] + seconds["steal"] <= seconds["total"]
    True
    """
    # /proc/stat's first line: "cpu" then user nice system idle iowait irq softirq steal...
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    tick = os.sysconf("SC_CLK_TCK")
    busy = user + nice + system + irq + softirq
    return {"busy": busy / tick, "steal": steal / tick, "total": sum(fields) / tick}


class WorkerRun:
    """A Faust worker subprocess on the bench's broker and topic prefix.

    Parameters
    ----------
    broker
        ``host:port`` of the broker.
    prefix
        ``AUTOPILOT_TOPIC_PREFIX`` of the run's topics.
    workdir
        Where its data directory and log go.
    module
        The module run with ``python -m``: the product's worker by default.
    name
        Names its log file and data directory.
    extra_env
        Further environment variables.
    """

    def __init__(
        self,
        broker: str,
        prefix: str,
        workdir: Path,
        module: str = "streams",
        name: str = "worker",
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.prefix = prefix
        self.log_path = workdir / f"{name}.log"
        env = {
            **os.environ,
            "AUTOPILOT_BROKER": f"kafka://{broker}",
            "AUTOPILOT_TOPIC_PREFIX": prefix,
            "AUTOPILOT_WEB_PORT": str(self.port),
            "AUTOPILOT_DATA_DIR": str(workdir / f"{name}-data"),
            "AUTOPILOT_LOG_LEVEL": "warn",
            **(extra_env or {}),
        }
        args: Sequence[str] = [sys.executable, "-m", module, "worker", "-l", "warn"]
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                args, env=env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, cwd=workdir,
            )  # fmt: skip

    def __enter__(self) -> WorkerRun:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def get(self, path: str, timeout: float = 5.0) -> str:
        """GET ``path`` from the worker's web server; raises ``OSError`` until it listens."""
        url = f"http://127.0.0.1:{self.port}{path}"
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read().decode()

    def metrics(self, names: Sequence[str] = ()) -> str | None:
        """The worker's ``/metrics`` text, or ``None`` while it does not answer.

        ``names`` restricts it to those samples, which costs the worker far less to render
        than the whole exposition.
        """
        query = "&".join(f"name[]={name}" for name in names)
        try:
            return self.get(f"/metrics?{query}" if query else "/metrics")
        except OSError:
            return None

    def handled(self, topic: str = "telemetry.metrics") -> tuple[float, float] | None:
        """Records of logical ``topic`` consumed, and handled (processed or dead-lettered).

        Each record of an envelope counts.

        ``None`` while the worker's web server does not answer.
        """
        text = self.metrics(CONSERVATION_COUNTERS)
        return None if text is None else handled_counts(text, topic)

    def time_backlog(
        self,
        expected: int,
        timeout_s: float,
        log: Log,
        what: str,
        poll_s: float = 0.5,
        since: float | None = None,
    ) -> float:
        """Seconds from the first consumed metric record (or from ``since``, monotonic)
        until ``expected`` are handled.

        Polled every ``poll_s`` (rendering ``/metrics`` costs the worker some CPU),
        so the figure is good to about that. Raises ``RuntimeError`` when the
        worker dies or ``timeout_s`` passes first.
        """
        deadline = time.monotonic() + timeout_s
        started = since
        reported = time.monotonic()
        handled = 0.0
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"the worker exited; log tail:\n{self.log_tail()}")
            counts = self.handled()
            if counts is not None:
                consumed, handled = counts
                if started is None and consumed > 0:
                    started = time.monotonic()
                if handled >= expected:
                    return time.monotonic() - (started or time.monotonic())
            if time.monotonic() - reported >= 5.0:
                log(f"  {what}: {int(handled):,d}/{expected:,d} events handled")
                reported = time.monotonic()
            time.sleep(poll_s)
        raise RuntimeError(f"{what}: the worker handled {int(handled)} of {expected} events")

    def wait_idle(self, busy_share: float = 0.2, timeout_s: float = 60.0) -> float:
        """Wait until the worker uses less than ``busy_share`` of a core over a second.

        Returns the seconds waited (``timeout_s`` at most). Work a worker does
        after its counters say an event is handled (timers catching up, a
        checkpoint) would otherwise fall into what is measured next.
        """
        started = time.monotonic()
        cpu = proc_cpu_seconds(self.pid)
        while time.monotonic() - started < timeout_s and self.alive():
            time.sleep(1.0)
            now_cpu = proc_cpu_seconds(self.pid)
            used, cpu = now_cpu - cpu, now_cpu
            if used < busy_share:
                break
        return time.monotonic() - started

    def rss_bytes(self) -> int:
        return proc_status_bytes(self.pid, "VmRSS")

    def peak_rss_bytes(self) -> int:
        return proc_status_bytes(self.pid, "VmHWM")

    def log_tail(self, chars: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self, timeout_s: float = 30.0) -> None:
        """Terminate the worker and wait for it; kill it if it does not stop in time."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

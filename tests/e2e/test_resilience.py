"""Resilience on the real broker: a worker killed mid-stream, the broker stopped mid-stream,
a worker of two lost, and a burst at ten times the normal rate.

Every scenario ends with the same accounting: the consumer group's committed offsets reach
the end of every telemetry partition (nothing left unread), and ``consumed = processed +
dead-lettered`` on the worker that finished the job.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from schemas import Decision, decision_id_for
from schemas.topics import TopicNames
from streams.kafka.local import KafkaLocal, free_port
from streams.lab.simulator import SimConfig, run_simulation
from tests.conftest import AUTOPILOT, WorkerProcess, wait_progressing, wait_until
from tests.support.consumer_group import (
    PARTITIONS,
    backlog,
    group_of,
    offsets,
    wait_all_committed,
)
from tests.support.worker_views import (
    brain_view,
    decisions,
    failover_view,
    identity,
    lag_partitions,
)

pytestmark = pytest.mark.kafka

log = logging.getLogger(__name__)

FAST_CHECKPOINTS = {"AUTOPILOT_CHECKPOINT_INTERVAL_S": "1"}
LABELS = {
    "metrics": "telemetry.metrics",
    "errors": "telemetry.errors",
    "interactions": "telemetry.interactions",
}
REGIONAL = ("region_outage", "brownout", "flapping")
# streams.runtime.app: a worker killed without leaving the group holds its partitions this long.
SESSION_TIMEOUT_S = 10.0
# On a shared 2-core machine a rebalance and the restore of the changelogs take a while
# more; this bounds the wait, it is not a speed claim.
RECOVERY_SLACK_S = 60.0
RSS_BOUND_BYTES = 1 << 30


def logged_counts(bootstrap: str, names: TopicNames) -> dict[str, int]:
    """Messages in each simulated telemetry topic, by simulator topic attribute."""
    _, ends = offsets(bootstrap, group_of(names), tuple(getattr(names, a) for a in LABELS))
    counts = dict.fromkeys(LABELS, 0)
    for tp, end in ends.items():
        counts[next(a for a in LABELS if getattr(names, a) == tp.topic)] += end
    return counts


def assert_accounted(worker: WorkerProcess) -> None:
    """``consumed = processed + dead-lettered`` on ``worker``, none dead-lettered."""
    for topic in LABELS.values():
        consumed = worker.metric("autopilot_events_consumed_total", topic=topic)
        processed = worker.metric("autopilot_events_processed_total", topic=topic)
        dead = worker.metric("autopilot_dlq_total", topic=topic)
        assert processed + dead == consumed, (topic, consumed, processed, dead)
        assert dead == 0, f"the simulator's own {topic} events were dead-lettered"


class Simulation:
    """``autopilot simulate`` in the background, pointed at a worker's broker and topics."""

    def __init__(self, env: dict[str, str], out_dir: Path, *args: str, name: str) -> None:
        self.summary_path = out_dir / f"{name}-summary.json"
        self.truth_path = out_dir / f"{name}-truth.json"
        self.log_path = out_dir / f"{name}.log"
        with self.log_path.open("wb") as output:
            self.proc = subprocess.Popen(
                # Single records: the tests compare messages in the log with records sent.
                [str(AUTOPILOT), "simulate", *args, "--no-envelope",
                 "--summary-json", str(self.summary_path),
                 "--ground-truth", str(self.truth_path)],
                env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float = 180, check: bool = True) -> int:
        """Wait for the run to end (killing it after ``timeout``); return its exit code."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the simulator ran over {timeout:.0f}s") from None
        if check:
            assert code == 0, self.log_path.read_text(errors="replace")[-2000:]
        return code

    def summary(self) -> dict:
        return orjson.loads(self.summary_path.read_bytes())

    def truth(self) -> dict:
        return orjson.loads(self.truth_path.read_bytes())

    def kill(self) -> None:
        if self.running():
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def simulations() -> list[Simulation]:
    """Background simulations of a test; any still running at teardown is killed."""
    started: list[Simulation] = []
    yield started
    for simulation in started:
        simulation.kill()


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    """Resident memory of a process (``VmHWM``: its peak), from ``/proc``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def test_kill_9_mid_stream_then_restart_accounts_for_every_input(
    start_worker, simulations, kafka_bootstrap, topic_names, tmp_path, record_property
) -> None:
    env = FAST_CHECKPOINTS | {"AUTOPILOT_DATA_DIR": str(tmp_path / "data")}
    worker = start_worker(env, name="first")
    # The mixed hour in about 180 s: the kill lands after the ap-south brown-out failover
    # (20 min in), before the error burst (30 min in), the flapping and the outage. The
    # 30 wall seconds between the two leave room for an evaluator that trails the errors
    # agent on a busy machine (at 20 s, one run in a two-process suite missed it).
    sim = Simulation(worker.env, tmp_path, "--scenario", "mixed", "--speed", "20", name="sim")
    simulations.append(sim)
    wait_until(
        lambda: worker.metric("autopilot_events_consumed_total", topic="telemetry.metrics") >= 1500,
        120,
        "the worker consumed too little before the kill",
    )
    before = brain_view(worker, "checkout", "us-east")
    viewed_at = time.monotonic()
    assert before["known"] and before["samples"] > 0, before
    # A failover in flight when the worker dies: its decision is published before the
    # state recording it is checkpointed, so the restarted worker may publish it again.
    wait_until(
        lambda: worker.metric("autopilot_decisions_total", kind="failover") >= 1,
        120,
        "no failover before the kill",
    )
    # Two checkpoint intervals after `before` at least, so the last checkpoint holds it.
    time.sleep(max(0.0, viewed_at + 2.0 - time.monotonic()))
    assert sim.running(), "the simulation ended before the kill: not mid-stream"
    # A kill while a burst is being decided may cost a second remediation decision (the
    # brains' checkpoints and the offset commits are not one atomic step): see the README.
    assert worker.metric("autopilot_decisions_total", kind="remediation") == 0, (
        "the worker had reached the error burst before the kill"
    )
    worker.stop(signal.SIGKILL)

    restarted = start_worker(env, name="restarted")
    after = brain_view(restarted, "checkout", "us-east")
    assert after["known"], "the restarted worker has no state for the series: a cold start"
    assert after["samples"] >= before["samples"], (before, after)

    sim.wait(timeout=300)
    sent, truth = sim.summary()["sent"], sim.truth()
    assert logged_counts(kafka_bootstrap, topic_names) == sent
    wait_all_committed(kafka_bootstrap, topic_names)
    assert_accounted(restarted)
    assert restarted.proc.poll() is None and "Traceback" not in restarted.log()

    found = [d for topic in topic_names.decisions() for d in decisions(kafka_bootstrap, topic)]
    ids_of: dict[tuple, set[str]] = defaultdict(set)
    for d in found:
        ids_of[identity(d)].add(d.decision_id)
    conflicting = {key: ids for key, ids in ids_of.items() if len(ids) > 1}
    # A scaling decision replayed after the kill may differ from the one first published:
    # the samples between the series' last checkpoint and a later offset commit are not
    # learned again (README, "Metrics brain"). 2 of 3 runs on 2 December had one or two;
    # making checkpoint and commit one step is the effectively-once issue's work.
    scaling = {key: ids for key, ids in conflicting.items() if key[0] == "scaling"}
    assert len(scaling) <= 2, scaling
    record_property("scaling_decisions_replayed_differently", len(scaling))
    conflicting = {key: ids for key, ids in conflicting.items() if key not in scaling}
    assert conflicting == {}, "a replayed input gave a different decision"
    replayed = len(found) - len({d.decision_id for d in found})
    record_property("decisions", len(found))
    record_property("decisions_published_again", replayed)
    log.info("%d decisions, %d of them published again after the kill", len(found), replayed)

    # No incident is failed over, or remediated, twice: one decision id per incident.
    failover_kinds = ("failover", "failover_blocked")
    assert any(d.kind == "failover" for d in found)
    for incident in truth["incidents"]:
        if incident["type"] in REGIONAL:
            kinds, subject = failover_kinds, {"region": incident["region"]}
        elif incident["type"] == "error_burst":
            kinds = ("remediation",)
            subject = {"service": incident["service"], "region": incident["region"]}
        else:
            continue
        acted = {
            d.decision_id: d
            for d in found
            if d.kind in kinds
            and d.subject == subject
            and incident["onset_ts"] <= d.ts <= incident["end_ts"] + 60.0
        }
        assert len(acted) <= 1, [
            (d.ts - incident["onset_ts"], d.action, d.evidence.get("template"), d.reason)
            for d in acted.values()
        ]


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[KafkaLocal]:
    """A broker of the test's own, which it may stop and start again.

    Request it before ``start_worker``: fixtures are torn down in reverse, so the workers
    are stopped while their broker still runs.
    """
    broker = KafkaLocal(port=free_port(), data_dir=tmp_path / "kafka")
    broker.start(owned=True)
    try:
        yield broker
    finally:
        broker.stop()


def test_worker_reconnects_by_itself_after_the_broker_is_down_for_20s(
    own_broker, start_worker, simulations, topic_names, tmp_path
) -> None:
    bootstrap = own_broker.bootstrap
    worker = start_worker({"AUTOPILOT_BROKER": f"kafka://{bootstrap}"}, name="worker")
    pid = worker.proc.pid
    # Half an hour of telemetry over about 20 s: the broker goes away while it flows.
    first = Simulation(worker.env, tmp_path, "--scenario", "healthy", "--speed", "90", name="first")
    simulations.append(first)
    wait_until(
        lambda: worker.metric("autopilot_events_consumed_total", topic="telemetry.metrics") >= 300,
        120,
        "the worker consumed nothing before the broker stop",
    )
    assert first.running(), "the simulation ended before the broker stop: not mid-stream"
    own_broker.stop()
    time.sleep(20)
    # The same port and data dir: the log and the group's committed offsets survive.
    own_broker.start(owned=True)
    # The simulator's producer retries through the outage or gives up; either way the
    # worker must read everything that reached the log.
    completed = first.wait(timeout=120, check=False) == 0

    second = Simulation(
        worker.env, tmp_path, "--scenario", "healthy", "--duration", "300", name="second"
    )
    simulations.append(second)
    second.wait()
    assert worker.proc.poll() is None and worker.proc.pid == pid, "the worker did not survive"
    logged = logged_counts(bootstrap, topic_names)
    acknowledged = Counter(second.summary()["sent"])
    if completed:
        acknowledged.update(first.summary()["sent"])
    assert all(logged[k] >= count for k, count in acknowledged.items()), (logged, acknowledged)
    wait_all_committed(bootstrap, topic_names)
    for kind, count in logged.items():
        consumed = worker.metric("autopilot_events_consumed_total", topic=LABELS[kind])
        assert consumed >= count, f"{LABELS[kind]}: {consumed} consumed of {count} in the log"
    assert_accounted(worker)


def test_survivor_of_two_workers_takes_every_partition_and_keeps_deciding(
    start_worker, simulations, kafka_bootstrap, topic_names, tmp_path, record_property
) -> None:
    workers = [start_worker(FAST_CHECKPOINTS, name="a"), start_worker(FAST_CHECKPOINTS, name="b")]
    telemetry = {(t, str(p)) for t in TopicNames().telemetry() for p in range(PARTITIONS)}

    def split() -> bool:
        owned = [lag_partitions(w).keys() & telemetry for w in workers]
        return all(owned) and owned[0].isdisjoint(owned[1]) and owned[0] | owned[1] == telemetry

    wait_until(split, 90, "the two workers did not split the telemetry partitions")
    # The surge's series; the worker reading it is the one killed, so its scale-out can only
    # come from the survivor, on a partition that was not its own.
    surge_partition = ("telemetry.metrics", "2")
    victim = next(w for w in workers if surge_partition in lag_partitions(w))
    survivor = next(w for w in workers if w is not victim)
    foreign = f"{topic_names.metrics}/{surge_partition[1]}"

    # Forty minutes, the surge from minute 10, over about 40 s of wall time.
    sim = Simulation(
        survivor.env, tmp_path, "--scenario", "load_surge", "--speed", "60", name="surge"
    )
    simulations.append(sim)
    wait_until(
        lambda: all(
            w.metric("autopilot_events_consumed_total", topic="telemetry.metrics") > 0
            for w in workers
        ),
        60,
        "both workers should read telemetry before the kill",
    )
    reached = max(
        (s["latest_ts"] or 0.0 for s in failover_view(victim)["reading"].values()), default=0.0
    )
    decided_before = survivor.metric("autopilot_decisions_total")
    victim.stop(signal.SIGKILL)
    killed_at = time.monotonic()
    wait_until(
        lambda: (failover_view(survivor)["reading"].get(foreign) or {}).get("offset", -1) >= 0,
        SESSION_TIMEOUT_S + RECOVERY_SLACK_S,
        f"the survivor never read {foreign}",
        interval=0.1,
    )
    recovery_s = time.monotonic() - killed_at
    record_property("time_to_recover_s", round(recovery_s, 2))
    log.info("time to recover from a killed worker: %.1f s", recovery_s)

    sim.wait()
    surge = next(i for i in sim.truth()["incidents"] if i["type"] == "load_surge")
    assert reached < surge["onset_ts"], "the killed worker saw the surge: the test proves nothing"
    wait_all_committed(kafka_bootstrap, topic_names)
    wait_until(
        lambda: lag_partitions(survivor).keys() >= telemetry,
        30,
        "the survivor does not export the lag of every telemetry partition",
    )
    assert_accounted(survivor)
    assert survivor.metric("autopilot_decisions_total") > decided_before
    scale_outs = [
        d
        for d in decisions(kafka_bootstrap, topic_names.scaling)
        if d.subject == {"service": surge["service"], "region": surge["region"]}
        and d.action == "scale_out"
        and d.ts >= surge["onset_ts"]
    ]
    assert scale_outs, "the survivor did not scale the surge out"
    assert survivor.proc.poll() is None and "Traceback" not in survivor.log()


class Sampler:
    """Polls a worker's lag gauge, the group's backlog and the worker's RSS in a thread."""

    def __init__(self, worker: WorkerProcess, backlog_of: Callable[[], int]) -> None:
        self.worker = worker
        self.backlog_of = backlog_of
        self.samples: list[tuple[str, float, int, int]] = []
        self.phase = "normal"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                gauge = sum(lag_partitions(self.worker).values())
                self.samples.append(
                    (self.phase, gauge, self.backlog_of(), rss_bytes(self.worker.proc.pid))
                )
            except Exception:
                log.exception("sample failed")

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def peak(self, phase: str, index: int) -> float:
        return max((s[index] for s in self.samples if s[0] == phase), default=0.0)


def test_a_burst_at_ten_times_the_rate_drains_with_bounded_memory(
    start_worker, kafka_bootstrap, topic_names, record_property
) -> None:
    worker = start_worker()
    group, topics = group_of(topic_names), topic_names.telemetry()
    # About 550 events/s, then 5,500/s for about 8 s: more than a worker reads on two cores.
    normal_speed, normal_s, burst_s = 40.0, 400.0, 3000.0
    # One event-time line ending about now: normal, a burst at 10x, normal again.
    wall_s = 2 * normal_s / normal_speed + burst_s / (10 * normal_speed)
    start = time.time() - (2 * normal_s + burst_s) + wall_s
    phases = [
        ("normal", normal_s, normal_speed),
        ("burst", burst_s, 10 * normal_speed),
        ("after", normal_s, normal_speed),
    ]
    sent: dict[str, int] = defaultdict(int)
    with Sampler(worker, lambda: backlog(kafka_bootstrap, group, topics)) as sampler:
        for n, (phase, span_s, speed) in enumerate(phases):
            sampler.phase = phase
            config = SimConfig(duration_s=span_s, speed=speed, start_ts=start, seed=n)
            summary = asyncio.run(
                run_simulation(config, bootstrap_servers=kafka_bootstrap, topics=topic_names)
            )
            assert summary.failed == 0, summary.first_error
            for kind, count in summary.sent.items():
                sent[kind] += count
            record_property(f"{phase}_rate_per_s", round(summary.rate_per_s))
            log.info("%s: %d events at %.0f/s", phase, summary.total, summary.rate_per_s)
            start += span_s
        sampler.phase = "drain"

        def consumed() -> float:
            return sum(
                min(count, worker.metric("autopilot_events_consumed_total", topic=LABELS[kind]))
                for kind, count in sent.items()
            )

        # Its pace depends on what else the machine runs: only a standstill fails.
        wait_progressing(
            consumed,
            sum(sent.values()),
            60,
            lambda: (
                f"the worker did not consume all of {dict(sent)}; its log ends: "
                f"{worker.log()[-3000:]}"
            ),
        )
        wait_all_committed(kafka_bootstrap, topic_names)
        wait_until(
            lambda: sum(lag_partitions(worker).values()) == 0,
            30,
            "the worker's lag gauge did not fall back to 0",
        )
    peak_rss = max(rss_bytes(worker.proc.pid, "VmHWM"), *(s[3] for s in sampler.samples))
    figures = {
        f"{phase}_peak_{what}": sampler.peak(phase, index)
        for phase in ("normal", "burst", "after", "drain")
        for what, index in (("lag_gauge", 1), ("backlog", 2))
    }
    for name, value in {**figures, "peak_rss_bytes": peak_rss}.items():
        record_property(name, value)
    log.info("burst figures: %s, peak RSS %.0f MiB", figures, peak_rss / 2**20)
    # The gauge is sampled every 5 s by the worker, so its peak may come after the burst.
    for what in ("lag_gauge", "backlog"):
        normal = figures[f"normal_peak_{what}"]
        assert max(figures[f"{p}_peak_{what}"] for p in ("burst", "after", "drain")) > normal, (
            f"{what} did not rise above its normal level: {figures}"
        )
    assert peak_rss < RSS_BOUND_BYTES, f"peak RSS {peak_rss / 2**20:.0f} MiB"
    for kind, count in sent.items():
        assert worker.metric("autopilot_events_consumed_total", topic=LABELS[kind]) == count
    assert_accounted(worker)


async def _send_decisions(bootstrap: str, topic: str, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    await producer.start()
    try:
        subject = {"service": "search", "region": "us-east"}
        for n in range(count):
            params = {"desired_replicas": 3 + n % 5, "current_replicas": 2}
            ts = 1_700_000_000.0 + n
            decision = Decision(
                decision_id=decision_id_for("scaling", subject, "scale_out", params, [ts]),
                kind="scaling", ts=ts, subject=subject, action="scale_out", params=params,
                mode="recommend", confidence=0.9, reason="Demand is forecast to outrun capacity.",
                evidence={}, model_version="test",
            )  # fmt: skip
            await producer.send(topic, decision.to_bytes(), key=f"search/us-east/{n}".encode())
        await producer.flush()
    finally:
        await producer.stop()


def test_a_worker_stopped_as_it_starts_on_a_backlog_of_decisions_exits_by_itself(
    start_worker, kafka_bootstrap, topic_names
) -> None:
    # Decisions are read by two agents (actions and the audit trail): Faust's stop waited for
    # a copy that one of them would never process, until the worker was killed.
    asyncio.run(_send_decisions(kafka_bootstrap, topic_names.scaling, 3000))
    worker = start_worker(name="stopped")
    worker.proc.send_signal(signal.SIGTERM)
    try:
        code = worker.proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker did not stop by itself; log tail: {worker.log()[-1500:]}")
    assert code == 0, worker.log()[-1500:]
    assert "Traceback" not in worker.log()

"""Scale-out: records per second of the brains alone, of one worker and of two.

One run, on one broker, over the simulator's metric records (many series, in envelopes of
``envelope`` records of one series):

a. the bare rate: the brains the metrics agent drives (edge validation, the metrics
   brain, region health, the cost brain, decisions encoded) run in this process over
   the same envelopes, no Kafka, no Faust;
b. the pipeline with one worker: a real ``autopilot worker`` subprocess, every agent on,
   on fresh topics. Once it holds the partitions, the topics are filled; the clock starts
   when they are, and stops when the worker's conservation counters say every record is
   processed or dead-lettered. Then the bare rate again, which must decide the same
   (pipeline / bare is against the mean of the two bare rates);
c. the pipeline with two workers: two such subprocesses in one consumer group, on other
   fresh topics, filled once both hold partitions, so that the clock times the group
   formed and not its forming (one worker reading alone until the other joins, then
   handing partitions over). Records handled while the topics filled are left out of
   the rate, in both runs.

It reports the three rates, pipeline / bare and two workers / one, the peak RSS of
every worker, whether the one- and two-worker runs published the same set of
decisions (by ``decision_id``), with their kinds, and where each run's time went: when
each worker handled its last record and how many cores it kept busy, and how many the
whole machine did (a worker bound by its own core, or workers short of the machine's).
That is a round; several rounds on one broker (``--rounds``) give each figure's median and
spread, and how many rounds met each target: the speed of a machine of this kind drifts by
a fifth within minutes.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from schemas import Limits, MetricSample, Rejection
from schemas.decision import Decision
from schemas.topics import TopicNames
from schemas.validate import Envelope, parse_message
from streams.lab.bench.support import (
    CONSERVATION_COUNTERS,
    Log,
    WorkerRun,
    assigned_partitions,
    bench_topics,
    handled_counts,
    machine_cpu_seconds,
    metric_by_label,
    proc_cpu_seconds,
    run_rounds,
    spread,
)
from streams.lab.bench.throughput import bench_config
from streams.lab.simulator import SimConfig, enveloped, run_simulation

__all__ = [
    "bare_decisions",
    "format_bench_scaleout",
    "per_record",
    "run_bench_scaleout",
    "worker_parts",
]

FAILOVER_MODE = "recommend"
"""The mode of the failover decisions of the bare run: the region evaluator's
(:data:`agents.failover.MODE`)."""
TARGET_RECORDS_PER_S = 10_000.0
TARGET_BARE_RATIO = 0.8
TARGET_SPEEDUP = 1.5
_POLL_S = 0.5
PARTS = ("validation", "metrics_brain", "cost_brain", "region_health")
"""The parts of a record's handling timed in the bare run and in the workers; the time
outside them is the ``rest``."""
HANDLING = "autopilot_handling_seconds_total"
"""A worker's seconds in each part of its handling
(:data:`streams.runtime.exporter.HANDLING_SECONDS`)."""
_REGION_PARTS = ("region_evidence", "edge:internal.region-evidence", "region_brain")
"""A worker's parts of region health: the evidence recorder of its telemetry partitions, and
the region evaluator's edge (:data:`agents.failover.LABEL`) and brain."""


def per_record(spent: Mapping[str, float], seconds: float, handled: float) -> dict[str, float]:
    """Microseconds a record in each of the :data:`PARTS` of ``spent``, in the ``rest`` of
    ``seconds`` and in all of it (``total``).

    >>> per_record({"validation": 0.5, "metrics_brain": 2.0, "cost_brain": 0.25,
    ...             "region_health": 0.25}, 4.0, 100_000)
    {'validation': 5.0, 'metrics_brain': 20.0, 'cost_brain': 2.5, 'region_health': 2.5, \
'rest': 10.0, 'total': 40.0}
    """
    scale = 1e6 / max(handled, 1.0)
    out = {part: round(spent.get(part, 0.0) * scale, 2) for part in PARTS}
    out["rest"] = round((seconds - sum(spent.get(part, 0.0) for part in PARTS)) * scale, 2)
    out["total"] = round(seconds * scale, 2)
    return out


def worker_parts(handling: Mapping[str, float]) -> dict[str, float]:
    """A worker's seconds by part (``autopilot_handling_seconds_total``) as :data:`PARTS`.

    >>> worker_parts({"edge:telemetry.metrics": 1.0, "metrics_brain": 4.0, "cost_brain": 0.5,
    ...               "region_evidence": 0.25, "region_brain": 0.5, "edge:feedback": 9.0})
    {'validation': 1.0, 'metrics_brain': 4.0, 'cost_brain': 0.5, 'region_health': 0.75}
    """
    return {
        "validation": handling.get("edge:telemetry.metrics", 0.0),
        "metrics_brain": handling.get("metrics_brain", 0.0),
        "cost_brain": handling.get("cost_brain", 0.0),
        "region_health": sum(handling.get(part, 0.0) for part in _REGION_PARTS),
    }


def bare_decisions(
    messages: list[tuple[str, bytes, bytes, int]], now: float
) -> tuple[float, int, list[Decision], dict[str, float]]:
    """Drive the metrics agent's brains over ``messages`` in this process.

    Returns the seconds taken, the records handled, the decisions made, in order, and the
    seconds spent in each part (:data:`PARTS`), timed as a worker times its own
    (``autopilot_handling_seconds_total``). Every message is validated at the edge as a
    worker does (:func:`parse_message`), region health evaluated after each as the region
    evaluator does after each batch of evidence, and every decision encoded as it is to be
    published.
    """
    from models.brains.cost import CostBrain
    from models.brains.metrics import MetricsBrain
    from models.brains.region import RegionBrain
    from schemas.config.prices import load_price_table
    from schemas.config.regions import load_region_config
    from streams.runtime.heap import tune_collection

    metrics = MetricsBrain()
    region = RegionBrain(load_region_config())
    cost = CostBrain(load_price_table())
    limits = Limits()
    decisions: list[Decision] = []
    handled = 0
    clock = time.perf_counter
    spent = dict.fromkeys(PARTS, 0.0)
    # Collected as a started worker's heap is (streams.runtime.heap), so that the bare rate
    # and the pipeline's pay the same for garbage collection.
    tune_collection()
    started = time.perf_counter()
    for _, _, value, _ in messages:
        at = clock()
        result = parse_message("metrics", value, now=now, limits=limits)
        spent["validation"] += clock() - at
        records = result.records if type(result) is Envelope else [result]
        for sample in records:
            handled += 1
            if type(sample) is Rejection:
                continue
            assert type(sample) is MetricSample
            at = clock()
            region.observe_metrics(sample.ts, sample.region, sample.service, sample.metrics)
            spent["region_health"] += clock() - at
            at = clock()
            made = cost.observe(sample)
            spent["cost_brain"] += clock() - at
            at = clock()
            made += metrics.observe(sample.ts, sample.service, sample.region, sample.metrics)
            spent["metrics_brain"] += clock() - at
            for decision in made:
                decision.to_bytes()
                if decision.kind == "anomaly":
                    at = clock()
                    region.observe_anomaly(
                        decision.ts,
                        sample.region,
                        sample.service,
                        decision.params["metric"],
                        decision.evidence["score"],
                    )
                    spent["region_health"] += clock() - at
            decisions += made
        # As the worker's region evaluator does with each batch of evidence: apply what is
        # buffered up to the horizon and evaluate its ticks (left to pile up, the buffer
        # would hold most of the run unapplied and unevaluated).
        at = clock()
        drafts = region.advance()
        spent["region_health"] += clock() - at
        for draft in drafts:
            failover = draft.to_decision(mode=FAILOVER_MODE)
            failover.to_bytes()
            decisions.append(failover)
    return time.perf_counter() - started, handled, decisions, spent


def _bare(
    messages: list[tuple[str, bytes, bytes, int]], now: float, log: Log
) -> tuple[float, list[Decision], dict[str, float]]:
    """One bare run over ``messages``: its records/s, its decisions and the microseconds a
    record of each part (:func:`per_record`)."""
    seconds, handled, decisions, spent = bare_decisions(messages, now=now)
    log(f"bare: {handled / seconds:,.0f} records/s, {len(decisions):,d} decisions")
    return handled / seconds, decisions, per_record(spent, seconds, handled)


def _check_alive(workers: list[WorkerRun], what: str) -> None:
    for worker in workers:
        if not worker.alive():
            raise RuntimeError(f"{what}: a worker exited; log tail:\n{worker.log_tail()}")


def _time_workers(workers: list[WorkerRun], expected: int, log: Log, what: str) -> dict[str, Any]:
    """Records/s of ``workers`` from the moment all of them consume until ``expected`` are
    handled, with what each handled, its peak RSS, and where the time went
    (:func:`_time_shares`)."""
    deadline = time.monotonic() + 1800
    started: float | None = None
    at_start = 0.0
    reported = time.monotonic()
    last_handled = [0.0] * len(workers)
    last_growth = [0.0] * len(workers)
    clock: dict[str, Any] = {}
    while time.monotonic() < deadline:
        _check_alive(workers, what)
        texts = [worker.metrics(CONSERVATION_COUNTERS) for worker in workers]
        if all(text is not None for text in texts):
            counts = [handled_counts(t, "telemetry.metrics") for t in texts]
            consumed = [c for c, _ in counts]
            handled = [h for _, h in counts]
            now = time.monotonic()
            for i, h in enumerate(handled):
                if h > last_handled[i]:
                    last_handled[i], last_growth[i] = h, now
            if started is None and all(c > 0 for c in consumed):
                started, at_start = now, sum(handled)
                clock = _cpu_clock(workers, handled)
            if sum(handled) >= expected and started is None:
                # Waiting on would wait for nothing, until the deadline.
                raise RuntimeError(
                    f"{what}: every record was handled before all {len(workers)} workers "
                    f"consumed (handled: {', '.join(f'{h:,.0f}' for h in handled)}): the "
                    "records fell in one worker's partitions, or it read them all before the "
                    "other began; produce more records or series (--records, --series)"
                )
            if sum(handled) >= expected and started is not None:
                seconds = max(now - started, 1e-6)
                return {
                    "records_per_s": round((expected - at_start) / seconds, 1),
                    "seconds": round(seconds, 2),
                    "handled_before_clock": int(at_start),
                    "handled_by_worker": [int(h) for h in handled],
                    "peak_rss_bytes": [w.peak_rss_bytes() for w in workers],
                    **_time_shares(workers, clock, handled, last_growth, started, seconds),
                }
            if now - reported >= 5.0:
                log(f"  {what}: {int(sum(handled)):,d}/{expected:,d} records handled")
                reported = now
        time.sleep(_POLL_S)
    raise RuntimeError(f"{what}: the workers did not handle {expected} records in time")


def _cpu_clock(workers: list[WorkerRun], handled: list[float]) -> dict[str, Any]:
    """What :func:`_time_shares` measures from: CPU seconds of each worker and of the
    machine, what each worker had handled, and its seconds in each part, when the clock
    starts."""
    return {
        "workers_cpu_s": [proc_cpu_seconds(w.pid) for w in workers],
        "machine": machine_cpu_seconds(),
        "handled": list(handled),
        "spent": [_handling(w) for w in workers],
    }


def _handling(worker: WorkerRun) -> dict[str, float]:
    """A worker's seconds in each part of its handling so far, by :data:`PARTS`."""
    text = worker.metrics((HANDLING,)) or ""
    return worker_parts(metric_by_label(text, HANDLING, "part"))


def _time_shares(
    workers: list[WorkerRun],
    clock: dict[str, Any],
    handled: list[float],
    last_growth: list[float],
    started: float,
    seconds: float,
) -> dict[str, Any]:
    """Where the timed ``seconds`` went: for each worker the records it handled on the clock,
    when it handled its last (seconds after the clock started: a worker done well before
    the other left its core idle) and the cores it kept busy; the workers' CPU microseconds
    a record, in each of the :data:`PARTS` and the rest; and the cores the whole machine
    kept busy, and lost to steal (on two cores, the broker and anything else take what the
    workers leave)."""
    machine = machine_cpu_seconds()
    spent = {k: machine[k] - clock["machine"][k] for k in machine}
    # Per core of the machine: /proc/stat counts in ticks, and a span may hold none.
    per_core = (os.cpu_count() or 1) / max(spent["total"], 1e-9)
    shares = []
    all_cpu_s = 0.0
    parts = dict.fromkeys(PARTS, 0.0)
    for i, worker in enumerate(workers):
        cpu_s = proc_cpu_seconds(worker.pid) - clock["workers_cpu_s"][i]
        all_cpu_s += cpu_s
        handling = _handling(worker)
        for part in PARTS:
            parts[part] += handling[part] - clock["spent"][i][part]
        share = {
            "handled_on_clock": int(handled[i] - clock["handled"][i]),
            "done_after_s": round(max(0.0, last_growth[i] - started), 2),
            "cores_busy": round(cpu_s / seconds, 3),
        }
        shares.append(share)
    on_clock = sum(share["handled_on_clock"] for share in shares)
    return {
        "workers": shares,
        # Against the workers' CPU time (every thread of theirs): the rest is what they
        # spent outside the parts, Kafka and Faust among it.
        "us_per_record": per_record(parts, all_cpu_s, on_clock),
        "machine_cores_busy": round(spent["busy"] * per_core, 3),
        "machine_cores_stolen": round(spent["steal"] * per_core, 3),
    }


async def _decision_ids(bootstrap: str, topics: TopicNames) -> dict[str, str]:
    """The ``decision_id`` of every decision on the decision topics of ``topics``, and its
    kind."""
    import orjson
    from aiokafka import AIOKafkaConsumer

    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await probe.start()
    try:
        wanted = [topic for topic in topics.decisions() if topic in await probe.topics()]
    finally:
        await probe.stop()
    ids: dict[str, str] = {}
    if not wanted:
        return ids
    consumer = AIOKafkaConsumer(
        *wanted, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        ends = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for messages in batch.values():
                for message in messages:
                    decision = orjson.loads(message.value)
                    ids[decision["decision_id"]] = decision["kind"]
            assigned = consumer.assignment()
            if ends is None and assigned:
                ends = await consumer.end_offsets(list(assigned))
            if ends is not None:
                behind = [tp for tp, end in ends.items() if await consumer.position(tp) < end]
                if not behind:
                    return ids
        raise RuntimeError("the decision topics could not be read to their end")
    finally:
        await consumer.stop()


def _pipeline(
    bootstrap: str,
    topics: TopicNames,
    n: int,
    config: SimConfig,
    expected: int,
    workdir: Path,
    log: Log,
) -> dict[str, Any]:
    """Run ``n`` workers in one group on ``topics``; once they share the partitions, fill
    the topics with ``config``'s ``expected`` records and time them until all are handled."""
    workers = [WorkerRun(bootstrap, topics.prefix, workdir, name=f"w{n}-{i}") for i in range(n)]
    try:
        partitions = asyncio.run(_partitions(bootstrap, topics.metrics))
        _wait_assigned(workers, partitions, log, f"{n} worker(s)")
        summary = asyncio.run(run_simulation(config, bootstrap_servers=bootstrap, topics=topics))
        if summary.sent["metrics"] != expected:
            raise RuntimeError(f"produced {summary.sent['metrics']} of {expected} records")
        log(f"  {n} worker(s): topics filled, {expected:,d} records in {summary.messages:,d}"
            " messages")  # fmt: skip
        figures = _time_workers(workers, expected, log, f"{n} worker(s)")
        # Decisions are sent while records are handled; let the last ones land.
        for worker in workers:
            worker.wait_idle(timeout_s=30.0)
        figures["decision_ids"] = _settled_decision_ids(bootstrap, topics)
        figures["region_evaluator"] = _evaluator(workers)
    finally:
        for worker in workers:
            worker.stop()
    return figures


async def _partitions(bootstrap: str, topic: str, timeout_s: float = 120.0) -> set[int]:
    """The partitions of ``topic``, once the workers have created it."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            (described,) = await admin.describe_topics([topic])
            if described["partitions"]:
                return {p["partition"] for p in described["partitions"]}
            await asyncio.sleep(_POLL_S)
    finally:
        await admin.close()
    raise RuntimeError(f"the workers did not create {topic} in {timeout_s:.0f}s")


def _wait_assigned(
    workers: list[WorkerRun], partitions: set[int], log: Log, what: str, timeout_s: float = 180.0
) -> None:
    """Wait until ``workers`` share ``partitions`` of telemetry.metrics, each holding some.

    The workers start on empty topics so that the clock times a formed group: one that
    joins a second before the other (the group's first rebalance waits for nobody) would
    otherwise read alone until the other joins, then hand over partitions and replay what it
    had not committed, a start-up cost the one-worker run does not pay.
    """
    deadline = time.monotonic() + timeout_s
    held: list[set[int]] = []
    while time.monotonic() < deadline:
        _check_alive(workers, what)
        texts = [worker.metrics(("autopilot_consumer_lag",)) for worker in workers]
        held = [assigned_partitions(t or "", "telemetry.metrics") for t in texts]
        shared = sum(len(h) for h in held) == len(partitions) and set().union(*held) == partitions
        if shared and all(held):
            log(f"  {what}: telemetry.metrics partitions held: {[sorted(h) for h in held]}")
            return
        time.sleep(_POLL_S)
    raise RuntimeError(
        f"{what}: the workers did not share partitions {sorted(partitions)}; they held {held}"
    )


def _evaluator(workers: list[WorkerRun]) -> dict[str, Any]:
    """What the region evaluator (whichever worker holds it) says of its buffer: the
    observations applied ahead of their tick because it was full (``forced``: their order
    was the order of arrival, so region decisions may differ between runs) and those
    ignored as replays; and which worker holds it (``worker``, from 0): it judges region
    health for every worker's records."""
    import orjson

    for number, worker in enumerate(workers):
        view = orjson.loads(worker.get("/failover/"))
        if view.get("evaluating"):
            said = {key: view.get(key) for key in ("forced", "replayed", "pending")}
            return {**said, "worker": number}
    return {}


def _settled_decision_ids(
    bootstrap: str, topics: TopicNames, quiet_s: float = 12.0, timeout_s: float = 90.0
) -> dict[str, str]:
    """The decisions once none came for ``quiet_s``, the workers still running: the region
    evaluator decides on the last records only after their partitions' idle marks (2 s of
    quiet), and a worker stopped at its first idle second left those out. The budget judge
    decides only once each partition's last part has come, on a timer of
    ``agents.cost.BUDGET_EVERY_S`` (10 s): a quiet spell shorter than that (it was 5 s) once
    read a 1-worker run's decisions before its two budget decisions were made."""
    deadline = time.monotonic() + timeout_s
    ids = asyncio.run(_decision_ids(bootstrap, topics))
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        again = asyncio.run(_decision_ids(bootstrap, topics))
        if again == ids:
            break
        ids = again
    return ids


def _round(
    bootstrap: str, workdir: Path, records: int, series: int, envelope: int, log: Log
) -> dict[str, Any]:
    """One round: the bare brains, one worker, the bare brains again, two workers."""
    config = bench_config(records, series, envelope, time.time())
    messages = list(enveloped(config))
    produced = sum(n for *_, n in messages)
    now = time.time()
    log(f"bare: {produced:,d} records in {len(messages):,d} envelopes, in process...")
    bare_rate, decisions, parts = _bare(messages, now, log)
    bare_rates, bare_parts = [bare_rate], [parts]
    runs: dict[int, dict[str, Any]] = {}
    for n in (1, 2):
        with bench_topics(bootstrap, log) as topics:
            runs[n] = _pipeline(bootstrap, topics, n, config, produced, workdir, log)
        log(f"{n} worker(s): {runs[n]['records_per_s']:,.0f} records/s")
        if n == 1:
            log("bare again, after the worker...")
            again, decided, parts = _bare(messages, now, log)
            if [d.decision_id for d in decided] != [d.decision_id for d in decisions]:
                raise RuntimeError("the bare brains decided otherwise the second time")
            bare_rates.append(again)
            bare_parts.append(parts)
    del messages
    # Both bare runs, the one before and the one after the worker, taken together: the speed
    # of a machine of this kind drifts by a fifth within minutes (the two bare rates say by
    # how much in this run), and the ratio compares the worker with the bare brains around it.
    bare_rate = statistics.fmean(bare_rates)
    one, two = runs[1], runs[2]
    ones, twos = one["decision_ids"], two["decision_ids"]

    def both(name: str) -> dict[str, Any]:
        return {"one_worker": one[name], "two_workers": two[name]}

    return {
        "records": produced,
        "series": len(config.services) * len(config.regions),
        "bare_records_per_s": round(bare_rate, 1),
        "bare_runs_records_per_s": [round(r, 1) for r in bare_rates],
        "bare_decisions": len(decisions),
        "one_worker_records_per_s": one["records_per_s"],
        "two_workers_records_per_s": two["records_per_s"],
        "pipeline_bare_ratio": round(one["records_per_s"] / bare_rate, 4),
        "two_one_ratio": round(two["records_per_s"] / one["records_per_s"], 4),
        "peak_rss_bytes": both("peak_rss_bytes"),
        "handled_by_worker": both("handled_by_worker"),
        "handled_before_clock": both("handled_before_clock"),
        "seconds": both("seconds"),
        "workers": both("workers"),
        "machine_cores_busy": both("machine_cores_busy"),
        "machine_cores_stolen": both("machine_cores_stolen"),
        "decisions": {k: len(ids) for k, ids in both("decision_ids").items()},
        "decisions_by_kind": {
            k: dict(Counter(ids.values())) for k, ids in both("decision_ids").items()
        },
        "same_decisions": ones.keys() == twos.keys(),
        "decisions_only_one_worker": len(ones.keys() - twos.keys()),
        "decisions_only_two_workers": len(twos.keys() - ones.keys()),
        "region_evaluator": both("region_evaluator"),
        "us_per_record": {"bare": _mean_parts(bare_parts), **both("us_per_record")},
    }


def _mean_parts(runs: list[dict[str, float]]) -> dict[str, float]:
    """The mean microseconds a record of each part over ``runs``."""
    return {part: round(statistics.fmean(run[part] for run in runs), 2) for part in runs[0]}


FIGURES = (
    "bare_records_per_s",
    "one_worker_records_per_s",
    "two_workers_records_per_s",
    "pipeline_bare_ratio",
    "two_one_ratio",
)
"""The figures of a round that :func:`summarise_rounds` spreads over the rounds."""
TARGETS = {
    "one_worker_records_per_s": TARGET_RECORDS_PER_S,
    "pipeline_bare_ratio": TARGET_BARE_RATIO,
    "two_one_ratio": TARGET_SPEEDUP,
}
"""Each figure with a target, and its target: met when the figure is at least as high."""


def summarise_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of several rounds taken together: each figure's median and spread
    (:func:`~streams.lab.bench.support.spread`), and in how many rounds each target was met
    and the decisions of one and two workers were the same set.

    >>> rounds = [{"bare_records_per_s": b, "one_worker_records_per_s": o,
    ...            "two_workers_records_per_s": t, "pipeline_bare_ratio": o / b,
    ...            "two_one_ratio": t / o, "same_decisions": True,
    ...            "us_per_record": {"bare": {"total": 1e6 / b}}}
    ...           for b, o, t in [(20e3, 12e3, 20e3), (18e3, 9e3, 16e3), (21e3, 13e3, 18e3)]]
    >>> summary = summarise_rounds(rounds)
    >>> summary["one_worker_records_per_s"], summary["spread"]["two_one_ratio"]
    (12000.0, {'min': 1.3846, 'median': 1.6667, 'max': 1.7778})
    >>> summary["us_per_record"]
    {'bare': {'total': 50.0}}
    >>> summary["met"], summary["same_decisions_rounds"]
    ({'one_worker_records_per_s': 2, 'pipeline_bare_ratio': 0, 'two_one_ratio': 2}, 3)
    """
    figures = spread(rounds, FIGURES)
    runs = rounds[0]["us_per_record"]
    return {
        **{name: figures[name]["median"] for name in FIGURES},
        "spread": figures,
        "us_per_record": {
            run: {
                part: round(statistics.median(r["us_per_record"][run][part] for r in rounds), 2)
                for part in runs[run]
            }
            for run in runs
        },
        "met": {name: sum(r[name] >= target for r in rounds) for name, target in TARGETS.items()},
        "same_decisions_rounds": sum(bool(r["same_decisions"]) for r in rounds),
    }


def run_bench_scaleout(
    records: int = 300_000,
    series: int = 1_000,
    envelope: int = 100,
    broker: str | None = None,
    log: Log = lambda _msg: None,
    rounds: int = 1,
) -> dict[str, Any]:
    """Measure the bare rate and the pipeline with one and two workers, ``rounds`` times
    on one broker.

    The result holds every round's figures (``rounds``), and at its top the median of each
    rate and ratio over the rounds (a round's own with one), their spread, and in how many
    rounds each target was met (:func:`summarise_rounds`).
    """
    done = run_rounds(
        rounds,
        broker,
        log,
        lambda bootstrap, workdir: _round(bootstrap, workdir, records, series, envelope, log),
    )
    last = done[-1]
    return {
        "records": last["records"],
        "series": last["series"],
        "envelope_records": envelope,
        **summarise_rounds(done),
        "same_decisions": all(r["same_decisions"] for r in done),
        "rounds": done,
        "targets": dict(TARGETS),
    }


def format_bench_scaleout(result: dict[str, Any]) -> str:
    """A readable summary of :func:`run_bench_scaleout`: one round in detail, or several as
    a table with the spread of each figure and how often each target was met."""
    rounds = result["rounds"]
    header = (
        f"bench scaleout: {result['records']:,d} metric records, {result['series']:,d}"
        f" series, envelopes of {result['envelope_records']}"
    )
    if len(rounds) == 1:
        return "\n".join([header, *_round_lines(rounds[0], result["targets"])])
    lines = [
        f"{header}, {len(rounds)} rounds on one broker",
        "  round    bare brains     1 worker    2 workers  pipeline/bare    2/1"
        "  decisions, same set  peak RSS MiB (1 worker; 2 workers)",
    ]
    for number, r in enumerate(rounds, 1):
        rss = r["peak_rss_bytes"]
        lines.append(
            f"  {number:>5}  {r['bare_records_per_s']:>11,.0f}"
            f"  {r['one_worker_records_per_s']:>11,.0f}"
            f"  {r['two_workers_records_per_s']:>11,.0f}  {r['pipeline_bare_ratio']:>13.3f}"
            f"  {r['two_one_ratio']:>5.2f}  {r['decisions']['one_worker']:>9,d}, "
            f"{'yes' if r['same_decisions'] else 'no ':<9}"
            f"  {_mib(rss['one_worker'])}; {_mib(rss['two_workers'])}"
        )
    lines += [
        "  where the time went: seconds on the clock; when each worker handled its last record"
        " (seconds after",
        "  the clock started) and the cores it kept busy; the cores the machine kept busy and"
        " lost to steal",
    ]
    for number, r in enumerate(rounds, 1):
        first, second = (_time_line(r, run) for run in _RUNS)
        lines += [f"  {number:>5}  {first}", f"         {second}"]
    figures, met = result["spread"], result["met"]
    names = {
        "bare_records_per_s": "bare brains, records/s",
        "one_worker_records_per_s": "pipeline, 1 worker, records/s",
        "two_workers_records_per_s": "pipeline, 2 workers, records/s",
        "pipeline_bare_ratio": "pipeline / bare",
        "two_one_ratio": "2 workers / 1 worker",
    }
    lines.append("  over the rounds                     min     median        max")
    for name, label in names.items():
        low, mid, high = (figures[name][k] for k in ("min", "median", "max"))
        figure = "{:>10,.0f}" if name.endswith("_per_s") else "{:>10.3f}"
        line = f"  {label:<30} {figure.format(low)} {figure.format(mid)} {figure.format(high)}"
        if name in met:
            target = result["targets"][name]
            line += f"   target >= {target:,g}: met in {met[name]} of {len(rounds)} rounds"
        lines.append(line)
    lines.append(
        f"  1 and 2 workers made the same set of decisions in {result['same_decisions_rounds']}"
        f" of {len(rounds)} rounds"
    )
    lines += _parts_lines(result["us_per_record"], "medians over the rounds")
    return "\n".join(lines)


_PART_NAMES = {
    "validation": "validation at the edge",
    "metrics_brain": "metrics brain",
    "cost_brain": "cost brain",
    "region_health": "region health",
    "rest": "the rest",
    "total": "all",
}


def _parts_lines(us: dict[str, dict[str, float]], which: str) -> list[str]:
    """Where a record's time went, part by part, in the bare run and the workers."""
    lines = [
        f"  where a record's time went, microseconds ({which}; the workers' is their CPU"
        " time, every thread)",
        f"    {'':<24}{'bare':>10}{'1 worker':>10}{'2 workers':>11}",
    ]
    for part, name in _PART_NAMES.items():
        figures = (us[run][part] for run in ("bare", "one_worker", "two_workers"))
        lines.append(f"    {name:<24}" + "".join(f"{v:>10.1f}" for v in figures))
    return lines


_RUNS = {"one_worker": "1 worker", "two_workers": "2 workers"}


def _time_line(r: dict[str, Any], run: str) -> str:
    """Where the time of one run of round ``r`` went, on one line."""
    workers = r["workers"][run]
    done = " and ".join(f"{w['done_after_s']:.1f}" for w in workers)
    cores = " and ".join(f"{w['cores_busy']:.2f}" for w in workers) + " cores"
    evaluator = r["region_evaluator"][run].get("worker")
    if len(workers) > 1 and evaluator is not None:
        cores += f" (the region evaluator on worker {evaluator + 1})"
    return (
        f"{_RUNS[run]}: {r['seconds'][run]:.1f} s, last record after {done} s, {cores};"
        f" machine {r['machine_cores_busy'][run]:.2f} cores busy,"
        f" {r['machine_cores_stolen'][run]:.2f} stolen"
    )


def _mib(values: list[int]) -> str:
    return ", ".join(f"{v / 2**20:,.0f}" for v in values)


def _round_lines(r: dict[str, Any], targets: dict[str, float]) -> list[str]:
    """The figures of one round, one line each."""
    rss = r["peak_rss_bytes"]
    by_kind = r["decisions_by_kind"]
    evaluator = r["region_evaluator"]
    bare_runs = " and ".join(f"{v:,.0f}" for v in r["bare_runs_records_per_s"])
    return [
        f"  bare brains, in process        {r['bare_records_per_s']:>12,.0f} records/s"
        f"  (mean of {bare_runs}, before and after the worker)",
        f"  pipeline, 1 worker             {r['one_worker_records_per_s']:>12,.0f}"
        f" records/s  (target >= {targets['one_worker_records_per_s']:,.0f})",
        f"  pipeline, 2 workers            {r['two_workers_records_per_s']:>12,.0f} records/s",
        f"  pipeline / bare                {r['pipeline_bare_ratio']:>12.3f}"
        f"   (target >= {targets['pipeline_bare_ratio']})",
        f"  2 workers / 1 worker           {r['two_one_ratio']:>12.3f}"
        f"   (target >= {targets['two_one_ratio']})",
        f"  peak RSS, MiB                  1 worker: {_mib(rss['one_worker'])};"
        f" 2 workers: {_mib(rss['two_workers'])}",
        f"  decisions                      1 worker: {r['decisions']['one_worker']:,d};"
        f" 2 workers: {r['decisions']['two_workers']:,d};"
        f" same set: {'yes' if r['same_decisions'] else 'no'}"
        f" ({r['decisions_only_one_worker']} only with 1,"
        f" {r['decisions_only_two_workers']} only with 2)",
        f"  decisions by kind              1 worker: {by_kind['one_worker']};"
        f" 2 workers: {by_kind['two_workers']}",
        f"  region evaluator               1 worker: {evaluator['one_worker']};"
        f" 2 workers: {evaluator['two_workers']}",
        *(f"  where the time went            {_time_line(r, run)}" for run in _RUNS),
        *_parts_lines(r["us_per_record"], "this round"),
    ]

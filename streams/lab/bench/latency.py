"""Decision latency: from a metric sample's produce time to the decision it causes.

One run, on fresh topics, against a real ``autopilot worker`` subprocess:

1. *Warm-up.* Every series gets 150 samples (the anomaly detector flags nothing
   before 144), sent as fast as possible. How fast the worker handles them
   sizes the rest of the run.
2. *Capacity probe.* A backlog of ``probe_events`` samples of the very mix that
   is measured next (the same designed triggers, so the same decisions;
   checkpoints on, as always), sent as fast as possible: from the first sent
   to the last handled gives the pipeline's capacity, unless ``rate`` is given.
3. *Measurement*, once a load: the same fleet goes on at a fixed offered rate,
   a fraction of that capacity (by default half; ``fractions`` for a curve).
   The bench waits until the worker is idle before each stretch. Every
   ``period``-th sample of a series is built to cause a decision: it and the
   sample before it carry a spike (x8) of a symptom metric, so the detector's
   second consecutive flag, on that very sample, starts an anomaly episode.
   The spiked metric rotates over three, so the detector never learns the
   spikes as normal.

The latency of a decision is the time its record was appended to its decision
topic (the decision topics are created with ``message.timestamp.type =
LogAppendTime``, so the broker stamps them) minus the produce time of the
sample that caused it (the input record's timestamp, set by the bench's
producer when it hands the record over). A decision is matched to its sample
by subject (the record key ``service/region``) and event time: a metrics-brain
decision carries the ``ts`` of the sample it was made on. Every matched
decision counts, the designed ones and any the fleet causes by itself (scaling
decisions, mostly). Everything runs on one machine, so both stamps come from
one clock; they are whole milliseconds.

A backlog is read in large batches; a trickle costs the worker more per sample,
and the bench's own producer and reader share the machine during the
measurement. So each load also says whether the worker kept up with the
offered rate: when it did not, the latencies are mostly queueing.
"""

from __future__ import annotations

import asyncio
import math
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from schemas.topics import TopicNames
from streams.lab.bench.support import (
    START_IN_WEEK_S,
    Log,
    WorkerRun,
    bench_topics,
    proc_cpu_seconds,
    run_rounds,
    spread,
)
from streams.lab.simulator import SimConfig, generate
from streams.runtime.heap import tune_collection

__all__ = [
    "CURVE_FRACTIONS",
    "HEADLINE_FRACTION",
    "PARTITIONS",
    "TARGET_P99_MS",
    "create_bench_topics",
    "format_bench_latency",
    "format_ms",
    "measure_decision_latency",
    "plot_curve",
    "run_bench_latency",
    "summarise_latency_rounds",
]

TARGET_P99_MS = 250.0
HEADLINE_FRACTION = 0.5
"""The load the target is judged at: half the capacity."""
CURVE_FRACTIONS = (0.25, 0.5, 0.75, 0.9)
"""The loads of ``--curve``, as fractions of the capacity."""
WARMUP_SAMPLES = 150
"""Samples per series before the measurement: the detector's warm-up (144) and a few."""
TRIGGER_METRICS = ("latency_p99_ms", "latency_p50_ms", "error_rate")
SPIKE = 8.0
MIN_PERIOD = 50
"""Samples of a series between two designed triggers, at least."""
MAX_TRIGGERS_PER_SERIES = 30
"""More spikes than this on one series, even rotated over three metrics, teach the
detector that they are normal (its tail estimate grows), and it stops flagging."""
PARTITIONS = 4
TICK_S = 5.0
MAX_TICKS = 15_000
"""Event time of the run: 15,000 ticks of 5 s end before now and start within the
validators' one-day window, with hours to spare for the run itself."""
PRODUCER_LINGER_MS = 5
KEPT_UP_DRAIN_S = 1.0
"""A worker that handles the last sample within this of its sending (the progress
poll adds up to 0.5 s) kept up with the offered rate; one that needs longer had a
backlog, and its latencies are queueing."""
MAX_SLOW_SECONDS = 60
"""At most this many seconds are listed in which slow decisions were caused."""
_DECISION_TOPIC_CONFIG = {"message.timestamp.type": "LogAppendTime"}


@dataclass
class _Input:
    """A measured sample: when it was produced, and whether it was built to cause a decision."""

    produced_ms: int
    trigger: bool
    level: int
    decided: bool = False


@dataclass
class _Decisions:
    """Decision records read from the decision topics."""

    records: list[tuple[bytes, float, str, int, int]] = field(default_factory=list)
    last_read: float = 0.0


def _fleet(series: int) -> SimConfig:
    """The fleet's stream, its demand that of the same part of the week at any hour."""
    regions = ("us-east", "eu-west", "ap-south")
    services = tuple(f"svc-{i:05d}" for i in range(math.ceil(series / len(regions))))
    return SimConfig(
        services=services,
        regions=regions,
        tenants=0,
        errors_per_s=0.0,
        tick_s=TICK_S,
        duration_s=MAX_TICKS * TICK_S,
        start_ts=time.time() - (MAX_TICKS + 12) * TICK_S,
    ).playing_week_from(START_IN_WEEK_S)


Sample = tuple[bytes, bytes, float, int]
"""``(key, value, event time, index of the sample in its series)``."""


def _samples(config: SimConfig) -> Iterator[Sample]:
    """Every metric sample of the fleet, tick by tick."""
    index: dict[bytes, int] = {}
    for attr, key, value, ts in generate(config):
        if attr == "metrics":
            n = index.get(key, 0)
            index[key] = n + 1
            # The simulator writes the tick's time rounded so; the worker reads it so.
            yield key, value, round(ts, 3), n


def _spike(value: bytes, metric: str) -> bytes:
    """The sample with ``metric`` multiplied by :data:`SPIKE` (a fraction stays <= 1)."""
    body = orjson.loads(value)
    metrics = body["metrics"]
    if metric == "error_rate":
        metrics[metric] = min(1.0, metrics[metric] * SPIKE + 0.05)
    else:
        metrics[metric] = metrics[metric] * SPIKE
    return orjson.dumps(body)


async def create_bench_topics(bootstrap: str, topics: TopicNames) -> None:
    """Create the input and decision topics before the worker does, with our configs."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(topics.metrics, PARTITIONS, 1)]
            + [
                NewTopic(name, PARTITIONS, 1, topic_configs=_DECISION_TOPIC_CONFIG)
                for name in (topics.scaling, topics.remediation)
            ]
        )
    finally:
        await admin.close()


async def _read_decisions(bootstrap: str, topics: TopicNames, into: _Decisions) -> None:
    """Read both metrics-brain decision topics until cancelled."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topics.scaling,
        topics.remediation,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=200)
            for messages in batch.values():
                for message in messages:
                    decision = orjson.loads(message.value)
                    into.records.append(
                        (
                            message.key,
                            decision["ts"],
                            decision["kind"],
                            message.timestamp,
                            message.timestamp_type,
                        )
                    )
                    into.last_read = time.monotonic()
    finally:
        await consumer.stop()


async def _send_warmup(producer: Any, topic: str, samples: Iterator[Sample], count: int) -> None:
    futures = []
    for _ in range(count):
        key, value, _ts, _n = next(samples)
        futures.append(await producer.send(topic, value, key=key))
    await asyncio.gather(*futures)


@dataclass
class _Triggers:
    """Which samples carry a spike, and which of them are built to cause a decision.

    In each series, the last two samples of every ``period`` carry a spike; the second is
    the trigger. Series start their periods at different offsets, so triggers are spread
    evenly over time. A series' first sample after the warm-up is never a trigger: its
    first spike would have gone out unspiked.
    """

    period: int
    first: dict[bytes, int] = field(default_factory=dict)

    def design(self, key: bytes, n: int) -> tuple[str | None, bool]:
        """The metric to spike in sample ``n`` of series ``key`` (or None), and whether
        the sample is a trigger."""
        first = self.first.setdefault(key, n)
        i = n - first + zlib.crc32(key) % self.period
        phase = i % self.period
        if phase < self.period - 2:
            return None, False
        metric = TRIGGER_METRICS[(i // self.period) % len(TRIGGER_METRICS)]
        return metric, phase == self.period - 1 and n > first


async def _send_designed(
    producer: Any,
    topic: str,
    samples: Iterator[Sample],
    count: int,
    rate: float | None,
    triggers: _Triggers,
    level: int,
    inputs: dict[tuple[bytes, float], _Input],
) -> float:
    """Send ``count`` samples at ``rate`` per second (``None``: as fast as possible), spiked
    as ``triggers`` says, into ``inputs`` by subject and event time; return the wall seconds
    it took. A sample's produce time is the timestamp given to the producer as it is
    handed over."""
    futures = []
    started = time.monotonic()
    for sent in range(count):
        key, value, ts, n = next(samples)
        metric, trigger = triggers.design(key, n)
        if metric is not None:
            value = _spike(value, metric)
        ahead = 0.0 if rate is None else started + sent / rate - time.monotonic()
        if ahead > 0:
            await asyncio.sleep(ahead)
        elif sent % 64 == 0:
            # Behind schedule: still let the producer and the decision reader run.
            await asyncio.sleep(0)
        produced_ms = time.time_ns() // 1_000_000
        futures.append(await producer.send(topic, value, key=key, timestamp_ms=produced_ms))
        inputs[(key, ts)] = _Input(produced_ms, trigger, level)
    elapsed = time.monotonic() - started
    await asyncio.gather(*futures)
    return elapsed


async def measure_decision_latency(
    produce_to: str,
    decisions_from: str,
    topics: TopicNames,
    worker: WorkerRun,
    rate: float | None,
    fractions: tuple[float, ...],
    seconds: float,
    series: int,
    probe_events: int,
    log: Log,
) -> dict[str, Any]:
    """Warm the worker up, probe its capacity, then offer each load and time each decision.

    Samples are produced to the cluster at ``produce_to``; decisions are read, and timed by
    their append, on the cluster at ``decisions_from``: the same one, or, through mirrors,
    the region's (:mod:`streams.lab.bench.mirror`).
    """
    from aiokafka import AIOKafkaProducer

    config = _fleet(series)
    n_series = len(config.services) * len(config.regions)
    warmup = WARMUP_SAMPLES * n_series
    probe = max(1, math.ceil(probe_events / n_series)) * n_series
    samples = _samples(config)
    producer = AIOKafkaProducer(
        bootstrap_servers=produce_to, acks="all", linger_ms=PRODUCER_LINGER_MS
    )
    await producer.start()
    decisions = _Decisions()
    reader = asyncio.create_task(_read_decisions(decisions_from, topics, decisions))
    inputs: dict[tuple[bytes, float], _Input] = {}
    handled = 0
    levels: list[dict[str, Any]] = []
    try:
        log(f"warm-up: {warmup:,d} samples over {n_series:,d} series, as fast as possible")
        await _send_warmup(producer, topics.metrics, samples, warmup)
        warmup_s = await asyncio.to_thread(worker.time_backlog, warmup, 1800, log, "warm-up")
        handled = warmup
        # Polled every 0.5 s: a warm-up handled faster than that is timed as 0.5 s.
        rough = warmup / max(warmup_s, 0.5)
        # Sized on the warm-up's pace (with room, as the probe may find more), so that no
        # series gets more triggers than the detector can take as exceptional.
        rates = [rate] if rate is not None else [f * rough * 1.5 for f in fractions]
        planned = probe // n_series + sum(math.ceil(r * seconds / n_series) for r in rates)
        triggers = _Triggers(max(MIN_PERIOD, math.ceil(planned / MAX_TRIGGERS_PER_SERIES)))
        await asyncio.to_thread(worker.wait_idle)
        log(f"capacity probe: {probe:,d} samples of the measured mix, as fast as possible")
        # The bench's own heap (every sample sent, to match its decision) walked by Python's
        # collector stalled its producer for up to 0.4 s, counted as the worker's latency.
        tune_collection()
        started, cpu = time.monotonic(), proc_cpu_seconds(worker.pid)
        await _send_designed(producer, topics.metrics, samples, probe, None, triggers, -1, inputs)
        handled += probe
        probe_s = await asyncio.to_thread(
            worker.time_backlog, handled, 1800, log, "capacity probe", since=started
        )
        capacity = probe / max(probe_s, 0.5)
        probe_cpu_us = _cpu_us_per_sample(worker, cpu, probe)
        if rate is not None:
            loads, rate_source = [(None, rate)], "--rate"
        else:
            loads = [(f, f * capacity) for f in fractions]
            half = fractions == (HEADLINE_FRACTION,)
            rate_source = "half the capacity probe" if half else "capacity curve"
        log(f"capacity probe: {capacity:,.0f} samples/s (warm-up: {rough:,.0f}/s)")
        for level, (fraction, offered) in enumerate(loads):
            settle_s = await asyncio.to_thread(worker.wait_idle)
            per_series = min(
                math.ceil(offered * seconds / n_series), MAX_TICKS - handled // n_series
            )
            what = "--rate" if fraction is None else f"{fraction:.0%} of capacity"
            log(f"measuring at {offered:,.0f} samples/s ({what}) after {settle_s:.0f} s idle")
            count = per_series * n_series
            tune_collection()
            cpu = proc_cpu_seconds(worker.pid)
            produce_s = await _send_designed(
                producer, topics.metrics, samples, count, offered, triggers, level, inputs
            )
            sent_at = time.monotonic()
            handled += count
            await asyncio.to_thread(worker.time_backlog, handled, 600, log, "measurement")
            drain_s = time.monotonic() - sent_at
            # A decision is published after its sample counts as handled: read until
            # none has come for 2 s.
            handled_at = time.monotonic()
            while time.monotonic() - max(decisions.last_read, handled_at) < 2.0:
                await asyncio.sleep(0.25)
            figures = _figures(decisions, inputs, level, offered, count, produce_s, drain_s)
            figures["worker_cpu_us_per_sample"] = _cpu_us_per_sample(worker, cpu, count)
            levels.append({"fraction": fraction, "settle_s": round(settle_s, 1), **figures})
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await producer.stop()
    headline = next((x for x in levels if x["fraction"] in (None, HEADLINE_FRACTION)), levels[0])
    return {
        "series": n_series,
        "warmup_samples": warmup,
        "warmup_capacity_per_s": round(rough, 1),
        "probe_samples": probe,
        "capacity_per_s": round(capacity, 1),
        "probe_worker_cpu_us_per_sample": probe_cpu_us,
        "rate_source": rate_source,
        "trigger_period": triggers.period,
        **{k: v for k, v in headline.items() if k != "fraction"},
        "decisions_unmatched": sum((key, ts) not in inputs for key, ts, *_ in decisions.records),
        "levels": levels,
        "target_p99_ms": TARGET_P99_MS,
        "producer_linger_ms": PRODUCER_LINGER_MS,
    }


def _cpu_us_per_sample(worker: WorkerRun, since_cpu_s: float, samples: int) -> float:
    """CPU microseconds the worker used a sample since it had used ``since_cpu_s``: a
    trickle costs it more than a backlog (:mod:`streams.runtime.fetching`)."""
    return round((proc_cpu_seconds(worker.pid) - since_cpu_s) * 1e6 / max(1, samples), 1)


def _figures(
    decisions: _Decisions,
    inputs: dict[tuple[bytes, float], _Input],
    level: int,
    rate: float,
    count: int,
    produce_s: float,
    drain_s: float,
) -> dict[str, Any]:
    """The latency figures of one load (the samples of ``level``)."""
    timed, by_kind, stamp_types = [], {}, set()
    for key, ts, kind, appended_ms, stamp_type in decisions.records:
        source = inputs.get((key, ts))
        if source is None or source.level != level:
            continue
        source.decided = True
        timed.append((source.produced_ms, appended_ms - source.produced_ms))
        by_kind[kind] = by_kind.get(kind, 0) + 1
        stamp_types.add("LogAppendTime" if stamp_type == 1 else "CreateTime")
    measured = [i for i in inputs.values() if i.level == level]
    triggers = [i for i in measured if i.trigger]
    timed.sort()
    latencies = [latency for _produced, latency in timed]
    # When the slow decisions were caused, in whole seconds of the measurement:
    # pauses of the worker show as clusters (a timer's, at its period).
    started_ms = min((i.produced_ms for i in measured), default=0)
    slow_at_s = sorted(
        {(produced - started_ms) // 1000 for produced, lat in timed if lat > TARGET_P99_MS}
    )
    p50 = p90 = p99 = worst = None
    thirds: list[float | None] = [None, None]
    if latencies:
        values = np.asarray(latencies, dtype=float)
        p50, p90, p99 = (float(np.percentile(values, q)) for q in (50, 90, 99))
        worst = float(values.max())
        # A worker that keeps up has the same latency late in the run as early on.
        third = max(1, len(values) // 3)
        thirds = [float(np.median(values[:third])), float(np.median(values[-third:]))]
    return {
        "offered_rate_per_s": round(rate, 1),
        "achieved_rate_per_s": round(count / produce_s, 1) if produce_s > 0 else None,
        "seconds": round(produce_s, 2),
        "samples": count,
        "triggers": len(triggers),
        "triggers_decided": sum(t.decided for t in triggers),
        "decisions_matched": len(latencies),
        "decisions_by_kind": by_kind,
        "decision_timestamp": ",".join(sorted(stamp_types)) or None,
        "p50_ms": p50,
        "p90_ms": p90,
        "p99_ms": p99,
        "max_ms": worst,
        "p50_first_third_ms": thirds[0],
        "p50_last_third_ms": thirds[1],
        "drain_s": round(drain_s, 1),
        "kept_up": drain_s <= KEPT_UP_DRAIN_S,
        "over_target": sum(lat > TARGET_P99_MS for lat in latencies),
        "over_target_at_s": slow_at_s[:MAX_SLOW_SECONDS],
        "p99_ratio_to_target": None if p99 is None else round(p99 / TARGET_P99_MS, 4),
    }


ROUND_FIGURES = (
    "capacity_per_s",
    "offered_rate_per_s",
    "p50_ms",
    "p99_ms",
    "max_ms",
    "worker_cpu_us_per_sample",
)
"""The figures of a round that several rounds give as their median and spread."""


def run_bench_latency(
    rate: float | None = None,
    seconds: float = 30.0,
    series: int = 300,
    broker: str | None = None,
    probe_events: int = 30_000,
    fractions: tuple[float, ...] = (HEADLINE_FRACTION,),
    log: Log = lambda _msg: None,
    rounds: int = 1,
) -> dict[str, Any]:
    """Measure decision latency at fixed offered rates against a real worker, in one run.

    Parameters
    ----------
    rate
        Metric samples per second to offer; ``None``: ``fractions`` of the capacity the
        probe measures.
    seconds
        Wall seconds of the measurement at each rate.
    series
        Distinct service/region series (rounded up to a multiple of three regions).
    broker
        ``host:port`` of a broker; ``None`` starts a local one for the run.
    probe_events
        Samples of the capacity probe, after the warm-up.
    fractions
        The loads measured, as fractions of the capacity (:data:`CURVE_FRACTIONS` for the
        curve); the figures at the top are those at half, or at the first.
    log
        Progress lines.
    rounds
        Runs of the whole measurement on the same broker, each with fresh topics and a fresh
        worker.

    Returns
    -------
    dict
        Every round's figures under ``rounds``, and at the top the median and spread of
        :data:`ROUND_FIGURES` and how many rounds met the p99 target and kept up
        (:func:`summarise_latency_rounds`): one shape for any number of rounds.
    """
    done = run_rounds(
        rounds,
        broker,
        log,
        lambda bootstrap, workdir: _latency_round(
            bootstrap, workdir, rate, seconds, series, probe_events, fractions, log
        ),
    )
    return summarise_latency_rounds(done)


def _latency_round(
    bootstrap: str,
    workdir: Path,
    rate: float | None,
    seconds: float,
    series: int,
    probe_events: int,
    fractions: tuple[float, ...],
    log: Log,
) -> dict[str, Any]:
    """One measurement, on fresh topics, against a fresh worker."""
    with bench_topics(bootstrap, log) as topics:
        asyncio.run(create_bench_topics(bootstrap, topics))
        partitions = {"AUTOPILOT_PARTITIONS": str(PARTITIONS)}
        with WorkerRun(bootstrap, topics.prefix, workdir, extra_env=partitions) as worker:
            return asyncio.run(
                measure_decision_latency(
                    bootstrap, bootstrap, topics, worker, rate, tuple(fractions), seconds,
                    series, probe_events, log,
                )
            )  # fmt: skip


def summarise_latency_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Several rounds of :func:`run_bench_latency` taken together: the median of each of
    :data:`ROUND_FIGURES` at the top, their spread, and in how many rounds p99 met its
    target and the worker kept up with the offered rate.

    >>> summary = summarise_latency_rounds([
    ...     {"p99_ms": 120.0, "p50_ms": 40.0, "kept_up": True},
    ...     {"p99_ms": 310.0, "p50_ms": 45.0, "kept_up": False},
    ...     {"p99_ms": 150.0, "p50_ms": 38.0, "kept_up": True},
    ... ])
    >>> summary["p99_ms"], summary["spread"]["p50_ms"]
    (150.0, {'min': 38.0, 'median': 40.0, 'max': 45.0})
    >>> summary["p99_met_rounds"], summary["kept_up_rounds"]
    (2, 2)
    """
    figures = spread(rounds, ROUND_FIGURES)
    return {
        **{name: figures[name]["median"] for name in ROUND_FIGURES},
        "spread": figures,
        "target_p99_ms": TARGET_P99_MS,
        "p99_met_rounds": sum(
            r.get("p99_ms") is not None and r["p99_ms"] <= TARGET_P99_MS for r in rounds
        ),
        "kept_up_rounds": sum(bool(r.get("kept_up")) for r in rounds),
        "rounds": rounds,
    }


def format_ms(value: float | None) -> str:
    """Milliseconds for a summary line; ``-`` for a figure not measured."""
    return "-" if value is None else f"{value:,.0f} ms"


def format_bench_latency(result: dict[str, Any]) -> str:
    """A readable summary of :func:`run_bench_latency`: one round in detail, or several
    as a table with the spread of each figure."""
    if len(result["rounds"]) > 1:
        return _format_rounds(result)
    return _format_round(result["rounds"][0])


def _format_round(result: dict[str, Any]) -> str:
    ratio = result["p99_ratio_to_target"]
    lines = [
        f"bench latency: {result['samples']:,d} metric samples over {result['series']:,d}"
        f" series in {result['seconds']:.1f}s, after {result['warmup_samples']:,d} of warm-up"
        f" and {result['probe_samples']:,d} of capacity probe",
        f"  pipeline capacity (probe)    {result['capacity_per_s']:>10,.0f} samples/s"
        f"  (the measured mix; the plain warm-up went at"
        f" {result['warmup_capacity_per_s']:,.0f}/s)",
        f"  offered rate                 {result['offered_rate_per_s']:>10,.0f} samples/s"
        f"  ({result['rate_source']}; achieved {result['achieved_rate_per_s'] or 0:,.0f}/s,"
        f" after {result['settle_s']:.0f} s until the worker was idle)",
        f"  worker CPU a sample          {result['worker_cpu_us_per_sample']:>10,.0f} µs"
        f"  (the probe's backlog: {result['probe_worker_cpu_us_per_sample']:,.0f} µs;"
        " a trickle costs more, so latency turns below the probe's capacity)",
        f"  designed triggers            {result['triggers']:>10,d}"
        f"  (1 in {result['trigger_period']} samples; {result['triggers_decided']:,d} decided)",
        f"  decisions matched            {result['decisions_matched']:>10,d}"
        f"  {result['decisions_by_kind']}",
        f"  produce -> decision appended p50 {format_ms(result['p50_ms'])},"
        f" p90 {format_ms(result['p90_ms'])}, p99 {format_ms(result['p99_ms'])},"
        f" max {format_ms(result['max_ms'])}",
        f"  p50 first third, last third  {format_ms(result['p50_first_third_ms'])},"
        f" {format_ms(result['p50_last_third_ms'])}; the worker handled the last sample"
        f" {result['drain_s']:.1f} s after it was sent: "
        + ("it kept up" if result["kept_up"] else "it fell behind the offered rate"),
        f"  over {TARGET_P99_MS:.0f} ms                  {result['over_target']:>10,d}"
        "  decisions, caused in these seconds of the run: "
        + (", ".join(str(t) for t in result["over_target_at_s"]) or "none"),
        f"  p99 / target ({TARGET_P99_MS:.0f} ms)        "
        + ("-" if ratio is None else f"{ratio:>10.3f}"),
    ]
    if len(result["levels"]) > 1:
        lines += ["", "  load   offered/s        p50        p99        max  kept up  CPU/sample"]
        for level in result["levels"]:
            lines.append(
                f"  {level['fraction']:>4.0%}  {level['offered_rate_per_s']:>10,.0f}"
                f"  {format_ms(level['p50_ms']):>9}  {format_ms(level['p99_ms']):>9}"
                f"  {format_ms(level['max_ms']):>9}  {'yes' if level['kept_up'] else 'no ':>7}"
                f"  {level['worker_cpu_us_per_sample']:>7,.0f} µs"
            )
    return "\n".join(lines)


def _format_rounds(result: dict[str, Any]) -> str:
    rounds = result["rounds"]
    lines = [
        f"bench latency: {len(rounds)} rounds on one broker, each on fresh topics with a fresh"
        " worker; the figures at half the capacity the round's probe measured (or at --rate)",
        "  round  capacity/s   offered/s        p50        p99        max  kept up  CPU/sample",
    ]
    for number, r in enumerate(rounds, 1):
        lines.append(
            f"  {number:>5}  {r['capacity_per_s']:>10,.0f}  {r['offered_rate_per_s']:>10,.0f}"
            f"  {format_ms(r['p50_ms']):>9}  {format_ms(r['p99_ms']):>9}"
            f"  {format_ms(r['max_ms']):>9}  {'yes' if r['kept_up'] else 'no ':>7}"
            f"  {r['worker_cpu_us_per_sample']:>7,.0f} µs"
        )
    names = {
        "capacity_per_s": "capacity (probe), samples/s",
        "offered_rate_per_s": "offered, samples/s",
        "p50_ms": "p50, ms",
        "p99_ms": "p99, ms",
        "max_ms": "max, ms",
        "worker_cpu_us_per_sample": "worker CPU a sample, µs",
    }
    lines.append("  over the rounds                      min     median        max")
    for name, label in names.items():
        values = (result["spread"][name][k] for k in ("min", "median", "max"))
        line = f"  {label:<29}" + "".join(
            "          -" if v is None else f" {v:>10,.0f}" for v in values
        )
        if name == "p99_ms":
            line += (
                f"   target <= {TARGET_P99_MS:.0f} ms: met in {result['p99_met_rounds']}"
                f" of {len(rounds)} rounds"
            )
        lines.append(line)
    lines.append(
        f"  the worker kept up with the offered rate in {result['kept_up_rounds']} of"
        f" {len(rounds)} rounds"
    )
    return "\n".join(lines)


def plot_curve(result: dict[str, Any], path: Path) -> None:
    """Draw p50 and p99 against the offered load of a round of :func:`run_bench_latency`
    into ``path`` (PNG), with the target; needs matplotlib (``pip install
    'paas-autopilot[lab]'``)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    levels = [x for x in result["levels"] if x["p50_ms"] is not None]
    x = [level["offered_rate_per_s"] for level in levels]
    figure, axes = pyplot.subplots(figsize=(7, 4))
    axes.plot(x, [level["p50_ms"] for level in levels], marker="o", label="p50")
    axes.plot(x, [level["p99_ms"] for level in levels], marker="o", label="p99")
    axes.axhline(TARGET_P99_MS, color="grey", linestyle="--", label="p99 target")
    for level, rate in zip(levels, x, strict=True):
        if level["fraction"] is not None:
            axes.annotate(f"{level['fraction']:.0%}", (rate, level["p99_ms"]), xytext=(4, 4),
                          textcoords="offset points")  # fmt: skip
    axes.set_xlabel(f"offered samples/s (capacity {result['capacity_per_s']:,.0f}/s)")
    axes.set_ylabel("produce -> decision appended (ms)")
    axes.set_yscale("log")
    axes.set_title("Decision latency against load")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)

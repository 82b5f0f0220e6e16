"""Throughput of the whole pipeline against a raw aiokafka consumer, on the same broker.

One run produces ``events`` metric samples (the simulator's shape, over many
series, in envelopes of ``envelope`` samples of one series unless ``envelope`` is 1)
to fresh topics, then measures, all in samples per second:

a. the raw limit: a plain aiokafka consumer that reads every message and
   decodes it with orjson, nothing else;
b. the pipeline: a real ``autopilot worker`` subprocess with every agent and
   model on, timed from its first consumed event until its conservation
   counters say every event is processed or dead-lettered;
c. the Faust floor: a Faust worker whose one agent only decodes and counts
   (:mod:`streams.lab.bench.floor`), with the product app's consumer settings, so
   the gap between (a) and (b) splits into Faust's own per-event cost and the
   product's work;

and reports the three rates, their ratios to the raw rate, the worker's peak
RSS, and the time per stage (decode, validate, models, encode decisions) from
an in-process profile of the same messages. With ``otlp``, a fourth run:

d. OTLP: the same samples as the OpenTelemetry Collector's Kafka exporter writes them
   (:mod:`streams.lab.bench.otlp`), on fresh topics, to a fresh worker, timed from its
   first consumed record until ``telemetry.metrics`` has handled every sample the OTLP
   agent sent on: data points and samples per second, against (b).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from schemas import Limits, MetricSample, parse
from streams.lab.bench.otlp import produce_otlp
from streams.lab.bench.support import (
    START_IN_WEEK_S,
    Log,
    WorkerRun,
    bench_broker,
    bench_topics,
)
from streams.lab.simulator import SimConfig, generate, run_simulation

__all__ = ["bench_config", "format_bench_throughput", "run_bench_throughput"]


def bench_config(events: int, series: int, envelope: int, now: float) -> SimConfig:
    """Metric samples only, over about ``series`` series, ``events`` in all, ending at
    ``now``; their demand that of :data:`~streams.lab.bench.support.START_IN_WEEK_S` onwards.

    An envelope may span ``envelope`` ticks, so that it fills up with one series' samples.
    The start is set, so every run over the config sees the same records (the scale-out
    bench's in process and on its topics). The demand is the same part of the week whatever
    the hour: runs at other hours made 553 to 2,034 decisions, and did that much other work.

    >>> from models.forecast.load import WEEK_S
    >>> a = bench_config(3_000, 30, 10, now=1_000_000.0)
    >>> b = bench_config(3_000, 30, 10, now=1_050_000.0)
    >>> [(c.start_ts + c.profile_shift_s) % WEEK_S == START_IN_WEEK_S for c in (a, b)]
    [True, True]
    """
    regions = ("us-east", "eu-west", "ap-south")
    services = tuple(f"svc-{i:05d}" for i in range(math.ceil(series / len(regions))))
    ticks = math.ceil(events / (len(services) * len(regions)))
    config = SimConfig(
        services=services,
        regions=regions,
        tenants=0,
        errors_per_s=0.0,
        tick_s=5.0,
        duration_s=ticks * 5.0,
        envelope_records=envelope,
        envelope_span_s=envelope * 5.0,
    )
    start = now - config.duration_s
    return dataclasses.replace(config, start_ts=start).playing_week_from(START_IN_WEEK_S)


async def _raw_consume(bootstrap: str, topic: str, expected: int) -> float:
    """Seconds a plain consumer needs to read and decode ``expected`` messages."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        seen = 0
        started = time.perf_counter()
        while seen < expected:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for messages in batch.values():
                for message in messages:
                    orjson.loads(message.value)
                seen += len(messages)
        return time.perf_counter() - started
    finally:
        await consumer.stop()


def _run_worker(broker: str, prefix: str, expected: int, workdir: Path, log: Log) -> dict:
    """Seconds the worker needs from its first consumed event to ``expected`` handled ones."""
    with WorkerRun(broker, prefix, workdir) as worker:
        seconds = worker.time_backlog(expected, 1800, log, "pipeline")
        return {"seconds": seconds, "peak_rss_bytes": worker.peak_rss_bytes()}


def _run_floor(broker: str, prefix: str, expected: int, workdir: Path, log: Log) -> float:
    """Seconds the Faust floor (:mod:`streams.lab.bench.floor`) needs from its first to last
    of ``expected`` messages.

    The floor stamps its first and latest message itself, so polling adds nothing
    to the figure.
    """
    with WorkerRun(
        broker, prefix, workdir, module="streams.lab.bench.floor", name="floor"
    ) as floor:
        deadline = time.monotonic() + 1800
        count: dict[str, Any] = {"consumed": 0}
        while time.monotonic() < deadline and floor.alive():
            try:
                count = orjson.loads(floor.get("/floor/"))
            except OSError:
                time.sleep(0.5)
                continue
            if count["consumed"] >= expected:
                return max(count["last_ts"] - count["first_ts"], 1e-6)
            log(f"  faust floor: {count['consumed']:,d}/{expected:,d} messages")
            time.sleep(0.5)
        raise RuntimeError(
            f"the Faust floor read {count['consumed']} of {expected} events; "
            f"log tail:\n{floor.log_tail()}"
        )


def _run_otlp(
    bootstrap: str, config: SimConfig, envelope: int, workdir: Path, log: Log
) -> dict[str, Any]:
    """The pipeline fed the same samples as OTLP requests, on topics of its own."""
    with bench_topics(bootstrap, log, "otlp-") as topics:
        produced = asyncio.run(
            produce_otlp(bootstrap, topics.otlp_metrics, config, envelope, time.time())
        )
        log(
            f"produced {produced.samples:,d} samples as {produced.points:,d} OTLP data points in "
            f"{produced.requests:,d} requests; OTLP pipeline worker..."
        )
        with WorkerRun(bootstrap, topics.prefix, workdir, name="otlp-worker") as worker:
            seconds = worker.time_backlog(produced.samples, 1800, log, "OTLP pipeline")
            consumed, handled = worker.handled("otlp_metrics") or (0.0, 0.0)
            peak = worker.peak_rss_bytes()
    return {
        "requests": produced.requests,
        "points": produced.points,
        "samples": produced.samples,
        "points_consumed": int(consumed),
        "points_handled": int(handled),
        "points_per_s": round(produced.points / seconds, 1),
        "samples_per_s": round(produced.samples / seconds, 1),
        "worker_peak_rss_bytes": peak,
    }


def _profile(config: SimConfig, sample: int) -> dict[str, float]:
    """Microseconds per event of each stage, in process, over ``sample`` messages."""
    from models.brains.metrics import MetricsBrain

    values = [v for _, (_, _, v, _) in zip(range(sample), generate(config), strict=False)]
    limits, now = Limits(), time.time()
    brain = MetricsBrain()
    timings = dict.fromkeys(("decode", "validate", "models", "encode_decisions"), 0.0)
    for value in values:
        t0 = time.perf_counter()
        orjson.loads(value)
        t1 = time.perf_counter()
        record = parse("metrics", value, now=now, limits=limits)
        t2 = time.perf_counter()
        decisions = []
        if isinstance(record, MetricSample):
            decisions = brain.observe(record.ts, record.service, record.region, record.metrics)
        t3 = time.perf_counter()
        for decision in decisions:
            decision.to_bytes()
        t4 = time.perf_counter()
        timings["decode"] += t1 - t0
        # parse decodes too; its validation share is what it adds to a plain decode.
        timings["validate"] += max(0.0, (t2 - t1) - (t1 - t0))
        timings["models"] += t3 - t2
        timings["encode_decisions"] += t4 - t3
    return {stage: 1e6 * total / len(values) for stage, total in timings.items()}


def run_bench_throughput(
    events: int = 500_000,
    series: int = 1_000,
    broker: str | None = None,
    profile_sample: int = 20_000,
    envelope: int = 100,
    otlp: bool = False,
    log: Log = lambda _msg: None,
) -> dict[str, Any]:
    """Measure raw consumer, Faust floor and pipeline rates (and, with ``otlp``, the
    pipeline fed OTLP) on one broker, in one run."""
    with (
        tempfile.TemporaryDirectory(prefix="autopilot-bench-") as tmp,
        bench_broker(broker, Path(tmp), log) as bootstrap,
        bench_topics(bootstrap, log) as topics,
    ):
        workdir = Path(tmp)
        config = bench_config(events, series, envelope, time.time())
        log(f"producing {events:,d} metric events over {series:,d} series to {bootstrap}")
        summary = asyncio.run(
            run_simulation(
                config, bootstrap_servers=bootstrap, topics=topics, ground_truth_path=None
            )
        )
        produced, messages = summary.sent["metrics"], summary.messages
        log(f"produced {produced:,d} in {messages:,d} messages, {summary.wall_s:.1f}s; raw...")
        raw_s = asyncio.run(_raw_consume(bootstrap, topics.metrics, messages))
        log(f"raw consumer: {produced / raw_s:,.0f} events/s; Faust floor...")
        floor_s = _run_floor(bootstrap, topics.prefix, messages, workdir, log)
        log(f"Faust floor: {produced / floor_s:,.0f} events/s; pipeline worker...")
        pipeline = _run_worker(bootstrap, topics.prefix, produced, workdir, log)
        fed_otlp = None
        if otlp:
            # The same stream, ending when it is produced, as the first did.
            again = bench_config(events, series, envelope, time.time())
            fed_otlp = _run_otlp(bootstrap, again, envelope, workdir, log)
    stages = _profile(config, min(profile_sample, produced))
    raw_rate = produced / raw_s
    floor_rate = produced / floor_s
    pipeline_rate = produced / pipeline["seconds"]
    if fed_otlp is not None:
        fed_otlp["samples_ratio_to_native"] = _four_figures(
            fed_otlp["samples_per_s"] / pipeline_rate
        )
    return {
        "events": produced,
        "messages": messages,
        "envelope_records": envelope,
        "series": len(config.services) * len(config.regions),
        "raw_events_per_s": round(raw_rate, 1),
        "pipeline_events_per_s": round(pipeline_rate, 1),
        "ratio": _four_figures(pipeline_rate / raw_rate),
        "faust_floor_events_per_s": round(floor_rate, 1),
        "floor_ratio": _four_figures(floor_rate / raw_rate),
        "pipeline_floor_ratio": _four_figures(pipeline_rate / floor_rate),
        "worker_peak_rss_bytes": pipeline["peak_rss_bytes"],
        "stage_us_per_event": {k: round(v, 2) for k, v in stages.items()},
        "target_ratio": 0.5,
        "target_peak_rss_bytes": 1 << 30,
        "otlp": fed_otlp,
    }


def _four_figures(ratio: float) -> float:
    # Four significant figures, not four decimals: with envelopes, pipeline / raw is
    # about 0.004, which four decimals would leave one figure of.
    return float(f"{ratio:.4g}")


def format_bench_throughput(result: dict[str, Any]) -> str:
    """A readable summary of :func:`run_bench_throughput`."""
    stages = result["stage_us_per_event"]
    stage_text = ", ".join(f"{k} {v:.1f}" for k, v in stages.items())
    return "\n".join(
        [
            f"bench throughput: {result['events']:,d} metric events in {result['messages']:,d}"
            f" messages (envelopes of {result['envelope_records']}), {result['series']:,d} series",
            f"  raw aiokafka consumer + orjson  {result['raw_events_per_s']:>12,.0f} events/s",
            f"  Faust floor (decode + count)    {result['faust_floor_events_per_s']:>12,.0f}"
            " events/s",
            f"  full pipeline (worker)          {result['pipeline_events_per_s']:>12,.0f} events/s",
            f"  ratio pipeline / raw            {result['ratio']:>12.3g}   (target >= 0.5)",
            f"  ratio floor / raw               {result['floor_ratio']:>12.3g}"
            "   (Faust's own cost per event)",
            f"  ratio pipeline / floor          {result['pipeline_floor_ratio']:>12.3g}"
            "   (the product's work)",
            f"  worker peak RSS                 {result['worker_peak_rss_bytes'] / 2**20:>12,.0f}"
            " MiB  (target < 1024)",
            f"  in-process profile, us/event:   {stage_text}",
            *_otlp_lines(result["otlp"], result["pipeline_events_per_s"]),
        ]
    )


def _otlp_lines(otlp: dict[str, Any] | None, native: float) -> list[str]:
    if otlp is None:
        return []
    return [
        f"  OTLP: {otlp['samples']:,d} samples as {otlp['points']:,d} data points in "
        f"{otlp['requests']:,d} requests (gauges), to a fresh worker",
        f"  OTLP pipeline                   {otlp['points_per_s']:>12,.0f} data points/s",
        f"                                  {otlp['samples_per_s']:>12,.0f} samples/s"
        f"  ({otlp['samples_ratio_to_native']:.3g} of native envelopes' {native:,.0f})",
        f"  OTLP points consumed / handled  {otlp['points_consumed']:>12,d} /"
        f" {otlp['points_handled']:,d}",
    ]

"""The failover bench: region health and the failover policy on simulated incidents.

Each scenario is played by the project's simulator (:func:`streams.lab.simulator.generate`, no
broker) and delivered through a lossy, laggy transport: every message arrives 0.1 s plus an
exponential 0.4 s after its event time, and during *lag episodes* (about two per region and
hour, 10 to 90 s long) a region's producer is a further 2 to 8 s behind; 0.2 % of messages
are lost; one metrics sample in 720 per series has a p99 glitch (2 to 6 x, a GC pause) and
one in 720 an error-rate glitch (+2 to +20 points). The policy sees only what arrived: every
5 s of event time a :class:`~models.health.region.RegionHealthBank` fed with the metrics and
interactions evaluates every region against the watermark, and a
:class:`~models.policy.failover.FailoverPolicy` (with the bundled region configuration) decides.
The data classes of each region's traffic are those of the interactions it served.

The scripted incidents (the ground truth) are used only to score the decisions:

* **detection delay**: event seconds from an incident's onset to the first ``failover`` or
  ``failover_blocked`` of its region (the largest over the scenario's regional incidents);
* **false failovers**: a region entering failover outside any regional incident on it (from
  onset to 60 s after its end); error bursts and load surges are not regional failures;
* **flaps**: a region entering failover more than once within one incident, or within
  10 minutes of failing back;
* **residency violations**: data classes moved to a region the rules forbid for them;
* **unhealthy targets**: failovers to a region that was itself in an incident.

Harder scenarios: a hard outage starting between two evaluations; a slow brown-out that
creeps up over minutes; the loss of one availability zone's worth of a region's capacity
(a sharp 10 s transient, then a mild slowdown: hold, no failover); a network partition
between one healthy region and us (its telemetry held back and delivered when the network
heals: from here it is an outage, so fail over, and fail back once); and a partition of
every region from us (our own outage: nothing fails over, as the watermark stops).

Targets: hard outage detected within 15 s (20 s when it starts between two evaluations),
brown-out within 30 s, the slow brown-out within 30 s of its errors passing +5 %, the
partition as fast as a hard outage; no false failover over a 24-hour healthy run and in
every scenario, no flap, no residency violation.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from models.health.region import DEFAULT_HEALTH_CONFIG, HealthConfig, RegionHealthBank
from models.policy.failover import FailoverDecisionDraft, FailoverPolicy
from schemas.config.regions import DEFAULT_DATA_CLASS, RegionConfig, load_region_config
from streams.lab.scenario import Scenario, load_scenario, parse_scenario
from streams.lab.simulator import SimConfig, generate

__all__ = [
    "SCENARIOS",
    "FailoverScenario",
    "format_failover_bench",
    "run_failover_scenarios",
]

START_TS = 1_700_000_000.0
TICK_S = 5.0
_REGIONAL = ("region_outage", "brownout", "flapping", "partition")
_FALSE_SLACK_S = 60.0
_FLAP_WINDOW_S = 600.0
# Transport noise.
_BASE_LAG_S = 0.1
_MEAN_LAG_S = 0.4
_LAG_EPISODES_PER_H = 2.0
_LAG_EPISODE_S = (10.0, 90.0)
_LAG_EXTRA_S = (2.0, 8.0)
_DROP = 0.002
_GLITCH = 1.0 / 720.0


@dataclass(frozen=True, slots=True)
class FailoverScenario:
    """A scenario of the bench: simulated segments and what should happen.

    ``segments`` are simulator scenarios played back to back (the simulator runs at most
    23 h at a time); ``expected`` is the set of decision kinds that should occur, and
    ``max_detection_s`` the detection target, if any.
    """

    name: str
    description: str
    segments: tuple[Scenario, ...]
    expected: frozenset[str]
    max_detection_s: float | None = None
    hold: bool = False
    """The scripted incidents are not regional failures: failing over during them is false."""
    partitions: tuple[tuple[str | None, float, float], ...] = ()
    """Network partitions between the regions and the worker, in the first segment:
    ``(region, start_s, end_s)``, ``None`` for every region. What a partitioned region
    produces is held back and arrives when the partition ends."""


def _scenario(name: str, duration_s: float, incidents: list[dict[str, Any]]) -> Scenario:
    return parse_scenario({"name": name, "duration_s": duration_s, "incidents": incidents})


def _climbing_brownout(region: str, start_s: float, duration_s: float) -> list[dict[str, Any]]:
    """A brown-out that climbs: four overlapping steps, 15 s apart, up to +20 % errors and
    about 4 x latency."""
    return [
        _incident(
            "brownout",
            region,
            start_s + 15.0 * k,
            duration_s - 15.0 * k,
            error_rate=0.05,
            latency_factor=1.41,
        )
        for k in range(4)
    ]


def _slow_brownout(region: str, start_s: float, duration_s: float) -> list[dict[str, Any]]:
    """A brown-out that creeps: ten overlapping steps, 30 s apart, each +2 % errors and
    x 1.15 latency, up to +20 % errors and 4 x latency after 4.5 minutes."""
    return [
        _incident(
            "brownout",
            region,
            start_s + 30.0 * k,
            duration_s - 30.0 * k,
            error_rate=0.02,
            latency_factor=1.149,
        )
        for k in range(10)
    ]


def _incident(kind: str, region: str, start_s: float, duration_s: float, **extra: Any) -> dict:
    return {"type": kind, "region": region, "start_s": start_s, "duration_s": duration_s, **extra}


def _scenarios(healthy_hours: float) -> tuple[FailoverScenario, ...]:
    healthy_segments = []
    left = healthy_hours * 3600.0
    while left > 0:
        span = min(left, 12 * 3600.0)
        healthy_segments.append(_scenario("healthy", span, []))
        left -= span
    return (
        FailoverScenario(
            "hard_outage",
            "us-east stops sending anything at once for 10 minutes, then recovers.",
            (
                _scenario(
                    "hard_outage",
                    2700,
                    [_incident("region_outage", "us-east", 1200, 600, degrade_s=0)],
                ),
            ),
            frozenset({"failover", "failback"}),
            15.0,
        ),
        FailoverScenario(
            "hard_outage_midtick",
            "As hard_outage, but the outage starts 2.5 s after an evaluation, the worst phase "
            "for a 5 s evaluation period.",
            (
                _scenario(
                    "hard_outage_midtick",
                    2700,
                    [_incident("region_outage", "us-east", 1202.5, 600, degrade_s=0)],
                ),
            ),
            frozenset({"failover", "failback"}),
            20.0,
        ),
        FailoverScenario(
            "brownout",
            "ap-south errors climb to +20 % and latency to 4 x over 45 s, for 10 minutes; "
            "telemetry continues.",
            (_scenario("brownout", 2700, _climbing_brownout("ap-south", 1200, 600)),),
            frozenset({"failover", "failback"}),
            30.0,
        ),
        FailoverScenario(
            "slow_brownout",
            "ap-south degrades step by step over 4.5 minutes (+2 % errors and x 1.15 latency "
            "every 30 s) to +20 % and 4 x, for 10 minutes: it must fail over within 30 s of "
            "its errors passing +5 % (the third step, 60 s in), before the creep is learned "
            "as normal.",
            (_scenario("slow_brownout", 2700, _slow_brownout("ap-south", 1200, 600)),),
            frozenset({"failover", "failback"}),
            90.0,
        ),
        FailoverScenario(
            "az_partial",
            "One availability zone of us-east is lost for 10 minutes: for 10 s, until its "
            "load balancer drains the zone, every service fails 10 % more requests (retries "
            "hide the rest) at 2 x latency; then the other zones carry the load, 1.3 x slower "
            "with +1 % errors. "
            "Hold: the region serves its users, and a failover would move them all farther "
            "away for at least the recovery period, for a transient already over.",
            (
                _scenario(
                    "az_partial",
                    2700,
                    [
                        _incident(
                            "brownout", "us-east", 1200, 10, error_rate=0.1, latency_factor=2.0
                        ),
                        _incident(
                            "brownout", "us-east", 1210, 590, error_rate=0.01, latency_factor=1.3
                        ),
                    ],
                ),
            ),
            frozenset(),
            hold=True,
        ),
        FailoverScenario(
            "partition",
            "ap-south keeps serving its users, but the network between it and us is cut for "
            "5 minutes; its telemetry, held by its producers, arrives when the cut heals. "
            "From here it is an outage (fail over, as fast as a hard one), and its return "
            "must fail back once, after a sustained recovery.",
            (_scenario("partition", 2700, []),),
            frozenset({"failover", "failback"}),
            15.0,
            partitions=(("ap-south", 1200.0, 1500.0),),
        ),
        FailoverScenario(
            "pipeline_partition",
            "Every region is cut from us for 2 minutes (our own outage), then the held "
            "telemetry arrives: nothing must fail over.",
            (_scenario("pipeline_partition", 2700, []),),
            frozenset(),
            partitions=((None, 1200.0, 1320.0),),
        ),
        FailoverScenario(
            "flapping",
            "us-east alternates bad and good minutes for 20 minutes.",
            (
                _scenario(
                    "flapping", 3300, [_incident("flapping", "us-east", 1200, 1200, period_s=120)]
                ),
            ),
            frozenset({"failover", "failback"}),
            60.0,
        ),
        FailoverScenario(
            "eu_outage_blocked",
            "eu-west (the only EU region, eu-personal traffic) degrades for a minute, goes "
            "silent for nine, then recovers: the failover must be blocked.",
            (
                _scenario(
                    "eu_outage",
                    1800,
                    [_incident("region_outage", "eu-west", 600, 600, degrade_s=60)],
                ),
            ),
            frozenset({"failover_blocked", "failback"}),
            60.0,
        ),
        FailoverScenario(
            "recovery_failback",
            "ap-south degrades for 90 s and goes silent for 5 minutes, then recovers; its "
            "traffic must come back once, after a sustained recovery.",
            (
                _scenario(
                    "recovery",
                    2400,
                    [_incident("region_outage", "ap-south", 900, 390, degrade_s=90)],
                ),
            ),
            frozenset({"failover", "failback"}),
            60.0,
        ),
        FailoverScenario(
            "mixed",
            "The simulator's eventful hour: a fleet-wide surge and a bad deploy (neither is a "
            "regional failure), an ap-south brown-out, eu-west flapping, an ap-south outage.",
            (load_scenario("mixed"),),
            frozenset({"failover", "failover_blocked", "failback"}),
            60.0,
        ),
        FailoverScenario(
            f"healthy_{healthy_hours:g}h",
            f"{healthy_hours:g} hours without incidents, with the transport noise.",
            tuple(healthy_segments),
            frozenset(),
        ),
    )


SCENARIOS = tuple(s.name for s in _scenarios(24.0))
"""Names of the bench scenarios, in the order they run."""


class _Transport:
    """Lag, loss and glitches between the producers and the worker; deterministic."""

    def __init__(
        self,
        seed: int,
        regions: Iterable[str],
        start_ts: float,
        span_s: float,
        partitions: Iterable[tuple[str | None, float, float]] = (),
    ):
        self.rng = random.Random(f"{seed}/failover-transport")
        self.partitions = [
            (region, start_ts + start, start_ts + end) for region, start, end in partitions
        ]
        self.episodes: dict[str, list[tuple[float, float, float]]] = {}
        for region in regions:
            episodes = []
            t = start_ts
            while True:
                t += self.rng.expovariate(_LAG_EPISODES_PER_H / 3600.0)
                if t >= start_ts + span_s:
                    break
                length = self.rng.uniform(*_LAG_EPISODE_S)
                episodes.append((t, t + length, self.rng.uniform(*_LAG_EXTRA_S)))
            self.episodes[region] = episodes

    def arrival(self, region: str, ts: float) -> float | None:
        """When a message of ``region`` at ``ts`` arrives; ``None`` if it is lost."""
        rng = self.rng
        if rng.random() < _DROP:
            return None
        lag = _BASE_LAG_S + rng.expovariate(1.0 / _MEAN_LAG_S)
        for start, end, extra in self.episodes.get(region, ()):
            if start <= ts < end:
                lag += extra * rng.uniform(0.8, 1.0)
                break
        for cut, start, end in self.partitions:
            if cut in (None, region) and start <= ts < end:
                return end + lag  # held by the producer until the network heals
        return ts + lag

    def glitch(self, metrics: dict[str, float]) -> dict[str, float]:
        rng = self.rng
        if rng.random() < _GLITCH and "latency_p99_ms" in metrics:
            metrics = {**metrics, "latency_p99_ms": metrics["latency_p99_ms"] * rng.uniform(2, 6)}
        if rng.random() < _GLITCH and "error_rate" in metrics:
            error = min(1.0, metrics["error_rate"] + rng.uniform(0.02, 0.2))
            metrics = {**metrics, "error_rate": error}
        return metrics


@dataclass(slots=True)
class _Run:
    """The worker's side: the health bank, the policy and the traffic seen."""

    bank: RegionHealthBank
    policy: FailoverPolicy
    traffic: dict[str, set[str]]
    decisions: list[FailoverDecisionDraft]
    unhealthy: dict[str, int]
    min_score: dict[str, float]
    evaluations: int = 0

    def ingest(self, body: dict[str, Any], attr: str) -> None:
        region = body["region"]
        ts = body["ts"]
        if attr == "metrics":
            self.bank.observe_metrics(ts, region, body["service"], body["metrics"])
        elif attr == "interactions":
            self.bank.observe_interactions(ts, region, int(body["success"]), 1)
            self.traffic.setdefault(region, set()).add(body.get("data_class") or DEFAULT_DATA_CLASS)

    def evaluate(self) -> None:
        now = self.bank.watermark
        if now is None:
            return
        reports = self.bank.evaluate(now)
        before = self.policy.last_evaluation_ts
        self.decisions.extend(self.policy.evaluate(now, reports, self.traffic))
        if self.policy.last_evaluation_ts == before:
            return
        self.evaluations += 1
        for region, report in reports.items():
            self.unhealthy[region] = self.unhealthy.get(region, 0) + (not report.healthy)
            self.min_score[region] = min(self.min_score.get(region, 1.0), report.score)


def _play(
    run: _Run,
    segments: tuple[Scenario, ...],
    seed: int,
    regions: tuple[str, ...],
    partitions: tuple[tuple[str | None, float, float], ...] = (),
) -> list:
    """Play the segments back to back; return the incidents as ``(type, region, onset, end)``.

    A partition of one region is an incident of that region (``partition``): from where we
    stand it is an outage, whatever the region's users see. A partition of every region is
    our own outage, not the regions': no incident.
    """
    incidents = [
        ("partition", region, START_TS + a, START_TS + b)
        for region, a, b in partitions
        if region is not None
    ]
    start = START_TS
    seq = itertools.count()
    # Messages in flight and the evaluation clock carry over from one segment to the next.
    heap: list[tuple[float, int, str, dict[str, Any]]] = []
    next_eval = start + TICK_S
    for index, segment in enumerate(segments):
        transport = _Transport(
            seed * 1000 + index,
            regions,
            start,
            segment.duration_s,
            partitions if index == 0 else (),
        )
        sim = SimConfig.for_scenario(
            segment, regions=regions, start_ts=start, seed=seed * 1000 + index
        )
        incidents.extend(
            (inc.type, getattr(inc, "region", None), start + inc.start_s, start + inc.end_s)
            for inc in segment.incidents
        )
        for attr, _, value, ts in _stream(sim):
            # Messages come tick by tick, so once one is at or past the evaluation time,
            # every message that can arrive before it has been seen.
            while ts >= next_eval:
                _deliver(run, heap, next_eval)
                next_eval += TICK_S
            body = orjson.loads(value)
            arrival = transport.arrival(body["region"], ts)
            if arrival is None:
                continue
            if attr == "metrics":
                body["metrics"] = transport.glitch(body["metrics"])
            heapq.heappush(heap, (arrival, next(seq), attr, body))
        start += segment.duration_s
    while heap:
        _deliver(run, heap, next_eval)
        next_eval += TICK_S
    return incidents


def _stream(sim: SimConfig) -> Iterator[tuple[str, bytes, bytes, float]]:
    for attr, key, value, ts in generate(sim):
        if attr != "errors":
            yield attr, key, value, ts


def _deliver(run: _Run, heap: list, until: float) -> None:
    while heap and heap[0][0] <= until:
        _, _, attr, body = heapq.heappop(heap)
        run.ingest(body, attr)
    run.evaluate()


def _merge(incidents: list[tuple[str, str | None, float, float]]) -> list[tuple]:
    """Overlapping regional incidents of one region are one incident (a climbing brown-out
    is scripted as overlapping steps)."""
    merged: list[tuple] = []
    for inc in sorted(incidents, key=lambda i: (i[1] or "", i[2])):
        last = merged[-1] if merged else None
        if last is not None and last[1] == inc[1] and inc[2] <= last[3]:
            merged[-1] = (last[0], last[1], last[2], max(last[3], inc[3]))
        else:
            merged.append(inc)
    return merged


def _score(
    scenario: FailoverScenario,
    incidents: list[tuple[str, str | None, float, float]],
    decisions: list[FailoverDecisionDraft],
    config: RegionConfig,
) -> dict[str, Any]:
    regional = _merge([i for i in incidents if i[0] in _REGIONAL])

    def incident_at(region: str, ts: float) -> tuple | None:
        for inc in regional:
            if inc[1] == region and inc[2] <= ts <= inc[3] + _FALSE_SLACK_S:
                return inc
        return None

    failed: dict[str, bool] = {}
    last_failback: dict[str, float] = {}
    entries: dict[tuple, int] = {}
    false_failovers = flaps = violations = unhealthy_targets = 0
    for d in decisions:
        if d.kind == "failback":
            failed[d.region] = False
            last_failback[d.region] = d.ts
            continue
        if d.kind == "failover":
            violations += sum(not config.allows(dc, d.target) for dc in d.data_classes)
            unhealthy_targets += incident_at(d.target, d.ts) is not None
        if failed.get(d.region):
            continue
        # The region enters failover (a blocked one included).
        failed[d.region] = True
        inc = incident_at(d.region, d.ts)
        if inc is None:
            false_failovers += 1
        else:
            entries[inc] = entries.get(inc, 0) + 1
        again = inc is not None and entries[inc] > 1
        soon = d.ts - last_failback.get(d.region, -math.inf) <= _FLAP_WINDOW_S
        flaps += again or soon

    delays = []
    for inc in regional:
        first = next(
            (
                d.ts
                for d in decisions
                if d.kind != "failback" and d.region == inc[1] and inc[2] <= d.ts <= inc[3]
            ),
            None,
        )
        delays.append(None if first is None else round(first - inc[2], 1))
    if not scenario.expected:
        delays = []
    detected = [x for x in delays if x is not None]
    detection = max(detected) if detected and len(detected) == len(delays) else None
    failbacks = [d.ts for d in decisions if d.kind == "failback"]
    last_end = max((inc[3] for inc in regional), default=None)
    failback_after = (
        round(min(t for t in failbacks if t >= last_end) - last_end, 1)
        if last_end is not None and any(t >= last_end for t in failbacks)
        else None
    )
    kinds = {d.kind for d in decisions}
    met_detection = scenario.max_detection_s is None or (
        detection is not None and detection <= scenario.max_detection_s
    )
    passed = (
        met_detection
        and kinds == scenario.expected
        and false_failovers == 0
        and flaps == 0
        and violations == 0
        and unhealthy_targets == 0
    )
    return {
        "detection_delay_s": detection,
        "detection_target_s": scenario.max_detection_s,
        "missed_incidents": len(delays) - len(detected),
        "false_failovers": false_failovers,
        "flaps": flaps,
        "residency_violations": violations,
        "unhealthy_targets": unhealthy_targets,
        "failback_after_s": failback_after,
        "expected_kinds": sorted(scenario.expected),
        "kinds": sorted(kinds),
        "expected_ok": kinds == scenario.expected,
        "passed": passed,
    }


def run_failover_scenarios(
    seed: int = 0,
    *,
    names: Iterable[str] | None = None,
    healthy_hours: float = 24.0,
    region_config: RegionConfig | None = None,
    health_config: HealthConfig | None = None,
    **policy_settings: Any,
) -> dict[str, Any]:
    """Run the bench scenarios and score the decisions against the scripted incidents.

    Parameters
    ----------
    seed
        Seed of the simulator and of the transport noise.
    names
        Scenarios to run (see :data:`SCENARIOS`; the healthy one is ``healthy_24h`` or as
        ``healthy_hours`` says); all by default.
    healthy_hours
        Length of the healthy run.
    region_config
        Region configuration; the bundled one by default (its regions are simulated).
    health_config
        Region health settings; :data:`~models.health.region.DEFAULT_HEALTH_CONFIG` by default.
    **policy_settings
        Passed to :class:`~models.policy.failover.FailoverPolicy`.

    Returns
    -------
    dict
        ``settings`` and, per scenario, ``scenarios[name]``: the figures of the module
        docstring, the decisions (kind, event time, region, target, data classes), the
        number of evaluations and, per region, unhealthy evaluations and lowest score.

    Examples
    --------
    >>> result = run_failover_scenarios(names=["hard_outage"])
    >>> r = result["scenarios"]["hard_outage"]
    >>> r["detection_delay_s"] <= 30, r["false_failovers"], r["flaps"], r["passed"]
    (True, 0, 0, True)

    """
    config = region_config if region_config is not None else load_region_config()
    health = health_config if health_config is not None else DEFAULT_HEALTH_CONFIG
    wanted = None if names is None else set(names)
    # In file order, which for the bundled file is the simulator's own order of regions.
    regions = tuple(config.regions)
    scenarios = {}
    probe = FailoverPolicy(config, **policy_settings)
    for scenario in _scenarios(healthy_hours):
        if wanted is not None and scenario.name not in wanted:
            continue
        run = _Run(
            bank=RegionHealthBank(regions, health),
            policy=FailoverPolicy(config, **policy_settings),
            traffic={},
            decisions=[],
            unhealthy={},
            min_score={},
        )
        incidents = _play(run, scenario.segments, seed, regions, scenario.partitions)
        if scenario.hold:
            incidents = [("hold", *inc[1:]) for inc in incidents]
        result = _score(scenario, incidents, run.decisions, config)
        result["description"] = scenario.description
        result["evaluations"] = run.evaluations
        result["unhealthy_evaluations"] = dict(sorted(run.unhealthy.items()))
        result["min_score"] = {r: round(s, 4) for r, s in sorted(run.min_score.items())}
        result["decisions"] = [
            {
                "kind": d.kind,
                "ts": round(d.ts, 3),
                "at_s": round(d.ts - START_TS, 1),
                "region": d.region,
                "target": d.target,
                "data_classes": list(d.data_classes),
            }
            for d in run.decisions
        ]
        scenarios[scenario.name] = result
    if wanted is not None and wanted - set(scenarios):
        unknown = ", ".join(sorted(wanted - set(scenarios)))
        raise ValueError(f"unknown failover scenario(s): {unknown}")
    return {
        "seed": seed,
        "settings": {
            "tick_s": TICK_S,
            "fail_after": probe.fail_after,
            "recover_after": probe.recover_after,
            "silence_fail_s": probe.silence_fail_s,
            "grace_s": health.grace_s,
            "silence_tolerance_s": health.silence_tolerance_s,
            "health_threshold": health.threshold,
        },
        "scenarios": scenarios,
        "passed": all(s["passed"] for s in scenarios.values()),
    }


def format_failover_bench(result: dict[str, Any]) -> str:
    """A table of the bench figures, one row per scenario.

    Examples
    --------
    >>> print(format_failover_bench({"seed": 0, "settings": {"fail_after": 3,
    ...     "recover_after": 60, "grace_s": 10.0}, "passed": True, "scenarios": {}}))
    ... # doctest: +NORMALIZE_WHITESPACE
    failover bench (seed 0; fail after 3, recover after 60 evaluations of 5 s; grace 10 s)
    scenario  detection  target  false  flaps  residency  failback  decisions  ok
    all targets met

    """
    settings = result["settings"]
    lines = [
        f"failover bench (seed {result['seed']}; fail after {settings['fail_after']}, "
        f"recover after {settings['recover_after']} evaluations of {TICK_S:g} s; "
        f"grace {settings['grace_s']:g} s"
        + (
            f"; silent {settings['silence_fail_s']:g} s fails at once)"
            if settings.get("silence_fail_s") is not None
            else ")"
        )
    ]
    header = ("scenario", "detection", "target", "false", "flaps", "residency", "failback")
    rows = [(*header, "decisions", "ok")]

    def seconds(x: float | None) -> str:
        return "-" if x is None else f"{x:.1f} s"

    for name, r in result["scenarios"].items():
        kinds = ",".join(r["kinds"]) or "none"
        rows.append(
            (
                name,
                "missed" if r["missed_incidents"] else seconds(r["detection_delay_s"]),
                seconds(r["detection_target_s"]),
                str(r["false_failovers"]),
                str(r["flaps"]),
                str(r["residency_violations"]),
                seconds(r["failback_after_s"]),
                kinds,
                "yes" if r["passed"] else "NO",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    lines.append("all targets met" if result["passed"] else "SOME TARGETS MISSED")
    return "\n".join(lines)

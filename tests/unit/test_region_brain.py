"""The region brain: event-time order from out-of-order partitions, idle sources, stalls,
restarts, residency per data class, and the settings and bench verb around it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterable
from typing import Any

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner

from models.brains.interactions import HealthEvidence
from models.brains.region import RegionBrain
from models.brains.region_evidence import EvidenceRecorder
from models.policy.failover import FailoverDecisionDraft
from schemas.config.regions import load_region_config
from streams.lab.scenario import parse_scenario
from streams.lab.simulator import SimConfig, enveloped, generate
from streams.runtime.settings import Settings, SettingsError
from tests.conftest import AUTOPILOT

CONFIG = load_region_config()
T0 = 1_700_000_000.0
PARTITIONS = [0, 1, 2, 3]


def summary(drafts: Iterable[FailoverDecisionDraft]) -> list[tuple[str, str, str | None, float]]:
    return [(d.kind, d.region, d.target, round(d.ts - T0, 1)) for d in drafts]


def tick(
    brain: RegionBrain,
    i: int,
    regions: Iterable[str],
    source: Callable[[str], str] = lambda region: "",
    data_class: Callable[[str], str | None] = lambda region: None,
) -> None:
    """One 5-s tick of healthy telemetry from ``regions``: a sample and two interactions."""
    ts = T0 + 5.0 * i
    for region in regions:
        metrics = {"error_rate": 0.002, "latency_p99_ms": 120.0}
        brain.observe_metrics(ts, region, "api", metrics, source(region))
        for k in range(2):
            brain.observe_interaction(ts + k, region, True, data_class(region), source(region))


# ------------------------------------------------------------------ order of delivery
BACKLOG = parse_scenario(
    {
        "name": "backlog",
        "duration_s": 1500,
        "incidents": [
            # ap-south/checkout is alone on its partition: when ap-south stops, that
            # partition stops too.
            {"type": "region_outage", "region": "ap-south", "start_s": 300, "duration_s": 120,
             "degrade_s": 0},
            {"type": "brownout", "region": "us-east", "start_s": 800, "duration_s": 120,
             "error_rate": 0.2, "latency_factor": 4},
        ],
    }
)  # fmt: skip


def _messages() -> list[tuple[str, int, dict]]:
    partitioner = DefaultPartitioner()
    config = SimConfig.for_scenario(BACKLOG, start_ts=T0)
    return [
        (attr, partitioner(key, PARTITIONS, PARTITIONS), orjson.loads(value))
        for attr, key, value, _ in generate(config)
        if attr != "errors"
    ]


def _feed(brain: RegionBrain, attr: str, partition: int, body: dict) -> None:
    source = f"{attr}/{partition}"
    if attr == "metrics":
        brain.observe_metrics(body["ts"], body["region"], body["service"], body["metrics"], source)
    else:
        success, data_class = body["success"], body.get("data_class")
        brain.observe_interaction(body["ts"], body["region"], success, data_class, source)


def play_in_order(messages: list[tuple[str, int, dict]]) -> list[FailoverDecisionDraft]:
    """The live stream: messages in production order, evaluated as they come."""
    brain = RegionBrain(CONFIG)
    drafts = []
    for n, (attr, partition, body) in enumerate(messages):
        _feed(brain, attr, partition, body)
        if n % 100 == 0:
            drafts += brain.advance()
    return drafts + brain.advance(idle={f"{a}/{p}" for a, p, _ in messages})


def play_backlog(messages: list[tuple[str, int, dict]]) -> list[FailoverDecisionDraft]:
    """A backlog as a consumer reads it: one message per partition in turn, so a partition
    with one series runs four times as far ahead in event time as one with four; a
    partition read to its end is idle."""
    queues: dict[str, list[tuple[str, int, dict]]] = {}
    for message in messages:
        queues.setdefault(f"{message[0]}/{message[1]}", []).append(message)
    brain = RegionBrain(CONFIG)
    drafts = []
    position = dict.fromkeys(queues, 0)
    while any(position[s] < len(q) for s, q in queues.items()):
        for source, queue in queues.items():
            if position[source] < len(queue):
                _feed(brain, *queue[position[source]])
                position[source] += 1
        done = {s for s, q in queues.items() if position[s] == len(q)}
        drafts += brain.advance(idle=done)
    return drafts + brain.advance(idle=set(queues))


def test_a_backlog_read_out_of_order_gets_the_decisions_of_the_live_stream() -> None:
    messages = _messages()
    live = summary(play_in_order(messages))
    assert summary(play_backlog(messages)) == live
    kinds = [(kind, region) for kind, region, _, _ in live]
    assert kinds == [
        ("failover", "ap-south"),
        ("failback", "ap-south"),
        ("failover", "us-east"),
        ("failback", "us-east"),
    ]
    (_, _, target, outage_at), (*_, back_at), (_, _, _, brownout_at), (*_, us_back_at) = live
    assert 300 < outage_at <= 330 and target in ("us-east", "eu-west")
    assert 800 < brownout_at <= 860
    # Failback after 60 healthy evaluations in a row, the first at the incident's end.
    assert back_at >= 420 + 59 * 5 and us_back_at >= 920 + 59 * 5


def play_recorded(
    messages: list[tuple[str, int, dict]], batch: int, handover_at: int | None = None
) -> list[FailoverDecisionDraft]:
    """The backlog read by several workers: each partition's reader records its evidence and
    sends it in batches of ``batch`` rows to one evaluator, readers taking turns; a reader
    at its partition's end sends an idle mark. At message ``handover_at`` the evaluator's
    worker dies: another restores its checkpoint, and what the dead one had buffered but not
    yet applied is lost."""
    queues: dict[str, list[tuple[str, int, dict]]] = {}
    for message in messages:
        queues.setdefault(f"{message[0]}/{message[1]}", []).append(message)
    recorders = {source: EvidenceRecorder() for source in queues}
    position = dict.fromkeys(queues, 0)
    brain, drafts, n = RegionBrain(CONFIG), [], 0
    brain.expect(queues)
    while any(position[s] < len(q) for s, q in queues.items()):
        for source, queue in queues.items():
            rec = recorders[source]
            for attr, _, body in queue[position[source] : position[source] + batch]:
                if attr == "metrics":
                    args = (body["ts"], body["region"], body["service"], body["metrics"])
                    rec.observe_metrics(*args)
                else:
                    args = (body["ts"], body["region"], body["success"], body.get("data_class"))
                    rec.observe_interaction(*args)
            position[source] += batch
            rows = rec.drain()
            if n == handover_at:
                state = orjson.loads(orjson.dumps(brain.to_state()))
                brain = RegionBrain(CONFIG)
                brain.expect(queues)
                brain.load_state(state)
            n += 1
            if rows:
                brain.observe_rows(rows, source)
            elif position[source] >= len(queue):
                brain.mark_idle(source)
            drafts += brain.advance()
    for source in queues:
        brain.mark_idle(source)
    return drafts + brain.advance()


@pytest.mark.parametrize("batch", [7, 50])
def test_evidence_recorded_per_partition_gets_the_decisions_of_the_live_stream(
    batch: int,
) -> None:
    messages = _messages()
    assert summary(play_recorded(messages, batch)) == summary(play_in_order(messages))


def test_an_evaluator_taking_over_from_a_checkpoint_takes_the_same_transitions() -> None:
    messages = _messages()
    live = summary(play_in_order(messages))
    taken_over = summary(play_recorded(messages, 50, handover_at=40))
    # The observations lost with the dead evaluator's buffer may move a transition by a tick.
    assert [d[:3] for d in taken_over] == [d[:3] for d in live]
    assert all(abs(a[3] - b[3]) <= 5.0 for a, b in zip(taken_over, live, strict=True))


def play_envelopes(span_s: float, turn: Callable[[int], int]) -> list[FailoverDecisionDraft]:
    """The backlog's metrics in envelopes of up to 20 records of a series spanning
    ``span_s``, read from each partition ``turn(round)`` messages at a time, partitions
    taking turns, each reader's evidence sent to one evaluator after every message."""
    partitioner = DefaultPartitioner()
    config = SimConfig.for_scenario(
        BACKLOG, start_ts=T0, envelope_records=20, envelope_span_s=span_s
    )
    queues: dict[str, list[list[dict]]] = {}
    for attr, key, value, _ in enveloped(config):
        if attr == "metrics":
            body = orjson.loads(value)
            source = f"{attr}/{partitioner(key, PARTITIONS, PARTITIONS)}"
            queues.setdefault(source, []).append(body.get("samples", [body]))
    recorders = {source: EvidenceRecorder() for source in queues}
    position = dict.fromkeys(queues, 0)
    brain, drafts, n = RegionBrain(CONFIG), [], 0
    brain.expect(queues)
    while any(position[s] < len(q) for s, q in queues.items()):
        n += 1
        for source, queue in queues.items():
            rec = recorders[source]
            for _ in range(turn(n)):
                if position[source] == len(queue):
                    break
                rec.position = position[source]
                for r in queue[position[source]]:
                    rec.observe_metrics(r["ts"], r["region"], r["service"], r["metrics"])
                position[source] += 1
                spans = rec.spans
                brain.observe_rows(rec.drain(), source, spans)
                drafts += brain.advance()
    for source in queues:
        brain.mark_idle(source)
    return drafts + brain.advance()


@pytest.mark.parametrize("turn", [lambda n: 1, lambda n: 1 + n % 7], ids=["even", "uneven"])
def test_envelopes_older_than_their_partitions_latest_get_the_decisions_of_the_live_stream(
    turn: Callable[[int], int],
) -> None:
    # An envelope of one series spans 100 s: each partition's next message goes back that far.
    # Taken as the partition's progress, its newest record would have event time pass the
    # other series' records of the same 100 s, and regions whose records come later look
    # silent.
    metrics = [message for message in _messages() if message[0] == "metrics"]
    live = [d[:3] for d in summary(play_in_order(metrics))]
    assert [d[:3] for d in summary(play_envelopes(100.0, turn))] == live


# -------------------------------------------------------------- sources and the horizon
def own_partition(region: str) -> str:
    """Each region's telemetry on a partition of its own."""
    return f"p{CONFIG.names.index(region)}"


def healthy_brain(source: Callable[[str], str]) -> RegionBrain:
    """A brain after two minutes of healthy telemetry from every region."""
    brain = RegionBrain(CONFIG)
    for i in range(24):
        tick(brain, i, CONFIG.names, source)
        brain.advance()
    return brain


def test_an_idle_partition_no_longer_holds_event_time_back() -> None:
    # us-east has a partition of its own; when it stops, so does its partition.
    def source(region: str) -> str:
        return "p0" if region == "us-east" else "p1"

    brain = healthy_brain(source)
    for i in range(24, 60):
        tick(brain, i, ["eu-west", "ap-south"], source)
    assert brain.advance() == []
    assert brain.horizon() == T0 + 5 * 23 + 1
    assert brain.pending > 0
    drafts = brain.advance(idle={"p0"})
    # Silent since 115: failed at the first evaluation to find it silent for 12.5 s.
    assert summary(drafts) == [("failover", "us-east", "eu-west", 130.0)]
    assert brain.failed_regions == ("us-east",)


@pytest.mark.parametrize("still_quiet", [False, True])
def test_a_source_resuming_voids_the_idle_marks_until_they_are_renewed(
    still_quiet: bool,
) -> None:
    # Each region has a partition of its own. All go quiet and are marked idle; then
    # us-east's partition delivers a minute of telemetry before any other is read.
    source = own_partition
    brain = healthy_brain(source)
    others = [r for r in CONFIG.names if r != "us-east"]
    for region in CONFIG.names:
        brain.mark_idle(source(region))
    assert brain.advance() == []
    for i in range(30, 42):
        tick(brain, i, ["us-east"], source)
    # The others' old marks no longer count: they might be read next.
    assert brain.advance() == []
    assert brain.horizon() == T0 + 5 * 23 + 1
    # Nor does each one's first mark since: its reader (another worker) may have found its
    # partition at its end a moment before the producer wrote to it.
    for region in others:
        brain.mark_idle(source(region))
    assert brain.advance() == []
    assert brain.horizon() == T0 + 5 * 23 + 1
    if still_quiet:
        # Their readers still find nothing 2 s later and mark them again: their silence shows.
        for region in others:
            brain.mark_idle(source(region))
        assert {d.kind for d in brain.advance()} >= {"failover"}
        assert brain.failed_regions
    else:
        for i in range(30, 42):
            tick(brain, i, others, source)
        assert brain.advance() == []
        assert brain.failed_regions == ()


def test_an_evaluator_taking_over_after_a_quiet_spell_still_waits_for_two_marks() -> None:
    # The evaluator's worker dies after us-east's partition voided the others' marks; the
    # brain restored from its checkpoint must not take their next mark alone either.
    source = own_partition
    brain = healthy_brain(source)
    for region in CONFIG.names:
        brain.mark_idle(source(region))
    for i in range(30, 42):
        tick(brain, i, ["us-east"], source)
    brain.advance()
    restored = RegionBrain(CONFIG)
    restored.load_state(orjson.loads(orjson.dumps(brain.to_state())))
    others = [r for r in CONFIG.names if r != "us-east"]
    for region in others:
        restored.mark_idle(source(region))
    assert restored.advance() == []
    assert restored.horizon() == T0 + 5 * 23 + 1
    for region in others:
        restored.mark_idle(source(region))
    assert restored.idle_sources == {source(r) for r in others}


def test_a_source_resuming_while_others_deliver_keeps_the_idle_marks() -> None:
    # us-east's partition went quiet with its region; ap-south's delivers in bursts, quiet
    # between them; eu-west's delivers all along. A burst voids no mark: us-east's silence
    # shows at once.
    source = own_partition
    brain = healthy_brain(source)
    brain.mark_idle(source("us-east"))
    drafts = []
    for i in range(24, 36):
        tick(brain, i, ["eu-west", "ap-south"], source)
        drafts += brain.advance()
        brain.mark_idle(source("ap-south"))
        assert brain.idle_sources >= {source("us-east")}
    assert summary(drafts) == [("failover", "us-east", "eu-west", 130.0)]


def test_slo_burn_evidence_waits_for_its_tick_then_lowers_its_region() -> None:
    brain = RegionBrain(CONFIG)
    for i in range(24):
        tick(brain, i, CONFIG.names, source=lambda region: "p0")
    # Read from a partition ahead of the others: beyond the horizon, it waits.
    brain.observe_evidence(HealthEvidence("slo_burn", T0 + 5 * 24, "eu-west", value=100.0), "p1")
    brain.advance()
    assert brain.reports["eu-west"].components["slo_burn"] == 1.0
    tick(brain, 25, CONFIG.names, source=lambda region: "p0")
    brain.advance()
    reports = brain.reports
    assert reports["eu-west"].components["slo_burn"] < 1.0
    assert reports["eu-west"].score < min(reports[r].score for r in ("us-east", "ap-south"))


def test_a_stalled_pipeline_fails_no_region() -> None:
    brain = RegionBrain(CONFIG)
    drafts = []
    for i in range(24):
        tick(brain, i, CONFIG.names)
        drafts += brain.advance()
    # Ten minutes without any telemetry at all, then everyone is back.
    for i in range(144, 200):
        tick(brain, i, CONFIG.names)
        drafts += brain.advance()
    assert drafts == []
    assert all(report.healthy for report in brain.reports.values())
    assert brain.last_evaluation_ts == T0 + 5 * 199


def test_a_full_buffer_applies_its_oldest_observation_early() -> None:
    brain = RegionBrain(CONFIG, max_pending=10)
    tick(brain, 0, CONFIG.names, source=lambda region: region)
    tick(brain, 1, ["us-east"], source=lambda region: region)
    assert brain.pending == 10
    assert brain.forced == 3 * 3 + 3 - 10
    assert brain.watermark is not None


class _FailingAfter150:
    """A region health bank whose evaluations after ``T0 + 150`` raise (its class may be
    compiled, so its methods cannot be patched on the instance)."""

    def __init__(self, bank: Any) -> None:
        self._bank = bank

    def __getattr__(self, name: str) -> Any:
        return getattr(self._bank, name)

    def evaluate(self, now: float) -> dict:
        if now > T0 + 150:
            raise RuntimeError("a bug")
        return self._bank.evaluate(now)


def test_a_failing_tick_does_not_lose_the_transitions_taken_before_it(monkeypatch) -> None:
    brain = RegionBrain(CONFIG)
    for i in range(24):
        tick(brain, i, CONFIG.names)
        brain.advance()
    for i in range(24, 40):
        tick(brain, i, ["eu-west", "ap-south"])
    monkeypatch.setattr(brain, "bank", _FailingAfter150(brain.bank))
    with pytest.raises(RuntimeError):
        brain.advance()
    monkeypatch.undo()
    assert summary(brain.advance()) == [("failover", "us-east", "eu-west", 130.0)]


# ---------------------------------------------------------------------------- restart
def test_a_restored_brain_does_not_fail_over_the_same_region_again() -> None:
    brain = RegionBrain(CONFIG)
    drafts = []
    for i in range(24):
        tick(brain, i, CONFIG.names)
        drafts += brain.advance()
    for i in range(24, 39):
        tick(brain, i, ["eu-west", "ap-south"])
        drafts += brain.advance()
    # The last tick's rows come from a reader, with where in its source it read them.
    recorder = EvidenceRecorder()
    recorder.position = 7
    for region in ("eu-west", "ap-south"):
        recorder.observe_metrics(T0 + 5.0 * 39, region, "api", {"error_rate": 0.002})
    spans = recorder.spans
    rows = recorder.drain()
    brain.observe_rows(rows, "telemetry.metrics/0", spans)
    drafts += brain.advance()
    assert [(d.kind, d.region) for d in drafts] == [("failover", "us-east")]
    state = orjson.loads(orjson.dumps(brain.to_state()))

    restored = RegionBrain(CONFIG)
    restored.load_state(state)
    assert restored.failed_regions == ("us-east",)
    assert restored.traffic == {region: {"default"} for region in CONFIG.names}
    assert restored.pending == brain.pending
    # A reader that died resends what it had sent: a replay, already received.
    restored.observe_rows(rows, "telemetry.metrics/0", spans)
    assert restored.replayed == 2
    assert restored.pending == brain.pending
    fresh = RegionBrain(CONFIG)
    again, fresh_drafts = [], []
    for i in range(40, 80):
        tick(restored, i, ["eu-west", "ap-south"])
        tick(fresh, i, ["eu-west", "ap-south"])
        again += restored.advance()
        fresh_drafts += fresh.advance()
    assert again == []
    assert restored.failed_regions == ("us-east",)
    # Without the state, the outage would be news again.
    assert [(d.kind, d.region) for d in fresh_drafts] == [("failover", "us-east")]


def test_state_of_another_version_is_refused() -> None:
    brain = RegionBrain(CONFIG)
    with pytest.raises(ValueError, match="version"):
        brain.load_state({"v": 99})


# ------------------------------------------------------------- traffic and residency
def test_eu_personal_traffic_without_another_eu_region_is_blocked_not_moved() -> None:
    def data_class(region: str) -> str | None:
        return "eu-personal" if region == "eu-west" else None

    brain = RegionBrain(CONFIG)
    drafts = []
    for i in range(24):
        tick(brain, i, CONFIG.names, data_class=data_class)
        drafts += brain.advance()
    assert brain.traffic == {"eu-west": {"eu-personal"}, "us-east": {"default"},
                             "ap-south": {"default"}}  # fmt: skip
    for i in range(24, 40):
        tick(brain, i, ["us-east", "ap-south"], data_class=data_class)
        drafts += brain.advance()
    [blocked] = drafts
    assert (blocked.kind, blocked.region, blocked.target) == ("failover_blocked", "eu-west", None)
    assert blocked.data_classes == ("eu-personal",)
    assert "residency" in blocked.reason
    assert brain.failed_regions == ("eu-west",)


def test_data_classes_not_seen_for_the_ttl_are_forgotten() -> None:
    brain = RegionBrain(CONFIG, traffic_ttl_s=60.0)
    brain.observe_interaction(T0, "us-east", True, "payments")
    for i in range(1, 30):
        tick(brain, i, CONFIG.names)
        brain.advance()
    assert brain.traffic["us-east"] == {"default"}


def test_anomalies_corroborate_on_most_services_not_on_one_and_only_for_symptoms() -> None:
    services = ("checkout", "search", "catalog")
    brain = RegionBrain(CONFIG)

    def at(i: int, anomalies: Iterable[tuple[str, str]] = ()) -> dict:
        ts = T0 + 5.0 * i
        for region in CONFIG.names:
            for service in services:
                brain.observe_metrics(ts, region, service, {"error_rate": 0.002})
            brain.observe_interaction(ts + 1, region, True, None)
        for service, metric in anomalies:
            brain.observe_anomaly(ts, "us-east", service, metric, 0.99)
        brain.advance()
        return brain.reports["us-east"].to_dict()

    for i in range(12):
        at(i)
    # A load anomaly says nothing of health; one service's symptom is that service's problem.
    at(12, [("checkout", "rps"), ("search", "error_rate")])
    report = at(13)
    assert report["signals"]["anomaly"] == 0.0 and report["components"]["anomaly"] == 1.0
    # A second service with a symptom: now it is the region's.
    at(14, [("catalog", "latency_p99_ms")])
    report = at(15)
    assert report["signals"]["anomaly"] == 0.99 and not report["healthy"]
    # An episode's score is held for a minute after it starts, then no longer counts.
    for i in range(16, 28):
        report = at(i)
    assert report["signals"]["anomaly"] == 0.0 and report["healthy"]


# ------------------------------------------------------------------ settings and bench
def test_a_bad_region_file_is_a_clear_startup_error(tmp_path) -> None:
    bad = tmp_path / "regions.toml"
    bad.write_text(
        '[regions.eu-west]\njurisdiction = "EU"\nheadroom = 1.5\ncost = 1.0\n'
        '[residency]\ndefault = ["*"]\n'
    )
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"AUTOPILOT_REGIONS": str(bad)})
    message = f"AUTOPILOT_REGIONS: {bad}:3: regions.eu-west.headroom: must be in [0, 1], got 1.5"
    assert str(caught.value) == message
    assert Settings.from_env({}).regions_path == Settings.regions_path
    result = subprocess.run(
        [str(AUTOPILOT), "kafka", "status"],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "AUTOPILOT_REGIONS": str(bad)},
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == f"autopilot: configuration error: {message}"


def test_bench_failover_prints_the_figures_and_json_last() -> None:
    result = subprocess.run(
        [str(AUTOPILOT), "bench", "failover", "--scenario", "hard_outage", "--json"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    *table, last = result.stdout.strip().splitlines()
    figures = orjson.loads(last)
    outage = figures["scenarios"]["hard_outage"]
    assert outage["detection_delay_s"] <= 30.0
    assert (outage["false_failovers"], outage["flaps"], outage["residency_violations"]) == (0, 0, 0)
    assert any(line.startswith("hard_outage") and line.endswith("yes") for line in table)
    unknown = subprocess.run(
        [str(AUTOPILOT), "bench", "failover", "--scenario", "quake"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert unknown.returncode == 2 and "unknown failover scenario(s): quake" in unknown.stderr


def test_records_of_one_event_time_are_applied_the_same_whatever_order_their_sources_came_in() -> (
    None
):
    # us-east's successes and failures of one second come from two partitions; while its
    # success rate looks alarming, its baseline does not learn, so the order of the two
    # partitions' records would change what it learned.
    def play(order: list[str]) -> dict:
        brain = RegionBrain(CONFIG)
        brain.expect(["a", "b"])
        for i in range(60):
            ts = T0 + 5.0 * i
            for source in order:
                for k in range(10):
                    success = source == "b" or i < 50 or k < 2
                    brain.observe_interaction(ts, "us-east", success, None, source)
            brain.advance()
        brain.mark_idle("a")
        brain.mark_idle("b")
        brain.advance()
        return brain.to_state()["bank"]

    assert play(["a", "b"]) == play(["b", "a"])


def test_a_restored_brain_keeps_where_each_source_of_envelopes_stands() -> None:
    brain = RegionBrain(CONFIG)
    brain.expect(["a", "b"])
    for source, region in (("a", "us-east"), ("b", "eu-west")):
        rec = EvidenceRecorder()
        rec.position = 7
        for i in range(20):
            rec.observe_metrics(T0 + 5.0 * i, region, "api", {"error_rate": 0.001})
        spans = rec.spans
        # The envelope's first half now, its second half with the next send.
        rows = rec.drain()
        brain.observe_rows(rows[:10], source, [[7, 0, 10]])
        if source == "a":
            brain.observe_rows(rows[10:], source, [[7, 10, 10]])
        else:
            rest = (rows[10:], [[7, 10, 10]])
    assert spans == [[7, 0, 20]]
    state = orjson.loads(orjson.dumps(brain.to_state()))
    restored = RegionBrain(CONFIG)
    restored.expect(["a", "b"])
    restored.load_state(state)
    assert restored.horizon() == brain.horizon() == T0
    for b in (brain, restored):
        b.observe_rows(rest[0], "b", rest[1])
        b.advance()
    assert restored.horizon() == brain.horizon() == T0
    assert restored.to_state() == brain.to_state()

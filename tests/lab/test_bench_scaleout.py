"""How ``autopilot bench scaleout`` times its workers, with workers that report counts."""

from __future__ import annotations

import os

import orjson
import pytest

from streams.lab.bench import scaleout
from streams.lab.bench.scaleout import _time_workers, _wait_assigned
from streams.lab.bench.throughput import bench_config
from streams.lab.simulator import generate


class _Reporting:
    """A worker whose conservation counters follow ``reports``, one a poll, and whose
    seconds in each part of its handling follow ``spent``, one a reading."""

    pid = os.getpid()

    def __init__(
        self, reports: list[tuple[int, int]], spent: list[dict[str, float]] | None = None
    ) -> None:
        self.reports = reports
        self.spent = spent or [{}]

    def alive(self) -> bool:
        return True

    def metrics(self, names: tuple[str, ...]) -> str:
        if names == (scaleout.HANDLING,):
            spent = self.spent.pop(0) if len(self.spent) > 1 else self.spent[0]
            return "".join(
                f'autopilot_handling_seconds_total{{part="{part}"}} {seconds}\n'
                for part, seconds in spent.items()
            )
        consumed, handled = self.reports.pop(0) if len(self.reports) > 1 else self.reports[0]
        return (
            f'autopilot_events_consumed_total{{topic="telemetry.metrics"}} {consumed}\n'
            f'autopilot_events_processed_total{{topic="telemetry.metrics"}} {handled}\n'
        )

    def peak_rss_bytes(self) -> int:
        return 1


class _Holding:
    """A worker that exports the consumer lag of the metrics partitions in ``held``, one
    set a poll."""

    def __init__(self, held: list[set[int]]) -> None:
        self.held = held
        self.polls = 0

    def alive(self) -> bool:
        return True

    def metrics(self, _names: tuple[str, ...]) -> str:
        self.polls += 1
        held = self.held.pop(0) if len(self.held) > 1 else self.held[0]
        return "".join(
            f'autopilot_consumer_lag{{partition="{p}",topic="telemetry.metrics"}} 0.0\n'
            for p in held
        )


@pytest.fixture(autouse=True)
def _no_waiting(monkeypatch) -> None:
    monkeypatch.setattr(scaleout, "_POLL_S", 0.0)


def test_the_clock_starts_once_every_worker_consumes() -> None:
    first = _Reporting([(100, 100), (300, 300), (600, 600)])
    second = _Reporting([(0, 0), (100, 100), (400, 400)])
    figures = _time_workers([first, second], 1000, lambda _m: None, "2 workers")
    assert figures["handled_before_clock"] == 400
    assert figures["handled_by_worker"] == [600, 400]


def test_each_worker_says_when_it_handled_its_last_record(monkeypatch) -> None:
    clock = [0.0]
    monkeypatch.setattr(scaleout.time, "sleep", lambda s: clock.__setitem__(0, clock[0] + 1.0))
    monkeypatch.setattr(scaleout.time, "monotonic", lambda: clock[0])
    # The first worker's share is done on the clock's second poll; the second works on.
    early = _Reporting([(100, 100), (500, 500)])
    late = _Reporting([(100, 100), (200, 200), (300, 300), (400, 400), (500, 500)])
    figures = _time_workers([early, late], 1000, lambda _m: None, "2 workers")
    assert [w["handled_on_clock"] for w in figures["workers"]] == [400, 400]
    assert [w["done_after_s"] for w in figures["workers"]] == [1.0, 4.0]
    assert figures["seconds"] == 4.0
    # Both fakes are this process, which the test keeps busy on one core at most.
    assert all(0.0 <= w["cores_busy"] <= 1.0 for w in figures["workers"])
    assert 0.0 <= figures["machine_cores_busy"] <= (os.cpu_count() or 1)


def test_the_parts_of_a_record_are_what_the_workers_spent_in_them_on_the_clock() -> None:
    # Readings at the clock's start and end; what was spent before the clock is left out.
    first = _Reporting(
        [(100, 100), (300, 300)],
        [
            {"edge:telemetry.metrics": 1.0, "metrics_brain": 5.0, "region_evidence": 0.5},
            {"edge:telemetry.metrics": 1.1, "metrics_brain": 5.6, "region_evidence": 0.52},
        ],
    )
    second = _Reporting(
        [(100, 100), (300, 300)],
        [
            {"metrics_brain": 2.0, "region_brain": 0.0, "edge:internal.region-evidence": 0.0},
            {"metrics_brain": 2.2, "region_brain": 0.05, "edge:internal.region-evidence": 0.01},
            # Read once more by nobody: a reading after the clock stopped would show this.
            {"metrics_brain": 9.0},
        ],
    )
    figures = _time_workers([first, second], 600, lambda _m: None, "2 workers")
    us = figures["us_per_record"]
    # 400 records on the clock: 0.1 s at the edge, 0.8 s in the brain, 0.08 s of region health.
    assert (us["validation"], us["metrics_brain"], us["region_health"]) == (250.0, 2000.0, 200.0)
    assert us["cost_brain"] == 0.0
    assert us["rest"] == pytest.approx(us["total"] - 2450.0, abs=0.02)


def test_the_region_evaluators_edge_is_read_as_region_health() -> None:
    # An edge names its part after its label (agents.runtime.edge): a label renamed
    # without the bench would leave its time in the rest.
    from agents.failover import LABEL

    assert f"edge:{LABEL}" in scaleout._REGION_PARTS


def test_a_worker_that_got_nothing_to_consume_is_said_at_once() -> None:
    # One worker handled the whole backlog before the other consumed anything: no two-worker
    # rate exists, and waiting would last until the deadline.
    first = _Reporting([(500, 500), (1000, 1000)])
    second = _Reporting([(0, 0)])
    with pytest.raises(RuntimeError, match=r"before all 2 workers consumed.*--records, --series"):
        _time_workers([first, second], 1000, lambda _m: None, "2 workers")


def test_the_topics_wait_for_a_group_that_shares_every_partition() -> None:
    # The first to join holds all four alone; then the second has joined but the first
    # still exports its old assignment (its lag is refreshed every few seconds).
    first = _Holding([{0, 1, 2, 3}, {0, 1, 2, 3}, {0, 1}])
    second = _Holding([set(), {2, 3}, {2, 3}])
    _wait_assigned([first, second], {0, 1, 2, 3}, lambda _m: None, "2 workers")
    assert first.polls == second.polls == 3


def test_a_group_that_never_shares_is_said() -> None:
    alone = _Holding([{0, 1, 2, 3}])
    idle = _Holding([set()])
    with pytest.raises(RuntimeError, match=r"did not share partitions \[0, 1, 2, 3\]"):
        _wait_assigned([alone, idle], {0, 1, 2, 3}, lambda _m: None, "2 workers", timeout_s=0.05)


def test_the_decisions_are_read_once_the_budget_judge_could_have_heard_every_part(monkeypatch):
    from agents.cost import BUDGET_EVERY_S

    clock = [0.0]
    monkeypatch.setattr(scaleout.time, "sleep", lambda s: clock.__setitem__(0, clock[0] + s))
    monkeypatch.setattr(scaleout.time, "monotonic", lambda: clock[0])

    async def published(_bootstrap, _topics):
        # The last partition's budget part goes out on the cost agent's timer, up to one
        # period after the last scaling decision: the budget decision follows it.
        budget = {"b": "budget"} if clock[0] >= BUDGET_EVERY_S else {}
        return {"s": "scaling", **budget}

    monkeypatch.setattr(scaleout, "_decision_ids", published)
    assert scaleout._settled_decision_ids("broker", None) == {"s": "scaling", "b": "budget"}


def test_every_run_plays_the_same_demand_whatever_the_hour() -> None:
    def demand(now: float) -> list[float]:
        config = bench_config(600, 6, 1, now)
        return [
            orjson.loads(value)["metrics"]["rps"]
            for attr, _key, value, _ts in generate(config)
            if attr == "metrics"
        ]

    tuesday_noon = 1_798_545_600.0
    at_noon = demand(tuesday_noon)
    # The demand of a day's trough and of a weekend are not a Tuesday's afternoon's.
    for later in (9 * 3600.0, 4 * 86_400.0):
        assert demand(tuesday_noon + later) == pytest.approx(at_noon, rel=1e-9)


def _a_round(bare: float, one: float, two: float, same: bool = True) -> dict:
    """A round's figures, as :func:`scaleout._round` gives them."""
    return {
        "records": 300,
        "series": 3,
        "bare_records_per_s": bare,
        "bare_runs_records_per_s": [bare, bare],
        "bare_decisions": 2,
        "one_worker_records_per_s": one,
        "two_workers_records_per_s": two,
        "pipeline_bare_ratio": round(one / bare, 4),
        "two_one_ratio": round(two / one, 4),
        "peak_rss_bytes": {"one_worker": [2**20], "two_workers": [2**20, 2**20]},
        "handled_by_worker": {"one_worker": [300], "two_workers": [150, 150]},
        "handled_before_clock": {"one_worker": 0, "two_workers": 0},
        "seconds": {"one_worker": 300 / one, "two_workers": 300 / two},
        "workers": {
            "one_worker": [{"handled_on_clock": 300, "done_after_s": 300 / one, "cores_busy": 1.0}],
            "two_workers": [
                {"handled_on_clock": 150, "done_after_s": 150 / two, "cores_busy": 0.5},
                {"handled_on_clock": 150, "done_after_s": 300 / two, "cores_busy": 0.9},
            ],
        },
        "machine_cores_busy": {"one_worker": 1.5, "two_workers": 2.0},
        "machine_cores_stolen": {"one_worker": 0.0, "two_workers": 0.25},
        "decisions": {"one_worker": 2, "two_workers": 2 if same else 1},
        "decisions_by_kind": {"one_worker": {"scaling": 2}, "two_workers": {"scaling": 2}},
        "same_decisions": same,
        "decisions_only_one_worker": 0 if same else 1,
        "decisions_only_two_workers": 0,
        "region_evaluator": {"one_worker": {"worker": 0}, "two_workers": {"worker": 1}},
        "us_per_record": {
            run: {
                "validation": 5.0,
                "metrics_brain": 1e6 / rate - 10.0,
                "cost_brain": 2.0,
                "region_health": 3.0,
                "rest": 0.0,
                "total": 1e6 / rate,
            }
            for run, rate in (("bare", bare), ("one_worker", one), ("two_workers", two))
        },
    }


def test_rounds_share_one_broker_and_report_medians_and_targets_met(monkeypatch) -> None:
    canned = [
        _a_round(20_000.0, 12_000.0, 20_000.0),
        _a_round(18_000.0, 9_000.0, 16_000.0, same=False),
        _a_round(21_000.0, 13_000.0, 18_000.0),
    ]
    brokers = []

    def one_round(bootstrap, _workdir, records, series, envelope, _log):
        brokers.append(bootstrap)
        assert (records, series, envelope) == (300, 3, 100)
        return canned[len(brokers) - 1]

    monkeypatch.setattr(scaleout, "_round", one_round)
    result = scaleout.run_bench_scaleout(300, 3, 100, broker="given:9092", rounds=3)

    assert brokers == ["given:9092"] * 3
    assert result["rounds"] == canned
    assert result["one_worker_records_per_s"] == 12_000.0
    assert result["spread"]["pipeline_bare_ratio"] == {"min": 0.5, "median": 0.6, "max": 0.619}
    assert result["met"] == {
        "one_worker_records_per_s": 2,
        "pipeline_bare_ratio": 0,
        "two_one_ratio": 2,
    }
    assert (result["same_decisions"], result["same_decisions_rounds"]) == (False, 2)
    text = scaleout.format_bench_scaleout(result)
    assert "3 rounds on one broker" in text
    assert "target >= 10,000: met in 2 of 3 rounds" in text
    assert "target >= 0.8: met in 0 of 3 rounds" in text
    assert "same set of decisions in 2 of 3 rounds" in text
    assert [line.split()[0] for line in text.splitlines()[2:5]] == ["1", "2", "3"]
    # The median round's: 50 µs a record bare, 83.3 with one worker and 55.6 with two.
    assert "where a record's time went, microseconds (medians over the rounds;" in text
    assert "    all                           50.0      83.3      55.6" in text
    assert "    metrics brain                 40.0      73.3      45.6" in text
    assert (
        "2 workers: 0.0 s, last record after 0.0 and 0.0 s, 0.50 and 0.90 cores (the region"
        " evaluator on worker 2); machine 2.00 cores busy, 0.25 stolen"
    ) in text


def test_one_round_is_reported_in_detail(monkeypatch) -> None:
    monkeypatch.setattr(scaleout, "_round", lambda *_args: _a_round(20_000.0, 12_000.0, 20_000.0))
    result = scaleout.run_bench_scaleout(300, 3, 100, broker="given:9092")
    assert result["pipeline_bare_ratio"] == 0.6
    assert result["met"]["pipeline_bare_ratio"] == 0
    text = scaleout.format_bench_scaleout(result)
    assert "pipeline, 1 worker                   12,000 records/s  (target >= 10,000)" in text
    assert "same set: yes" in text
    assert "1 worker: 0.0 s, last record after 0.0 s, 1.00 cores; machine 1.50 cores busy" in text
    assert "rounds" not in text
    assert "    validation at the edge         5.0       5.0       5.0" in text
    assert "    all                           50.0      83.3      50.0" in text

"""The Kafka benches as a user runs them, tiny: figures present, consistent, JSON last.

These check what each bench measures and reports, never how fast: speed
targets are the benches' own business, against baselines of the same run.
"""

from __future__ import annotations

import os
import re
import subprocess

import orjson
import pytest

from tests.conftest import AUTOPILOT
from tests.support.topics import topics_on

pytestmark = pytest.mark.kafka


def bench(*args: str, timeout: float = 240) -> tuple[list[str], dict]:
    """Run ``autopilot bench *args --json``; return the summary lines and the JSON figures."""
    summary, figures, _ = bench_logged(*args, timeout=timeout)
    return summary, figures


def bench_logged(*args: str, timeout: float = 240) -> tuple[list[str], dict, str]:
    """:func:`bench`, with what the bench logged (its standard error) too."""
    result = subprocess.run(
        [str(AUTOPILOT), "bench", *args, "--json"],
        capture_output=True, text=True, timeout=timeout, env=dict(os.environ), check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    *summary, last = result.stdout.strip().splitlines()
    return summary, orjson.loads(last), result.stderr


def test_bench_latency_matches_decisions_to_the_samples_that_caused_them(
    kafka_bootstrap: str,
) -> None:
    summary, result = bench(
        "latency", "--series", "12", "--seconds", "4", "--probe-events", "1800",
        "--broker", kafka_bootstrap,
    )  # fmt: skip
    # One round has the shape of several: its figures at the top, its details under rounds.
    [figures] = result["rounds"]
    assert result["p99_ms"] == pytest.approx(figures["p99_ms"], abs=1e-3)
    assert result["p99_met_rounds"] == (figures["p99_ms"] <= 250.0)
    for key in ("capacity_per_s", "settle_s", "offered_rate_per_s", "achieved_rate_per_s",
                "samples", "triggers", "triggers_decided", "decisions_matched", "p50_ms", "p90_ms",
                "p99_ms", "max_ms", "target_p99_ms", "p99_ratio_to_target", "drain_s",
                "p50_first_third_ms", "p50_last_third_ms", "kept_up", "over_target"):  # fmt: skip
        assert key in figures, key
    assert figures["rate_source"] == "half the capacity probe"
    assert figures["offered_rate_per_s"] == pytest.approx(figures["capacity_per_s"] / 2, rel=0.01)
    assert figures["samples"] > 0 and figures["triggers"] > 0
    # Designed triggers cause decisions, which are found again by subject and event time.
    assert 0 < figures["triggers_decided"] <= figures["triggers"]
    assert figures["decisions_matched"] >= figures["triggers_decided"]
    assert figures["decisions_by_kind"].get("anomaly", 0) > 0
    assert figures["decision_timestamp"] == "LogAppendTime"
    assert 0 <= figures["p50_ms"] <= figures["p90_ms"] <= figures["p99_ms"] <= figures["max_ms"]
    assert figures["p99_ratio_to_target"] == pytest.approx(figures["p99_ms"] / 250.0, rel=0.01)
    assert 0 <= figures["over_target"] <= figures["decisions_matched"]
    assert (figures["over_target"] == 0) == (figures["over_target_at_s"] == [])
    assert any("p99" in line for line in summary)
    # What the worker spent a sample, fed at a trickle and as a backlog (the probe).
    assert figures["worker_cpu_us_per_sample"] > 0
    assert figures["probe_worker_cpu_us_per_sample"] > 0
    assert any(line.lstrip().startswith("worker CPU a sample") for line in summary)
    # The probe carries the measured mix: it decides too.
    assert figures["probe_samples"] >= 1800 and figures["warmup_capacity_per_s"] > 0
    [level] = figures["levels"]
    assert level["fraction"] == 0.5 and level["p99_ms"] == figures["p99_ms"]


def test_bench_latency_curve_measures_each_load_and_draws_it(
    kafka_bootstrap: str, tmp_path
) -> None:
    png = tmp_path / "curve.png"
    summary, result = bench(
        "latency", "--series", "6", "--seconds", "2", "--probe-events", "900", "--curve",
        "--plot", str(png), "--broker", kafka_bootstrap,
    )  # fmt: skip
    [figures] = result["rounds"]
    levels = figures["levels"]
    assert [level["fraction"] for level in levels] == [0.25, 0.5, 0.75, 0.9]
    offered = [level["offered_rate_per_s"] for level in levels]
    assert offered == sorted(offered)
    assert offered[1] == pytest.approx(figures["capacity_per_s"] / 2, rel=0.01)
    # The headline figures are those at half the capacity.
    assert figures["p99_ms"] == levels[1]["p99_ms"]
    assert figures["rate_source"] == "capacity curve"
    assert sum(line.lstrip().startswith(("25%", "50%", "75%", "90%")) for line in summary) == 4
    assert all(level["worker_cpu_us_per_sample"] > 0 for level in levels)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_latency_takes_the_offered_rate_from_the_command_line_in_every_round(
    kafka_bootstrap: str,
) -> None:
    summary, figures = bench(
        "latency", "--series", "6", "--seconds", "3", "--rate", "150", "--probe-events", "900",
        "--rounds", "2", "--broker", kafka_bootstrap,
    )  # fmt: skip
    rounds = figures["rounds"]
    assert len(rounds) == 2
    for r in rounds:
        assert r["rate_source"] == "--rate"
        assert r["offered_rate_per_s"] == 150.0
        assert r["samples"] == pytest.approx(150 * 3, abs=r["series"])
        assert r["decisions_matched"] > 0
    low, high = sorted(r["p99_ms"] for r in rounds)
    assert figures["spread"]["p99_ms"] == pytest.approx(
        {"min": low, "median": (low + high) / 2, "max": high}, abs=1e-3
    )
    assert figures["p99_ms"] == figures["spread"]["p99_ms"]["median"]
    assert figures["p99_met_rounds"] == sum(r["p99_ms"] <= 250.0 for r in rounds)
    assert [line.split()[0] for line in summary[2:4]] == ["1", "2"]
    assert f"met in {figures['p99_met_rounds']} of 2 rounds" in "\n".join(summary)


def test_bench_soak_samples_the_worker_memory(kafka_bootstrap: str) -> None:
    summary, figures = bench(
        "soak", "--minutes", "0.2", "--interval", "2", "--rate", "100", "--series", "30",
        "--broker", kafka_bootstrap,
    )  # fmt: skip
    for key in ("rss_steady_start_mib", "rss_end_mib", "rss_peak_mib", "rss_slope_mib_per_h",
                "rss_growth_steady_mib", "flat_threshold_mib", "verdict", "samples_taken",
                "rss_samples_mib", "model_bytes_end", "series_tracked_end"):  # fmt: skip
        assert key in figures, key
    samples = figures["rss_samples_mib"]
    assert figures["samples_taken"] == len(samples) >= 3
    assert all(mib > 0 for _t, mib in samples)
    assert [t for t, _mib in samples] == sorted(t for t, _mib in samples)
    assert figures["rss_peak_mib"] >= max(mib for _t, mib in samples)
    assert figures["verdict"] in ("flat", "growing")
    assert figures["events_sent"]["metrics"] > 0 and figures["metrics_handled"] > 0
    assert any(line.strip().startswith("verdict") for line in summary)


def test_bench_throughput_reports_the_faust_floor_and_reads_envelopes(
    kafka_bootstrap: str,
) -> None:
    summary, figures, logged = bench_logged(
        "throughput", "--events", "3000", "--series", "30", "--envelope", "50", "--otlp",
        "--broker", kafka_bootstrap,
    )  # fmt: skip
    assert figures["envelope_records"] == 50
    assert figures["events"] >= 3000 and figures["messages"] <= figures["events"] / 25
    raw, floor = figures["raw_events_per_s"], figures["faust_floor_events_per_s"]
    pipeline = figures["pipeline_events_per_s"]
    assert raw > 0 and floor > 0 and pipeline > 0
    assert figures["floor_ratio"] == pytest.approx(floor / raw, rel=0.01)
    assert figures["pipeline_floor_ratio"] == pytest.approx(pipeline / floor, rel=0.01)
    assert figures["ratio"] == pytest.approx(pipeline / raw, rel=0.01)
    assert figures["worker_peak_rss_bytes"] > 0
    assert any("Faust floor" in line for line in summary)
    # The same samples as OTLP requests: every data point accounted for, every sample sent on.
    otlp = figures["otlp"]
    assert otlp["samples"] == figures["events"] and otlp["requests"] == figures["messages"]
    assert otlp["points_consumed"] == otlp["points_handled"] == otlp["points"] > otlp["samples"]
    assert otlp["samples_ratio_to_native"] == pytest.approx(otlp["samples_per_s"] / pipeline, 0.01)
    assert any("OTLP pipeline" in line for line in summary)
    # The run's topics (its workers' changelogs too) are gone from the broker it was given.
    deleted = re.findall(r"deleted the (\d+) topics of (\S+)", logged)
    assert len(deleted) == 2 and all(int(n) >= 4 for n, _ in deleted)
    prefixes = tuple(prefix for _, prefix in deleted)
    assert not [t for t in topics_on(kafka_bootstrap) if t.startswith(prefixes)]

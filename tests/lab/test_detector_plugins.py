"""Any registered detector, the built-in or a plugin, in `autopilot bench models`, `score` and
`bench nab`: plugins given through AUTOPILOT_PLUGIN_MODULES, as a team would give theirs."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import subprocess
from pathlib import Path

import orjson
import pytest

from streams.lab.bench.models import run_bench_models
from tests.conftest import AUTOPILOT
from tests.support import bench_detector
from tests.support.paths import ROOT

START = 1_700_000_000
PLUGINS = {"AUTOPILOT_PLUGIN_MODULES": "tests.support.bench_detector", "PYTHONPATH": str(ROOT)}


def autopilot(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(AUTOPILOT), *args], capture_output=True, text=True, timeout=300,
        env={**os.environ, **PLUGINS}, check=False,
    )  # fmt: skip


def last_json(result: subprocess.CompletedProcess) -> tuple[list[str], dict]:
    assert result.returncode == 0, result.stderr[-3000:]
    *summary, last = result.stdout.strip().splitlines()
    return summary, orjson.loads(last)


def write_series(path: Path, n: int = 300, jump_at: int = 250) -> None:
    """A quiet series that jumps by 40 at ``jump_at`` and stays there."""
    rng = random.Random(0)
    rows = [(START + 300 * i, 50 + rng.gauss(0, 1) + (40 if i >= jump_at else 0)) for i in range(n)]
    path.write_text("timestamp,value\n" + "".join(f"{t},{x:.4f}\n" for t, x in rows))


def test_bench_models_measures_every_registered_detector_and_keeps_the_baseline() -> None:
    summary, figures = last_json(autopilot("bench", "models", "--series", "2", "--values", "40",
                                           "--json"))  # fmt: skip
    # Today's figures are still there for whatever reads them.
    for key in ("detector_us_per_value", "hst_us_per_value", "us_ratio_vs_hst", "meets_targets"):
        assert key in figures, key
    rows = {row["name"]: row for row in figures["detectors"]}
    # river-hst: the example plugin the test environment installs, found by entry point.
    assert set(rows) == {"series", "river-hst", "bench-zscore", "bench-broken"}
    assert figures["plugins_refused"] == {}
    series, plugin, broken = rows["series"], rows["bench-zscore"], rows["bench-broken"]
    assert series["builtin"] and not plugin["builtin"]
    for row in (series, plugin):
        assert row["error"] is None and row["timed"] == "score_one+learn_one"
        assert row["us_per_value"] > 0 and row["bytes_per_series"] > 0
        ratio = row["us_per_value"] / figures["hst_us_per_value"]
        assert row["us_ratio_vs_hst"] == pytest.approx(ratio, rel=0.01)
    # The worker's path of the built-in is the bank's update, today's headline figure.
    assert series["update_us_per_value"] == figures["detector_us_per_value"]
    assert "update_us_per_value" not in plugin
    # A plugin that raises is reported, not a crash.
    assert broken["error"] == "RuntimeError: broken on purpose"
    assert broken["us_per_value"] is None
    assert any("bench-broken" in line and "FAILED" in line for line in summary)
    assert any(line.split()[:1] == ["bench-zscore"] for line in summary)


def test_bench_models_counts_a_plugins_flags_with_its_threshold_and_warmup() -> None:
    # A threshold of 0 flags every warm value. The entries are given, not registered, so this
    # process' registry stays as it is.
    always = dataclasses.replace(bench_detector.ZSCORE, threshold=0.0)
    # One series: the 200 timed values are its values 300 to 499, after 300 untimed ones.
    for warmup, flags in ((0, 200), (400, 100), (10_000, 0)):
        entry = dataclasses.replace(always, warmup=warmup)
        [row] = run_bench_models(n_series=1, n_values=200, detectors=[entry])["detectors"]
        assert (row["error"], row["flags"]) == (None, flags), warmup


def test_score_runs_a_plugin_with_its_flag_rule(tmp_path: Path) -> None:
    write_series(tmp_path / "in.csv")
    result = autopilot(
        "score", "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "out.csv"),
        "--detector", "bench-zscore",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = [line.split(",") for line in (tmp_path / "out.csv").read_text().splitlines()[1:]]
    assert len(rows) == 300
    # Scored as River's verbs score it: score_one, then learn_one.
    detector = bench_detector.ZScoreDetector()
    expected = []
    for _, value, _ in rows:
        expected.append(detector.score_one({"value": float(value)}))
        detector.learn_one({"value": float(value)})
    assert [float(score) for *_, score in rows] == pytest.approx(expected, abs=1e-6)
    flagged = sum(score >= 0.5 for score in expected[bench_detector.ZSCORE.warmup :])
    assert flagged > 0 and expected[250] >= 0.5
    assert "with bench-zscore in" in result.stdout and f"flagged {flagged}," in result.stdout


def test_an_unknown_detector_is_one_line_listing_the_registered_ones(tmp_path: Path) -> None:
    write_series(tmp_path / "in.csv", n=10)
    for args in (
        ("score", "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "out.csv")),
        ("bench", "nab", "--data", str(tmp_path)),
    ):
        result = autopilot(*args, "--detector", "nope")
        assert result.returncode == 2
        assert result.stderr.strip() == (
            "autopilot: unknown detector 'nope'; "
            "registered: bench-broken, bench-zscore, river-hst, series"
        )
    assert not (tmp_path / "out.csv").exists()


def test_bench_nab_scores_a_plugin(tmp_path: Path) -> None:
    write_series(tmp_path / "series.csv")
    window = [str(START + 300 * 240), str(START + 300 * 260)]
    (tmp_path / "windows.json").write_text(json.dumps({"series.csv": [window]}))
    summary, figures = last_json(autopilot("bench", "nab", "--data", str(tmp_path),
                                           "--detector", "bench-zscore", "--json"))  # fmt: skip
    assert figures["detector"] == "bench-zscore"
    assert figures["profiles"]["standard"]["windows_detected"] == 1
    assert "bench-zscore" in summary[0]

"""The `autopilot` CLI as a user meets it: errors, score, bench --json."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import orjson
import pytest

from tests.conftest import AUTOPILOT


def autopilot(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(AUTOPILOT), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_nonsense_setting_is_one_clear_line() -> None:
    result = autopilot("kafka", "status", env={"AUTOPILOT_PARTITIONS": "zero"})
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "autopilot: configuration error: AUTOPILOT_PARTITIONS='zero' is not an integer"
    )


def test_help_lists_the_project_verbs() -> None:
    result = autopilot("--help")
    assert result.returncode == 0
    for verb in (
        "worker",
        "kafka",
        "simulate",
        "score",
        "bench",
        "tail",
        "up",
        "approve",
        "reject",
        "plugins",
    ):
        assert f"\n  {verb} " in result.stdout, verb


def test_score_writes_one_row_per_input_row_in_order(tmp_path: Path) -> None:
    rows = [f"{1_700_000_000 + 300 * i},{50 + (i % 7)}" for i in range(400)]
    rows[390] = f"{1_700_000_000 + 300 * 390},900"
    source = tmp_path / "series.csv"
    source.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    result = autopilot("score", "--input", str(source), "--output", str(tmp_path / "out.csv"))
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert lines[0] == "timestamp,value,anomaly_score"
    assert [line.rsplit(",", 1)[0] for line in lines[1:]] == rows
    scores = [float(line.rsplit(",", 1)[1]) for line in lines[1:]]
    assert scores[390] == max(scores) and scores[390] >= 0.5
    assert "scored 400 rows" in result.stdout


def test_bench_models_json_is_the_last_line() -> None:
    result = autopilot("bench", "models", "--series", "4", "--values", "400", "--json")
    assert result.returncode == 0, result.stderr
    *summary, last = result.stdout.strip().splitlines()
    figures = orjson.loads(last)
    assert figures["detector_us_per_value"] > 0 and figures["hst_us_per_value"] > 0
    ratio = figures["detector_us_per_value"] / figures["hst_us_per_value"]
    assert figures["us_ratio_vs_hst"] == pytest.approx(ratio, rel=0.01)
    assert any("HalfSpaceTrees" in line for line in summary)

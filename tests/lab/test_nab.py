"""The NAB v1.1 scoring rules of the lab tool, on hand-computed cases, and `autopilot bench nab`."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import orjson
import pytest

from streams.lab.nab import label_rows, scaled_sigmoid, score_corpus
from tests.conftest import AUTOPILOT
from tests.support.paths import SHARED_DATA

NAB_SLICE = SHARED_DATA / "anomaly"
TS = [float(t) for t in range(40)]  # 6 rows of probation (15 % of 40)
WINDOW = [(30.0, 35.0)]  # rows 30..35, width 6
# A detection at row 33 sits halfway: scaled sigmoid of -(35 - 33 + 1) / 6 over that of -1.
HALFWAY = (2 / (1 + math.exp(-2.5)) - 1) / (2 / (1 + math.exp(-5)) - 1)


def scores(**at: float) -> list[float]:
    values = [0.0] * len(TS)
    for row, score in at.items():
        values[int(row[1:])] = score
    return values


def nab(values: list[float]) -> dict[str, dict]:
    return score_corpus({"f": label_rows(TS, values, WINDOW, "f")})


def test_scaled_sigmoid_matches_the_published_values() -> None:
    assert scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(1.0) == pytest.approx(-0.98661, abs=1e-5)
    assert scaled_sigmoid(3.0) == scaled_sigmoid(7.0) == -1.0


def test_earlier_detection_in_a_window_earns_more() -> None:
    late = nab(scores(r35=1.0))["standard"]["score"]
    halfway = nab(scores(r33=1.0))["standard"]["score"]
    assert nab(scores(r30=1.0))["standard"]["score"] == 100.0
    assert halfway == pytest.approx(100 * (HALFWAY + 1) / 2, abs=0.01)
    assert 50.0 < late < halfway < 100.0


def test_one_window_counts_once_at_its_best_detection() -> None:
    # Every row of the window flagged is worth what its first row is worth, no more.
    assert nab(scores(**{f"r{i}": 1.0 for i in range(30, 36)}))["standard"]["score"] == 100.0


def test_profiles_weigh_a_false_positive_and_a_miss_as_published() -> None:
    # A false positive before any window costs the full fp weight; the optimiser keeps it
    # because the detection in the window is worth more.
    result = nab(scores(r10=0.9, r33=0.8))
    raw = HALFWAY - 0.11
    assert result["standard"]["raw"] == pytest.approx(raw)
    assert result["standard"]["score"] == pytest.approx(100 * (raw + 1) / 2, abs=0.01)
    assert result["reward_low_FP_rate"]["raw"] == pytest.approx(HALFWAY - 0.22)
    assert result["reward_low_FN_rate"]["null"] == -2.0
    assert result["reward_low_FN_rate"]["score"] == pytest.approx(100 * (raw + 2) / 3, abs=0.01)
    assert all(p["threshold"] == 0.8 for p in result.values())


def test_the_optimiser_gives_up_a_window_not_worth_its_false_positives() -> None:
    noisy = scores(**{f"r{i}": 0.9 for i in range(6, 26)}, r33=0.8)
    result = nab(noisy)["standard"]
    assert result["score"] == 0.0 and result["windows_detected"] == 0
    assert result["threshold"] == math.inf


def test_probation_rows_are_not_scored_and_late_false_positives_cost_less() -> None:
    # Row 3 is in probation: flagging it costs nothing.
    assert nab(scores(r3=1.0, r30=1.0))["standard"]["raw"] == pytest.approx(1.0)
    just_after = nab(scores(r30=1.0, r36=1.0))["standard"]["raw"]
    far_after = nab(scores(r30=1.0, r39=1.0))["standard"]["raw"]
    assert 1.0 - 0.11 < far_after < just_after < 1.0


def autopilot_bench_nab(folder: Path) -> tuple[list[str], dict]:
    result = subprocess.run(
        [str(AUTOPILOT), "bench", "nab", "--data", str(folder), "--json"],
        capture_output=True, text=True, timeout=600, env=dict(os.environ), check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    *summary, last = result.stdout.strip().splitlines()
    return summary, orjson.loads(last)


def test_bench_nab_scores_the_worker_detector_on_a_labelled_folder(tmp_path: Path) -> None:
    # Two days of a quiet series, then a jump of 50 that lasts: the window holds it.
    start = 1_700_000_000
    rows = [
        (start + 300 * i, 10.0 + (i % 5) * 0.1 + (50.0 if i >= 700 else 0.0)) for i in range(800)
    ]
    (tmp_path / "series.csv").write_text(
        "timestamp,value\n" + "".join(f"{t},{x}\n" for t, x in rows)
    )
    window = [str(start + 300 * 680), str(start + 300 * 720)]
    (tmp_path / "windows.json").write_text(json.dumps({"series.csv": [window]}))
    summary, figures = autopilot_bench_nab(tmp_path)
    assert figures["files"] == 1 and figures["rows"] == 800
    assert set(figures["profiles"]) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    standard = figures["profiles"]["standard"]
    # Caught at the jump, halfway through the window, with no false positive.
    assert standard["windows_detected"] == 1 and standard["false_rows"] == 0
    assert standard["score"] == pytest.approx(100 * (HALFWAY + 1) / 2, abs=1.0)
    assert any(line.startswith("standard") for line in summary)


@pytest.mark.skipif(not NAB_SLICE.is_dir(), reason="the NAB development slice is not here")
def test_worker_detector_reaches_60_on_the_nab_development_slice() -> None:
    _, figures = autopilot_bench_nab(NAB_SLICE)
    assert figures["files"] == 17
    assert figures["profiles"]["standard"]["score"] >= 60.0

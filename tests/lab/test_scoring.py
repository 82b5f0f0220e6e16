"""CSV scoring with the worker's detector."""

from __future__ import annotations

import csv
import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from models.detect.anomaly import DetectorConfig, SeriesDetector
from streams.lab.score import parse_timestamp, score_csv
from tests.support import bench_detector

START = datetime(2014, 2, 14, 14, 30, tzinfo=UTC)


def write_csv(path, rows, header=True):
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        if header:
            writer.writerow(["timestamp", "value"])
        writer.writerows(rows)


def read_csv(path):
    with path.open(newline="") as f:
        return list(csv.reader(f))


def cycle_rows(n, fmt, seed=0, spike_at=None):
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        moment = START + timedelta(minutes=5 * i)
        x = 50 + 20 * math.sin(2 * math.pi * i / 288) + rng.gauss(0, 1)
        if i == spike_at:
            x += 40
        rows.append([fmt(moment), f"{x:.4f}"])
    return rows


FORMATS = {
    "nab": lambda m: m.strftime("%Y-%m-%d %H:%M:%S"),
    "rfc3339": lambda m: m.isoformat().replace("+00:00", "Z"),
    "epoch": lambda m: str(int(m.timestamp())),
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_keeps_rows_in_order_and_scores_like_the_worker(tmp_path, fmt):
    rows = cycle_rows(800, FORMATS[fmt], spike_at=700)
    write_csv(tmp_path / "in.csv", rows)
    summary = score_csv(tmp_path / "in.csv", tmp_path / "out.csv")

    out = read_csv(tmp_path / "out.csv")
    assert out[0] == ["timestamp", "value", "anomaly_score"]
    assert [r[:2] for r in out[1:]] == rows
    scores = [float(r[2]) for r in out[1:]]
    assert all(0.0 <= s <= 1.0 for s in scores)

    # Exactly what the worker's default detector says for the same values.
    detector = SeriesDetector()
    expected = [detector.update(parse_timestamp(t), float(v)).score for t, v in rows]
    assert scores == pytest.approx(expected, abs=1e-6)
    assert scores[700] > 0.5
    assert summary == {
        "rows": 800,
        "scored": 800,
        "bad_rows": 0,
        "anomalies": sum(s >= 0.5 for s in expected[detector.config.warmup :]),
        "max_score": pytest.approx(max(expected)),
        "warmup_rows": detector.config.warmup,
    }


def test_header_is_optional(tmp_path):
    rows = cycle_rows(300, FORMATS["epoch"])
    write_csv(tmp_path / "with.csv", rows)
    write_csv(tmp_path / "without.csv", rows, header=False)
    score_csv(tmp_path / "with.csv", tmp_path / "a.csv")
    score_csv(tmp_path / "without.csv", tmp_path / "b.csv")
    assert read_csv(tmp_path / "a.csv") == read_csv(tmp_path / "b.csv")


def test_bad_rows_are_kept_with_an_empty_score_and_counted(tmp_path):
    rows = cycle_rows(300, FORMATS["nab"])
    bad = {
        10: ["not a time", "1.0"],
        20: [rows[20][0], "abc"],
        30: [rows[30][0], "nan"],
        40: [rows[40][0]],
        50: [rows[50][0], "1", "extra"],
        60: [rows[60][0], "inf"],
    }
    for i, row in bad.items():
        rows[i] = row
    write_csv(tmp_path / "in.csv", rows)
    summary = score_csv(tmp_path / "in.csv", tmp_path / "out.csv")

    out = read_csv(tmp_path / "out.csv")[1:]
    assert len(out) == len(rows)
    for i, row in enumerate(out):
        if i in bad:
            assert row == [*[*bad[i], ""][:2], ""]
        else:
            assert row[:2] == rows[i] and row[2] != ""
    assert summary["bad_rows"] == len(bad)
    assert summary["scored"] == len(rows) - len(bad)

    # Bad rows are skipped, not learned: the good rows score as if they were absent.
    detector = SeriesDetector()
    good = [r for i, r in enumerate(rows) if i not in bad]
    expected = [detector.update(parse_timestamp(t), float(v)).score for t, v in good]
    assert [float(r[2]) for i, r in enumerate(out) if i not in bad] == pytest.approx(
        expected, abs=1e-6
    )


def test_blank_lines_are_skipped_and_progress_is_reported(tmp_path):
    rows = cycle_rows(2500, FORMATS["epoch"])
    text = "timestamp,value\n" + "\n".join(
        ",".join(r) + ("\n" if i % 7 else "") for i, r in enumerate(rows)
    )
    (tmp_path / "in.csv").write_text(text + "\n")
    calls = []
    summary = score_csv(
        tmp_path / "in.csv", tmp_path / "out.csv", progress=lambda d, t: calls.append((d, t))
    )
    assert summary["rows"] == 2500
    assert calls == [(1000, 2500), (2000, 2500), (2500, 2500)]


def test_empty_file(tmp_path):
    (tmp_path / "in.csv").write_text("")
    calls = []
    summary = score_csv(
        tmp_path / "in.csv", tmp_path / "out.csv", progress=lambda d, t: calls.append((d, t))
    )
    assert summary["rows"] == summary["scored"] == 0
    assert read_csv(tmp_path / "out.csv") == [["timestamp", "value", "anomaly_score"]]
    assert calls == [(0, 0)]


def test_detector_factory_is_used(tmp_path):
    rows = cycle_rows(100, FORMATS["epoch"])
    write_csv(tmp_path / "in.csv", rows)
    summary = score_csv(
        tmp_path / "in.csv",
        tmp_path / "out.csv",
        detector_factory=lambda: SeriesDetector(DetectorConfig(warmup=10)),
    )
    assert summary["warmup_rows"] == 10


def test_parse_timestamp_rejects_garbage():
    for text in ("", "yesterday", "nan", "inf"):
        with pytest.raises(ValueError):
            parse_timestamp(text)


def test_a_plugin_is_scored_with_rivers_verbs_and_its_entrys_flag_rule(tmp_path):
    rows = [
        [str(1_700_000_000 + 300 * i), "50" if i != 10 and i != 60 else "90"] for i in range(80)
    ]
    write_csv(tmp_path / "in.csv", rows)
    # Warm after 20 values: the jump at row 10 scores high but is not flagged, that at 60 is.
    summary = score_csv(tmp_path / "in.csv", tmp_path / "out.csv", entry=bench_detector.ZSCORE)
    scores = [float(r[2]) for r in read_csv(tmp_path / "out.csv")[1:]]
    assert scores[10] >= 0.5 and scores[60] >= 0.5
    assert summary["anomalies"] == sum(s >= 0.5 for s in scores[20:]) >= 1
    assert summary["warmup_rows"] == 20

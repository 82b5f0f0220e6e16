"""Fetching the broker jars: once, even when several callers start at the same time."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from streams.kafka.local import KafkaLocal

# A stand-in for mvn: notes each call, takes its time, and copies "a jar" where it is told.
FAKE_MVN = """#!/bin/sh
echo call >> "{calls}"
sleep 1
for arg in "$@"; do
  case "$arg" in -DoutputDirectory=*) out="${{arg#-DoutputDirectory=}}";; esac
done
mkdir -p "$out" && echo jar > "$out/kafka.jar"
"""


def test_callers_starting_at_once_fetch_the_jars_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    mvn = bin_dir / "mvn"
    mvn.write_text(FAKE_MVN.format(calls=calls))
    mvn.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    brokers = [
        KafkaLocal(port=9100 + n, data_dir=tmp_path / f"d{n}", cache_dir=tmp_path / "cache")
        for n in range(3)
    ]
    found: list[Path] = []
    threads = [threading.Thread(target=lambda b=b: found.append(b.fetch())) for b in brokers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls.read_text().splitlines() == ["call"]
    assert len(set(found)) == 1 and (found[0] / "kafka.jar").read_text() == "jar\n"

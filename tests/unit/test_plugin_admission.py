"""Admission of plugins: the static scan, the conformance suite, ``autopilot plugins``.

The plugins under test are in ``tests/support/plugins``, one package each. The suite's
timing runs on a fake clock here: what is judged is the check, not the machine.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import os
import re
import subprocess

import orjson
import pytest

from models import registry
from models.detect.anomaly import DetectorConfig, SeriesDetector
from models.plugins import checks
from streams.plugins.admission import admit
from streams.plugins.capabilities import capability_uses_in
from tests.conftest import AUTOPILOT
from tests.support.plugins import (
    good,
    memory_hog,
    nondeterministic,
    shell_injection,
    undeclared_network,
)


def clock(step_ns: int = 1000):
    """A clock that advances ``step_ns`` per reading: every call takes ``step_ns``."""
    return itertools.count(0, step_ns).__next__


def test_a_well_behaved_plugin_is_admitted_after_the_scan_and_the_suite() -> None:
    verdict = admit(good.ENTRY, clock=clock())
    assert verdict.ok, verdict.reason
    assert [c.name for c in verdict.checks] == [
        "security scan (bandit)",
        "capabilities",
        "learns and scores",
        "deterministic",
        "state round trip",
        "memory per series",
        "time per call",
    ]
    assert verdict.figures["format"] == "pickle"  # no to_state: checkpointed as River's are
    assert verdict.figures["bytes_per_series"] <= good.ENTRY.max_bytes_per_key
    assert verdict.figures["us_per_call_median"] == 1.0


def test_the_builtin_detector_is_admitted_without_a_scan() -> None:
    verdict = admit(registry.entry("detectors", "series"), clock=clock())
    assert verdict.ok, verdict.reason
    assert verdict.reason.startswith("admitted: built-in, 5 checks passed")
    assert verdict.figures["format"] == "json"


def test_a_plugin_claiming_to_be_builtin_is_scanned_all_the_same() -> None:
    verdict = admit(dataclasses.replace(undeclared_network.ENTRY, builtin=True))
    assert not verdict.ok
    assert verdict.checks[0].name == "security scan (bandit)"


def test_an_undeclared_capability_refuses_a_plugin_naming_the_line() -> None:
    verdict = admit(undeclared_network.ENTRY, clock=clock())
    assert not verdict.ok
    assert verdict.reason == (
        "capabilities: imports socket at undeclared_network/__init__.py:5 "
        "but does not declare 'network'"
    )
    # Refused on its code, the plugin is not run.
    assert [c.name for c in verdict.checks] == ["security scan (bandit)", "capabilities"]


def test_a_high_severity_bandit_finding_refuses_a_plugin_that_declares_what_it_uses() -> None:
    verdict = admit(shell_injection.ENTRY, clock=clock())
    assert not verdict.ok
    assert verdict.reason.startswith(
        "security scan (bandit): shell_injection/__init__.py:15: bandit B602 "
        "(HIGH severity, HIGH confidence)"
    )
    assert verdict.figures["used"] == ["subprocess"] == verdict.figures["declared"]
    assert len(verdict.checks) == 2


def test_a_plugin_over_its_memory_bound_is_refused() -> None:
    verdict = admit(memory_hog.ENTRY, clock=clock())
    assert not verdict.ok
    assert re.fullmatch(
        r"memory per series: holds [\d,]+ bytes per series after 3,000 values, "
        r"over its bound of 4,096",
        verdict.reason,
    )


def test_a_nondeterministic_plugin_is_refused() -> None:
    verdict = admit(nondeterministic.ENTRY, clock=clock())
    assert not verdict.ok
    assert verdict.reason.startswith("deterministic: a second instance differs: value 0 scored")


def test_a_plugin_slower_than_its_budget_is_refused() -> None:
    verdict = admit(good.ENTRY, clock=clock(step_ns=2_000_000))
    assert not verdict.ok
    assert verdict.reason == (
        "time per call: takes 2,000.0 µs per call (median of score_one + learn_one), "
        "over its budget of 1,000.0 µs"
    )


@pytest.mark.parametrize(
    ("detector", "reason"),
    [
        (lambda: None, "learns and scores: score_one raised AttributeError"),
        (lambda: BadScore(), "learns and scores: score_one returned nan at value 0"),
        (lambda: BadScore(score=True), "learns and scores: score_one returned a bool"),
    ],
)
def test_a_detector_breaking_its_protocol_is_refused_in_one_line(detector, reason) -> None:
    entry = dataclasses.replace(registry.entry("detectors", "series"), factory=detector)
    results = checks.run_checks(entry, n=50, clock=clock())
    failed = next(r for r in results if not r.ok)
    assert f"{failed.name}: {failed.reason}".startswith(reason)
    assert "\n" not in failed.reason


class BadScore:
    def __init__(self, score: object = float("nan")) -> None:
        self.score = score

    def score_one(self, x: dict[str, float]) -> object:
        return self.score

    def learn_one(self, x: dict[str, float]) -> None:
        pass


def test_a_configured_detector_is_restored_with_its_configuration() -> None:
    configured = functools.partial(
        SeriesDetector, config=DetectorConfig(warmup=10, z_threshold=2.0)
    )
    entry = dataclasses.replace(registry.entry("detectors", "series"), factory=configured)
    result = checks.check_state_round_trip(entry, checks.canned_series(1000))
    assert result.ok, result.reason


class Hostile:
    """A factory that raises whatever is asked of it, even its module."""

    def __getattr__(self, name: str) -> object:
        raise RuntimeError(f"no {name}")


def test_admission_refuses_rather_than_raises_on_what_it_cannot_look_at() -> None:
    verdict = admit(dataclasses.replace(good.ENTRY, factory=Hostile()), clock=clock())
    assert (verdict.ok, verdict.reason) == (False, "admission: RuntimeError: no func")


def test_verdicts_are_cached_for_the_process() -> None:
    tick = clock()
    assert admit(good.ENTRY, clock=tick) is admit(good.ENTRY, clock=tick)


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("import urllib.parse\nurllib.parse.quote('a')\n", []),
        ("from subprocess import run as go\ngo(['ls'])\n", ["subprocess", "subprocess"]),
        ("import pathlib\n", ["filesystem"]),
        ("import os\nos.path.join('a')\nos.execvp('ls', [])\n", ["subprocess"]),
        ("import importlib\nimportlib.import_module('soc' + 'ket')\n", ["unknown"]),
        ("__import__('http.client')\n", ["network"]),
        ("with open('f') as f:\n    pass\n", ["filesystem"]),
    ],
)
def test_the_capability_scan_follows_aliases_and_dynamic_imports(source, found) -> None:
    assert [use.capability for use in capability_uses_in(source, "p.py")] == found


# ------------------------------------------------------------------------------ CLI
def autopilot(*args: str, modules: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(AUTOPILOT), "plugins", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "AUTOPILOT_PLUGIN_MODULES": modules},
        check=False,
    )


def test_plugins_check_exits_0_for_an_admitted_plugin_with_json_last() -> None:
    result = autopilot("check", "zscore", "--json", modules="tests.support.plugins.good")
    assert result.returncode == 0, result.stderr
    verdict = orjson.loads(result.stdout.splitlines()[-1])
    assert (verdict["group"], verdict["name"], verdict["ok"]) == ("detectors", "zscore", True)
    assert len(verdict["checks"]) == 7


def test_plugins_check_exits_1_with_the_reason_for_a_refused_plugin() -> None:
    result = autopilot("check", "reporting", modules="tests.support.plugins.undeclared_network")
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1] == (
        "detectors/reporting: refused: capabilities: imports socket at "
        "undeclared_network/__init__.py:5 but does not declare 'network'"
    )


def test_plugins_check_of_an_unknown_name_is_one_line_and_exit_2() -> None:
    result = autopilot("check", "nope", modules="")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("autopilot: no detectors named 'nope'")


def test_plugins_list_shows_plugins_builtins_and_what_was_refused_on_load() -> None:
    modules = "tests.support.plugins.good,tests.support.plugins.missing"
    result = autopilot("list", "--json", modules=modules)
    assert result.returncode == 0, result.stderr
    listing = orjson.loads(result.stdout.splitlines()[-1])
    rows = {(p["group"], p["name"]): p for p in listing["plugins"]}
    assert rows["detectors", "zscore"]["builtin"] is False
    assert rows["detectors", "series"]["builtin"] is True
    assert rows["detectors", "zscore"]["max_bytes_per_key"] == 1024
    assert listing["refused"]["module/tests.support.plugins.missing"].startswith(
        "cannot import: ModuleNotFoundError"
    )

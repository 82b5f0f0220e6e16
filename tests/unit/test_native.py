"""The compiled kernels (models.native): the same decisions and states as their sources, and
a build that serves only the sources it was made of.

``make test`` builds them first (``autopilot native build``), so this suite runs on them;
the tests that need a build are skipped without one, except in CI, where they fail.
"""

from __future__ import annotations

import doctest
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from models import native
from streams.runtime.settings import Settings, SettingsError
from tests.support.paths import ROOT

COMPILED = native.loaded_from() is not None


def _need_the_build() -> None:
    if COMPILED:
        return
    if os.environ.get("CI"):
        pytest.fail("CI runs the compiled kernels: `autopilot native build` made no build")
    pytest.skip("no compiled build of the kernels (autopilot native build)")


# The metrics brain's decisions and checkpoints over two simulated streams, hashed: six hours
# of the mixed scenario (scaling and anomaly decisions) and the memory leak (a risk); then
# the region brain's transitions, reports and state over the failover scenarios' hour.
_DRIVE = """
import hashlib, json, orjson
from models import native
from models.brains.metrics import MetricsBrain
from models.brains.region import RegionBrain
from schemas import Limits
from schemas.config.regions import load_region_config
from schemas.validate import parse
from streams.lab.scenario import load_scenario
from streams.lab.simulator import SimConfig, generate

decisions, states = hashlib.sha256(), hashlib.sha256()
limits = Limits()
handled, kinds = 0, []
for name, duration_s in (("mixed", 6 * 3600.0), ("memory_leak", None)):
    config = SimConfig.for_scenario(
        load_scenario(name), start_ts=1_700_000_000.0,
        **({} if duration_s is None else {"duration_s": duration_s}),
    )
    brain = MetricsBrain()
    for kind, _key, value, ts in generate(config):
        if kind == "metrics":
            sample = parse(kind, value, now=ts, limits=limits)
            handled += 1
            for decision in brain.observe(sample.ts, sample.service, sample.region, sample.metrics):
                decisions.update(decision.to_bytes())
                kinds.append(decision.kind)
    for key in sorted(brain):
        states.update(orjson.dumps(brain.state_of(key), option=orjson.OPT_SORT_KEYS))

# Region health: the failover scenarios' telemetry and anomalies into one region brain,
# evaluated every hundred messages as the evaluator does a batch of evidence.
metrics, region = MetricsBrain(), RegionBrain(load_region_config())
config = SimConfig.for_scenario(load_scenario("failover_suite"), start_ts=1_700_000_000.0)
for n, (kind, _key, value, ts) in enumerate(generate(config)):
    if kind == "metrics":
        s = parse(kind, value, now=ts, limits=limits)
        region.observe_metrics(s.ts, s.region, s.service, s.metrics)
        for decision in metrics.observe(s.ts, s.service, s.region, s.metrics):
            if decision.kind == "anomaly":
                args = (decision.params["metric"], decision.evidence["score"])
                region.observe_anomaly(decision.ts, s.region, s.service, *args)
    elif kind == "interactions":
        i = parse(kind, value, now=ts, limits=limits)
        region.observe_interaction(i.ts, i.region, i.success, i.data_class)
    if n % 100 == 0:
        for draft in region.advance():
            decisions.update(draft.to_decision(mode="recommend").to_bytes())
            kinds.append(draft.kind)
        scores = {r: (h.score, h.components) for r, h in sorted(region.reports.items())}
        states.update(orjson.dumps(scores, option=orjson.OPT_SORT_KEYS))
states.update(orjson.dumps(region.to_state(), option=orjson.OPT_SORT_KEYS))
print(json.dumps({
    "compiled": native.loaded_from() is not None,
    "handled": handled,
    "kinds": {kind: kinds.count(kind) for kind in set(kinds)},
    "decisions_sha": decisions.hexdigest(),
    "states_sha": states.hexdigest(),
}))
"""


def _drive(native_mode: str) -> dict:
    env = {**os.environ, "AUTOPILOT_NATIVE": native_mode}
    done = subprocess.run(
        [sys.executable, "-c", _DRIVE], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_compiled_kernels_decide_and_learn_as_their_sources_bit_for_bit() -> None:
    _need_the_build()
    compiled, source = _drive("auto"), _drive("off")
    assert compiled["compiled"] and not source["compiled"]
    assert compiled["handled"] == source["handled"] > 40_000
    # Every kind of the metrics brain's decisions, so that each of its kernels decides, and
    # the region brain's transitions, so that region health's scores decide.
    metrics_kinds = {"anomaly", "risk", "scaling"}
    assert set(source["kinds"]) == metrics_kinds | {"failover", "failover_blocked", "failback"}
    assert compiled["kinds"] == source["kinds"]
    assert compiled["decisions_sha"] == source["decisions_sha"]
    assert compiled["states_sha"] == source["states_sha"]


def _doctests_of_the_source(module: str) -> list[doctest.DocTest]:
    """The doctests of ``module``'s source (mypyc drops docstrings), run in the namespace of
    the module as imported (compiled)."""
    spec = importlib.util.spec_from_file_location(f"_source_of.{module}", native.source_of(module))
    assert spec is not None and spec.loader is not None
    source = importlib.util.module_from_spec(spec)
    # Dataclasses look their module up while the class is made.
    sys.modules[spec.name] = source
    try:
        spec.loader.exec_module(source)
    finally:
        del sys.modules[spec.name]
    imported = importlib.import_module(module)
    tests = doctest.DocTestFinder().find(source, module)
    for test in tests:
        test.globs = dict(vars(imported))
    return [t for t in tests if t.examples]


@pytest.mark.parametrize("module", native.KERNELS)
def test_the_kernels_doctests_pass_on_the_compiled_kernels(module: str) -> None:
    _need_the_build()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in _doctests_of_the_source(module):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0
    # pytest's own doctest run finds none in a compiled module: this one must find them.
    assert result.attempted > 0 or module == "models.detect.anomaly_kernel"


def _copy_kernels(root: Path) -> None:
    for module in native.KERNELS:
        target = native.source_of(module, root)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(native.source_of(module).read_bytes())


def test_an_edited_kernel_has_another_build(tmp_path: Path) -> None:
    _copy_kernels(tmp_path)
    assert native.digest(root=tmp_path) == native.digest()
    edited = native.source_of("models.forecast.capacity", tmp_path)
    edited.write_text(edited.read_text() + "\n# edited\n")
    assert native.digest(root=tmp_path) != native.digest()


def test_without_a_build_or_when_turned_off_the_sources_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    finders = list(sys.meta_path)
    assert native.install(folder=tmp_path) is None
    (tmp_path / native.MANIFEST).write_text(json.dumps({"modules": {}}))
    monkeypatch.setenv("AUTOPILOT_NATIVE", "off")
    assert native.install(folder=tmp_path) is None
    assert sys.meta_path == finders


def test_the_cli_refuses_another_value_of_autopilot_native_by_name() -> None:
    assert Settings.from_env({"AUTOPILOT_NATIVE": "off"}).broker
    with pytest.raises(SettingsError, match="AUTOPILOT_NATIVE='on' is not one of auto, off"):
        Settings.from_env({"AUTOPILOT_NATIVE": "on"})

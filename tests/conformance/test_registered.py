"""Every registered detector, forecaster and brain against the protocols of models.base.

Detectors go through the conformance suite that admits plugins (:mod:`models.plugins.checks`).
In the spirit of River's ``estimator_checks``: whatever is registered in
:mod:`models.registry` must be deterministic, survive a checkpoint mid-stream (through
JSON, as the changelog stores it) without changing what it does next, hold no more memory
per key than its entry declares, and, if it evicts idle keys, forget them.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from models import registry
from models.base import Checkpointed, EvictsIdle, Forecaster, KeyedCheckpointed
from models.detect.bank import deep_sizeof
from models.plugins import checks
from schemas import Limits, parse
from schemas.config.prices import load_price_table
from streams.lab.scenario import load_scenario
from streams.lab.simulator import SimConfig, generate

START = 1_700_000_000.0
SALT = b"conformance"


def roundtrip(state: Any) -> Any:
    """What a checkpoint gives back: the state through the changelog's JSON."""
    return orjson.loads(orjson.dumps(state, option=orjson.OPT_SERIALIZE_NUMPY))


# ------------------------------------------------------------------------------ detectors
def ticking_clock() -> Callable[[], int]:
    """A clock that advances 1 µs per reading: the suite's timing, judged without the
    machine (admission times real calls on the worker's own hardware)."""
    return itertools.count(0, 1000).__next__


@pytest.mark.parametrize("name", registry.names("detectors"))
def test_a_detector_passes_the_conformance_suite_of_admission(name) -> None:
    results = checks.run_checks(registry.entry("detectors", name), clock=ticking_clock())
    assert [(r.name, r.reason) for r in results if not r.ok] == []
    assert len(results) == 5


# ------------------------------------------------------------------------------ forecasters
def series(n: int = 3000, seed: int = 0) -> list[tuple[float, float]]:
    """A daily cycle with noise, a spike and a level shift, every 5 minutes."""
    return checks.canned_series(n, seed)


def forecaster_outputs(forecaster: Forecaster, values) -> list[tuple[float, float, float]]:
    out = []
    for ts, y in values:
        forecaster.update(ts, y)
        f = forecaster.forecast_at(ts, 300.0)
        out.append((f.mean, f.lower, f.upper))
    return out


FORECASTERS = registry.names("forecasters")


@pytest.mark.parametrize("name", FORECASTERS)
def test_a_forecaster_is_deterministic_and_follows_its_protocol(name) -> None:
    first, second = registry.create("forecasters", name), registry.create("forecasters", name)
    assert isinstance(first, Forecaster)
    assert forecaster_outputs(first, series()) == forecaster_outputs(second, series())


@pytest.mark.parametrize("name", FORECASTERS)
def test_a_forecaster_resumes_from_its_checkpoint_as_if_never_stopped(name) -> None:
    values = series()
    cls = type(registry.create("forecasters", name))
    whole = forecaster_outputs(registry.create("forecasters", name), values)
    head = registry.create("forecasters", name)
    out = forecaster_outputs(head, values[:1700])
    restored = cls.from_state(roundtrip(head.to_state()))
    out += forecaster_outputs(restored, values[1700:])
    assert out == whole


@pytest.mark.parametrize("name", FORECASTERS)
def test_a_forecaster_holds_no_more_than_it_declares(name) -> None:
    forecaster = registry.create("forecasters", name)
    forecaster_outputs(forecaster, series(6000))
    assert deep_sizeof(forecaster) <= registry.entry("forecasters", name).max_bytes_per_key


# ------------------------------------------------------------------------------ brains
@functools.cache
def telemetry() -> tuple[tuple[str, Any], ...]:
    """The ``mixed`` scenario's first hour, as validated records in event order."""
    config = SimConfig.for_scenario(
        load_scenario("mixed"), start_ts=START, duration_s=3600.0, tenants=6
    )
    records = []
    for kind, _key, value, ts in generate(config):
        record = parse(kind, value, now=ts, limits=Limits())
        assert not hasattr(record, "reason"), record
        records.append((kind, record))
    return tuple(records)


@dataclass(frozen=True)
class Driver:
    """How a brain of the registry reads the telemetry, and what it keys its memory by."""

    kind: str
    observe: Callable[[Any, Any], list]
    key_of: Callable[[Any], Any]
    config: Callable[[], dict[str, Any]] = dict

    def create(self, name: str) -> Any:
        return registry.create("brains", name, **self.config())


def _metrics(brain, s) -> list:
    return brain.observe(s.ts, s.service, s.region, s.metrics)


def _tenant_requests() -> Iterator[Any]:
    feeder = DRIVERS["interactions"].create("interactions")
    for kind, record in telemetry():
        if kind == "interactions":
            yield feeder.observe(record).tenant


def _series_key(record) -> tuple[str, str]:
    return record.service, record.region


DRIVERS = {
    "metrics": Driver("metrics", _metrics, _series_key),
    "errors": Driver("errors", lambda b, e: b.observe(e), _series_key),
    "interactions": Driver(
        "interactions", lambda b, i: b.observe(i).decisions, _series_key, lambda: {"salt": SALT}
    ),
    "tenants": Driver("tenants", lambda b, r: b.observe(r), lambda r: r.tenant),
    "cost": Driver(
        "metrics", lambda b, s: b.observe(s), _series_key, lambda: {"prices": load_price_table()}
    ),
}


def stream_for(name: str) -> list[Any]:
    if name == "tenants":
        return list(_tenant_requests())
    return [r for kind, r in telemetry() if kind == DRIVERS[name].kind]


def decisions_of(driver: Driver, brain, records) -> list[dict]:
    return [d.to_dict() for r in records for d in driver.observe(brain, r)]


def checkpoint_and_restore(name: str, brain):
    """The brain rebuilt from its checkpoint, key by key for a keyed brain."""
    config = DRIVERS[name].config()
    if isinstance(brain, KeyedCheckpointed):
        restored = registry.create("brains", name, **config)
        for key in list(brain):
            restored.restore(key, roundtrip(brain.state_of(key)))
        return restored
    assert isinstance(brain, Checkpointed)
    return type(brain).from_state(roundtrip(brain.to_state()), **config)


def test_every_brain_of_the_registry_has_a_driver() -> None:
    assert set(registry.names("brains")) == set(DRIVERS)


@pytest.mark.parametrize("name", registry.names("brains"))
def test_a_brain_is_deterministic(name) -> None:
    driver, records = DRIVERS[name], stream_for(name)
    first = decisions_of(driver, DRIVERS[name].create(name), records)
    second = decisions_of(driver, DRIVERS[name].create(name), records)
    assert first == second


@pytest.mark.parametrize("name", registry.names("brains"))
def test_a_brain_resumes_from_its_checkpoint_as_if_never_stopped(name) -> None:
    driver, records = DRIVERS[name], stream_for(name)
    whole = decisions_of(driver, DRIVERS[name].create(name), records)
    cut = len(records) * 2 // 3
    head = DRIVERS[name].create(name)
    resumed = decisions_of(driver, head, records[:cut])
    resumed += decisions_of(driver, checkpoint_and_restore(name, head), records[cut:])
    assert resumed == whole


def test_the_stream_makes_the_brains_decide() -> None:
    """The checks above compare decisions: the canned stream must give some."""
    deciding = {
        name
        for name in registry.names("brains")
        if decisions_of(DRIVERS[name], DRIVERS[name].create(name), stream_for(name))
    }
    assert {"metrics", "errors"} <= deciding


@pytest.mark.parametrize("name", registry.names("brains"))
def test_a_brain_holds_no_more_per_key_than_it_declares(name) -> None:
    driver, records = DRIVERS[name], stream_for(name)
    brain = driver.create(name)
    empty = deep_sizeof(brain)  # what every brain holds whatever it learns (e.g. a lexicon)
    decisions_of(driver, brain, records)
    per_key = (deep_sizeof(brain) - empty) / len({driver.key_of(r) for r in records})
    assert per_key <= registry.entry("brains", name).max_bytes_per_key


@pytest.mark.parametrize("name", registry.names("brains"))
def test_a_brain_that_evicts_idle_keys_forgets_them(name) -> None:
    driver = DRIVERS[name]
    brain = DRIVERS[name].create(name)
    if not isinstance(brain, EvictsIdle):
        pytest.skip(f"the {name} brain is bounded by counts, not by idleness")
    empty = deep_sizeof(brain)
    decisions_of(driver, brain, stream_for(name))
    learned = deep_sizeof(brain) - empty
    assert brain.evict_idle(brain.watermark + 30 * 86_400.0) >= 1
    assert deep_sizeof(brain) - empty < learned / 2

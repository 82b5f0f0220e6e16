"""Every registered detector, forecaster and brain against the protocols of models.base.

In the spirit of River's ``estimator_checks``: whatever is registered in
:mod:`models.registry` must be deterministic, survive a checkpoint mid-stream (through
JSON, as the changelog stores it) without changing what it does next, hold no more memory
per key than its entry declares, and, if it evicts idle keys, forget them.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from models import registry
from models.base import Checkpointed, Detector, EvictsIdle, Forecaster, KeyedCheckpointed
from models.detect.bank import deep_sizeof
from schemas import Limits, parse
from schemas.config.prices import load_price_table
from streams.lab.scenario import load_scenario
from streams.lab.simulator import SimConfig, generate

START = 1_700_000_000.0
SALT = b"conformance"


def roundtrip(state: Any) -> Any:
    """What a checkpoint gives back: the state through the changelog's JSON."""
    return orjson.loads(orjson.dumps(state, option=orjson.OPT_SERIALIZE_NUMPY))


# ------------------------------------------------------------------------------ series
def series(n: int = 3000, seed: int = 0) -> list[tuple[float, float]]:
    """A daily cycle with noise, a spike and a level shift, every 5 minutes."""
    import random

    rng = random.Random(seed)
    values = []
    for i in range(n):
        ts = START + 300.0 * i
        y = 100.0 + 40.0 * math.sin(2 * math.pi * i / 288) + rng.gauss(0, 4)
        y += 300.0 if i == 2000 else 0.0
        y += 80.0 if i > 2500 else 0.0
        values.append((ts, y))
    return values


def detector_outputs(detector: Detector, values) -> list[float]:
    out = []
    for ts, x in values:
        out.append(detector.score_one({"ts": ts, "value": x}))
        detector.learn_one({"ts": ts, "value": x})
    return out


def forecaster_outputs(forecaster: Forecaster, values) -> list[tuple[float, float, float]]:
    out = []
    for ts, y in values:
        forecaster.update(ts, y)
        f = forecaster.forecast_at(ts, 300.0)
        out.append((f.mean, f.lower, f.upper))
    return out


SERIES_GROUPS = {"detectors": detector_outputs, "forecasters": forecaster_outputs}
SERIES_ENTRIES = [(g, n) for g in SERIES_GROUPS for n in registry.names(g)]


@pytest.mark.parametrize(("group", "name"), SERIES_ENTRIES)
def test_a_series_learner_is_deterministic_and_follows_its_protocol(group, name) -> None:
    protocol = {"detectors": Detector, "forecasters": Forecaster}[group]
    run = SERIES_GROUPS[group]
    first, second = registry.create(group, name), registry.create(group, name)
    assert isinstance(first, protocol)
    assert run(first, series()) == run(second, series())


@pytest.mark.parametrize(("group", "name"), SERIES_ENTRIES)
def test_a_series_learner_resumes_from_its_checkpoint_as_if_never_stopped(group, name) -> None:
    run, values = SERIES_GROUPS[group], series()
    cls = type(registry.create(group, name))
    whole = run(registry.create(group, name), values)
    head = registry.create(group, name)
    out = run(head, values[:1700])
    restored = cls.from_state(roundtrip(head.to_state()))
    out += run(restored, values[1700:])
    assert out == whole


@pytest.mark.parametrize(("group", "name"), SERIES_ENTRIES)
def test_a_series_learner_holds_no_more_than_it_declares(group, name) -> None:
    learner = registry.create(group, name)
    SERIES_GROUPS[group](learner, series(6000))
    assert deep_sizeof(learner) <= registry.entry(group, name).max_bytes_per_key


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

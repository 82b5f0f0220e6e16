"""ActionRunner: bound actions get each decision; whatever a plugin does is a result."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from models import registry
from models.base import ActionResult
from schemas.config.plugins import PluginBindings
from streams.actuate.actions import ActionRunner

SECRET = "s3cret-token"
DECISION = {"decision_id": "d" * 32, "kind": "remediation", "action": "restart"}
RECEIVED: list[tuple[str, Mapping[str, Any]]] = []


class Recorder:
    """Keeps what it is given in ``RECEIVED``; answers ``ok``."""

    def __init__(self, tag: str = "") -> None:
        self.tag = tag

    def apply(self, decision: Mapping[str, Any]) -> ActionResult:
        RECEIVED.append((self.tag, decision))
        return ActionResult(True, f"recorded\nby {self.tag}" + " pad" * 100)


class Raises:
    def apply(self, decision: Mapping[str, Any]) -> ActionResult:
        raise RuntimeError(f"failed posting to https://hooks.example.com/{SECRET}")


class Hangs:
    release = threading.Event()

    def apply(self, decision: Mapping[str, Any]) -> ActionResult:
        Hangs.release.wait(10)
        return ActionResult(True, "late")


class Answers:
    def apply(self, decision: Mapping[str, Any]) -> bool:
        return True


def _refuses(url: str) -> Recorder:
    raise ValueError(f"bad url {url}")


@pytest.fixture(scope="module", autouse=True)
def actions() -> Iterator[None]:
    """The test actions registered in a copy of the registry, which the others never see."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(registry, "_entries", {g: dict(e) for g, e in registry._entries.items()})
        for name, factory, seconds in [
            ("t-recorder", Recorder, 1.0),
            ("t-raises", Raises, 1.0),
            ("t-hangs", Hangs, 0.05),
            ("t-answers", Answers, 1.0),
            ("t-refuses", _refuses, 1.0),
        ]:
            registry.register("actions", name, factory, max_bytes_per_key=1024, summary=name,
                              max_seconds_per_call=seconds)  # fmt: skip
        yield


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    RECEIVED.clear()
    Hangs.release.clear()
    yield
    Hangs.release.set()


def run(bindings: dict, kind: str = "remediation") -> list[tuple[str, ActionResult]]:
    runner = ActionRunner(PluginBindings.from_dict({"actions": bindings}))
    try:
        return asyncio.run(runner.call(DECISION, kind))
    finally:
        runner.close()


def test_every_action_bound_to_the_kind_gets_the_decision_once() -> None:
    results = run([
        {"plugin": "t-recorder", "kind": "remediation", "config": {"tag": "kind"}},
        {"plugin": "t-recorder", "config": {"tag": "any"}},
        {"plugin": "t-raises", "kind": "scaling"},
    ])  # fmt: skip
    assert [plugin for plugin, _ in results] == ["t-recorder", "t-recorder"]
    assert sorted(RECEIVED, key=lambda r: r[0]) == [("any", DECISION), ("kind", DECISION)]
    detail = results[0][1].detail
    assert results[0][1].ok and detail.startswith("recorded by kind pad")
    assert "\n" not in detail and len(detail) <= 200


def test_other_kinds_get_only_the_any_kind_actions() -> None:
    results = run([{"plugin": "t-recorder", "kind": "scaling"}, {"plugin": "t-answers"}])
    assert [plugin for plugin, _ in results] == ["t-answers"]


@pytest.mark.parametrize(
    ("plugin", "detail"),
    [
        ("t-raises", "raised RuntimeError"),
        ("t-hangs", "no result within 0.05 s"),
        ("t-answers", "returned a bool, not an ActionResult"),
        ("t-refuses", "cannot build: ValueError"),
        ("t-missing", "cannot build: no actions named 't-missing'"),
    ],
)
def test_a_plugin_error_is_a_failed_result_that_shows_no_secret(plugin: str, detail: str) -> None:
    [(name, result)] = run([{"plugin": plugin, "config": {"url": f"https://h/{SECRET}"}}
                            if plugin == "t-refuses" else {"plugin": plugin}])  # fmt: skip
    assert name == plugin
    assert not result.ok
    assert result.detail.startswith(detail)
    assert SECRET not in result.detail


def test_a_hung_plugin_does_not_hold_up_the_others() -> None:
    results = run([{"plugin": "t-hangs", "kind": "remediation"}, {"plugin": "t-recorder"}])
    assert [(plugin, result.ok) for plugin, result in results] == [
        ("t-hangs", False),
        ("t-recorder", True),
    ]

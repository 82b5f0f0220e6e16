"""Topics declared at start-up: a worker stopped meanwhile stops, it does not crash."""

from __future__ import annotations

import asyncio

import pytest
from faust.exceptions import NotReady

from streams.runtime.app import declare_unless_stopping


class _Worker:
    """The service whose ``should_stop`` the declarations read."""

    def __init__(self) -> None:
        self.should_stop = False


class _Topic:
    """A topic whose producer stops the worker, as a SIGTERM during start-up would."""

    def __init__(self, worker: _Worker, stops_worker: bool = False) -> None:
        self.worker = worker
        self.stops_worker = stops_worker
        self.declared = 0

    async def maybe_declare(self) -> None:
        if self.stops_worker:
            self.worker.should_stop = True
            raise NotReady("Producer service not yet started")
        self.declared += 1


def test_every_topic_is_declared_while_the_worker_runs() -> None:
    worker = _Worker()
    declared = [_Topic(worker), _Topic(worker)]
    assert asyncio.run(declare_unless_stopping(*declared, service=worker)) is True
    assert [t.declared for t in declared] == [1, 1]


def test_a_stop_during_a_declaration_ends_the_declarations_without_an_error() -> None:
    worker = _Worker()
    later = _Topic(worker)
    declared = [_Topic(worker), _Topic(worker, stops_worker=True), later]
    assert asyncio.run(declare_unless_stopping(*declared, service=worker)) is False
    assert later.declared == 0


def test_a_producer_not_ready_while_the_worker_runs_is_an_error() -> None:
    worker = _Worker()
    topic = _Topic(worker, stops_worker=True)
    topic.worker = _Worker()  # the stop reaches another service, not this worker
    with pytest.raises(NotReady):
        asyncio.run(declare_unless_stopping(topic, service=worker))

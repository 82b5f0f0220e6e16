"""How the worker's consumer fetches: a few milliseconds of records a request, not one or two.

Faust builds its consumer with ``fetch_min_bytes=1``: the broker answers a fetch as soon as
one record is there. Fed at a trickle (the rate a live platform sends, not a backlog), the
worker then sends a fetch request for every record or two, each naming every partition it
reads, and hands each answer from its consumer thread to the event loop. Both threads take
Python's one lock in turn for it. In ``autopilot bench latency``'s mix (py-spy, and CPU
seconds per thread from ``/proc``, 20,000 samples a phase at 1,000 samples/s or as a
backlog), the worker spent, per sample:

=============================  ===============  ============
fetching                       consumer thread  whole worker
=============================  ===============  ============
a backlog, Faust's way         8 to 11 µs       302 to 355 µs
a trickle, Faust's way         315 to 365 µs    753 to 832 µs
a trickle, 32 KiB or 25 ms     86 to 88 µs      494 to 496 µs
a backlog, 32 KiB or 25 ms     23 to 27 µs      346 to 366 µs
=============================  ===============  ============

A trickle cost it more than twice what a backlog did, so a worker offered half the rate
its backlog probe measured could not keep up, fell behind, and settled where the backlog
had grown large enough to read in batches again: every decision 1.5 to 3 s late (#23).
Asking the broker to wait until :data:`~streams.runtime.settings.Settings.fetch_min_bytes`
are there, or :data:`~streams.runtime.settings.Settings.fetch_max_wait_ms` have passed,
costs each record at most that wait, and an idle worker a fetch request each wait: 0.075
of a core idle here, against 0.033 with Faust's 1.5 s.

Faust has no setting for either: :class:`BatchingTransport` gives the worker's consumer
both, through private names of the pinned faust-streaming (``_create_worker_consumer``) and
aiokafka (the constructor's ``_fetch_min_bytes`` and ``_fetch_max_wait_ms``, which its
``start()`` hands to the fetcher); ``tests/e2e/test_fetching.py`` checks them on the real
consumer.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer
from faust.transport.drivers import aiokafka as driver

from streams.runtime.commits import BarrierCommits

__all__ = ["BatchingTransport", "batch_fetches"]


def batch_fetches(consumer: AIOKafkaConsumer, min_bytes: int, max_wait_ms: int) -> None:
    """Make ``consumer``, not started yet, ask for ``min_bytes`` a fetch or ``max_wait_ms``."""
    consumer._fetch_min_bytes = min_bytes
    consumer._fetch_max_wait_ms = max_wait_ms


class _BatchingConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        batch_fetches(consumer, self.app.fetch_min_bytes, self.app.fetch_max_wait_ms)
        return consumer


class _BatchingConsumer(BarrierCommits, driver.Consumer):
    def _new_consumer_thread(self) -> _BatchingConsumerThread:
        return _BatchingConsumerThread(self, loop=self.loop, beacon=self.beacon)


class BatchingTransport(driver.Transport):
    """Faust's Kafka transport, whose worker consumer fetches as the app's
    ``fetch_min_bytes`` and ``fetch_max_wait_ms`` say, and commits inside the app's
    ``commit_barrier`` (:mod:`streams.runtime.commits`)."""

    Consumer = _BatchingConsumer

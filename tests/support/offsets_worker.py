"""A worker of the product's app that reproduces faust's dropped-messages race for real.

Run as ``python -m tests.support.offsets_worker worker`` with the usual ``AUTOPILOT_*``
environment (one partition). Its one agent counts ``telemetry.metrics`` messages. Once the
first ``AUTOPILOT_TEST_FIRST`` messages are committed, it seeks the partition
``AUTOPILOT_TEST_SKIP`` offsets past the committed one, as faust's fetcher does when it
drops messages fetched while the flow was suspended (faust-streaming #596): those offsets
are never processed nor acknowledged. With ``AUTOPILOT_TEST_WATCHDOG=on`` the product's
watchdog (:mod:`agents.compat.offsets`) runs on this real consumer.
"""

from __future__ import annotations

import os

from faust.types import TP

from streams.runtime.app import app, topic_names, topics

FIRST = int(os.environ["AUTOPILOT_TEST_FIRST"])
SKIP = int(os.environ["AUTOPILOT_TEST_SKIP"])
PARTITION = TP(topic_names.metrics, 0)
_state = {"processed": 0, "skipped": False}

if os.environ.get("AUTOPILOT_TEST_WATCHDOG") == "on":
    from agents.compat import offsets  # noqa: F401  (registers the watchdog's timer)


@app.agent(topics.metrics)
async def count(stream):
    async for _ in stream:
        _state["processed"] += 1
        print(f"processed {_state['processed']}", flush=True)


@app.timer(0.25)
async def skip_once() -> None:
    consumer = app.consumer
    if _state["skipped"] or consumer._committed_offset.get(PARTITION) != FIRST:
        return
    _state["skipped"] = True
    await consumer.seek(PARTITION, FIRST + SKIP)
    print(f"skipped offsets {FIRST} to {FIRST + SKIP - 1}", flush=True)


if __name__ == "__main__":
    app.main()

"""The Faust floor of ``autopilot bench throughput``: a Faust worker that does no work.

One agent reads the metrics topic through ``stream.events()``, as every
product agent does, decodes each message with orjson and counts it; nothing
else. Its consumer settings are the product app's (:mod:`streams.runtime.app`), so its
rate is what Faust itself allows per event on this machine: the gap between
it and a raw aiokafka consumer is Faust's own overhead, the gap between it and
the full pipeline is the product's work.

Run as ``python -m streams.lab.bench.floor worker`` with the ``AUTOPILOT_*``
variables of a worker; ``GET /floor/`` on its web port answers
``{"consumed": n, "first_ts": t0, "last_ts": t1}`` (wall-clock seconds of the
first and latest message; ``null`` before the first).
"""

from __future__ import annotations

import dataclasses
import time

import faust
import orjson

from schemas.topics import TopicNames
from streams.runtime.app import app as pipeline_app
from streams.runtime.settings import Settings

__all__ = ["FloorCount", "app", "count", "floor"]

# The product app's options that shape how a stream is consumed.
_CONSUMER_OPTIONS = (
    "key_serializer",
    "value_serializer",
    "consumer_auto_offset_reset",
    "broker_commit_interval",
    "broker_session_timeout",
    "broker_heartbeat_interval",
    "consumer_metadata_max_age_ms",
    "stream_buffer_maxsize",
)

settings = Settings.from_env()
app = faust.App(
    f"{settings.app_id}-floor",
    broker=settings.broker,
    autodiscover=False,
    store="memory://",
    datadir=str(settings.data_dir / "{conf.name}"),
    web_port=settings.web_port,
    web_bind=settings.web_host,
    web_host=settings.web_host,
    **{name: getattr(pipeline_app.conf, name) for name in _CONSUMER_OPTIONS},
)
metrics_topic = app.topic(TopicNames(settings.topic_prefix).metrics)


@dataclasses.dataclass
class FloorCount:
    """Messages read, and wall-clock seconds of the first and the latest."""

    consumed: int = 0
    first_ts: float | None = None
    last_ts: float | None = None


count = FloorCount()


@app.agent(metrics_topic)
async def floor(stream):
    """Decode and count every message: the least an agent can do with it."""
    loads = orjson.loads
    async for event in stream.events():
        loads(event.message.value)
        now = time.time()
        if count.first_ts is None:
            count.first_ts = now
        count.consumed += 1
        count.last_ts = now


@app.page("/floor/")
async def floor_view(view, request):
    """What the floor agent has read so far, and when it read the first and latest message."""
    return view.json(dataclasses.asdict(count))


if __name__ == "__main__":
    # Faust creates only the last level of its data dir.
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app.main()

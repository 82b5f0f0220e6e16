"""The Faust app: one per worker process, configured from ``AUTOPILOT_*`` env vars.

Agents live in :mod:`agents` and CLI verbs in :mod:`streams.cli`; the
``autopilot`` CLI imports both, so importing this module stays cheap and free
of side effects beyond declaring the app.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import faust
from faust.exceptions import NotReady
from faust.types import ConsumerT
from faust.types.auth import CredentialsT

from models import native
from schemas.topics import TopicNames
from streams.runtime.fetching import BatchingTransport
from streams.runtime.heap import tune_collection
from streams.runtime.settings import Settings

__all__ = [
    "REBALANCE_WAIT_S",
    "STOP_WAIT_S",
    "AutopilotApp",
    "QuietWorker",
    "app",
    "broker_credentials",
    "settings",
    "topic_names",
    "topics",
]

log = logging.getLogger(__name__)

DLQ_MAX_MESSAGE_BYTES = 16 * 1024 * 1024

STOP_WAIT_S = 5.0
"""Wall seconds a stopping worker waits for the messages its streams took to be acknowledged."""
REBALANCE_WAIT_S = 15.0
"""The same at a revocation: well under the group's rebalance timeout (a minute), past which
the group goes on without this worker, and longer than a handler takes but for a broker that
does not answer."""


def broker_credentials(settings: Settings) -> CredentialsT | None:
    """How the worker's Kafka clients authenticate; ``None`` for a ``PLAINTEXT`` broker."""
    context = settings.ssl_context()
    if context is None:
        return None
    if settings.security_protocol == "SSL":
        return faust.SSLCredentials(context)
    return faust.SASLCredentials(
        username=settings.sasl_username,
        password=settings.sasl_password,
        ssl_context=context,
        mechanism=settings.sasl_mechanism,
    )


class QuietWorker(faust.Worker):
    """Faust's worker without its terminal spinner, and with garbage collection tuned once it
    has started.

    At log level ``warn`` or above, Faust spins a spinner for every log record: it sets the
    root logger to DEBUG and adds a handler that advances the spinner. Every debug call of
    aiokafka and Faust then builds a record (aiokafka's fetcher logs each fetch request), and
    the level asked for filters nothing: a worker at ``-l warn`` spent a tenth of its CPU
    there (py-spy during ``autopilot bench latency``, which runs it so).
    """

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None

    async def on_startup_finished(self) -> None:
        await super().on_startup_finished()
        # What the worker holds once started is the models' and Faust's own: frozen out of
        # the collector's walks, which otherwise stalled every decision (streams.runtime.heap).
        tune_collection(settings.gc_thresholds)
        _log_kernels()


def _log_kernels() -> None:
    """Say whether the models' kernels run compiled: a worker decides about twice as fast."""
    folder = native.loaded_from()
    if folder is not None:
        log.info("model kernels: compiled, from %s", folder)
    else:
        log.warning(
            "model kernels: plain Python (AUTOPILOT_NATIVE=%s; no build of these sources in "
            "%s): decisions are the same, about half as fast; `autopilot native build` "
            "compiles them",
            os.environ.get("AUTOPILOT_NATIVE", "auto"), native.cache_dir(),
        )  # fmt: skip


class AutopilotApp(faust.App):
    """Faust's app, whose stop and revocations do not wait for ever for messages no stream
    will process.

    At a stop and at a revocation, Faust suspends the streams, clears their buffers and
    waits until every message handed to a stream is acknowledged. A message two agents read
    (a decision read by the actions agent and the audit trail) is handed to both: if one has
    processed it and the other's copy was still in the cleared buffer, it is never
    acknowledged. A worker stopped so waited until it was killed (seen 30 s long on a worker
    stopped while it started on a backlog of decisions: the time the tests, or Kubernetes,
    give before a SIGKILL); one revoked so waited minutes, past the group's rebalance
    timeout, and the group went on without it (seen with a third worker joining mid-run).
    After :data:`STOP_WAIT_S` (:data:`REBALANCE_WAIT_S` at a revocation) the worker now
    commits what was acknowledged and goes on: the rest is read again, at the next start or
    by the partitions' next owner, as after a crash. This overrides a private method of the
    pinned faust-streaming.

    Its worker consumer fetches ``fetch_min_bytes`` or ``fetch_max_wait_ms`` at a time
    (:mod:`streams.runtime.fetching`), which Faust has no setting for.
    """

    def __init__(
        self, *args: Any, fetch_min_bytes: int = 1, fetch_max_wait_ms: int = 500, **kwargs: Any
    ) -> None:
        self.fetch_min_bytes = fetch_min_bytes
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.commit_barrier: Callable[[], AbstractAsyncContextManager[bool]] | None = None
        """What every offset commit runs in (:mod:`streams.runtime.commits`): the worker's
        checkpoints (:mod:`agents.runtime.checkpoints`)."""
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> BatchingTransport:
        return BatchingTransport(self.conf.broker_consumer, self)

    async def _consumer_wait_empty(self, consumer: ConsumerT, logger: Any) -> None:
        stopping = self.should_stop
        bound = STOP_WAIT_S if stopping else REBALANCE_WAIT_S
        waiting = asyncio.ensure_future(super()._consumer_wait_empty(consumer, logger))
        # Not asyncio.wait_for: faust's wait swallows the cancellation and goes on waiting.
        done, _ = await asyncio.wait({waiting}, timeout=bound)
        if not done:
            # Not ``logger``: at a revocation, faust passes its flight recorder, which logs
            # only if the whole revocation outlasts the session timeout.
            log.warning(
                "%s: %d of the messages handed to streams were not acknowledged in %.0f s;"
                " they will be read again %s",
                "stopping" if stopping else "revoking partitions", len(consumer.unacked), bound,
                "at the next start" if stopping else "from the committed offsets",
            )  # fmt: skip
            # Faust's own set of the messages it waits for: emptied, its wait ends within a
            # second, and commits what was acknowledged.
            consumer.unacked.clear()
        await waiting


settings = Settings.from_env()
topic_names = TopicNames(settings.topic_prefix)

COMMIT_INTERVAL_S = min(1.0, settings.checkpoint_interval_s)
"""Wall seconds between two offset commits, each with a slice of the checkpoints."""

app = AutopilotApp(
    settings.app_id,
    broker=settings.broker,
    broker_credentials=broker_credentials(settings),
    # Agents and commands are imported explicitly by the CLI: autodiscovery would
    # only log a warning for a module that fails to import, and run without it.
    autodiscover=False,
    origin="streams.runtime.app",
    Worker=QuietWorker,
    store="memory://",
    datadir=str(settings.data_dir / "{conf.name}"),
    topic_partitions=settings.partitions,
    topic_replication_factor=1,
    # Our producers send JSON bytes; agents decode and validate themselves so a
    # bad message becomes a DLQ record instead of a crashed stream.
    key_serializer="raw",
    value_serializer="raw",
    consumer_auto_offset_reset="earliest",
    web_port=settings.web_port,
    web_bind=settings.web_host,
    web_host=settings.web_host,
    producer_acks=-1,
    producer_linger_ms=5,
    # A commit writes the brains due (agents.runtime.checkpoints), each checkpoint round in
    # slices: on a timer, never by count.
    broker_commit_interval=COMMIT_INTERVAL_S,
    broker_commit_every=2**62,
    # A worker killed without leaving the group holds its partitions until its
    # session times out: 10 s bounds how long a failover between workers takes.
    broker_session_timeout=10.0,
    broker_heartbeat_interval=2.0,
    # Topics the worker creates at start-up can be missing from the metadata of its
    # first subscription; a short metadata age makes it pick them up within seconds
    # instead of aiokafka's default five minutes.
    consumer_metadata_max_age_ms=5000,
    # A fetch waits for this much, or this long: at a trickle, a fetch for every record or
    # two cost the worker more than twice a backlog's CPU a sample (streams.runtime.fetching).
    fetch_min_bytes=settings.fetch_min_bytes,
    fetch_max_wait_ms=settings.fetch_max_wait_ms,
    # Per partition. The consumer serves the partitions one fetched chunk at a time, so a
    # worker catching up on telemetry served a small internal topic (region evidence, the
    # budget parts, outcomes) only after a megabyte of every telemetry partition: its
    # evaluator fell behind its readers. A quarter of the default keeps them close.
    consumer_max_fetch_size=256 * 1024,
    table_cleanup_interval=60.0,
    stream_buffer_maxsize=8192,
    # A dead letter carries its payload base64-encoded, a third larger than the
    # largest message a producer could get onto a telemetry topic.
    producer_max_request_size=DLQ_MAX_MESSAGE_BYTES,
)


class _Topics:
    """Every Faust topic object, declared once. Telemetry is keyed ``service/region``."""

    def __init__(self, names: TopicNames, partitions: int) -> None:
        def declare(
            name: str, config: dict[str, str] | None = None, count: int = partitions
        ) -> faust.TopicT:
            # internal=True makes the worker create the topic at start-up with
            # our partition count, instead of silently ignoring a missing one.
            return app.topic(name, partitions=count, internal=True, config=config)

        self.metrics = declare(names.metrics)
        self.errors = declare(names.errors)
        self.interactions = declare(names.interactions)
        # Written by the interactions agent, keyed by tenant pseudonym (agents.tenants).
        self.interactions_by_tenant = declare(names.interactions_by_tenant)
        self.remediation_feedback = declare(names.remediation_feedback)
        # What the OpenTelemetry Collector's Kafka exporter writes (agents.otlp_metrics).
        self.otlp_metrics = declare(names.otlp_metrics)
        self.otlp_logs = declare(names.otlp_logs)
        # The workers' messages to one another (schemas.topics: the internal topics). A
        # decision over every partition has one evaluator: the owner of a one-partition topic.
        self.region_evidence = declare(names.region_evidence, count=1)
        self.budget_evidence = declare(names.budget_evidence, count=1)
        self.remediation_routing = declare(names.remediation_routing)
        self.remediation_outcomes = declare(names.remediation_outcomes)
        self.scaling = declare(names.scaling)
        self.failover = declare(names.failover)
        self.remediation = declare(names.remediation)
        self.dlq = declare(names.dlq, {"max.message.bytes": str(DLQ_MAX_MESSAGE_BYTES)})
        self.audit = declare(names.audit)
        # Kept for good: the trail is evidence, and a chain cut by retention no longer
        # verifies from its start (audit verify --from still checks what is left).
        self.audit_trail = declare(names.audit_trail, {"retention.ms": "-1"})
        # Compacted: the latest request per key stays, so a worker starting in a year still
        # learns of every erasure (agents.erasure).
        self.control = declare(names.control, {"cleanup.policy": "compact"})

    def every(self) -> list[faust.TopicT]:
        """Every topic the product reads or writes."""
        return [topic for topic in vars(self).values() if isinstance(topic, faust.TopicT)]

    def specs(self) -> list[tuple[str, int, dict[str, str]]]:
        """``(name, partitions, config)`` of every topic, to create them without a worker."""
        return [(t.get_topic_name(), t.partitions, dict(t.config or {})) for t in self.every()]


topics = _Topics(topic_names, settings.partitions)


async def declare_unless_stopping(*declared: faust.TopicT, service: Any = app) -> bool:
    """Create ``declared`` topics at start-up; ``False`` if the worker stopped meanwhile.

    A worker stopped while it starts stops its producer too, and faust raises
    ``NotReady`` for a topic declared then: a task or agent declaring its topics exited
    the worker with a crash instead of a stop.
    """
    for topic in declared:
        if service.should_stop:
            return False
        try:
            await topic.maybe_declare()
        except NotReady:
            if service.should_stop:
                return False
            raise
    return True


@app.task
async def declare_topics() -> None:
    """Create every topic at start-up, not at its first record.

    A consumer of decisions (``autopilot tail``, a dashboard, an actuator) started before
    the first decision of a kind would otherwise log that its topic does not exist.
    """
    await declare_unless_stopping(*topics.every())

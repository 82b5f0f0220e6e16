"""The simulator's closed loop: outcomes for the remediation decisions the worker emits.

:func:`run_outcomes` reads ``decisions.remediation`` and answers every ``remediation``
decision that a scripted incident explains. The incident is found in the simulator's ground
truth (``autopilot simulate --ground-truth``): an ``error_burst`` on the decision's service
and region whose window holds the decision's time. Its fault type, never anything the
decision says, selects the hidden success probabilities of
:data:`streams.lab.bench.remediation.FAULT_MODELS` (the best action works with probability 0.95,
the second-best 0.6, ``open_incident`` 0.3, any other 0.1, as in ``autopilot bench
remediation``); the outcome, drawn with that probability, is published to
``feedback.remediation`` keyed by the decision id. Decisions no incident explains are
counted and left unanswered: there is no truth to draw their outcome from.

Each draw is a function of the seed and the decision id, so a decision read twice gets the
same outcome, and a rerun with the same seed answers like the first run.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from schemas import Decision, RemediationOutcome
from schemas.topics import TopicNames
from streams.lab.bench.remediation import FAULT_MODELS

__all__ = [
    "BurstIncident",
    "OutcomeSummary",
    "load_incidents",
    "match_incident",
    "outcome_for",
    "run_outcomes",
    "success_probability",
]

P_BEST, P_SECOND, P_OPEN, P_OTHER = 0.95, 0.6, 0.3, 0.1
"""Success probabilities of the best, second-best, ``open_incident`` and any other action."""
# A burst is detected on one of the incident's errors; the slack only absorbs the
# spread of error timestamps around the window's edges within a tick.
MATCH_SLACK_S = 30.0


def success_probability(fault_type: str, action: str) -> float:
    """The hidden probability that ``action`` fixes an incident of ``fault_type``.

    Examples
    --------
    >>> success_probability("db_connection_pool_exhausted", "scale_out")
    0.95
    >>> success_probability("db_connection_pool_exhausted", "open_incident")
    0.3
    """
    model = FAULT_MODELS[fault_type]
    if action == model.best:
        return P_BEST
    if action == model.second:
        return P_SECOND
    return P_OPEN if action == "open_incident" else P_OTHER


@dataclass(frozen=True, slots=True)
class BurstIncident:
    """An ``error_burst`` of the ground truth: which fault, where, and when (event time)."""

    fault_type: str
    service: str
    region: str
    onset_ts: float
    end_ts: float


def load_incidents(truth: Mapping[str, Any]) -> list[BurstIncident]:
    """The error bursts of a ground-truth document written by ``autopilot simulate``.

    Examples
    --------
    >>> truth = {"incidents": [
    ...     {"type": "load_surge", "service": "search", "region": None,
    ...      "onset_ts": 10.0, "end_ts": 20.0},
    ...     {"type": "error_burst", "service": "checkout", "region": "eu-west",
    ...      "onset_ts": 420.0, "end_ts": 600.0, "fault_type": "disk_full"}]}
    >>> load_incidents(truth)  # doctest: +NORMALIZE_WHITESPACE
    [BurstIncident(fault_type='disk_full', service='checkout', region='eu-west',
                   onset_ts=420.0, end_ts=600.0)]
    """
    return [
        BurstIncident(
            str(inc["fault_type"]),
            str(inc["service"]),
            str(inc["region"]),
            float(inc["onset_ts"]),
            float(inc["end_ts"]),
        )
        for inc in truth.get("incidents", ())
        if inc.get("type") == "error_burst"
    ]


def match_incident(
    decision: Decision, incidents: Sequence[BurstIncident], slack_s: float = MATCH_SLACK_S
) -> BurstIncident | None:
    """The incident on the decision's service and region whose window holds its time."""
    service, region = decision.subject.get("service"), decision.subject.get("region")
    for incident in incidents:
        if (
            incident.service == service
            and incident.region == region
            and incident.onset_ts - slack_s <= decision.ts <= incident.end_ts + slack_s
        ):
            return incident
    return None


def outcome_for(
    decision: Decision, incident: BurstIncident, seed: int, ts: float
) -> RemediationOutcome:
    """The simulated outcome of ``decision`` for ``incident``, observed at ``ts``.

    Examples
    --------
    >>> from schemas import Decision
    >>> d = Decision("a" * 32, "remediation", 500.0, {"service": "checkout", "region": "eu-west"},
    ...              "scale_out", {}, "recommend", 0.5, "r", {}, "m")
    >>> inc = BurstIncident("db_connection_pool_exhausted", "checkout", "eu-west", 420.0, 600.0)
    >>> o = outcome_for(d, inc, seed=0, ts=1.0)
    >>> o.decision_id == d.decision_id, o == outcome_for(d, inc, seed=0, ts=1.0)
    (True, True)
    """
    draw = random.Random(f"{seed}/{decision.decision_id}").random()
    success = draw < success_probability(incident.fault_type, decision.action)
    return RemediationOutcome(decision.decision_id, ts, success)


@dataclass(slots=True)
class OutcomeSummary:
    """What a run of :func:`run_outcomes` read and answered."""

    read: int = 0
    answered: int = 0
    successes: int = 0
    unmatched: int = 0
    other_kinds: int = 0
    by_fault: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, for the CLI."""
        return {
            "read": self.read,
            "answered": self.answered,
            "successes": self.successes,
            "unmatched": self.unmatched,
            "other_kinds": self.other_kinds,
            "by_fault": dict(self.by_fault),
            "actions": dict(self.actions),
        }

    def describe(self) -> str:
        """One line for a person."""
        faults = ", ".join(f"{f} {n}" for f, n in sorted(self.by_fault.items())) or "none"
        return (
            f"answered {self.answered} remediation decisions ({self.successes} succeeded) of "
            f"{self.read} read; {self.unmatched} matched no incident of the ground truth, "
            f"{self.other_kinds} were other kinds; by fault type: {faults}"
        )


async def _answer(
    value: bytes | None,
    incidents: Sequence[BurstIncident],
    seed: int,
    clock: Callable[[], float],
    producer: AIOKafkaProducer,
    topics: TopicNames,
    summary: OutcomeSummary,
) -> None:
    """Publish the outcome of one decision read, if an incident explains it; count it."""
    summary.read += 1
    decision = Decision.from_bytes(value or b"")
    if decision.kind != "remediation":
        summary.other_kinds += 1
        return
    incident = match_incident(decision, incidents)
    if incident is None:
        summary.unmatched += 1
        return
    outcome = outcome_for(decision, incident, seed, clock())
    await producer.send_and_wait(
        topics.remediation_feedback,
        orjson.dumps(outcome.to_dict()),
        key=outcome.decision_id.encode(),
    )
    summary.answered += 1
    summary.successes += outcome.success
    summary.by_fault[incident.fault_type] += 1
    summary.actions[decision.action] += 1


async def run_outcomes(
    *,
    bootstrap_servers: str,
    topics: TopicNames,
    truth: Mapping[str, Any],
    group_id: str,
    seed: int = 0,
    limit: int = 0,
    timeout_s: float | None = None,
    clock: Callable[[], float] = time.time,
    security: Mapping[str, Any] | None = None,
) -> OutcomeSummary:
    """Answer remediation decisions with simulated outcomes until ``limit`` or ``timeout_s``.

    Parameters
    ----------
    bootstrap_servers
        The broker, ``host:port[,host:port]``.
    topics
        Where decisions are read and outcomes written.
    truth
        The ground truth of the simulation run that caused the decisions.
    group_id
        Consumer group: its committed offsets make a rerun carry on where the last stopped.
    seed
        Seed of the outcome draws.
    limit
        Stop after answering this many decisions; 0 for no limit.
    timeout_s
        Stop after this many seconds; ``None`` for no limit.
    clock
        Wall-clock seconds, the outcomes' observation time.
    security
        aiokafka keyword arguments for a TLS or SASL broker, as made by
        :meth:`streams.runtime.settings.Settings.aiokafka_security_kwargs`.
    """
    incidents = load_incidents(truth)
    summary = OutcomeSummary()
    consumer = AIOKafkaConsumer(
        topics.remediation,
        bootstrap_servers=bootstrap_servers,
        group_id=group_id,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **(security or {}),
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", **(security or {}))
    await consumer.start()
    await producer.start()
    loop = asyncio.get_running_loop()
    deadline = None if timeout_s is None else loop.time() + timeout_s
    try:
        while not (limit and summary.answered >= limit):
            wait_s = 1.0 if deadline is None else min(1.0, deadline - loop.time())
            if wait_s <= 0:
                break
            batch = await consumer.getmany(timeout_ms=int(wait_s * 1000))
            # Only what was handled is committed: a batch cut short by the limit leaves
            # its rest for the next run.
            done: dict[TopicPartition, OffsetAndMetadata] = {}
            for tp, message in ((tp, m) for tp, messages in batch.items() for m in messages):
                if limit and summary.answered >= limit:
                    break
                await _answer(message.value, incidents, seed, clock, producer, topics, summary)
                done[tp] = OffsetAndMetadata(message.offset + 1, "")
            if done:
                await consumer.commit(done)
    finally:
        await producer.stop()
        await consumer.stop()
    return summary

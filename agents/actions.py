"""The actions agent: each decision handed, once, to the action plugins bound to its kind.

The bindings are the worker's (:mod:`agents.runtime.plugins`): the plugins file's
``[[actions]]`` tables, changed at run time by control records (``autopilot plugins bind
actions ...``). While no action is bound, a decision costs the agent one check. It runs
besides the actuator, whether that is
on or not: an action (a webhook, a ticket) is told of every decision, ``recommend`` ones
included, and the actuator's dry run does not apply to it.

Each call is counted in ``autopilot_action_calls_total{plugin, outcome}`` and gets one
record on ``actions.audit`` (keyed by ``decision_id``, ``outcome`` ``applied`` or
``failed``, with ``plugin`` set, which the decision console does not take for the
actuator's answer). The calls themselves are made by :class:`streams.actuate.actions.ActionRunner`,
off the event loop and with a timeout; no plugin error stops the agent.

Once per decision: the decisions handed on per subject (the last 256) live in the Faust
table ``action-calls``, keyed like the decision topics (``service/region``, or the region),
and written only while a decision is handled, so that whoever consumes a decision partition
after a restart or rebalance has its entries (as the actuator's ``actuator-decisions``). A
decision is written down there before its actions are called: a crash between the two
leaves it uncalled rather than called twice.
"""

from __future__ import annotations

import logging
import time

from agents.compat.offsets import ordered
from agents.runtime.plugins import plugins
from agents.runtime.publish import subject_key
from models.policy.actuation import DecisionMemory, action_call_record, decode_decision
from streams.actuate.actions import ActionRunner
from streams.runtime.app import app, declare_unless_stopping, settings, topic_names, topics
from streams.runtime.exporter import ACTION_CALLS, record_action_call

__all__ = ["actions"]

log = logging.getLogger(__name__)


class _Actions:
    """The agent's state: the bound actions and the table of decisions handed on."""

    def __init__(self) -> None:
        self.runner = ActionRunner(plugins.bindings)
        for plugin in self.runner.plugins:
            # At 0 from the start, so that a dashboard's rate() sees the first failure.
            for outcome in ("success", "failure"):
                ACTION_CALLS.labels(plugin, outcome)
        self.handed = app.Table(
            "action-calls", key_type=bytes, value_type=bytes, partitions=settings.partitions
        )

    async def handle(self, key: bytes | None, value: bytes | None) -> None:
        """Hand one message of a decision topic to its actions, unless it was already."""
        if not self.runner.plugins:
            return  # no action bound: not worth decoding
        decision = decode_decision(value)
        if isinstance(decision, str):
            # The actuator and the audit trail account for what is not a decision.
            log.debug("actions: not a decision: %s", decision)
            return
        if not self.runner.serves(decision.kind):
            # Nothing to hand it to: not worth a changelog write.
            return
        subject = key or subject_key(decision)
        memory = DecisionMemory.from_bytes(self.handed.get(subject))
        if memory.get(decision.decision_id) is not None:
            return
        memory.remember(decision.decision_id, "handed", time.time())
        self.handed[subject] = memory.to_bytes()
        for plugin, result in await self.runner.call(decision.to_dict(), decision.kind):
            record_action_call(plugin, result.ok)
            record = action_call_record(decision, plugin, result.ok, result.detail, time.time())
            # Awaited, as the actuator's: a call the audit topic did not receive is not
            # accounted for.
            audit_key = decision.decision_id.encode()
            await (await topics.audit.send(key=audit_key, value=record.to_bytes()))
            log.log(
                logging.INFO if result.ok else logging.WARNING,
                "action %s: %s %s:%s -> %s (%s)",
                plugin, decision.decision_id, decision.kind, decision.action, record.outcome,
                result.detail,
            )  # fmt: skip

    async def run(self, stream) -> None:
        """Hand on every decision of ``stream``."""
        if self.runner.plugins:
            log.warning("actions on: %s", ", ".join(self.runner.plugins))
        if not await declare_unless_stopping(topics.audit):
            return
        # In their partition's order, also after faust dropped some at a restart.
        async for event in ordered("actions", stream):
            try:
                await self.handle(event.key, event.value)
            except Exception:
                # A bug (or the broker refusing the audit record) costs one decision's
                # actions, not the agent and with it the worker.
                log.exception("actions: failed on a message of %s", event.message.topic)


_actions = _Actions()
_decisions = app.topic(
    topic_names.scaling,
    topic_names.failover,
    topic_names.remediation,
    partitions=settings.partitions,
    internal=True,
)


@app.agent(_decisions, name="actions")
async def actions(stream) -> None:
    await _actions.run(stream)

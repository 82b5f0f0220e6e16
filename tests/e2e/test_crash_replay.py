"""Effectively once on the real broker (issue #24): a worker killed with SIGKILL again and
again makes the decisions of an uninterrupted worker, every kind under the same ids, never
one again under a new id, gives no id to two decisions, and its actuator applies each
scaling decision once: no AWS call twice, none missing, none refused as superseded, every
decision audited.

How: the ``mixed`` scenario is simulated once, as fast as it goes, under one topic prefix
and copied record for record (partition, key, value, timestamp) under a second one, so that
both runs read byte-identical input. One worker reads the first copy without interruption.
Workers of the second copy are killed with SIGKILL at ``AUTOPILOT_CRASH_KILLS`` points (20
unless set, as issue #24 asks) spread evenly over the group's committed progress, every
other one just after a new decision was published;
each is restarted, on the same data directory, and must commit more input before the next
kill. Both runs apply their scaling decisions through the actuator to a moto server, whose
request recorder counts the AWS calls that really reached it (the audit topic cannot show a
call whose worker died before its audit record).

A summary of what differs is printed, logged and recorded before the assertions: kills,
decisions per kind in each run, ids found in one run only, ids published more than once,
repeats under new ids (one decision's identity under two ids) and actions applied twice.
``AUTOPILOT_CRASH_KILLS=0`` makes the second run uninterrupted too: what differs then is not
the crashes' doing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from schemas import Decision
from schemas.topics import TopicNames
from tests.conftest import WorkerProcess, simulate, wait_progressing, wait_until
from tests.support.aws import MotoServer, make_asg, set_asg_desired
from tests.support.consumer_group import (
    end_offsets,
    group_of,
    offsets,
    wait_all_committed,
)
from tests.support.worker_views import FAST_CHECKPOINTS, decisions, identity, read_records

pytestmark = pytest.mark.kafka

log = logging.getLogger(__name__)

KILLS = int(os.environ.get("AUTOPILOT_CRASH_KILLS", "20"))
SERVICES = ("checkout", "search", "catalog")
REGIONS = ("us-east", "eu-west", "ap-south")
# One Auto Scaling group per series, at 0 when each run starts.
GROUPS = tuple(f"{service}-{region}" for service in SERVICES for region in REGIONS)
# The decisions the mapping lets the actuator apply: the scaling ones, which `mixed` makes
# in mode auto (failovers and remediations are recommendations there).
APPLIED = ("scaling:scale_out", "scaling:scale_in")
# A killed worker holds its partitions for its session (10 s), then its successor rejoins
# and restores the changelogs: on a loaded 2-core machine that takes a while. Only a
# standstill this long fails the test; it is not a speed claim.
STALL_S = 150.0
# Decisions trail the input (region health and remediation go through internal topics, and
# the budgets wait to hear from every metrics partition: an empty one speaks after 30 s, on
# a 10 s timer, agents.cost): a run is over once nothing more has been published for this
# long.
QUIET_S = 45.0
# A kill "after a detection" waits at most this long for a new decision.
DECISION_WAIT_S = 5.0
# Decisions listed per difference in the summary; the counts are always complete.
LISTED = 15


def simulated(names: TopicNames) -> tuple[str, ...]:
    """The topics ``autopilot simulate`` writes; the other inputs stay empty."""
    return (names.metrics, names.errors, names.interactions)


async def _copy(bootstrap: str, source: TopicNames, target: TopicNames) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    await producer.start()
    try:
        for origin, copy in zip(simulated(source), simulated(target), strict=True):
            for m in await read_records(bootstrap, origin):
                await producer.send(
                    copy, m.value, key=m.key, partition=m.partition,
                    timestamp_ms=m.timestamp, headers=list(m.headers),
                )  # fmt: skip
        await producer.flush()
    finally:
        await producer.stop()


def ends_of(bootstrap: str, names: TopicNames, topics: tuple[str, ...]) -> dict[tuple, int]:
    """End offset of each (topic without prefix, partition) of ``topics``."""
    ends = end_offsets(bootstrap, topics)
    return {(tp.topic.removeprefix(names.prefix), tp.partition): end for tp, end in ends.items()}


def progress(bootstrap: str, names: TopicNames) -> int:
    """Simulated records the group has committed: how far the run is, kills included."""
    committed, _ = offsets(bootstrap, group_of(names), simulated(names))
    return sum(max(0, offset) for offset in committed.values())


def published(bootstrap: str, names: TopicNames, topics: tuple[str, ...]) -> int:
    """Messages on ``topics`` so far."""
    return sum(ends_of(bootstrap, names, topics).values())


def wait_progress(bootstrap: str, names: TopicNames, target: int, worker: WorkerProcess) -> None:
    """Wait until the group has committed ``target`` simulated records; fail on a standstill."""
    wait_progressing(
        lambda: progress(bootstrap, names), target, STALL_S,
        lambda: f"{worker.log_path.name} did not go on; log tail: {worker.log()[-2000:]}",
    )  # fmt: skip


def wait_finished(bootstrap: str, names: TopicNames, total: int, worker: WorkerProcess) -> int:
    """Wait until the group has committed all input, nothing more is being published and the
    actuator has audited every decision, or stands still: how many it never audited (the
    test fails on them once its summary is out)."""
    wait_progress(bootstrap, names, total, worker)
    wait_all_committed(bootstrap, names)
    last = {"count": -1, "since": time.monotonic()}

    def quiet() -> bool:
        count = published(bootstrap, names, names.decisions())
        if count != last["count"]:
            last.update(count=count, since=time.monotonic())
        return time.monotonic() - last["since"] >= QUIET_S

    wait_until(quiet, 300, "decisions kept being published", interval=0.5)
    # The actuator audits every message of the decision topics it reads, and trails them by
    # far more than a quiet spell: a call a decision. It is done when every decision id has
    # an audit record (counts would not do: a replay audits a decision again, `duplicate`).
    acted_topics = (names.scaling, names.failover, names.remediation)
    acted_on = {d.decision_id for topic in acted_topics for d in decisions(bootstrap, topic)}

    def unaudited() -> str:
        missing = acted_on - audited(bootstrap, names)
        where = sorted(
            (r.topic.removeprefix(names.prefix), r.partition, r.offset)
            for topic in acted_topics
            for r in asyncio.run(read_records(bootstrap, topic))
            if orjson.loads(r.value)["decision_id"] in missing
        )
        committed, ends = offsets(bootstrap, group_of(names), acted_topics)

        def short(found: dict) -> list:
            return sorted((tp.topic.removeprefix(names.prefix), tp.partition, o)
                          for tp, o in found.items())  # fmt: skip

        return (
            f"{len(missing)} decisions never audited, first at {where[:10]}; the group's "
            f"committed offsets {short(committed)}, ends {short(ends)}; "
            f"log tail: {worker.log()[-1500:]}"
        )

    try:
        wait_progressing(
            lambda: len(acted_on & audited(bootstrap, names)), len(acted_on), STALL_S, unaudited
        )
    except AssertionError:
        log.warning("the actuator stood still: %s", unaudited())
    return len(acted_on - audited(bootstrap, names))


def audit_records(bootstrap: str, names: TopicNames) -> list[dict]:
    """The records of ``actions.audit``."""
    return [orjson.loads(r.value) for r in asyncio.run(read_records(bootstrap, names.audit))]


def audited(bootstrap: str, names: TopicNames) -> set[str]:
    """The decision ids ``actions.audit`` has a record of."""
    return {r.get("decision_id") for r in audit_records(bootstrap, names)}


def all_decisions(bootstrap: str, names: TopicNames) -> list[Decision]:
    return [d for topic in names.decisions() for d in decisions(bootstrap, topic)]


def actuation_env(aws: MotoServer, tmp_path: Path) -> dict[str, str]:
    """The actuator on, applying scaling to one Auto Scaling group per service and region."""
    regions = ", ".join(f'{r} = "us-east-1"' for r in REGIONS)
    services = "".join(
        f'[services.{s}]\ntarget = "asg"\nresources = {{ '
        + ", ".join(f'{r} = "{s}-{r}"' for r in REGIONS)
        + " }\n\n"
        for s in SERVICES
    )
    mapping = tmp_path / "actuation.toml"
    # One attempt a call, so that every request recorded is one application; a rate limit
    # no run reaches, so that no scaling decision is refused.
    mapping.write_text(
        f"aws_regions = {{ {regions} }}\n\n{services}"
        f"[allow]\nactions = {list(APPLIED)}\n"
        'resources = ["autoscaling:us-east-1:*"]\n\n'
        "[rate_limit]\nmax_actions = 10000\nwindow_s = 1\n\n"
        "[retry]\nmax_attempts = 1\n"
    )
    for group in GROUPS:
        make_asg(group, 0)
    return {
        **aws.env(),
        "AUTOPILOT_ACTUATOR": "on",
        "AUTOPILOT_ACTUATOR_DRY_RUN": "false",
        "AUTOPILOT_ACTUATOR_CONFIG": str(mapping),
    }


def calls_made(aws: MotoServer) -> Counter:
    """(Auto Scaling group, desired capacity) -> SetDesiredCapacity requests moto received."""
    return Counter(
        (form["AutoScalingGroupName"][0], int(form["DesiredCapacity"][0]))
        for _, form in aws.recorded()
        if form.get("Action") == ["SetDesiredCapacity"]
    )


def calls_wanted(found: list[Decision]) -> dict[tuple[str, int], set[str]]:
    """(Auto Scaling group, desired capacity) -> ids of the decisions that ask for it."""
    wanted: dict[tuple[str, int], set[str]] = defaultdict(set)
    for d in found:
        if d.mode == "auto" and f"{d.kind}:{d.action}" in APPLIED:
            group = f"{d.subject['service']}-{d.subject['region']}"
            wanted[(group, d.params["desired_replicas"])].add(d.decision_id)
    return wanted


def superseded(bootstrap: str, names: TopicNames) -> set[str]:
    """The decision ids the actuator refused ``superseded``: read after a newer decision
    for the same call, they are not to be applied."""
    records = audit_records(bootstrap, names)
    return {r["decision_id"] for r in records if r.get("code") == "superseded"}


def application(found: list[Decision], calls: Counter, refused: set[str]) -> dict[str, int]:
    """Calls compared with decisions, per (group, capacity): the request names no decision,
    so where several decisions ask one group for one capacity they are counted together.
    Decisions ``refused`` as superseded are not wanted."""
    wanted = {key: ids - refused for key, ids in calls_wanted(found).items() if ids - refused}
    keys = wanted.keys() | calls.keys()
    return {
        "superseded": len(refused),
        "decisions_to_apply": sum(len(ids) for ids in wanted.values()),
        "calls": sum(calls.values()),
        "applied_twice": sum(max(0, calls[k] - len(wanted.get(k, ()))) for k in keys),
        "never_applied": sum(max(0, len(wanted.get(k, ())) - calls[k]) for k in keys),
        "shared_capacities": sum(1 for ids in wanted.values() if len(ids) > 1),
    }


def conflicting(found: list[Decision]) -> dict[str, set[tuple]]:
    """Ids that name two different decisions (kind, subject, action, params)."""
    seen: dict[str, set[tuple]] = defaultdict(set)
    for d in found:
        subject = tuple(sorted(d.subject.items()))
        seen[d.decision_id].add((d.kind, subject, d.action, repr(sorted(d.params.items()))))
    return {i: what for i, what in seen.items() if len(what) > 1}


def repeats_under_new_ids(found: list[Decision]) -> dict[tuple, set[str]]:
    """One decision's identity (:func:`identity`) under more than one id."""
    ids: dict[tuple, set[str]] = defaultdict(set)
    for d in found:
        ids[identity(d)].add(d.decision_id)
    return {key: i for key, i in ids.items() if len(i) > 1}


def describe(d: Decision) -> str:
    about = d.params.get("metric") or d.params.get("rule") or orjson.dumps(d.params).decode()
    subject = "/".join(d.subject.values())
    line = f"{d.kind} {subject} ts={d.ts:.3f} {d.action} {about[:80]} {d.decision_id[:12]}"
    if d.kind == "slo_burn":
        # What the burn was judged on: a replay learned twice counts more requests.
        window = d.evidence["long"]
        line += (
            f" (long window {window['good']}/{window['total']} good over {window['covered_s']} s)"
        )
    return line


def listed(label: str, lines: list[str]) -> list[str]:
    """``lines`` under ``label``, the first ``LISTED`` of them: enough to see the pattern."""
    if not lines:
        return []
    more = [f"    ... and {len(lines) - LISTED} more"] if len(lines) > LISTED else []
    return [f"  {label} ({len(lines)}):", *(f"    {line}" for line in lines[:LISTED]), *more]


# What the workers' logs say of their reading (agents.compat.offsets), counted per run: a
# failure's summary then says whether messages went missing on their way.
READING_NOTES = {
    "gaps read again": "were dropped on their way; reading them first",
    "partitions sought back by the watchdog": "were dropped unprocessed and",
    "gaps given up": "were skipped and not read again",
}


def log_digest(run: str, logs: list[Path]) -> list[str]:
    """One line of counts of ``READING_NOTES`` and errors in a run's worker logs, and the
    errors and gaps given up themselves."""
    counts = dict.fromkeys((*READING_NOTES, "errors"), 0)
    shown: list[str] = []
    for path in logs:
        for line in path.read_text(errors="replace").splitlines():
            notes = [name for name, text in READING_NOTES.items() if text in line]
            if "[ERROR]" in line:
                notes.append("errors")
            for name in notes:
                counts[name] += 1
                if name in ("errors", "gaps given up"):
                    shown.append(f"{path.stem}: {line.split('] ', 3)[-1][:200]}")
    counted = ", ".join(f"{count} {name}" for name, count in counts.items())
    return [f"{run} worker logs: {counted}", *listed("errors and gaps given up", shown)]


def summary(
    kills: list[dict], runs: dict[str, list[Decision]], applied: dict[str, dict[str, int]]
) -> tuple[str, dict[str, object]]:
    """A readable account of what differs between the runs, and its figures."""
    plain, killed = runs["uninterrupted"], runs["killed"]
    by_id = {d.decision_id: d for d in (*plain, *killed)}
    kinds = sorted({d.kind for d in by_id.values()})
    ids = {
        run: {k: {d.decision_id for d in found if d.kind == k} for k in kinds}
        for run, found in runs.items()
    }
    lines = [f"kills: {len(kills)} of {KILLS}"]
    lines += [
        f"  kill {k['n']}: {k['progress']} of {k['total']} records committed"
        f"{', just after a decision' if k['after_decision'] else ''}"
        for k in kills
    ]
    figures: dict[str, object] = {"kills": len(kills)}
    for kind in kinds:
        only_plain = ids["uninterrupted"][kind] - ids["killed"][kind]
        only_killed = ids["killed"][kind] - ids["uninterrupted"][kind]
        lines.append(
            f"{kind}: {len(ids['uninterrupted'][kind])} uninterrupted, "
            f"{len(ids['killed'][kind])} killed; {len(only_plain)} only uninterrupted, "
            f"{len(only_killed)} only killed"
        )
        for label, only in (("only uninterrupted", only_plain), ("only killed", only_killed)):
            lines += listed(label, sorted(describe(by_id[i]) for i in only))
        figures[f"{kind}_missing"] = len(only_plain)
        figures[f"{kind}_extra"] = len(only_killed)
    for run, found in runs.items():
        again = len(found) - len({d.decision_id for d in found})
        repeats = repeats_under_new_ids(found)
        clashes = conflicting(found)
        lines.append(
            f"{run}: {len(found)} published, {again} published again under their id, "
            f"{sum(len(i) - 1 for i in repeats.values())} repeats under new ids, "
            f"{len(clashes)} ids naming two decisions"
        )
        lines += listed(
            "repeats under new ids",
            [" / ".join(describe(by_id[i]) for i in sorted(ids)) for ids in repeats.values()],
        )
        lines += listed(
            "ids naming two decisions", [f"{i[:12]}: {sorted(w)}" for i, w in clashes.items()]
        )
        lines.append(f"{run} actuator: {applied[run]}")
        figures[f"{run}_published_again"] = again
        figures[f"{run}_repeats_under_new_ids"] = sum(len(i) - 1 for i in repeats.values())
        figures[f"{run}_conflicting_ids"] = len(clashes)
        figures.update({f"{run}_{name}": value for name, value in applied[run].items()})
    return "\n".join(lines), figures


def killed_run(
    start: Callable[[dict[str, str], str], WorkerProcess],
    bootstrap: str,
    names: TopicNames,
    total: int,
) -> tuple[list[dict], WorkerProcess]:
    """Run workers on ``names``, killing one at each of ``KILLS`` points; the last runs on."""
    worker = start("killed-0")
    kills: list[dict] = []
    reached = 0
    for n in range(1, KILLS + 1):
        # Evenly over the input, and past the previous kill: each worker does some work.
        target = min(total, max(total * n // (KILLS + 1), reached + 1))
        wait_progress(bootstrap, names, target, worker)
        # Every other kill lands within a second of a detection: the decision is out, and the
        # state and offsets that say so may not be.
        after_decision = False
        if n % 2 == 0:
            before = published(bootstrap, names, names.decisions())
            deadline = time.monotonic() + DECISION_WAIT_S
            while not after_decision and time.monotonic() < deadline:
                after_decision = published(bootstrap, names, names.decisions()) > before
        worker.stop(signal.SIGKILL)
        reached = progress(bootstrap, names)
        kills.append(
            {"n": n, "progress": reached, "total": total, "after_decision": after_decision}
        )
        log.info("kill %d at %d of %d records committed", n, reached, total)
        worker = start(f"killed-{n}")
    return kills, worker


def test_a_worker_killed_again_and_again_decides_and_acts_as_one_never_killed(
    start_worker, kafka_bootstrap, topic_names, tmp_path, aws, record_property
) -> None:
    plain, crashed = topic_names, TopicNames(f"{topic_names.prefix}killed.")
    bootstrap = kafka_bootstrap
    # The simulator's event times end near now, so it runs once; its copy is the same bytes.
    simulate(
        {**os.environ, "AUTOPILOT_BROKER": f"kafka://{bootstrap}", "AUTOPILOT_PARTITIONS": "4",
         "AUTOPILOT_TOPIC_PREFIX": plain.prefix},
        tmp_path, "--scenario", "mixed", "--speed", "0",
    )  # fmt: skip
    asyncio.run(_copy(bootstrap, plain, crashed))
    assert ends_of(bootstrap, crashed, simulated(crashed)) == ends_of(
        bootstrap, plain, simulated(plain)
    )
    total = sum(ends_of(bootstrap, plain, simulated(plain)).values())
    env = FAST_CHECKPOINTS | actuation_env(aws, tmp_path)

    def env_of(names: TopicNames, run: str) -> dict[str, str]:
        # A restart keeps its data directory, as a restarted machine would.
        return env | {
            "AUTOPILOT_TOPIC_PREFIX": names.prefix,
            "AUTOPILOT_DATA_DIR": str(tmp_path / f"{run}-data"),
        }

    aws.record()
    worker = start_worker(env_of(plain, "uninterrupted"), name="uninterrupted")
    unaudited = {"uninterrupted": wait_finished(bootstrap, plain, total, worker)}
    worker.stop()
    runs = {"uninterrupted": all_decisions(bootstrap, plain)}
    applied = {
        "uninterrupted": application(
            runs["uninterrupted"], calls_made(aws), superseded(bootstrap, plain)
        )
    }

    # The killed run starts from the groups the uninterrupted one did: a worker killed
    # between a decision's record and its call reconciles by the group's capacity, which the
    # uninterrupted run may have left at the very value (a call seen as made, and not made).
    for group in GROUPS:
        set_asg_desired(group, 0)
    aws.record()
    kills, worker = killed_run(
        lambda name: start_worker(env_of(crashed, "killed"), name=name), bootstrap, crashed, total
    )
    unaudited["killed"] = wait_finished(bootstrap, crashed, total, worker)
    runs["killed"] = all_decisions(bootstrap, crashed)
    applied["killed"] = application(runs["killed"], calls_made(aws), superseded(bootstrap, crashed))

    for run, count in unaudited.items():
        applied[run]["never_audited"] = count
    text, figures = summary(kills, runs, applied)
    # Each worker logs to <name>.log in the test's directory (tests.conftest.spawn_worker).
    logs = {"uninterrupted": [tmp_path / "uninterrupted.log"]}
    logs["killed"] = [tmp_path / f"killed-{n}.log" for n in range(len(kills) + 1)]
    text += "".join(f"\n{line}" for run in logs for line in log_digest(run, logs[run]))
    print(f"\n{text}")
    log.info("crash replay:\n%s", text)
    record_property("summary", text)
    for name, value in figures.items():
        record_property(name, value)

    for run, found in runs.items():
        assert conflicting(found) == {}, f"{run}: a decision id names two decisions"
        assert repeats_under_new_ids(found) == {}, f"{run}: a decision came again under a new id"
    for run, actuator in applied.items():
        assert actuator["never_audited"] == 0, f"{run}: the actuator did not audit every decision"
        assert actuator["never_applied"] == 0, f"{run}: a decision was never applied"
        assert actuator["applied_twice"] == 0, f"{run}: a decision was applied twice"
        assert actuator["superseded"] == 0, f"{run}: a decision was read after a newer one"
    kinds = {d.kind for found in runs.values() for d in found}
    for kind in sorted(kinds):
        assert {d.decision_id for d in runs["killed"] if d.kind == kind} == {
            d.decision_id for d in runs["uninterrupted"] if d.kind == kind
        }, f"{kind}: the killed run's decision ids differ from the uninterrupted run's"

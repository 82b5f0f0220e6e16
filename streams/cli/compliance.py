"""``autopilot audit verify``, ``autopilot erase`` and ``autopilot report compliance``.

They talk to the broker with the worker's settings (``AUTOPILOT_BROKER``, the topic prefix,
TLS and SASL) and need no running worker, except for the PII counts of the report, read from
the workers' ``/metrics``.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import click
import orjson

from streams.cli.params import TIMESTAMP

__all__ = ["audit", "erase", "report"]


async def _assigned(consumer: Any, wait_s: float = 10.0) -> list[Any]:
    """The consumer's partitions, once it has them (its first metadata may lag the topic)."""
    deadline = time.monotonic() + wait_s
    while not consumer.assignment() and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    return sorted(consumer.assignment())


async def read_trail(
    topic: str, start: float | None = None, end: float | None = None
) -> tuple[list[tuple[int, int, bytes | None]], dict[int, bool]]:
    """The messages of ``topic`` appended in ``[start, end]`` (broker timestamps), per
    partition in offset order, and whether each partition was read from its first entry."""
    from aiokafka import AIOKafkaConsumer

    from streams.runtime.app import settings

    security = settings.aiokafka_security_kwargs()
    probe = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, **security)
    await probe.start()
    try:
        # Asked first: subscribing to a missing topic would have the broker create it.
        if topic not in await probe.topics():
            return [], {}
    finally:
        await probe.stop()
    # No group: the consumer is given every partition of the topic.
    consumer = AIOKafkaConsumer(
        topic, group_id=None, bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False, **security,
    )  # fmt: skip
    await consumer.start()
    try:
        tps = await _assigned(consumer)
        if not tps:
            return [], {}
        firsts = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        starts = dict(firsts)
        if start is not None:
            found = await consumer.offsets_for_times({tp: int(start * 1000) for tp in tps})
            starts = {tp: ends[tp] if found[tp] is None else found[tp].offset for tp in tps}
        anchored = {tp.partition: starts[tp] == 0 for tp in tps}
        messages: list[tuple[int, int, bytes | None]] = []
        for tp in tps:
            if starts[tp] >= ends[tp]:
                continue
            consumer.seek(tp, starts[tp])
            done = False
            while not done and await consumer.position(tp) < ends[tp]:
                for m in (await consumer.getmany(tp, timeout_ms=2000)).get(tp, []):
                    if m.offset >= ends[tp] or (end is not None and m.timestamp > end * 1000):
                        done = True
                        break
                    messages.append((tp.partition, m.offset, m.value))
        return messages, anchored
    finally:
        await consumer.stop()


@click.group()
def audit() -> None:
    """The tamper-evident audit trail (topic autopilot.audit)."""


@audit.command("verify")
@click.option(
    "--from",
    "start",
    type=TIMESTAMP,
    help="Check entries appended from this time (epoch s or ISO 8601, UTC).",
)
@click.option("--to", "end", type=TIMESTAMP, help="... up to this time.")
@click.option("--topic", help="Verify this topic instead of the deployment's trail (a copy).")
@click.option("--json", "as_json", is_flag=True, help="End with one JSON object of the result.")
def verify_command(
    start: float | None, end: float | None, topic: str | None, as_json: bool
) -> None:
    """Check every chain of the trail: gaps, reorderings, altered entries; exit 1 if any."""
    from models.compliance.trail import verify
    from streams.runtime.app import topic_names

    name = topic or topic_names.audit_trail
    messages, anchored = asyncio.run(read_trail(name, start, end))
    statuses = verify(messages, anchored=anchored)
    ok = all(s.ok for s in statuses.values())
    for s in statuses.values():
        where = f"offsets {s.first_offset}..{s.last_offset}" if s.entries else "empty"
        state = "ok" if s.ok else f"{len(s.issues)} problem(s)"
        click.echo(f"partition {s.partition}: {s.entries} entries ({where}): {state}; "
                   f"head {(s.head or '-')[:16]}")  # fmt: skip
        for issue in s.issues[:20]:
            click.echo(f"  offset {issue.offset}: {issue.problem}: {issue.detail}")
    bad = [(s.partition, s.issues[0]) for s in statuses.values() if s.issues]
    if ok:
        click.echo(f"{name}: {len(messages)} entries in {len(statuses)} chains verify")
    else:
        partition, issue = bad[0]
        click.echo(f"{name}: TAMPERED: first bad offset {issue.offset} in partition {partition} "
                   f"({issue.problem})")  # fmt: skip
    if as_json:
        click.echo(orjson.dumps({
            "topic": name,
            "ok": ok,
            "entries": len(messages),
            "first_bad": [
                {"partition": p, "offset": i.offset, "problem": i.problem} for p, i in bad
            ],
            "chains": [s.to_dict() for s in statuses.values()],
        }).decode())  # fmt: skip
    sys.exit(0 if ok else 1)


@click.command("erase")
@click.option("--tenant", required=True, help="The tenant's name, or its pseudonym (t_...).")
@click.option("--reason", default="", help="Why (e.g. a ticket); kept in the audit trail.")
def erase(tenant: str, reason: str) -> None:
    """Ask every worker to forget what it learned of a tenant; the trail records it."""
    from models.brains.interactions import pseudonym
    from models.compliance.erasure import PSEUDONYM, ErasureRequest
    from streams.kafka.control import send_control
    from streams.runtime.app import settings

    name = (
        tenant if PSEUDONYM.match(tenant) else pseudonym(tenant, settings.pseudonym_salt.encode())
    )
    request = ErasureRequest(name, time.time(), uuid.uuid4().hex, reason)
    key, value = f"erase/{name}".encode(), orjson.dumps(request.to_dict())
    asyncio.run(send_control(settings, key, value))
    click.echo(f"erasure {request.request_id} of tenant {name} requested")


def _pii_counts(urls: tuple[str, ...]) -> tuple[dict[str, float], list[str]]:
    """autopilot_pii_detected_total per class, summed over the workers at ``urls``."""
    counts: dict[str, float] = {}
    unreachable = []
    pattern = re.compile(r'^autopilot_pii_detected_total\{class="(\w+)"\} (\S+)$')
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                text = response.read().decode()
        except (OSError, urllib.error.URLError):
            unreachable.append(url)
            continue
        for line in text.splitlines():
            if match := pattern.match(line):
                counts[match[1]] = counts.get(match[1], 0.0) + float(match[2])
    return counts, unreachable


@click.group()
def report() -> None:
    """Reports built from the topics."""


@report.command("compliance")
@click.option(
    "--from",
    "start",
    type=TIMESTAMP,
    help="Period start (epoch s or ISO 8601, UTC); default: the beginning.",
)
@click.option("--to", "end", type=TIMESTAMP, help="Period end; default: now.")
@click.option("--format", "fmt", type=click.Choice(["md", "html"]), default="md", show_default=True)
@click.option("--metrics", "metrics_urls", multiple=True,
              help="A worker's /metrics URL, for PII counts (repeat per worker); "
              "default: the local worker's.")  # fmt: skip
@click.option("--output", type=click.Path(dir_okay=False), help="Write here instead of stdout.")
def report_compliance(
    start: float | None,
    end: float | None,
    fmt: str,
    metrics_urls: tuple[str, ...],
    output: str | None,
) -> None:
    """Residency decisions, PII detections, actions, erasures and the trail's verification."""
    from models.compliance.report import compliance_report, render_html, render_markdown
    from models.compliance.trail import verify
    from streams.runtime.app import settings, topic_names

    # The chains are verified whole: a period's entries link to the ones before it.
    messages, anchored = asyncio.run(read_trail(topic_names.audit_trail))
    statuses = verify(messages, anchored=anchored)
    entries: list[dict[str, Any]] = []
    for _, _, value in messages:
        try:
            entry = orjson.loads(value or b"")
        except orjson.JSONDecodeError:
            continue
        ts = entry.get("ts") if isinstance(entry, dict) else None
        if not isinstance(ts, (int, float)):
            continue
        if (start is None or ts >= start) and (end is None or ts <= end):
            entries.append(entry)
    urls = metrics_urls or (f"http://127.0.0.1:{settings.web_port}/metrics",)
    pii, unreachable = _pii_counts(urls)
    result = compliance_report(entries, statuses, pii, start=start, end=end or time.time())
    text = render_markdown(result) if fmt == "md" else render_html(result)
    if unreachable:
        note = f"PII counts exclude unreachable workers: {', '.join(unreachable)}."
        text += f"\n{note}\n" if fmt == "md" else f"<p>{note}</p>"
    if output:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)
        click.echo(f"wrote {output}")
    else:
        click.echo(text)

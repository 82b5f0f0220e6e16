"""``autopilot tail``: follow decision (or DLQ) topics in the terminal."""

from __future__ import annotations

import asyncio
import time

import click
import orjson

from streams.runtime.app import app, settings, topic_names

__all__ = ["tail"]

_CHOICES = {
    "scaling": topic_names.scaling,
    "failover": topic_names.failover,
    "remediation": topic_names.remediation,
    "dlq": topic_names.dlq,
}


def describe(topic: str, value: bytes | None) -> str:
    """One line a person can read for a decision or a dead letter."""
    try:
        record = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return f"{topic}: <{len(value or b'')} bytes, not JSON>"
    if "decision_id" in record and "kind" in record:
        subject = "/".join(str(v) for v in record.get("subject", {}).values())
        stamp = time.strftime("%H:%M:%S", time.gmtime(record.get("ts", 0)))
        return (
            f"{stamp} {record['kind']:<12} {record.get('action', ''):<18} {subject:<24} "
            f"{record.get('mode', ''):<9} conf={record.get('confidence', 0):.2f}  "
            f"{record.get('reason', '')}"
        )
    return (
        f"DLQ {record.get('source_topic')}[{record.get('partition')}]@{record.get('offset')} "
        f"reason={record.get('reason')} field={record.get('field')}: {record.get('detail')}"
    )


async def _wait_for_topics(names: list[str]) -> None:
    """Return once every topic exists with a leader for each partition.

    Subscribing earlier makes the consumer log an ERROR per missing topic or leaderless
    partition; waiting says so once, in one line.
    """
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers, **settings.aiokafka_security_kwargs()
    )
    await admin.start()
    try:
        said = False
        # Described all at once: a metadata request that names a missing topic would
        # have the broker auto-create it, with the broker's partitions instead of ours.
        while missing := sorted(set(names) - _ready(await admin.describe_topics())):
            if not said:
                click.echo(
                    f"waiting for {', '.join(missing)} to be created "
                    "(the worker creates every topic when it starts)"
                )
                said = True
            await asyncio.sleep(1.0)
    finally:
        await admin.close()


def _ready(descriptions: list[dict]) -> set[str]:
    """The topics described that have a leader for every partition."""
    return {
        t["topic"]
        for t in descriptions
        if t["error_code"] == 0
        and t["partitions"]
        and all(p["leader"] >= 0 for p in t["partitions"])
    }


@app.command(
    click.argument("which", nargs=-1, type=click.Choice(sorted(_CHOICES))),
    click.option("--from-beginning", is_flag=True, help="Replay the topics from their start."),
    click.option("--limit", type=int, default=0, help="Stop after this many records (0: never)."),
)
async def tail(self, which: tuple[str, ...], from_beginning: bool, limit: int) -> None:
    """Print decisions as they are published (default: every decision topic)."""
    from aiokafka import AIOKafkaConsumer

    names = [_CHOICES[w] for w in which] or list(topic_names.decisions())
    await _wait_for_topics(names)
    consumer = AIOKafkaConsumer(
        *names,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
        **settings.aiokafka_security_kwargs(),
    )
    await consumer.start()
    seen = 0
    try:
        click.echo(f"following {', '.join(names)} on {settings.bootstrap_servers} (Ctrl-C stops)")
        async for message in consumer:
            click.echo(describe(message.topic, message.value))
            seen += 1
            if limit and seen >= limit:
                break
    except asyncio.CancelledError:
        pass
    finally:
        await consumer.stop()

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


@app.command(
    click.argument("which", nargs=-1, type=click.Choice(sorted(_CHOICES))),
    click.option("--from-beginning", is_flag=True, help="Replay the topics from their start."),
    click.option("--limit", type=int, default=0, help="Stop after this many records (0: never)."),
)
async def tail(self, which: tuple[str, ...], from_beginning: bool, limit: int) -> None:
    """Print decisions as they are published (default: every decision topic)."""
    from aiokafka import AIOKafkaConsumer

    names = [_CHOICES[w] for w in which] or list(topic_names.decisions())
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
